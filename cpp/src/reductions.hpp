// The two kinds of reduction over a row, and how partial reductions combine.
//
// [Note: reductions]
// An operation reduces each row to kSums sums before its output step (operations.hpp):
// - Shifted<K>: sums of terms of e = exp(x - m), m the row's maximum of x. A partial of a slice
//   (a block of a long row, a thread's slice, a tile's rows) holds its own maximum; combining
//   rescales each partial's sums by exp(max - combined max). A slice whose max is -inf holds no
//   mass (its sums are 0, or NaN if it hid a NaN).
// - Plain<K>: sums of terms of the loaded inputs; partials just add.
// - Given: the row's (max, sum) is not reduced from the row but read from the per-row operands
//   row_max and row_sum (operations.hpp's Note on row partials); every slice of a row reads the
//   same pair, so partials combine by taking one.
// The sums are compensated across blocks and slices (a float64 row of 10**7 adds 2,441 block
// sums). Combining is the same for threads sharing a row, for a tile's row slices, and for any
// other split of a row.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>
#include <utility>

#include "fastsoftmax/fastsoftmax.hpp"
#include "vector_loops.hpp"

namespace fastsoftmax::FASTSOFTMAX_LEVEL {
namespace {

// A slice of a row reduced: its maximum (-inf where the reduction has none) and K sums.
template <int K>
struct PartialSums {
  double max = -std::numeric_limits<double>::infinity();  // NaN never wins it
  CompensatedSum sum[K];

  std::array<double, K> values() const {
    std::array<double, K> v;
    for (int k = 0; k < K; ++k) v[k] = sum[k].value();
    return v;
  }
};

template <int K>
struct Shifted {
  static constexpr int kSums = K;
  static constexpr bool kHasMax = true;
  static constexpr bool kGiven = false;
  template <class T>
  static constexpr T kFill = -kInf<T>;  // exp(fill - m) = 0
  using Partial = PartialSums<K>;

  // The partials part(0), ..., part(count - 1) of slices of one row, as if one pass had seen
  // them all.
  template <class Part>
  static Partial combine(int count, Part&& part) {
    Partial total;
    for (int t = 0; t < count; ++t) total.max = std::max(total.max, part(t).max);
    for (int t = 0; t < count; ++t) {
      const Partial p = part(t);
      const double rescale = p.max == -kInf<double> ? 1.0 : std::exp(p.max - total.max);
      for (int k = 0; k < K; ++k) total.sum[k].add(p.sum[k].value() * rescale);
    }
    return total;
  }
};

template <int K>
struct Plain {
  static constexpr int kSums = K;
  static constexpr bool kHasMax = false;
  static constexpr bool kGiven = false;
  template <class T>
  static constexpr T kFill = T(0);
  using Partial = PartialSums<K>;

  template <class Part>
  static Partial combine(int count, Part&& part) {
    Partial total;
    for (int t = 0; t < count; ++t) {
      const Partial p = part(t);
      for (int k = 0; k < K; ++k) total.sum[k].add(p.sum[k].value());
    }
    return total;
  }
};

struct Given {
  static constexpr int kSums = 1;
  static constexpr bool kHasMax = true;
  static constexpr bool kGiven = true;
  template <class T>
  static constexpr T kFill = -kInf<T>;
  using Partial = PartialSums<1>;

  // The pair of the row whose per-row operands are at[role] + c.
  template <class T>
  static Partial read(const ByRole<T*>& at, int64_t c) {
    Partial p;
    p.max = at[Role::row_max][c];
    p.sum[0].add(at[Role::row_sum][c]);
    return p;
  }
  template <class Part>
  static Partial combine(int, Part&& part) {
    return part(0);
  }
};

// f(std::integral_constant<int, k>) for k in [0, K), k a constant for each call.
template <class F, int... I>
inline void for_each_sum(F&& f, std::integer_sequence<int, I...>) {
  (f(std::integral_constant<int, I>{}), ...);
}
template <int K, class F>
inline void for_each_sum(F&& f) {
  for_each_sum(f, std::make_integer_sequence<int, K>{});
}

// The K sums over i of terms(i, count)[k], accumulated in double (the Note on summation): one
// sum is folded in blocks of T (fold_sum); several add each vector widened, which keeps fewer
// registers live.
template <class T, int K, class F>
inline std::array<double, K> fold_sums(int64_t n, F&& terms) {
  if constexpr (K == 1) {
    return {fold_sum<T>(n, [&](int64_t i, int64_t count) { return terms(i, count)[0]; })};
  } else {
    simd::WideSum<T> sums[K];
    for_each_vector<T>(n, [&](int64_t i, int64_t count) {
      const std::array<Vec<T>, K> t = terms(i, count);
      for (int k = 0; k < K; ++k) sums[k].add(t[k]);
    });
    std::array<double, K> totals;
    for (int k = 0; k < K; ++k) totals[k] = sums[k].total();
    return totals;
  }
}

}  // namespace
}  // namespace fastsoftmax::FASTSOFTMAX_LEVEL
