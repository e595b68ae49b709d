// Where outputs start to bypass the cache (see the Note on streaming stores in kernels.cpp).
//
// [Note: the streaming threshold]
// Measured on two 2-core VMs: on an Intel Sapphire Rapids, arrays of 32 MiB stayed in cache and
// 64 MiB did not, although the OS reported a 480 MiB L3; on an AMD EPYC (Zen 4) with a reported
// 32 MiB L3, streaming already paid from arrays of 6-8 MiB (1 thread; about equal at 4-5 MiB).
// One eighth of the L3 that Linux reports, capped at 32 MiB, is right on both. Streaming an
// array that would have stayed cached costs the forward ops little (they are bound by exp, not
// memory); keeping one that does not fit costs a third of the traffic. So where the L3 size is
// unknown, the threshold is the low end of what was measured.
#include <algorithm>
#include <cstdint>
#include <fstream>
#include <string>

#include "fastsoftmax/fastsoftmax.hpp"

namespace fastsoftmax {
namespace {

constexpr std::int64_t kMiB = std::int64_t(1) << 20;
constexpr std::int64_t kUnknownCacheThreshold = 4 * kMiB;
constexpr std::int64_t kMinThreshold = 1 * kMiB;  // below this, a reported size is not believed
constexpr std::int64_t kMaxThreshold = 32 * kMiB;

// The L3 size Linux reports for CPU 0 (sysfs, the source lscpu reads), or 0 if it says none.
std::int64_t linux_l3_bytes() {
  for (int index = 0; index < 8; ++index) {
    const std::string dir = "/sys/devices/system/cpu/cpu0/cache/index" + std::to_string(index);
    int level = 0;
    std::string size;  // e.g. "32768K"
    if (!(std::ifstream(dir + "/level") >> level) || level != 3) continue;
    if (!(std::ifstream(dir + "/size") >> size) || size.empty()) return 0;
    std::int64_t bytes = 0;
    std::size_t digits = 0;
    while (digits < size.size() && size[digits] >= '0' && size[digits] <= '9') {
      bytes = bytes * 10 + (size[digits++] - '0');
      if (bytes > (std::int64_t(1) << 40)) return 0;  // not a cache size
    }
    const std::string unit = size.substr(digits);
    if (unit == "K") return bytes << 10;
    if (unit == "M") return bytes << 20;
    return unit.empty() ? bytes : 0;
  }
  return 0;
}

}  // namespace

std::int64_t streaming_threshold_bytes() {
  static const std::int64_t threshold = [] {
    const std::int64_t l3 = linux_l3_bytes();
    if (l3 <= 0) return kUnknownCacheThreshold;
    return std::clamp(l3 / 8, kMinThreshold, kMaxThreshold);
  }();
  return threshold;
}

}  // namespace fastsoftmax
