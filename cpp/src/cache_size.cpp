// Where outputs start to bypass the cache (see the Note on streaming stores in kernels.cpp).
// The threshold is computed from the cache size in Python (python/fastsoftmax/_cache_size.py,
// which both backends use) and set when the module is imported; until then it is the value for
// an unknown cache, from _constants.json.
#include <atomic>
#include <cstdint>

#include "constants.hpp"
#include "fastsoftmax/fastsoftmax.hpp"

namespace fastsoftmax {
namespace {

std::atomic<std::int64_t> g_threshold{constants::kUnknownCacheBytes};

}  // namespace

std::int64_t streaming_threshold_bytes() { return g_threshold.load(std::memory_order_relaxed); }

void set_streaming_threshold_bytes(std::int64_t bytes) {
  g_threshold.store(bytes, std::memory_order_relaxed);
}

}  // namespace fastsoftmax
