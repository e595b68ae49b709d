// The load layer: what an operation's steps read at one vector of a row or of a tile row.
//
// [Note: operands]
// A row and a tile hold one pointer (and, for a tile, one stride between its rows) per role
// (fastsoftmax.hpp's Role); null where the call has no such operand. An operation's steps
// (operations.hpp) never see pointers: they are given a view of one vector position and ask it
// for x(), g(), shifted() = x - m or e() = exp(x - m), each loaded or computed where asked (an
// input a step does not ask for is never read). Lanes past the row's end read as the
// reduction's fill (x: -inf for a shifted reduction, whose e is then 0; 0 for a plain one; g:
// 0), so they add nothing to the sums. A new operand kind is a new accessor here: a mask read
// through its own strides, a per-row scalar as a splat of its one element.
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

// One contiguous row of each operand.
template <class T>
using Row = ByRole<T*>;

// Rows of a tile: each operand's first element of the tile and its stride between tile rows.
template <class T>
struct Tile {
  ByRole<T*> at;
  ByRole<int64_t> stride;
  int64_t n, w;
  bool stream;  // outputs go past the cache (see the Note on streaming stores in kernels.cpp)
};

// Vector [i, i + count) of a contiguous row, for an operation whose reduction is Red and whose
// row maximum is m (where the reduction has one).
template <class T, class Red>
struct RowView {
  using Type = T;
  const Row<T>& row;
  int64_t i, count;
  T m;

  [[gnu::always_inline]] Vec<T> x() const {
    return load_n(row[Role::x] + i, count, Red::template kFill<T>);
  }
  [[gnu::always_inline]] Vec<T> g() const { return load_n(row[Role::g] + i, count, T(0)); }
  [[gnu::always_inline]] Vec<T> shifted() const { return x() - m; }
  [[gnu::always_inline]] Vec<T> e() const { return simd::exp_nonpositive<T>(shifted()); }
};

// A view whose e is already at hand: computed by the walk (given), or kept in a scratch row.
template <class View>
struct WithE : View {
  Vec<typename View::Type> value;
  [[gnu::always_inline]] Vec<typename View::Type> e() const { return value; }
};

template <class T, class Red>
struct StoredE : RowView<T, Red> {
  const T* stored;  // the row's e, as long as the row
  [[gnu::always_inline]] Vec<T> e() const {
    return load_n(stored + this->i, this->count, T(0));
  }
};

// Vector [c, c + count) of tile row j; m holds the columns' maxima (or what e subtracts).
template <class T, class Red>
struct TileView {
  using Type = T;
  const Tile<T>& tile;
  int64_t j, c, count;
  Vec<T> m;

  [[gnu::always_inline]] Vec<T> load(Role role, T fill) const {
    return load_n(tile.at[role] + j * tile.stride[role] + c, count, fill);
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
void for_each_output(const ByRole<P>& at, F&& f, std::index_sequence<I...>) {
  for (const bool x_last : {false, true}) {
    const auto visit = [&](auto role) {
      if (at[role] && (at[role] == at[Role::x]) == x_last) f(role);
    };
    (visit(std::integral_constant<Role, Operation::kOutputs[I]>{}), ...);
  }
}
template <class Operation, class P, class F>
void for_each_output(const ByRole<P>& at, F&& f) {
  for_each_output<Operation>(at, f, std::make_index_sequence<std::size(Operation::kOutputs)>{});
}

}  // namespace
}  // namespace fastsoftmax::FASTSOFTMAX_LEVEL
