// float16 <-> float32, one element (scalar, any CPU) and eight at a time (F16C). Used by the
// whole-array casts (half.cpp) and by the kernels' float16 rows (kernels.cpp), which compute in
// float32. Rounding to float16 is to nearest even, as NumPy's; from float16 it is exact.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(FASTSOFTMAX_X86) || defined(__F16C__)  // kernels.cpp: levels with F16C
#include <immintrin.h>
#endif

// Internal linkage: kernels.cpp includes this once per instruction-set level, each copy compiled
// for its own level, and the linker must not pick one level's copy for another.
namespace fastsoftmax::half {
namespace {

inline std::uint16_t to_half(float value) {
  std::uint32_t bits;
  std::memcpy(&bits, &value, sizeof bits);
  const auto sign = static_cast<std::uint16_t>((bits >> 16) & 0x8000u);
  const float a = std::fabs(value);
  if (a != a) return static_cast<std::uint16_t>(sign | 0x7e00u | ((bits >> 13) & 0x3ffu));
  if (a >= 65520.0f) return sign | 0x7c00u;  // rounds past the largest half, 65504: inf
  if (a < 0x1p-14f) {
    // Subnormal (or 0): a multiple of 2^-24, rounded to nearest even by nearbyint; 1024 of
    // them is the smallest normal half, whose bits are the same count.
    const auto units = static_cast<std::uint16_t>(std::nearbyint(a * 0x1p24f));
    return static_cast<std::uint16_t>(sign | units);
  }
  std::memcpy(&bits, &a, sizeof bits);
  std::uint32_t half = ((bits >> 23) - 112u) << 10 | ((bits >> 13) & 0x3ffu);
  const std::uint32_t rest = bits & 0x1fffu;  // the 13 bits rounded away
  half += rest > 0x1000u || (rest == 0x1000u && (half & 1u));  // a carry moves the exponent up
  return static_cast<std::uint16_t>(sign | half);
}

inline float from_half(std::uint16_t h) {
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

inline void to_half_scalar(const float* in, std::uint16_t* out, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) out[i] = to_half(in[i]);
}

inline void from_half_scalar(const std::uint16_t* in, float* out, std::int64_t n) {
  for (std::int64_t i = 0; i < n; ++i) out[i] = from_half(in[i]);
}

#if defined(FASTSOFTMAX_X86) || defined(__F16C__)  // kernels.cpp: levels with F16C
// Eight elements an instruction; the last n % 8 through a zero-padded vector, not one at a time
// (in the kernels' rows of 1000 the scalar tail took as long as the vector loop).
__attribute__((target("avx2,f16c"))) inline void from_half_f16c(const std::uint16_t* in,
                                                                float* out, std::int64_t n) {
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i));
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(h));
  }
  if (i == n) return;
  std::uint16_t h[8] = {};
  float f[8];
  std::memcpy(h, in + i, static_cast<std::size_t>(n - i) * sizeof *h);
  _mm256_storeu_ps(f, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h))));
  std::memcpy(out + i, f, static_cast<std::size_t>(n - i) * sizeof *f);
}

__attribute__((target("avx2,f16c"))) inline void to_half_f16c(const float* in,
                                                              std::uint16_t* out, std::int64_t n) {
  constexpr int kRound = _MM_FROUND_TO_NEAREST_INT;
  std::int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(in + i), kRound);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), h);
  }
  if (i == n) return;
  float f[8] = {};
  std::uint16_t h[8];
  std::memcpy(f, in + i, static_cast<std::size_t>(n - i) * sizeof *f);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(h), _mm256_cvtps_ph(_mm256_loadu_ps(f), kRound));
  std::memcpy(out + i, h, static_cast<std::size_t>(n - i) * sizeof *h);
}
#endif

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
// Sixteen elements an instruction, the tail masked (the kernels' avx512 level).
inline void from_half_avx512(const std::uint16_t* in, float* out, std::int64_t n) {
  std::int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(in + i));
    _mm512_storeu_ps(out + i, _mm512_cvtph_ps(h));
  }
  if (i == n) return;
  const auto lanes = static_cast<__mmask16>((1u << (n - i)) - 1);
  _mm512_mask_storeu_ps(out + i, lanes, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(lanes, in + i)));
}

inline void to_half_avx512(const float* in, std::uint16_t* out, std::int64_t n) {
  constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  std::int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256i h = _mm512_cvtps_ph(_mm512_loadu_ps(in + i), kRound);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out + i), h);
  }
  if (i == n) return;
  const auto lanes = static_cast<__mmask16>((1u << (n - i)) - 1);
  const __m256i h = _mm512_cvtps_ph(_mm512_maskz_loadu_ps(lanes, in + i), kRound);
  _mm256_mask_storeu_epi16(out + i, lanes, h);
}

// As to_half_avx512, its whole 32-byte lines written past the cache (non-temporal stores: the
// caller fences).
inline void to_half_avx512_streamed(const float* in, std::uint16_t* out, std::int64_t n) {
  constexpr int kRound = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;
  const auto misaligned = reinterpret_cast<std::uintptr_t>(out) % 32;
  const std::int64_t head = std::min<std::int64_t>(n, misaligned ? (32 - misaligned) / 2 : 0);
  to_half_avx512(in, out, head);
  std::int64_t i = head;
  for (; i + 16 <= n; i += 16) {
    const __m256i h = _mm512_cvtps_ph(_mm512_loadu_ps(in + i), kRound);
    _mm256_stream_si256(reinterpret_cast<__m256i*>(out + i), h);
  }
  to_half_avx512(in + i, out + i, n - i);
}
#endif

}  // namespace
}  // namespace fastsoftmax::half
