// The load layer: what an operation's steps read at one vector of a row or of a tile row.
//
// [Note: operands]
// A row and a tile hold one pointer (and, for a tile, one stride between its rows) per role
// (fastsoftmax.hpp's Role); null where the call has no such operand. An operation's steps
// (operations.hpp) never see pointers: they are given a view of one vector position and ask it
// for x(), g(), shifted() = x - m or e() = exp(x - m), each loaded or computed where asked (an
// input a step does not ask for is never read). Lanes past the row's end read as the
// reduction's fill (x: -inf for a shifted reduction, whose e is then 0; 0 for a plain one; g:
// 0), so they add nothing to the sums, and so do the entries a mask leaves out. A new operand
// kind is a new accessor here, as the mask is: its bytes read through their own strides (a
// broadcast mask's zero strides included), never copied to the input's shape.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <type_traits>
#include <utility>

#include "fastsoftmax/fastsoftmax.hpp"
#include "vec_exp.hpp"
#include "vector_loops.hpp"

namespace fastsoftmax::FASTSOFTMAX_LEVEL {
namespace {

// Operations run masked as Masked<Operation> (operations.hpp's Note on masks): a separate
// instantiation of every walk, so a call without a mask runs exactly the unmasked code.
template <class Operation>
struct Masked : Operation {};
template <class Operation>
struct IsMasked : std::false_type {};
template <class Operation>
struct IsMasked<Masked<Operation>> : std::true_type {};

// The operation without its mask, for the views of an output step: an entry the mask leaves out
// gets the masked value whatever its loads held (operations.hpp's output_at), so the output
// pass loads plainly and selects once.
template <class Operation>
struct WithoutMask {
  using Type = Operation;
};
template <class Operation>
struct WithoutMask<Masked<Operation>> {
  using Type = Operation;
};
template <class Operation>
using Unmasked = typename WithoutMask<Operation>::Type;

// One contiguous row of each operand. The mask is not a T: its row is `where` (its slot among
// the T pointers stays null), one byte an element; null without a mask.
template <class T>
struct Row : ByRole<T*> {
  const std::uint8_t* where = nullptr;
};

// Rows of a tile: each operand's first element of the tile and its stride between tile rows
// (the mask's in bytes, as stride[Role::where]).
template <class T>
struct Tile {
  Row<T> at;
  ByRole<int64_t> stride;
  int64_t n, w;
  bool stream;  // outputs go past the cache (see the Note on streaming stores in kernels.cpp)
};

// Whether element i of a row, walked with `stride`, takes part (every one without a mask).
template <class T>
inline bool kept(const Row<T>& at, const ByRole<int64_t>& stride, int64_t i) {
  return !at.where || at.where[i * stride[Role::where]];
}

// Vector [i, i + count) of a contiguous row, for an operation whose row maximum is m (where its
// reduction has one). Under a mask, an entry that takes no part loads as the reduction's fill
// (x) or 0 (g), as lanes past the row's end do.
template <class T, class Operation>
struct RowView {
  using Type = T;
  using Red = typename Operation::Reduction;
  const Row<T>& row;
  int64_t i, count;
  T m;

  [[gnu::always_inline]] simd::Predicate<T> kept() const {
    return simd::kept_lanes<T>(row.where + i, count);
  }
  [[gnu::always_inline]] Vec<T> load(Role role, T fill) const {
    const Vec<T> v = load_n(row[role] + i, count, fill);
    if constexpr (IsMasked<Operation>::value) {
      return simd::select<T>(kept(), v, simd::splat(fill));
    } else {
      return v;
    }
  }
  [[gnu::always_inline]] Vec<T> x() const { return load(Role::x, Red::template kFill<T>); }
  [[gnu::always_inline]] Vec<T> g() const { return load(Role::g, T(0)); }
  [[gnu::always_inline]] Vec<T> shifted() const { return x() - m; }
  [[gnu::always_inline]] Vec<T> e() const {
    if constexpr (IsMasked<Operation>::value) {
      // No exp where the mask keeps no lane: a causal mask leaves out half of a row's vectors,
      // each a run of whole vectors, so the branch is mispredicted about once a row.
      const auto keep = kept();
      if (simd::none<T>(keep)) return simd::splat(T(0));
      const Vec<T> fill = simd::splat(Red::template kFill<T>);
      const Vec<T> x = load_n(row[Role::x] + i, count, Red::template kFill<T>);
      return simd::exp_nonpositive<T>(simd::select<T>(keep, x, fill) - m);
    } else {
      return simd::exp_nonpositive<T>(shifted());
    }
  }
};

// A view whose e is already at hand: computed by the walk (given), or kept in a scratch row.
template <class View>
struct WithE : View {
  Vec<typename View::Type> value;
  [[gnu::always_inline]] Vec<typename View::Type> e() const { return value; }
};

template <class T, class Operation>
struct StoredE : RowView<T, Operation> {
  const T* stored;  // the row's e, as long as the row (0 where masked: it is stored from e())
  [[gnu::always_inline]] Vec<T> e() const {
    return load_n(stored + this->i, this->count, T(0));
  }
};

// Vector [c, c + count) of tile row j; m holds the columns' maxima (or what e subtracts).
template <class T, class Operation>
struct TileView {
  using Type = T;
  using Red = typename Operation::Reduction;
  const Tile<T>& tile;
  int64_t j, c, count;
  Vec<T> m;

  [[gnu::always_inline]] simd::Predicate<T> kept() const {
    return simd::kept_lanes<T>(tile.at.where + j * tile.stride[Role::where] + c, count);
  }
  [[gnu::always_inline]] Vec<T> load(Role role, T fill) const {
    const Vec<T> v = load_n(tile.at[role] + j * tile.stride[role] + c, count, fill);
    if constexpr (IsMasked<Operation>::value) {
      return simd::select<T>(kept(), v, simd::splat(fill));
    } else {
      return v;
    }
  }
  [[gnu::always_inline]] Vec<T> x() const { return load(Role::x, Red::template kFill<T>); }
  [[gnu::always_inline]] Vec<T> g() const { return load(Role::g, T(0)); }
  [[gnu::always_inline]] Vec<T> shifted() const { return x() - m; }
  [[gnu::always_inline]] Vec<T> e() const { return simd::exp_nonpositive<T>(shifted()); }
};

// f(std::integral_constant<Role, r>) for each output role r of the operation that the call
// has, in the operation's order, except that an output which is x itself comes last: every
// output step reads x, while another input (g) is read only by the step of the output that may
// be it (Call's contract: an output is exactly an input or shares no memory with the inputs).
template <class Operation, class P, class F, std::size_t... I>
[[gnu::always_inline]] inline void for_each_output(const ByRole<P>& at, F&& f,
                                                   std::index_sequence<I...>) {
  if constexpr (sizeof...(I) == 1) {  // one output: no order to keep, and one copy of f's loop
    constexpr Role role = Operation::kOutputs[0];
    if (at[role]) f(std::integral_constant<Role, role>{});
  } else {
    for (const bool x_last : {false, true}) {
      const auto visit = [&](auto role) {
        if (at[role] && (at[role] == at[Role::x]) == x_last) f(role);
      };
      (visit(std::integral_constant<Role, Operation::kOutputs[I]>{}), ...);
    }
  }
}
template <class Operation, class P, class F>
[[gnu::always_inline]] inline void for_each_output(const ByRole<P>& at, F&& f) {
  for_each_output<Operation>(at, f, std::make_index_sequence<std::size(Operation::kOutputs)>{});
}

}  // namespace
}  // namespace fastsoftmax::FASTSOFTMAX_LEVEL
