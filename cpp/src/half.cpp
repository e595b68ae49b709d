// float16 <-> float32 for whole arrays (python/fastsoftmax/_api.py), which the Numba and NumPy
// backends compute in float32. NumPy's cast to float16 takes about 70 ns an element where the
// result is subnormal in float16, which is where most of a softmax's probabilities fall: a
// (8192, 8192) float16 softmax took 4.3 s, 100x its float32 time, almost all of it in the cast
// back; its cast from float16 took 123 ms of the rest. F16C converts 8 values an instruction,
// subnormals included. The baseline level (and a CPU or target without F16C) converts one
// element at a time, with the same rounding (half.hpp).
#include "half.hpp"

#include <cstdint>

#include "fastsoftmax/fastsoftmax.hpp"

namespace fastsoftmax {
namespace {

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
    half::to_half_f16c(in, out, n);
    return;
  }
#endif
  half::to_half_scalar(in, out, n);
}

void half_to_float(const std::uint16_t* in, float* out, std::int64_t n) {
#if defined(FASTSOFTMAX_X86)
  if (use_f16c()) {
    half::from_half_f16c(in, out, n);
    return;
  }
#endif
  half::from_half_scalar(in, out, n);
}

}  // namespace fastsoftmax
