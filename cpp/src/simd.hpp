// Fixed-width SIMD vectors for the kernels, written once for every instruction set.
//
// [Note: one 64-byte vector type for every level]
// The kernels use GCC/Clang vector extensions of 64 bytes (16 floats, 8 doubles). Compiled
// with -march=x86-64-v4 each vector is one AVX-512 register; with x86-64-v3 the compiler splits
// it into two AVX2 registers, with the baseline into four SSE2 registers (elsewhere, into the
// target's own vectors). So the same source is the kernel for every level, and the narrower
// levels get a 2x/4x unrolled loop for free.
#pragma once

#include <cstdint>
#include <cstring>
#include <limits>

namespace fastsoftmax::simd {

template <class T>
struct Types;
template <>
struct Types<float> {
  typedef float Vec __attribute__((vector_size(64), aligned(64)));
  typedef std::int32_t Int __attribute__((vector_size(64), aligned(64)));
};
template <>
struct Types<double> {
  typedef double Vec __attribute__((vector_size(64), aligned(64)));
  typedef std::int64_t Int __attribute__((vector_size(64), aligned(64)));
};

template <class T>
using Vec = typename Types<T>::Vec;
template <class T>
using IntVec = typename Types<T>::Int;
template <class T>
inline constexpr std::int64_t kLanes = 64 / sizeof(T);

template <class T>
inline Vec<T> splat(T value) {
  return Vec<T>{} + value;
}

// memcpy is how one says "unaligned load/store" portably; it compiles to one instruction.
template <class T>
inline Vec<T> load(const T* p) {
  Vec<T> v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
template <class T>
inline void store(T* p, Vec<T> v) {
  std::memcpy(p, &v, sizeof v);
}
// The first `count` (< kLanes) elements; the other lanes hold `fill`. Reads only `count`.
template <class T>
inline Vec<T> load_first(const T* p, std::int64_t count, T fill) {
  Vec<T> v = splat(fill);
  std::memcpy(&v, p, static_cast<std::size_t>(count) * sizeof(T));
  return v;
}
template <class T>
inline void store_first(T* p, Vec<T> v, std::int64_t count) {
  std::memcpy(p, &v, static_cast<std::size_t>(count) * sizeof(T));
}

// max that ignores NaN in `a` (a comparison with NaN is false): the kernels find NaN through
// the sums instead, where it propagates by itself.
template <class T>
inline Vec<T> max(Vec<T> a, Vec<T> b) {
  return a > b ? a : b;
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

}  // namespace fastsoftmax::simd
