// Picks the kernels' instruction-set level once: the best this CPU runs, or the one
// FASTSOFTMAX_SIMD names (so every level can be tested on one machine), switchable later by
// set_simd_level for the tests.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif
#if __has_include(<pthread.h>)
#include <pthread.h>
#endif

#include "block.hpp"

namespace fastsoftmax {
namespace {

struct Level {
  const char* name;
  BlockKernel kernel;
  ExpKernel exp;
  bool (*supported)();
};

// supports_<level>: whether this CPU runs that level's kernels, for each level that can be built.
bool supports_baseline() { return true; }
#if defined(FASTSOFTMAX_X86)
// The feature sets of x86-64-v3 and x86-64-v4, which the levels are compiled for.
// __builtin_cpu_supports also checks that the OS saves the wider registers.
bool supports_avx2() {
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
         __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2") &&
         __builtin_cpu_supports("f16c") && __builtin_cpu_supports("movbe") &&
         __builtin_cpu_supports("lzcnt");
}
bool supports_avx512() {
  return supports_avx2() && __builtin_cpu_supports("avx512f") &&
         __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512cd") &&
         __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
}
#endif

// The levels built, best first (the list in _constants.json, for this target).
#define FASTSOFTMAX_LEVEL_ENTRY(level) \
  {#level, level::run_block, level::exp_array, supports_##level},
const Level kLevels[] = {FASTSOFTMAX_FOR_EACH_LEVEL(FASTSOFTMAX_LEVEL_ENTRY)};
#undef FASTSOFTMAX_LEVEL_ENTRY

const Level* find(const std::string& name) {
  for (const Level& level : kLevels) {
    if (name == level.name) return &level;
  }
  return nullptr;
}

const Level* check(const std::string& name, const char* source) {
  const Level* level = find(name);
  std::string known;
  for (const Level& l : kLevels) known += std::string(known.empty() ? "" : ", ") + l.name;
  if (!level) {
    throw std::invalid_argument(std::string(source) + " must be one of " + known + "; got '" +
                                name + "'");
  }
  if (!level->supported()) {
    throw std::invalid_argument(std::string(source) + " = '" + name +
                                "' is not supported by this CPU");
  }
  return level;
}

const Level* initial_level() {
  const char* env = std::getenv("FASTSOFTMAX_SIMD");
  if (env && *env) return check(env, "FASTSOFTMAX_SIMD");
  for (const Level& level : kLevels) {
    if (level.supported()) return &level;
  }
  return &kLevels[std::size(kLevels) - 1];
}

// Set before the first call (module import), then only by set_simd_level.
std::atomic<const Level*> g_level{nullptr};

const Level& current() {
  const Level* level = g_level.load(std::memory_order_acquire);
  if (!level) {
    level = initial_level();
    g_level.store(level, std::memory_order_release);
  }
  return *level;
}

}  // namespace

BlockKernel selected_kernel() { return current().kernel; }

ExpKernel selected_exp() { return current().exp; }

std::string simd_level() { return current().name; }

std::vector<std::string> supported_simd_levels() {
  std::vector<std::string> names;
  for (const Level& level : kLevels) {
    if (level.supported()) names.emplace_back(level.name);
  }
  return names;
}

void set_simd_level(const std::string& name) {
  g_level.store(check(name, "the SIMD level"), std::memory_order_release);
}

// [Note: fork]
// GNU OpenMP's thread pool does not survive fork(): a child that starts a parallel region waits
// forever for threads that were not copied. So a child forked after this process (or an
// ancestor) ran a parallel region computes on one thread, as PyTorch's intra-op pool does. A
// child of a process that never started the pool (a forkserver that only imported us) keeps
// its threads; exec'd processes and spawn-started workers are not affected. The Python layer
// adds the Numba backend's parallel walks, which may start the same pool (_threads.py).
namespace {
std::atomic<bool> g_parallel_ran{false};
std::atomic<bool> g_threads_lost{false};
[[maybe_unused]] const bool g_fork_handler_installed = [] {
#if __has_include(<pthread.h>)
  pthread_atfork(nullptr, nullptr, [] {
    if (g_parallel_ran.load()) g_threads_lost.store(true);
  });
#endif
  return true;
}();
}  // namespace

void note_parallel_region() { g_parallel_ran.store(true, std::memory_order_relaxed); }

bool threads_lost_to_fork() { return g_threads_lost.load(std::memory_order_relaxed); }

bool openmp_enabled() {
#ifdef _OPENMP
  return true;
#else
  return false;
#endif
}

// [Note: which OpenMP limit caps a call]
// OpenMP's limit (omp_get_max_threads) is per thread: OMP_NUM_THREADS sets it everywhere,
// threadpoolctl lowers it in the calling thread. A call is capped by it only where it is below
// its value at import, i.e. where something lowered it since; otherwise the library's own
// setting (fastsoftmax.set_num_threads, which may exceed OMP_NUM_THREADS) holds in every thread.
namespace {
#ifdef _OPENMP
const int g_openmp_limit_at_import = omp_get_max_threads();
#endif
}  // namespace

int cap_threads(int requested) {
#ifdef _OPENMP
  const int limit = omp_get_max_threads();
  return limit < g_openmp_limit_at_import ? std::min(requested, limit) : requested;
#else
  (void)requested;
  return 1;
#endif
}

}  // namespace fastsoftmax
