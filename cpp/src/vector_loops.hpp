// Loops over a contiguous range in vectors of one instruction-set level: partial last vectors,
// output stores that may stream past the cache, and sums accumulated in double.
//
// [Note: summation]
// A float32 running sum over a row of N loses up to ~log2(N) bits, and even short float partial
// sums (a few hundred terms per lane) put a softmax near its maximum past 8 units of rounding.
// So each lane adds at most four terms in T, four such partials are added pairwise, and only
// then is the vector widened and added into double lanes: the sums are exact to a few float
// roundings for any N, and the widening costs a quarter of an instruction per vector of terms.
// Double terms take the same blocks of four, then a compensated double sum (simd.hpp's Note on
// compensated sums), lanes included: a row's 1 and its small terms share the blocks' roundings
// (at most five) but no more; with the lanes added plainly, a float64 row of one 1 and 199 exps
// of -14 had a log-sum off by 10 units of rounding (its log_softmax bound is 8). Compensating
// every vector instead made a float64 log_softmax 1.2x slower. So are the sums a long row's
// blocks and the threads sharing a row add up (reductions.hpp).
#pragma once

#include <algorithm>
#include <cstdint>
#include <limits>

#include "simd.hpp"

namespace fastsoftmax::FASTSOFTMAX_LEVEL {
namespace {

using simd::Vec;
using std::int64_t;

template <class T>
constexpr T kInf = std::numeric_limits<T>::infinity();
template <class T>
constexpr int64_t L = simd::kLanes<T>;

template <class T>
inline bool is_finite(T v) {
  return v > -kInf<T> && v < kInf<T>;
}

// A full vector when count == L (the compiler folds the test away in the main loops), else
// the first `count` lanes with the rest set to `fill`.
template <class T>
inline Vec<T> load_n(const T* p, int64_t count, T fill) {
  return count == L<T> ? simd::load(p) : simd::load_first(p, count, fill);
}
template <class T>
inline void store_n(T* p, Vec<T> v, int64_t count) {
  if (count == L<T>) {
    simd::store(p, v);
  } else {
    simd::store_first(p, v, count);
  }
}

// Calls f(i, count) over [0, n) in vector steps, the last one partial.
template <class T, class F>
inline void for_each_vector(int64_t n, F&& f) {
  int64_t i = 0;
  for (; i + L<T> <= n; i += L<T>) f(i, L<T>);
  if (i < n) f(i, n - i);
}

// dst[i] = value(i, count) over [0, n). With `stream`, the whole vectors are stored
// non-temporally; a streamed store must be aligned, so a partial vector first reaches alignment.
template <class T, class F>
inline void write_row(T* dst, int64_t n, bool stream, F&& value) {
  int64_t i = 0;
  if (stream) {
    const auto misaligned = reinterpret_cast<std::uintptr_t>(dst) % sizeof(Vec<T>);
    const int64_t head = std::min<int64_t>(
        n, misaligned ? static_cast<int64_t>((sizeof(Vec<T>) - misaligned) / sizeof(T)) : 0);
    if (head) store_n(dst, value(int64_t{0}, head), head);
    for (i = head; i + L<T> <= n; i += L<T>) simd::stream(dst + i, value(i, L<T>));
  }
  for (; i + L<T> <= n; i += L<T>) simd::store(dst + i, value(i, L<T>));
  if (i < n) store_n(dst + i, value(i, n - i), n - i);
}

// A running double sum of scalars, compensated as simd::add_to compensates vector lanes.
struct CompensatedSum {
  double sum = 0, carry = 0;
  void add(double v) { simd::add_to(sum, carry, v); }
  void scale(double factor) {
    sum *= factor;
    carry *= factor;
  }
  double value() const { return simd::compensated_value(sum, carry); }
};

// sum over i of term(i, count), accumulated in double (see the Note on summation).
template <class T, class F>
inline double fold_sum(int64_t n, F&& term) {
  simd::WideSum<T> sum;
  int64_t i = 0;
  // Four accumulators of T, four terms each, then one widening: 16 vectors per block.
  constexpr int64_t kBlock = 16 * L<T>;
  for (; i + kBlock <= n; i += kBlock) {
    Vec<T> a = term(i, L<T>), b = term(i + L<T>, L<T>);
    Vec<T> c = term(i + 2 * L<T>, L<T>), d = term(i + 3 * L<T>, L<T>);
    for (int64_t j = i + 4 * L<T>; j < i + kBlock; j += 4 * L<T>) {
      a += term(j, L<T>);
      b += term(j + L<T>, L<T>);
      c += term(j + 2 * L<T>, L<T>);
      d += term(j + 3 * L<T>, L<T>);
    }
    sum.add((a + b) + (c + d));
  }
  for (; i < n; i += L<T>) sum.add(term(i, std::min(L<T>, n - i)));
  return sum.total();
}

}  // namespace
}  // namespace fastsoftmax::FASTSOFTMAX_LEVEL
