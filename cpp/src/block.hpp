// The unit of work the kernels see: a (M, N, K) block, reduced along N.
//
// layout.cpp turns an N-d call into blocks by merging the dimensions around the axis; each
// instruction-set copy of kernels.cpp exports `run_block`, and dispatch.cpp picks the copy.
#pragma once

#include <cstdint>

#include "constants.hpp"
#include "fastsoftmax/fastsoftmax.hpp"

namespace fastsoftmax {

struct Operand {
  void* data = nullptr;
  std::int64_t stride[3] = {0, 0, 0};  // elements, for (M, N, K)
};

struct Block {
  Op op = Op::softmax;
  DType dtype = DType::float32;
  std::int64_t m = 1, n = 1, k = 1;
  ByRole<Operand> operands;  // null data where the call has no such operand
};

using BlockKernel = void (*)(const Block& block, int threads);
using ExpKernel = void (*)(DType dtype, const void* in, void* out, std::int64_t n);

// The entry points of each compiled instruction-set level (kernels.cpp, built once per level):
// run_block computes a block; exp_array is the vectorised exp alone, for its accuracy tests.
#define FASTSOFTMAX_DECLARE_LEVEL(level)                                         \
  namespace level {                                                              \
  void run_block(const Block& block, int threads);                               \
  void exp_array(DType dtype, const void* in, void* out, std::int64_t n);        \
  }
FASTSOFTMAX_FOR_EACH_LEVEL(FASTSOFTMAX_DECLARE_LEVEL)
#undef FASTSOFTMAX_DECLARE_LEVEL

// dispatch.cpp (see its Note on fork): note_parallel_region() is called before every parallel
// region; threads_lost_to_fork() is true in a child forked after one ran, which must not start
// OpenMP threads.
void note_parallel_region();
bool threads_lost_to_fork();

// dispatch.cpp: the entry points of the selected level.
BlockKernel selected_kernel();
ExpKernel selected_exp();

}  // namespace fastsoftmax
