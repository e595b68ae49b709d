// Fixed-width SIMD vectors for the kernels, written once for every instruction set.
//
// [Note: one source, the target's own vector width]
// The kernels use GCC/Clang vector extensions as wide as the level's registers: 64 bytes under
// -march=x86-64-v4 (AVX-512), 32 under x86-64-v3 (AVX2), 16 otherwise (SSE2, NEON, ...). Wider
// than the registers would be legal, but GCC then lowers comparisons and selects to scalar
// code (measured 10x slower), so the width follows the compiler's target macros.
#pragma once

// Everything here is compiled once per instruction-set level with different vector widths, so it
// lives in that level's namespace: an inline function shared by name across the levels would be
// an ODR violation, and the linker would keep one level's copy for all of them.
#ifndef FASTSOFTMAX_LEVEL
#error "define FASTSOFTMAX_LEVEL (the instruction-set level's namespace) before including simd.hpp"
#endif

#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

#if defined(__AVX512F__)
#define FASTSOFTMAX_VECTOR_BYTES 64
#elif defined(__AVX2__)
#define FASTSOFTMAX_VECTOR_BYTES 32
#else
#define FASTSOFTMAX_VECTOR_BYTES 16
#endif

namespace fastsoftmax::FASTSOFTMAX_LEVEL::simd {

template <class T>
struct Types;
template <>
struct Types<float> {
  typedef float Vec __attribute__((vector_size(FASTSOFTMAX_VECTOR_BYTES)));
  typedef float Unaligned __attribute__((vector_size(FASTSOFTMAX_VECTOR_BYTES), aligned(4)));
  typedef std::int32_t Int __attribute__((vector_size(FASTSOFTMAX_VECTOR_BYTES)));
  typedef std::uint32_t Uint __attribute__((vector_size(FASTSOFTMAX_VECTOR_BYTES)));
};
template <>
struct Types<double> {
  typedef double Vec __attribute__((vector_size(FASTSOFTMAX_VECTOR_BYTES)));
  typedef double Unaligned __attribute__((vector_size(FASTSOFTMAX_VECTOR_BYTES), aligned(8)));
  typedef std::int64_t Int __attribute__((vector_size(FASTSOFTMAX_VECTOR_BYTES)));
  typedef std::uint64_t Uint __attribute__((vector_size(FASTSOFTMAX_VECTOR_BYTES)));
};

template <class T>
using Vec = typename Types<T>::Vec;
template <class T>
using IntVec = typename Types<T>::Int;
template <class T>
using UintVec = typename Types<T>::Uint;
template <class T>
inline constexpr std::int64_t kLanes = FASTSOFTMAX_VECTOR_BYTES / sizeof(T);

template <class T>
inline Vec<T> splat(T value) {
  return Vec<T>{} + value;
}

// Unaligned loads and stores through a vector-of-T type, not memcpy: a vector of T may alias
// only T, so the compiler knows a store to the output cannot change the pointers it holds
// (with memcpy it reloaded them on every iteration, measured 1.5x slower).
template <class T>
inline Vec<T> load(const T* p) {
  return *reinterpret_cast<const typename Types<T>::Unaligned*>(p);
}
template <class T>
inline void store(T* p, Vec<T> v) {
  *reinterpret_cast<typename Types<T>::Unaligned*>(p) = v;
}
// The first `count` (< kLanes) elements; the other lanes hold `fill`. Reads only `count`, so a
// row's last partial vector never touches memory past its end. Masked loads where the level
// has them: a variable-length memcpy is a library call (measured as 20% of a 1000-wide row)
// and a lane-by-lane loop is not much better.
template <class T>
inline IntVec<T> first_lanes(std::int64_t count) {
  IntVec<T> lanes{};
  for (int i = 0; i < kLanes<T>; ++i) lanes[i] = i;
  return lanes < static_cast<typename std::remove_reference_t<decltype(lanes[0])>>(count);
}

template <class T>
inline Vec<T> load_first(const T* p, std::int64_t count, T fill) {
#if defined(__AVX512F__)
  const __mmask16 mask = static_cast<__mmask16>((1u << count) - 1);
  if constexpr (sizeof(T) == 4) return _mm512_mask_loadu_ps(splat(fill), mask, p);
  else return _mm512_mask_loadu_pd(splat(fill), static_cast<__mmask8>(mask), p);
#elif defined(__AVX2__)
  const IntVec<T> mask = first_lanes<T>(count);
  Vec<T> loaded;
  if constexpr (sizeof(T) == 4) loaded = _mm256_maskload_ps(p, reinterpret_cast<__m256i>(mask));
  else loaded = _mm256_maskload_pd(p, reinterpret_cast<__m256i>(mask));
  return mask ? loaded : splat(fill);
#else
  Vec<T> v = splat(fill);
  for (std::int64_t i = 0; i < count; ++i) v[i] = p[i];
  return v;
#endif
}
// [Note: byte masks]
// A mask of NumPy bools reaches a vector as a predicate on its lanes: where the level has
// AVX-512, a k-register set by one vptestmb of the bytes, and a select is one masked move;
// elsewhere a lane vector of the bytes widened (vpmovzxbd and kin), and a select a blend. GCC
// lowers a __builtin_convertvector of bytes to scalar inserts (measured 4x slower masked
// softmax), hence the intrinsics.
#if defined(__AVX512F__)
template <class T>
using Predicate = std::conditional_t<sizeof(T) == 4, __mmask16, __mmask8>;
#else
template <class T>
using Predicate = IntVec<T>;
#endif

// Lanes [0, count) of kLanes<T> whole bytes at p (the caller's bytes past count are 0).
template <class T>
[[gnu::always_inline]] inline Predicate<T> predicate_of(const std::uint8_t* p) {
#if defined(__AVX512F__)
  const __m128i bytes = sizeof(T) == 4 ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(p))
                                       : _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
  return static_cast<Predicate<T>>(_mm_test_epi8_mask(bytes, bytes));
#elif defined(__AVX2__)
  if constexpr (sizeof(T) == 4) {
    const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
    return reinterpret_cast<IntVec<T>>(_mm256_cvtepu8_epi32(bytes)) != 0;
  } else {
    std::int32_t four;
    std::memcpy(&four, p, sizeof four);
    return reinterpret_cast<IntVec<T>>(_mm256_cvtepu8_epi64(_mm_cvtsi32_si128(four))) != 0;
  }
#else
  IntVec<T> lanes;
  for (int i = 0; i < kLanes<T>; ++i) lanes[i] = p[i];
  return lanes != 0;
#endif
}

// The predicate of bytes [0, count) at p: true where the byte is not 0, false past count.
template <class T>
[[gnu::always_inline]] inline Predicate<T> kept_lanes(const std::uint8_t* p, std::int64_t count) {
  if (count == kLanes<T>) return predicate_of<T>(p);
  std::uint8_t bytes[16] = {};  // a row's last, partial vector
  // count < kLanes here; the mask states it to GCC, whose -Wstringop-overflow otherwise sees
  // a negative count once a walk is inlined into its caller.
  std::memcpy(bytes, p, static_cast<std::size_t>(count) & (kLanes<T> - 1));
  return predicate_of<T>(bytes);
}

// Whether the predicate holds in no lane.
template <class T>
[[gnu::always_inline]] inline bool none(Predicate<T> kept) {
#if defined(__AVX512F__)
  return kept == 0;
#elif defined(__AVX2__)
  const auto bits = reinterpret_cast<__m256i>(kept);
  return _mm256_testz_si256(bits, bits);
#elif defined(__SSE2__)
  return _mm_movemask_epi8(reinterpret_cast<__m128i>(kept)) == 0;
#else
  for (int i = 0; i < kLanes<T>; ++i) {
    if (kept[i]) return false;
  }
  return true;
#endif
}

// v where the predicate holds, `other` elsewhere.
template <class T>
[[gnu::always_inline]] inline Vec<T> select(Predicate<T> kept, Vec<T> v, Vec<T> other) {
#if defined(__AVX512F__)
  if constexpr (sizeof(T) == 4) return _mm512_mask_mov_ps(other, kept, v);
  else return _mm512_mask_mov_pd(other, kept, v);
#else
  return kept ? v : other;
#endif
}

// Not a masked store: AMD Zen microcodes those (measured on Zen 4: streaming (98304, 512)
// backward from NumPy's 16-byte-offset arrays, two masked stores per row, took 34.5 ms
// against 27.5 this way). The lanes go out in halves, quarters, ...: at most log2(kLanes)
// plain stores of constant size.
template <class T>
[[gnu::always_inline]] inline void store_first(T* p, Vec<T> v, std::int64_t count) {
  alignas(sizeof(Vec<T>)) T lanes[kLanes<T>];
  store(lanes, v);
  std::int64_t done = 0;
  for (std::int64_t piece = kLanes<T> / 2; piece > 0; piece /= 2) {
    if (count & piece) {
      std::memcpy(p + done, lanes + done, static_cast<std::size_t>(piece) * sizeof(T));
      done += piece;
    }
  }
}

// A store that bypasses the caches (non-temporal), for outputs too large to stay in them: the
// line is not read first and does not evict the inputs. `p` must be vector-aligned. Elsewhere
// than x86, a plain store.
template <class T>
inline void stream(T* p, Vec<T> v) {
#if defined(__AVX512F__)
  if constexpr (sizeof(T) == 4) _mm512_stream_ps(p, v);
  else _mm512_stream_pd(p, v);
#elif defined(__AVX2__)
  if constexpr (sizeof(T) == 4) _mm256_stream_ps(p, v);
  else _mm256_stream_pd(p, v);
#elif defined(__SSE2__)
  if constexpr (sizeof(T) == 4) _mm_stream_ps(p, v);
  else _mm_stream_pd(p, v);
#else
  store(p, v);
#endif
}

// Orders a thread's streamed stores before what it does next (they are weakly ordered).
inline void stream_fence() {
#if defined(__SSE2__)
  _mm_sfence();
#endif
}

// Fetches p's line into L2, not L1 (prefetcht1 on x86): see the Note on prefetching the next
// row in rows.hpp.
template <class T>
inline void prefetch(const T* p) {
  __builtin_prefetch(p, 0, 2);
}

// max(a, b) and min(a, b) with x86's rule: when either is NaN the result is b. The kernels rely
// on it: max(load, running) skips NaN (found later through the sums, where it propagates by
// itself), and exp's clamps max(lowest, x) keep a NaN x. Intrinsics because GCC compiles the
// equivalent `a > b ? a : b` on vectors to a compare and a blend, twice the instructions.
template <class T>
inline Vec<T> max(Vec<T> a, Vec<T> b) {
#if defined(__AVX512F__)
  if constexpr (sizeof(T) == 4) return _mm512_max_ps(a, b);
  else return _mm512_max_pd(a, b);
#elif defined(__AVX2__)
  if constexpr (sizeof(T) == 4) return _mm256_max_ps(a, b);
  else return _mm256_max_pd(a, b);
#elif defined(__SSE2__)
  if constexpr (sizeof(T) == 4) return _mm_max_ps(a, b);
  else return _mm_max_pd(a, b);
#else
  return a > b ? a : b;
#endif
}
template <class T>
inline Vec<T> min(Vec<T> a, Vec<T> b) {
#if defined(__AVX512F__)
  if constexpr (sizeof(T) == 4) return _mm512_min_ps(a, b);
  else return _mm512_min_pd(a, b);
#elif defined(__AVX2__)
  if constexpr (sizeof(T) == 4) return _mm256_min_ps(a, b);
  else return _mm256_min_pd(a, b);
#elif defined(__SSE2__)
  if constexpr (sizeof(T) == 4) return _mm_min_ps(a, b);
  else return _mm_min_pd(a, b);
#else
  return a < b ? a : b;
#endif
}

template <class T>
inline T reduce_max(Vec<T> v) {
  T m = v[0];
  for (int i = 1; i < kLanes<T>; ++i) m = v[i] > m ? v[i] : m;
  return m;
}

template <class T>
inline double reduce_sum(Vec<T> v) {
  double s = 0;
  for (int i = 0; i < kLanes<T>; ++i) s += static_cast<double>(v[i]);
  return s;
}

// Float vectors widened to double, half by half, so that sums of them round in double.
// Intrinsics where the level has them: GCC compiles the portable memcpy split through the stack,
// which stalls every iteration on store forwarding (measured 2x slower softmax).
inline void widen(Vec<float> v, Vec<double>& low, Vec<double>& high) {
#if defined(__AVX512F__)
  low = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
  high = _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1));
#elif defined(__AVX2__)
  low = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
  high = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
#elif defined(__SSE2__)
  low = _mm_cvtps_pd(v);
  high = _mm_cvtps_pd(_mm_movehl_ps(v, v));
#else
  typedef float Half __attribute__((vector_size(FASTSOFTMAX_VECTOR_BYTES / 2)));
  Half a, b;
  std::memcpy(&a, &v, sizeof a);
  std::memcpy(&b, reinterpret_cast<const char*>(&v) + sizeof a, sizeof b);
  low = __builtin_convertvector(a, Vec<double>);
  high = __builtin_convertvector(b, Vec<double>);
#endif
}

// [Note: compensated sums]
// Double terms are summed with Knuth's TwoSum: `carry` gathers exactly what each addition into
// `sum` rounded off (a plain double running sum over 2,441 blocks of a float64 row of 10**7 was
// off by ~1,300 roundings). The carry never feeds back into `sum`, unlike Kahan's, so a sum that
// reaches +-inf or NaN stays what the plain sum would be: its carry turns NaN (inf - inf) and is
// dropped by compensated_value. Branch-free, so it serves vectors and scalars alike.
template <class V>
inline void add_to(V& sum, V& carry, V v) {
  const V total = sum + v;
  const V part = total - sum;
  carry += (sum - (total - part)) + (v - part);
  sum = total;
}

inline double compensated_value(double sum, double carry) {
  return sum - sum == 0 ? sum + carry : sum;  // finite, or the inf/NaN the terms sum to
}

// A running sum of vectors of T in double lanes, in registers.
template <class T>
struct WideSum {
  Vec<double> low{}, high{};  // float: the widened halves; double: the sum and its carry
  void add(Vec<T> v) {
    if constexpr (sizeof(T) == 8) {
      add_to(low, high, v);
    } else {
      Vec<double> a, b;
      widen(v, a, b);
      low += a;
      high += b;
    }
  }
  double total() const {
    if constexpr (sizeof(T) == 8) {
      // Across the lanes compensated too: one lane may hold a row's 1 and the others its small
      // terms, which three plain additions would round three times.
      double sum = 0, carry = reduce_sum<double>(high);
      for (int i = 0; i < kLanes<double>; ++i) add_to(sum, carry, low[i]);
      return compensated_value(sum, carry);
    } else {
      return reduce_sum<double>(low + high);
    }
  }
};

// The same for per-column sums kept in memory: lanes [0, kLanes<T>) of `sum` and `carry`.
inline void add_wide(double* sum, double* carry, Vec<double> v) {
  Vec<double> s = load(sum), c = load(carry);
  add_to(s, c, v);
  store(sum, s);
  store(carry, c);
}
inline void add_wide(double* sum, double*, Vec<float> v) {
  Vec<double> low, high;
  widen(v, low, high);
  store(sum, load(sum) + low);
  store(sum + kLanes<double>, load(sum + kLanes<double>) + high);
}

template <class T, class I>
inline Vec<T> bitcast(I v) {
  Vec<T> out;
  std::memcpy(&out, &v, sizeof out);
  return out;
}
template <class T>
inline IntVec<T> bits(Vec<T> v) {
  IntVec<T> out;
  std::memcpy(&out, &v, sizeof out);
  return out;
}

}  // namespace fastsoftmax::FASTSOFTMAX_LEVEL::simd
