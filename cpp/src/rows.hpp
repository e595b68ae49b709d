// The rows walk: one contiguous row, or a slice of one when threads share a long row, for any
// operation (operations.hpp).
//
// [Note: passes over a row]
// A row short enough to stay in L2 (kCachedRowBytes), of an operation that keeps e (kKeepsE:
// softmax, softmax_jvp), makes three passes: max; exp stored in a per-thread scratch row and
// summed (further sums, from the scratch row); the outputs from the scratch row. Only the first
// reads memory and only the last writes it, once. A single "online" max-and-sum pass would need
// a second exp per element, which measured slower for such rows.
// A longer row would push its scratch out of cache, so it is walked in L1-sized blocks: each
// block's max, then its exps summed against the running max (the sum rescaled when the max
// grows), then a second pass recomputes exp for the output: two exps per element, but two reads
// and one write of memory (log_softmax, whose output needs no e, always walks so). The same
// first pass over a slice of the row gives per-thread partials that combine exactly
// (reductions.hpp), which is how threads share one long row. A plain reduction (the
// backwards) is always two passes: the sums, then the output.
//
// [Note: prefetching the next row]
// Out of cache, the next row's inputs are prefetched while this row is computed: its x during
// the first pass over this row (for the softmax, the exp pass), its g during the second (an
// op without g prefetches x again, which catches the prefetches the first pass had dropped),
// so that reading memory spreads over the row's whole time instead of waiting in one pass.
// They are fetched into L2, not L1: a 32 KiB row fetched into L1 evicted the current row
// that the later passes read again. Measured on the Zen 4 VM, (8192, 8192) float32 on one
// thread: softmax 25 ms with this scheme, 37 ms with both inputs fetched into L1 during the
// second pass; softmax_backward 29 and 39 ms.

#pragma once

#include <cmath>
#include <cstdint>
#include <iterator>
#include <limits>

#include "fastsoftmax/fastsoftmax.hpp"
#include "operands.hpp"
#include "operations.hpp"
#include "reductions.hpp"
#include "vec_exp.hpp"
#include "vector_loops.hpp"

namespace fastsoftmax::FASTSOFTMAX_LEVEL {
namespace {

constexpr int64_t kCachedRowBytes = 256 * 1024;
constexpr int64_t kBlockElements = 4096;  // a long row's block: stays in L1 between its passes
constexpr std::uintptr_t kPageBytes = 4096;

// [Note: 4K aliasing]
// A load waits for an earlier store still in flight whose address has the same low 12 bits
// (the core compares those first). The softmax's exp pass loads x and stores the scratch row,
// its write pass loads the scratch row and stores out: so the scratch row starts, modulo
// 4 KiB, halfway from x to out (2 KiB after x when they coincide, as NumPy's arrays of
// equal shape do), and no load comes soon after a store it seems to alias. Measured on the
// Zen 4 VM, (8192, 8192) float32 softmax on one thread: 37-39 ms with the scratch row 80
// bytes before out's offset, 28-30 ms halfway. Returns that start, rounded down to a cache
// line from `base`, within [base, base + kPageBytes): the scratch holds scratch_elements(n).
template <class T>
T* place_scratch(T* base, const T* x, const T* out) {
  constexpr std::uintptr_t kLineBytes = 64;
  const auto address = [](const void* p) { return reinterpret_cast<std::uintptr_t>(p); };
  const std::uintptr_t gap = (address(out) - address(x)) % kPageBytes;
  const std::uintptr_t start = address(x) + (gap ? gap : kPageBytes) / 2;
  const std::uintptr_t shift = (start - address(base)) % kPageBytes / kLineBytes * kLineBytes;
  return base + shift / sizeof(T);
}

template <class T>
constexpr int64_t scratch_elements(int64_t n) {
  return n + int64_t(kPageBytes / sizeof(T));
}

template <class T>
T row_max(const T* x, int64_t n) {
  Vec<T> m0 = simd::splat(-kInf<T>), m1 = m0, m2 = m0, m3 = m0;
  int64_t i = 0;
  for (; i + 4 * L<T> <= n; i += 4 * L<T>) {
    m0 = simd::max<T>(simd::load(x + i), m0);
    m1 = simd::max<T>(simd::load(x + i + L<T>), m1);
    m2 = simd::max<T>(simd::load(x + i + 2 * L<T>), m2);
    m3 = simd::max<T>(simd::load(x + i + 3 * L<T>), m3);
  }
  for (; i < n; i += L<T>) m0 = simd::max<T>(load_n(x + i, std::min(L<T>, n - i), -kInf<T>), m0);
  return simd::reduce_max<T>(simd::max<T>(simd::max<T>(m0, m1), simd::max<T>(m2, m3)));
}

// The maximum of x over [begin, begin + n) of a row, over the entries the mask keeps (-inf
// where it keeps none).
template <class Operation, class T>
T row_max_of(const Row<T>& r, int64_t begin, int64_t n) {
  if constexpr (IsMasked<Operation>::value) {
    const auto x = [&](int64_t i, int64_t count) {
      return RowView<T, Operation>{r, begin + i, count, T(0)}.x();
    };
    // Four chains, as row_max: max's latency, not its rate.
    Vec<T> m0 = simd::splat(-kInf<T>), m1 = m0, m2 = m0, m3 = m0;
    int64_t i = 0;
    for (; i + 4 * L<T> <= n; i += 4 * L<T>) {
      m0 = simd::max<T>(x(i, L<T>), m0);
      m1 = simd::max<T>(x(i + L<T>, L<T>), m1);
      m2 = simd::max<T>(x(i + 2 * L<T>, L<T>), m2);
      m3 = simd::max<T>(x(i + 3 * L<T>, L<T>), m3);
    }
    for (; i < n; i += L<T>) m0 = simd::max<T>(x(i, std::min(L<T>, n - i)), m0);
    return simd::reduce_max<T>(simd::max<T>(simd::max<T>(m0, m1), simd::max<T>(m2, m3)));
  } else {
    return row_max(r[Role::x] + begin, n);
  }
}

// What the walk gives a row besides the row itself.
template <class T>
struct RowContext {
  T* scratch = nullptr;  // scratch_elements(n), for rows of at most kCachedRowBytes
  bool stream = false;        // outputs go past the cache (the arrays are larger than it)
  // The next row's inputs (g may be null), prefetched while this row is computed (see the
  // Note on prefetching the next row).
  const T* next_x = nullptr;
  const T* next_g = nullptr;

  // f(i) prefetches element offset + i of the next row's input that the first (the second)
  // pass over a row fetches. Branch-free: where there is no next row, the element of `own`,
  // a row being read, is prefetched instead (with a branch per vector, GCC -O3 made the
  // backward 20% slower).
  auto first_pass_prefetcher(const T* own, int64_t offset) const {
    return prefetcher(next_x, own, offset);
  }
  auto second_pass_prefetcher(const T* own, int64_t offset) const {
    return prefetcher(next_g ? next_g : next_x, own, offset);
  }

 private:
  static auto prefetcher(const T* next, const T* own, int64_t offset) {
    const T* p = (next ? next : own) + offset;
    return [p](int64_t i) { simd::prefetch(p + i); };
  }
};

constexpr auto no_prefetch = [](int64_t) {};

// Every operand's stride along a contiguous row (a per-row output's is 0).
constexpr ByRole<int64_t> kUnitStrides = {{1, 1, 1, 1, 0, 0, 1, 0, 0}};

// The first pass over [begin, end) of a row, reduced to what the second pass needs (see the
// Note on passes). prefetch(i) is called alongside element begin + i.
template <class Operation, class T, class Prefetch>
typename Operation::Reduction::Partial first_pass(const Row<T>& r, int64_t begin, int64_t end,
                                                  Prefetch&& prefetch) {
  using Red = typename Operation::Reduction;
  constexpr int K = Red::kSums;
  typename Red::Partial p;
  const auto add = [&](const std::array<double, K>& sums) {
    for (int k = 0; k < K; ++k) p.sum[k].add(sums[k]);
  };
  if constexpr (Red::kGiven) {
    p = Red::read(r, 0);
  } else if constexpr (!Red::kHasMax) {
    add(fold_sums<T, K>(end - begin, [&](int64_t i, int64_t count) {
      prefetch(i);
      return Operation::terms(RowView<T, Operation>{r, begin + i, count, T(0)});
    }));
  } else {
    for (int64_t b = begin; b < end; b += kBlockElements) {
      const int64_t len = std::min(kBlockElements, end - b);
      const T block_max = row_max_of<Operation>(r, b, len);
      if (block_max == -kInf<T>) {
        // No mass, but its terms against a shift of 0 are NaN where x is NaN or where another
        // input is not finite (0 * inf), as they are in a block that has a finite maximum.
        add(fold_sums<T, K>(len, [&](int64_t i, int64_t count) {
          return Operation::terms(RowView<T, Operation>{r, b + i, count, T(0)});
        }));
        continue;
      }
      if (block_max > p.max) {
        const double rescale = std::exp(p.max - double(block_max));
        for (int k = 0; k < K; ++k) p.sum[k].scale(rescale);
        p.max = block_max;
      }
      if (p.max == kInf<double>) continue;  // a limit row: the caller takes the scalar path
      const T m = T(p.max);
      add(fold_sums<T, K>(len, [&](int64_t i, int64_t count) {
        prefetch(b - begin + i);
        return Operation::terms(RowView<T, Operation>{r, b + i, count, m});
      }));
    }
  }
  return p;
}

// The operation's constants, as vectors, from its combined sums.
template <class Operation, class T>
std::array<Vec<T>, Operation::kConstants> row_constants(
    const typename Operation::Reduction::Partial& p) {
  const std::array<T, Operation::kConstants> c = Operation::template derive<T>(p.values());
  std::array<Vec<T>, Operation::kConstants> v;
  for (int k = 0; k < Operation::kConstants; ++k) v[k] = simd::splat(c[k]);
  return v;
}

// The outputs of [begin, end) of a row from the combined first pass, one pass per output; the
// next row is prefetched alongside out. A shifted reduction needs a finite max here; the
// caller sends other rows to the limit rule.
template <class Operation, class T>
void second_pass(const Row<T>& row, int64_t begin, int64_t end,
                 const typename Operation::Reduction::Partial& p, const RowContext<T>& ctx) {
  // An operation with only per-row outputs has no second pass.
  if constexpr (std::size(Operation::kOutputs) > 0) {
    using Red = typename Operation::Reduction;
    const Row<T> r = row;  // local: a streamed store may alias anything, a local no pointer
    const auto c = row_constants<Operation, T>(p);
    const T m = Red::kHasMax ? T(p.max) : T(0);
    const auto prefetch = ctx.second_pass_prefetcher(r[Role::x], begin);
    for_each_output<Operation>(r, [&](auto role) {
      write_row(r[role] + begin, end - begin, ctx.stream, [&](int64_t i, int64_t count) {
        if constexpr (decltype(role)::value == Role::out) prefetch(i);
        const RowView<T, Unmasked<Operation>> view{r, begin + i, count, m};
        return output_at<Operation, decltype(role)::value>(c, view);
      });
    });
  }
}

// A type as a value, to choose a lambda's instantiation.
template <class O>
struct As {
  using Type = O;
};

// A row of at most kCachedRowBytes, for an operation that keeps e: e in the scratch row.
template <class Operation, class T>
void cached_row(const Row<T>& row, int64_t n, const RowContext<T>& ctx) {
  using Red = typename Operation::Reduction;
  const Row<T> r = row;  // as in second_pass
  using View = RowView<T, Operation>;
  typename Red::Partial p;
  p.max = row_max_of<Operation>(r, 0, n);
  if (!is_finite(T(p.max))) {
    Operation::limit(r, kUnitStrides, n);
    return;
  }
  const T m = T(p.max);
  T* const e = place_scratch(ctx.scratch, r[Role::x], r[Role::out]);
  const auto first_prefetch = ctx.first_pass_prefetcher(r[Role::x], 0);
  // The first sum alongside the exps stored, the others from the scratch row.
  for_each_sum<Red::kSums>([&](auto k) {
    if constexpr (decltype(k)::value == 0) {
      p.sum[0].add(fold_sum<T>(n, [&](int64_t i, int64_t count) {
        first_prefetch(i);
        const View view{r, i, count, m};
        const Vec<T> v = view.e();
        store_n(e + i, v, count);
        return Operation::terms(WithE<View>{view, v})[0];
      }));
    } else {
      p.sum[k].add(fold_sum<T>(n, [&](int64_t i, int64_t count) {
        return Operation::terms(StoredE<T, Operation>{{r, i, count, m}, e})[k];
      }));
    }
  });
  const auto c = row_constants<Operation, T>(p);
  const auto prefetch = ctx.second_pass_prefetcher(r[Role::x], 0);
  // The outputs as the operation decltype(as)::Type writes them.
  const auto write_outputs = [&](auto as) {
    for_each_output<Operation>(r, [&](auto role) {
      // e by value: by reference it was reloaded from the stack at every vector (the streaming
      // store may write anywhere, as far as the compiler knows).
      write_row(r[role], n, ctx.stream, [&, e](int64_t i, int64_t count) {
        if constexpr (decltype(role)::value == Role::out) prefetch(i);
        const StoredE<T, Unmasked<Operation>> view{{r, i, count, m}, e};
        return output_at<typename decltype(as)::Type, decltype(role)::value>(c, view);
      });
    });
  };
  if constexpr (IsMasked<Operation>::value && OutputVanishesWithE<Operation>::value) {
    // The stored e is 0 at every excluded entry, and so is the output there, unless a kept NaN
    // made the sums NaN.
    if (std::isfinite(p.sum[0].value())) {
      write_outputs(As<Unmasked<Operation>>{});
      return;
    }
  }
  write_outputs(As<Operation>{});
}

// Whether row_op needs ctx.scratch (scratch_elements(n)) for rows of n.
template <class Operation, class T>
bool needs_scratch_row(int64_t n) {
  return Operation::kKeepsE && n * int64_t(sizeof(T)) <= kCachedRowBytes;
}

// One whole row on one thread, with ctx.scratch as needs_scratch_row says. Inlined into the
// rows walk: as a call per row, log_softmax_backward on (98304, 512) float32 out of cache took
// 48 ms instead of 39 (Xeon, one thread).
template <class Operation, class T>
[[gnu::always_inline]] inline void row_op(const Row<T>& r, int64_t n, const RowContext<T>& ctx) {
  if constexpr (Operation::kKeepsE) {
    if (needs_scratch_row<Operation, T>(n)) {
      cached_row<Operation>(r, n, ctx);
      return;
    }
  }
  const auto p = first_pass<Operation>(r, 0, n, ctx.first_pass_prefetcher(r[Role::x], 0));
  if (needs_limit<Operation, T>(p)) {
    limit_rows<Operation>(r, kUnitStrides, n);
    return;
  }
  store_row_outputs<Operation>(r, p);
  second_pass<Operation>(r, 0, n, p, ctx);
}

}  // namespace
}  // namespace fastsoftmax::FASTSOFTMAX_LEVEL
