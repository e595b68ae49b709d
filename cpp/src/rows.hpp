// The row kernels: one contiguous row, or a slice of one when threads share a long row.
//
// [Note: passes over a row]
// A row short enough to stay in L2 (kCachedRowBytes) makes three passes for the softmax: max;
// exp stored in a per-thread scratch row and summed; output = scratch / sum. Only the first
// reads memory and only the last writes it, once. A single "online" max-and-sum pass would need
// a second exp per element, which measured slower for such rows.
// A longer row would push its scratch out of cache, so it is walked in L1-sized blocks: each
// block's max, then its exps summed against the running max (the sum rescaled when the max
// grows), then a second pass recomputes exp for the output: two exps per element, but two reads
// and one write of memory. The same first pass over a slice of the row gives per-thread
// partial (max, sum) pairs that combine exactly, which is how threads share one long row.
// The backward is always two passes: the dot product, then the output.
//
// [Note: prefetching the next row]
// Out of cache, the next row's inputs are prefetched while this row is computed: its x during
// the first pass over this row (for the softmax, the exp pass), its g during the second (an
// op without g prefetches x again, which catches the prefetches the first pass had dropped),
// so that reading memory spreads over the row's whole time instead of waiting in one pass.
// They are fetched into L2, not L1: a 32 KiB row fetched into L1 evicted the current row
// that the later passes read again. Measured on the Zen 4 VM, (8192, 8192) float32 on one
// thread: softmax 37 -> 25 ms, softmax_backward 39 -> 29 ms, against the previous choice
// (both inputs into L1 during the second pass). For the softmax, prefetching x in the exp
// pass only took 31 ms; for the backward, both inputs in both passes gained nothing.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>

#include "fastsoftmax/fastsoftmax.hpp"
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

template <class T>
bool has_nan(const T* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    if (x[i] != x[i]) return true;
  }
  return false;
}

// exp(x - m) into e, returning its sum; prefetch(i) is called alongside, so that the next
// row's input arrives while this row computes.
template <class T, class Prefetch>
double exp_store_sum(const T* x, T m, T* e, int64_t n, Prefetch&& prefetch) {
  return fold_sum<T>(n, [&](int64_t i, int64_t count) {
    prefetch(i);
    const Vec<T> v = simd::exp_nonpositive<T>(load_n(x + i, count, -kInf<T>) - m);
    store_n(e + i, v, count);
    return v;
  });
}

// The sums below call prefetch(i) alongside element i, like exp_store_sum.
constexpr auto no_prefetch = [](int64_t) {};

template <class T, class Prefetch>
double exp_sum(const T* x, T m, int64_t n, Prefetch&& prefetch) {
  return fold_sum<T>(n, [&](int64_t i, int64_t count) {
    prefetch(i);
    return simd::exp_nonpositive<T>(load_n(x + i, count, -kInf<T>) - m);
  });
}

template <class T, class Prefetch>
double dot(const T* a, const T* b, int64_t n, Prefetch&& prefetch) {
  return fold_sum<T>(n, [&](int64_t i, int64_t count) {
    prefetch(i);
    return load_n(a + i, count, T(0)) * load_n(b + i, count, T(0));
  });
}

template <class T, class Prefetch>
double sum(const T* a, int64_t n, Prefetch&& prefetch) {
  return fold_sum<T>(n, [&](int64_t i, int64_t count) {
    prefetch(i);
    return load_n(a + i, count, T(0));
  });
}

// sum of exp(x - m) and of exp(x - m) * v in one pass (softmax_jvp on a long row).
template <class T, class Prefetch>
void exp_sum_dot(const T* x, T m, const T* v, int64_t n, double& total, double& dot_total,
                 Prefetch&& prefetch) {
  simd::WideSum<T> s, d;
  for_each_vector<T>(n, [&](int64_t i, int64_t count) {
    prefetch(i);
    const Vec<T> e = simd::exp_nonpositive<T>(load_n(x + i, count, -kInf<T>) - m);
    s.add(e);
    d.add(e * load_n(v + i, count, T(0)));
  });
  total = s.total();
  dot_total = d.total();
}

// [Note: rows whose maximum is not finite]
// Subtracting the maximum fails only when it is +inf (inf - inf) or -inf (the row is all -inf,
// or -inf and NaN). Both are rare, so the fast path only tests the maximum and this scalar
// path does the rest: a NaN anywhere, or no +inf, makes the row NaN; otherwise the k entries at
// +inf share probability 1 (log-probability -log k) and the rest get 0 (-inf).
// Returns false when the row came out NaN.
template <class T>
bool limit_row(const T* x, int64_t sx, T* out, int64_t so, int64_t n, bool log) {
  int64_t infinite = 0;
  bool nan = false;
  for (int64_t i = 0; i < n; ++i) {
    infinite += x[i * sx] == kInf<T>;
    nan |= x[i * sx] != x[i * sx];
  }
  if (nan || infinite == 0) {
    for (int64_t i = 0; i < n; ++i) out[i * so] = std::numeric_limits<T>::quiet_NaN();
    return false;
  }
  // 0 - log k, not -log k: a lone +inf gets +0, as x - max gives where max is finite.
  const T hit = log ? T(0) - std::log(T(infinite)) : T(1) / T(infinite);
  const T miss = log ? -kInf<T> : T(0);
  for (int64_t i = 0; i < n; ++i) out[i * so] = x[i * sx] == kInf<T> ? hit : miss;
  return true;
}

// softmax_jvp in a row whose maximum is not finite: s (if wanted) is the limit, the product
// NaN or 0 (the Jacobian of a saturated softmax is zero).
template <class T>
void limit_jvp(const T* x, int64_t sx, T* out, int64_t so, T* s, int64_t ss, int64_t n) {
  const bool finite = s ? limit_row(x, sx, s, ss, n, false) : limit_row(x, sx, out, so, n, false);
  const T value = finite ? T(0) : std::numeric_limits<T>::quiet_NaN();
  for (int64_t i = 0; i < n; ++i) out[i * so] = value;
}

// Pointers to one row of each operand; g and s may be null.
template <class T>
struct Row {
  const T* x;
  const T* g;
  T* out;
  T* s;
};

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

bool is_forward(Op op) { return op == Op::softmax || op == Op::log_softmax || op == Op::softmax_jvp; }

// The first pass over [begin, end) of a row, reduced to what the second pass needs. The sums
// are compensated across blocks and slices (a float64 row of 10**7 adds 2,441 block sums).
struct Partial {
  double max = -std::numeric_limits<double>::infinity();  // forward ops; NaN never wins it
  CompensatedSum sum;  // forward: of exp(x - max); softmax_backward: of y g; log: of g
  CompensatedSum dot;  // softmax_jvp: of exp(x - max) * v
};

// prefetch(i) is called alongside element begin + i.
template <class T, class Prefetch>
Partial first_pass(Op op, const Row<T>& r, int64_t begin, int64_t end, Prefetch&& prefetch) {
  Partial p;
  if (op == Op::softmax_backward) {
    p.sum.add(dot(r.x + begin, r.g + begin, end - begin, prefetch));
    return p;
  }
  if (op == Op::log_softmax_backward) {
    p.sum.add(sum(r.g + begin, end - begin, prefetch));
    return p;
  }
  for (int64_t b = begin; b < end; b += kBlockElements) {
    const int64_t len = std::min(kBlockElements, end - b);
    const auto block_prefetch = [&](int64_t i) { prefetch(b - begin + i); };
    const T block_max = row_max(r.x + b, len);
    if (block_max == -kInf<T>) {  // contributes nothing, unless it hides a NaN
      if (has_nan(r.x + b, len)) p.sum.add(std::numeric_limits<double>::quiet_NaN());
      continue;
    }
    if (block_max > p.max) {
      const double rescale = std::exp(p.max - double(block_max));
      p.sum.scale(rescale);
      p.dot.scale(rescale);
      p.max = block_max;
    }
    if (p.max == kInf<double>) continue;  // a limit row: the caller takes the scalar path
    if (op == Op::softmax_jvp) {
      double s, d;
      exp_sum_dot(r.x + b, T(p.max), r.g + b, len, s, d, block_prefetch);
      p.sum.add(s);
      p.dot.add(d);
    } else {
      p.sum.add(exp_sum(r.x + b, T(p.max), len, block_prefetch));
    }
  }
  return p;
}

// The partials part(0), ..., part(count - 1) of consecutive slices of one row, combined as if
// one pass had seen them all (columns.hpp combines a tile's columns with it too).
template <class Part>
Partial combine(int count, Part&& part) {
  Partial total;
  for (int t = 0; t < count; ++t) total.max = std::max(total.max, part(t).max);
  for (int t = 0; t < count; ++t) {
    const Partial p = part(t);
    // A slice whose max is -inf holds no mass (its sum is 0, or NaN if it hid a NaN).
    const double rescale = p.max == -kInf<double> ? 1.0 : std::exp(p.max - total.max);
    total.sum.add(p.sum.value() * rescale);
    total.dot.add(p.dot.value() * rescale);
  }
  return total;
}

// The outputs of [begin, end) of a row from the combined first pass. Forward ops need a finite
// max here; the caller sends other rows to limit_row.
template <class T>
void second_pass(Op op, const Row<T>& r, int64_t begin, int64_t end, const Partial& p,
                 const RowContext<T>& ctx) {
  const int64_t n = end - begin;
  const T* x = r.x + begin;
  const T* g = r.g ? r.g + begin : nullptr;
  const T m = T(p.max);
  const auto prefetch = ctx.second_pass_prefetcher(r.x, begin);
  switch (op) {
    case Op::softmax: {
      const T inv = T(1.0 / p.sum.value());
      write_row(r.out + begin, n, ctx.stream, [&](int64_t i, int64_t count) {
        prefetch(i);
        return simd::exp_nonpositive<T>(load_n(x + i, count, -kInf<T>) - m) * inv;
      });
      return;
    }
    case Op::log_softmax: {
      // [Note: order of subtraction] (x - max) is exact for nearby values and is formed first;
      // folding max + log(sum) into one constant would round it and lose small log-probabilities.
      const T lse = T(std::log(p.sum.value()));
      write_row(r.out + begin, n, ctx.stream, [&](int64_t i, int64_t count) {
        prefetch(i);
        return (load_n(x + i, count, T(0)) - m) - lse;
      });
      return;
    }
    case Op::softmax_jvp: {
      const double inv = 1.0 / p.sum.value();
      const T scale = T(inv), d = T(p.dot.value() * inv);
      auto y = [&](int64_t i, int64_t count) {
        return simd::exp_nonpositive<T>(load_n(x + i, count, -kInf<T>) - m) * scale;
      };
      const auto write_s = [&] {
        if (r.s) write_row(r.s + begin, n, ctx.stream, y);
      };
      // s may be x itself (out then is not): it is written after the product has read x.
      // Otherwise before, since out may be x.
      if (r.s != r.x) write_s();
      write_row(r.out + begin, n, ctx.stream, [&](int64_t i, int64_t count) {
        prefetch(i);
        return y(i, count) * (load_n(g + i, count, T(0)) - d);
      });
      if (r.s == r.x) write_s();
      return;
    }
    case Op::softmax_backward: {
      const T d = T(p.sum.value());
      write_row(r.out + begin, n, ctx.stream, [&](int64_t i, int64_t count) {
        prefetch(i);
        return load_n(x + i, count, T(0)) * (load_n(g + i, count, T(0)) - d);
      });
      return;
    }
    case Op::log_softmax_backward: {
      const T total = T(p.sum.value());
      write_row(r.out + begin, n, ctx.stream, [&](int64_t i, int64_t count) {
        prefetch(i);
        const Vec<T> q = simd::exp<T>(load_n(x + i, count, T(0)));
        return load_n(g + i, count, T(0)) - q * total;
      });
      return;
    }
  }
}

// A forward row whose maximum is not finite (see the Note above).
template <class T>
void limit_forward(Op op, const Row<T>& r, int64_t n) {
  if (op == Op::softmax_jvp) {
    limit_jvp(r.x, 1, r.out, 1, r.s, 1, n);
  } else {
    limit_row(r.x, 1, r.out, 1, n, op == Op::log_softmax);
  }
}

// softmax and softmax_jvp on a row of at most kCachedRowBytes: exp kept in the scratch row.
template <class T>
void cached_row(Op op, const Row<T>& r, int64_t n, const RowContext<T>& ctx) {
  const T m = row_max(r.x, n);
  if (!is_finite(m)) {
    limit_forward(op, r, n);
    return;
  }
  T* const e = place_scratch(ctx.scratch, r.x, r.out);
  const double inv = 1.0 / exp_store_sum(r.x, m, e, n, ctx.first_pass_prefetcher(r.x, 0));
  const T scale = T(inv);
  const auto prefetch = ctx.second_pass_prefetcher(r.x, 0);
  if (op == Op::softmax) {
    write_row(r.out, n, ctx.stream, [&](int64_t i, int64_t count) {
      prefetch(i);
      return load_n(e + i, count, T(0)) * scale;
    });
    return;
  }
  const T d = T(dot(e, r.g, n, no_prefetch) * inv);
  if (r.s) {
    write_row(r.s, n, ctx.stream, [&](int64_t i, int64_t count) {
      return load_n(e + i, count, T(0)) * scale;
    });
  }
  write_row(r.out, n, ctx.stream, [&](int64_t i, int64_t count) {
    prefetch(i);
    return load_n(e + i, count, T(0)) * scale * (load_n(r.g + i, count, T(0)) - d);
  });
}

// Whether row_op needs ctx.scratch (scratch_elements(n)) for rows of n.
template <class T>
bool needs_scratch_row(Op op, int64_t n) {
  return n * int64_t(sizeof(T)) <= kCachedRowBytes && (op == Op::softmax || op == Op::softmax_jvp);
}

// One whole row on one thread, with ctx.scratch as needs_scratch_row says.
template <class T>
void row_op(Op op, const Row<T>& r, int64_t n, const RowContext<T>& ctx) {
  if (needs_scratch_row<T>(op, n)) {
    cached_row(op, r, n, ctx);
    return;
  }
  const Partial p = first_pass(op, r, 0, n, ctx.first_pass_prefetcher(r.x, 0));
  if (is_forward(op) && !is_finite(T(p.max))) {
    limit_forward(op, r, n);
    return;
  }
  second_pass(op, r, 0, n, p, ctx);
}

}  // namespace
}  // namespace fastsoftmax::FASTSOFTMAX_LEVEL
