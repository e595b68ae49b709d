// float16 <-> float32 for float16 arrays, which the kernels compute in float32
// (python/fastsoftmax/_api.py). NumPy's cast to float16 takes about 70 ns an element where the
// result is subnormal in float16, which is where most of a softmax's probabilities fall: a
// (8192, 8192) float16 softmax took 4.3 s, 100x its float32 time, almost all of it in the cast
// back; its cast from float16 took 123 ms of the rest. F16C converts 8 values an instruction,
// subnormals included. The baseline level (and a CPU or target without F16C) converts one
// element at a time, with the same rounding (to nearest even; from float16 it is exact).
#include <cmath>
#include <cstdint>
#include <cstring>

#include "fastsoftmax/fastsoftmax.hpp"

#if defined(FASTSOFTMAX_X86)
#include <immintrin.h>
#endif

namespace fastsoftmax {
namespace {

std::uint16_t to_half(float value) {
  std::uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  const auto sign = static_cast<std::uint16_t>((bits >> 16) & 0x8000u);
  const float a = std::fabs(value);
  if (a != a) return static_cast<std::uint16_t>(sign | 0x7e00u | ((bits >> 13) & 0x3ffu));
  if (a >= 65520.0f) return sign | 0x7c00u;  // rounds past the largest half, 65504: inf
  if (a < 0x1p-14f) {
    // Subnormal (or 0): a multiple of 2^-24, rounded to nearest even by nearbyint; 1024 of
    // them is the smallest normal half, whose bits are the same count.
    return static_cast<std::uint16_t>(sign | static_cast<std::uint16_t>(std::nearbyint(a * 0x1p24f)));
  }
  std::memcpy(&bits, &a, sizeof bits);
  std::uint32_t half = ((bits >> 23) - 112u) << 10 | ((bits >> 13) & 0x3ffu);
  const std::uint32_t rest = bits & 0x1fffu;  // the 13 bits rounded away
  half += rest > 0x1000u || (rest == 0x1000u && (half & 1u));  // a carry moves the exponent up
  return static_cast<std::uint16_t>(sign | half);
}

float from_half(std::uint16_t h) {
  const std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16;
  const std::uint32_t exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu;
  float value;
  if (exponent == 0) {  // 0 or subnormal: mantissa * 2^-24, exact
    value = std::ldexp(float(mantissa), -24);
    std::uint32_t bits;
    std::memcpy(&bits, &value, sizeof bits);
    bits |= sign;
    std::memcpy(&value, &bits, sizeof bits);
    return value;
  }
  const std::uint32_t bits =
      sign | (exponent == 31 ? 0x7f800000u : (exponent + 112u) << 23) | mantissa << 13;
  std::memcpy(&value, &bits, sizeof bits);
  return value;
}

#if defined(FASTSOFTMAX_X86)
__attribute__((target("avx2,f16c"))) void from_half_f16c(const std::uint16_t* in, float* out,
                                                         std::int64_t n) {
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i));
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(h));
  }
  for (; i < n; ++i) out[i] = from_half(in[i]);
}

__attribute__((target("avx2,f16c"))) void to_half_f16c(const float* in, std::uint16_t* out,
                                                       std::int64_t n) {
  constexpr int kRound = _MM_FROUND_TO_NEAREST_INT;
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(in + i), kRound);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), h);
  }
  for (; i < n; ++i) out[i] = to_half(in[i]);
}
#endif

// The selected level, not the CPU alone: FASTSOFTMAX_SIMD=baseline tests the portable path.
bool use_f16c() {
#if defined(FASTSOFTMAX_X86)
  return simd_level() != "baseline" && __builtin_cpu_supports("f16c");
#else
  return false;
#endif
}

}  // namespace

void float_to_half(const float* in, std::uint16_t* out, std::int64_t n) {
#if defined(FASTSOFTMAX_X86)
  if (use_f16c()) {
    to_half_f16c(in, out, n);
    return;
  }
#endif
  for (std::int64_t i = 0; i < n; ++i) out[i] = to_half(in[i]);
}

void half_to_float(const std::uint16_t* in, float* out, std::int64_t n) {
#if defined(FASTSOFTMAX_X86)
  if (use_f16c()) {
    from_half_f16c(in, out, n);
    return;
  }
#endif
  for (std::int64_t i = 0; i < n; ++i) out[i] = from_half(in[i]);
}

}  // namespace fastsoftmax
