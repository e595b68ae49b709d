// Vectorised exp for float and double.
//
// exp(x) = 2^n * exp(r), n = round(x / ln 2), r = x - n ln 2 with |r| <= ln(2) / 2.
// - r is formed Cody–Waite style: ln 2 split in a head with few significant bits (so n * head is
//   exact for every n reached) and a tail.
// - exp(r): float, a polynomial of degree 5 (minimax in ulps; Cephes' degree 7 is within 1 ulp
//   but costs 3 more operations of ~12, measured 18% slower in a softmax row, and softmax's
//   accuracy bound has room for 2 ulps); double, a polynomial of degree 11 (its truncation
//   error is below 0.04 ulp on the interval).
// - 2^n: AVX-512's vscalef; elsewhere built in the exponent bits, as 2^(n/2) * 2^(n - n/2) so
//   that n down to the subnormal range and up to the overflow threshold stays representable.
//
// Accuracy for normal results, measured through the module's private `_exp` hook against a
// wider exp: float 2.03 ulp over all floats of [-87, 87]; double 0.87 ulp (1.15 at the
// baseline level, which has no FMA) over 10^6 points of its range (tests/test_exp.py checks
// every level: float <= 2.5 ulp, double <= 1.5). Subnormal results (gradual underflow): within
// 1.32 smallest subnormals.
// Special values: exp(NaN) = NaN, exp(+inf) = +inf, exp(-inf) = 0; results overflow to +inf
// above ln(max) and underflow to 0 below ln(min_subnormal / 2), like std::exp. No fix-up pass
// is needed for them: the input is clamped to [lowest, highest], whose exps compute to exactly
// 0 and +inf, and the clamps pass NaN through, which the arithmetic then propagates.
// exp_nonpositive is exp for arguments known to be <= 0 or NaN, as every x - max of the kernels
// is: the upper clamp would never act there, and leaving it out made a float32 softmax ~4%
// faster (Zen 4 VM, (1024, 4096) and (8192, 8192), one thread). Same bits as exp on its domain.
// (The Numba backend keeps both clamps in one exp.)
#pragma once

#include <cstdint>
#include <limits>

#include "simd.hpp"

namespace fastsoftmax::FASTSOFTMAX_LEVEL::simd {

template <class T>
struct ExpConstants;

template <>
struct ExpConstants<float> {
  static constexpr float lowest = -104.0f;  // exp(-104) computes to 0 (below min_subnormal / 2)
  static constexpr float highest = 89.0f;   // exp(89) computes to +inf
  static constexpr float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  static constexpr float log2e = 1.44269504088896341f;
  static constexpr float ln2_head = 0.693359375f;  // 9 significant bits
  static constexpr float ln2_tail = -2.12194440e-4f;
  static constexpr int mantissa_bits = 23;
  static constexpr unsigned exponent_bias = 127;

  static Vec<float> exp_reduced(Vec<float> r) {
    // Degree 5, coefficients highest first, fitted for the least maximum error in ulps.
    Vec<float> p = splat(8.265906014e-3f);
    p = p * r + 4.189947993e-2f;
    p = p * r + 1.666811407e-1f;
    p = p * r + 4.999913573e-1f;
    p = p * r + 9.999994636e-1f;
    return p * r + 1.0f;
  }
};

template <>
struct ExpConstants<double> {
  static constexpr double lowest = -746.0;  // as for float: exactly 0
  static constexpr double highest = 710.0;  // and +inf
  static constexpr double magic = 6755399441055744.0;  // 1.5 * 2^52
  static constexpr double log2e = 1.4426950408889634074;
  static constexpr double ln2_head = 6.93145751953125e-1;  // 21 significant bits
  static constexpr double ln2_tail = 1.42860682030941723212e-6;
  static constexpr int mantissa_bits = 52;
  static constexpr unsigned exponent_bias = 1023;

  static Vec<double> exp_reduced(Vec<double> r) {
    // Degree 11, coefficients highest first: 1 + r q(r), q interpolating (exp(r) - 1) / r at
    // Chebyshev nodes of the interval; within 0.04 ulp of exp (Taylor's polynomial needs
    // degree 13 for that, measured 7% slower in a float64 softmax row).
    Vec<double> p = splat(2.510520637395701e-08);
    p = p * r + 2.7626357241447223e-07;
    p = p * r + 2.7557255425746435e-06;
    p = p * r + 2.4801504346997686e-05;
    p = p * r + 0.00019841269874800493;
    p = p * r + 0.0013888888932488599;
    p = p * r + 0.008333333333326141;
    p = p * r + 0.04166666666657314;
    p = p * r + 0.1666666666666667;
    p = p * r + 0.5000000000000006;
    p = p * r + 1.0;
    return p * r + 1.0;
  }
};

// exp of x already clamped to [lowest, highest] (or NaN). Always inlined, as are the two
// below: as a call, every vector crosses the call in memory (measured 2x slower).
template <class T>
[[gnu::always_inline]] inline Vec<T> exp_clamped(Vec<T> xc) {
  using C = ExpConstants<T>;
  const Vec<T> shifted = xc * C::log2e + C::magic;  // round(x / ln 2) sits in the low bits
  const Vec<T> n = shifted - C::magic;
  Vec<T> r = xc - n * C::ln2_head;
  r = r - n * C::ln2_tail;
  const Vec<T> p = C::exp_reduced(r);
#if defined(__AVX512F__)
  // vscalef computes p * 2^n in one instruction, rounding once into the subnormals.
  if constexpr (sizeof(T) == 4) return _mm512_scalef_ps(p, n);
  else return _mm512_scalef_pd(p, n);
#else
  using I = IntVec<T>;
  using U = UintVec<T>;
  // 2^n in the exponent bits, unsigned so that a NaN input's meaningless n shifts without UB.
  const I n_int = bits<T>(shifted) - bits<T>(splat<T>(C::magic));
  const I half = n_int >> 1;
  const I rest = n_int - half;
  const U scale_a = (reinterpret_cast<const U&>(half) + C::exponent_bias) << C::mantissa_bits;
  const U scale_b = (reinterpret_cast<const U&>(rest) + C::exponent_bias) << C::mantissa_bits;
  return (p * bitcast<T>(scale_a)) * bitcast<T>(scale_b);
#endif
}

template <class T>
[[gnu::always_inline]] inline Vec<T> exp(Vec<T> x) {
  using C = ExpConstants<T>;
  return exp_clamped<T>(min<T>(splat<T>(C::highest), max<T>(splat<T>(C::lowest), x)));
}

template <class T>
[[gnu::always_inline]] inline Vec<T> exp_nonpositive(Vec<T> x) {
  return exp_clamped<T>(max<T>(splat<T>(ExpConstants<T>::lowest), x));
}

}  // namespace fastsoftmax::FASTSOFTMAX_LEVEL::simd
