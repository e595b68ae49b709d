// fastsoftmax: the plain C++ API. Raw pointers, shapes and strides; no Python here.
//
// One call computes one operation over an N-d strided array along one axis. The caller
// guarantees: every operand has `shape`, strides are in elements (any sign), the outputs share
// no memory with the inputs unless an output is exactly an input (same pointer and strides),
// and `s` never overlaps `g`.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace fastsoftmax {

enum class Op : int {
  softmax,               // out = exp(x - max) / sum(exp(x - max))
  log_softmax,           // out = x - max - log(sum(exp(x - max)))
  softmax_backward,      // out = x * (g - sum(x * g)), x being the saved softmax
  log_softmax_backward,  // out = g - exp(x) * sum(g), x being the saved log-softmax
  softmax_jvp,           // s = softmax(x); out = s * (g - sum(s * g)); s written if given
  logsumexp,             // lse = log|sum(g * exp(x))| per row (g = 1 if not given), its sign
  // The pieces of a softmax whose rows are split into chunks (a Dask array's): each chunk's
  // row_max and row_sum = sum(exp(x - row_max)), and the softmax of a chunk given the pair
  // combined over the whole row (operations.hpp's Note on row partials).
  row_partials,
  softmax_given,
  log_softmax_given,
};

// float16 arrays are computed in float32, a few rows at a time (cpp/src/kernels.cpp); a float16
// call's per-row operands (below) are float32, since a row's sum of exps or its partials would
// overflow float16's range (65504) long before float32's.
enum class DType : int { float32, float64, float16 };

// The operands of a call, by role: inputs x (the logits, or the saved forward output for the
// backward ops) and g (the gradient or tangent), outputs out and s (softmax_jvp's optional
// softmax). Each operation reads and writes the roles it names (cpp/src/operations.hpp); a
// role it does not use, or an optional one not given, has null data.
// lse and sign are per-row outputs (logsumexp's): one element per row, given with x's shape
// and a stride of 0 along the axis, so every layout rule that holds for x holds for them.
// where is the mask: bytes (NumPy's bool), 0 for an entry that takes no part, of x's shape
// (a broadcast mask has zero strides); null for none. Its strides count bytes, its elements.
// row_max and row_sum are per-row too: row_partials writes them, the *_given ops read them.
enum class Role : int { x, g, out, s, lse, sign, where, row_max, row_sum };
inline constexpr int kRoleCount = 9;

constexpr bool is_per_row(Role role) {
  return role == Role::lse || role == Role::sign || role == Role::row_max || role == Role::row_sum;
}
// The mask: bytes, whatever the call's dtype (the per-row roles of a float16 call are float32).
constexpr bool is_mask(Role role) { return role == Role::where; }

// Bytes of one element of `role` in a call of `dtype`.
constexpr int element_bytes(DType dtype, Role role) {
  if (is_mask(role)) return 1;
  if (dtype == DType::float64) return 8;
  return dtype == DType::float16 && !is_per_row(role) ? 2 : 4;
}

// One T per role, indexed by it.
template <class T>
struct ByRole {
  T item[kRoleCount] = {};
  T& operator[](Role role) { return item[static_cast<int>(role)]; }
  const T& operator[](Role role) const { return item[static_cast<int>(role)]; }
};

// One operand of a call: its first element and its strides, in elements (of its own type), one
// per dimension.
struct ArrayRef {
  void* data = nullptr;
  const std::int64_t* strides = nullptr;
};

struct Call {
  Op op = Op::softmax;
  DType dtype = DType::float32;
  int ndim = 0;
  const std::int64_t* shape = nullptr;
  int axis = 0;  // non-negative, < ndim
  ByRole<ArrayRef> operands;
  int threads = 1;
};

// Runs `call` with the kernels of the selected SIMD level. Throws std::bad_alloc if the
// per-thread scratch rows cannot be allocated; nothing else.
void compute(const Call& call);

// SIMD levels, best first: "avx512" (x86-64-v4), "avx2" (x86-64-v3), "baseline".
std::vector<std::string> supported_simd_levels();  // the ones this CPU can run
std::string simd_level();                           // the one in use
// Switches the level for the whole process. Throws std::invalid_argument for a name that is
// unknown or not supported by this CPU.
void set_simd_level(const std::string& name);

// out[i] = in[i] as IEEE half bits, rounded to nearest even, and back (cpp/src/half.cpp): the
// whole-array casts of the backends that compute float16 arrays in float32 copies.
void float_to_half(const float* in, std::uint16_t* out, std::int64_t n);
void half_to_float(const std::uint16_t* in, float* out, std::int64_t n);  // exact

bool openmp_enabled();
// Outputs larger than this many bytes are written past the cache (non-temporal stores). The
// Python layer sets it at import from the cache size (python/fastsoftmax/_cache_size.py).
std::int64_t streaming_threshold_bytes();
void set_streaming_threshold_bytes(std::int64_t bytes);
// `requested` capped by OpenMP's limit in the calling thread where it was lowered since import
// (threadpoolctl); 1 without OpenMP.
int cap_threads(int requested);

}  // namespace fastsoftmax
