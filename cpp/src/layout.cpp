// Turns an N-d call into (M, N, K) blocks without copying anything.
//
// [Note: merging dimensions]
// The dimensions other than the axis are ordered by the output's stride, largest first, and two
// neighbours merge when every operand steps through them as through one dimension
// (stride[a] == stride[b] * shape[b]). A C- or Fortran-contiguous array, along any axis, ends
// with at most two groups: M (outer) and K (inner). Arrays sliced so that more groups remain
// are walked one block per index of the extra outer groups.
#include <algorithm>
#include <cstdint>
#include <cstdlib>

#include "block.hpp"

namespace fastsoftmax {
namespace {

struct Group {
  std::int64_t size;
  std::int64_t stride[kRoleCount];  // per operand, as Call::operands.item
};

// Fixed capacity (NumPy allows at most 64 dimensions): no allocation on the per-call path.
constexpr int kMaxDims = 64;
struct Groups {
  Group group[kMaxDims];
  int count = 0;
};

Groups merged_groups(const Call& call) {
  int dims[kMaxDims];
  int ndims = 0;
  for (int d = 0; d < call.ndim; ++d) {
    if (d != call.axis && call.shape[d] != 1) dims[ndims++] = d;
  }
  // An operation without an elementwise output (logsumexp, row_partials) orders by its per-row
  // one.
  const Role order = call.operands[Role::out].data   ? Role::out
                     : call.operands[Role::lse].data ? Role::lse
                                                     : Role::row_max;
  std::stable_sort(dims, dims + ndims, [&](int a, int b) {
    const std::int64_t* out = call.operands[order].strides;
    return std::llabs(out[a]) > std::llabs(out[b]);
  });
  Groups groups;
  for (int i = 0; i < ndims; ++i) {
    const int d = dims[i];
    Group next{call.shape[d], {}};
    for (int i = 0; i < kRoleCount; ++i) {
      const ArrayRef& ref = call.operands.item[i];
      if (ref.data) next.stride[i] = ref.strides[d];
    }
    if (groups.count > 0) {
      Group& last = groups.group[groups.count - 1];
      bool mergeable = true;
      for (int i = 0; i < kRoleCount; ++i) {
        mergeable &= last.stride[i] == next.stride[i] * next.size;
      }
      if (mergeable) {
        last.size *= next.size;
        std::copy(next.stride, next.stride + kRoleCount, last.stride);
        continue;
      }
    }
    groups.group[groups.count++] = next;
  }
  return groups;
}

}  // namespace

void compute(const Call& call) {
  const Groups groups = merged_groups(call);
  // The last group (smallest stride) is K, the one before it M; any others are looped here.
  const Group unit{1, {}};
  const int count = groups.count;
  // References, not copies: copying the just-built `unit` stalled on its stores (no store
  // forwarding into the copy's 16-byte loads), a sixth of this function's time on (1, 10).
  const Group& inner = count < 1 ? unit : groups.group[count - 1];
  const Group& outer = count < 2 ? unit : groups.group[count - 2];
  const int looped = count < 2 ? 0 : count - 2;

  Block block;
  block.op = call.op;
  block.dtype = call.dtype;
  block.m = outer.size;
  block.n = call.shape[call.axis];
  block.k = inner.size;
  for (int i = 0; i < kRoleCount; ++i) {
    const ArrayRef& ref = call.operands.item[i];
    if (!ref.data) continue;
    Operand& operand = block.operands.item[i];
    operand.stride[0] = outer.stride[i];
    operand.stride[1] = ref.strides[call.axis];
    operand.stride[2] = inner.stride[i];
  }

  const BlockKernel kernel = selected_kernel();
  std::int64_t index[kMaxDims];
  std::fill(index, index + looped, 0);
  while (true) {
    for (int i = 0; i < kRoleCount; ++i) {
      const ArrayRef& ref = call.operands.item[i];
      if (!ref.data) continue;
      std::int64_t offset = 0;
      for (int j = 0; j < looped; ++j) offset += index[j] * groups.group[j].stride[i];
      const int size = element_bytes(call.dtype, static_cast<Role>(i));
      block.operands.item[i].data = static_cast<char*>(ref.data) + offset * size;
    }
    kernel(block, call.threads);
    // Odometer over the looped groups, last fastest.
    int j = looped;
    while (j > 0 && ++index[j - 1] == groups.group[j - 1].size) index[--j] = 0;
    if (j == 0) break;
  }
}

}  // namespace fastsoftmax
