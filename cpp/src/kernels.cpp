// The kernels, written once and compiled once per instruction-set level (see CMakeLists.txt);
// FASTSOFTMAX_LEVEL names this copy's namespace. This file walks a block; rows.hpp and
// columns.hpp walk rows and tiles, operations.hpp holds the arithmetic. Every walk is a
// template on the operation; run_block picks it from the block's Op, once.
//
// A block is (M, N, K) reduced along N. Three walks cover every layout:
// - rows:     the axis has unit stride in every operand; each of the M*K rows is contiguous.
//             Fewer rows than threads, each long: the threads share every row (split_rows).
// - columns:  the K dimension has unit stride; tiles of N x W elements, vectors across K.
// - gathered: anything else; each row is copied into a per-thread buffer, computed, copied back.
//
// [Note: streaming stores]
// When the output is larger than the cache can keep (streaming_threshold_bytes, measured: see
// python/fastsoftmax/_cache_size.py), it is written with non-temporal stores: a normal store
// first reads the line it writes (a third of the traffic) and evicts the inputs. The next
// row's inputs are prefetched while a row is computed (see the Note on prefetching the next row
// in rows.hpp).
// Only rows of at least kStreamRowBytes stream: on the Zen 4 VM, rows of 128 float32 were
// 1.2x slower streamed than stored normally, rows of 256 alike, rows of 512 ((98304, 512)
// softmax) 1.35x faster.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "block.hpp"
#include "columns.hpp"
#include "constants.hpp"
#include "half.hpp"
#include "operations.hpp"
#include "rows.hpp"
#include "simd.hpp"
#include "vec_exp.hpp"

namespace fastsoftmax::FASTSOFTMAX_LEVEL {
namespace {

// Elements one thread must have before a call wakes a second one: below this, starting a
// parallel region (~2 us) costs more than the work it splits. Measured with 2 threads: a
// (32, 1000) softmax takes 7.3 us instead of 11.3, its backward 4.4 instead of 5.9.
// (The grain and the split size are in _constants.json, which the Numba backend shares.)
constexpr int64_t kGrainElements = constants::kGrainElements;
constexpr int64_t kStreamRowBytes = 1024;
// Rows at least this long are shared between threads when there are fewer rows than threads.
constexpr int64_t kSplitElements = constants::kSplitElements;
// float16 columns are widened this many at a time (walk_half_columns): on (4096, 1024) along
// axis 0, slabs of 32 / 64 / 128 columns took 4.1 / 4.2 / 4.8 ms, on (256, 32, 128) along axis
// 1 0.82 / 0.71 / 0.68 ms (Xeon, 1 thread).
constexpr int64_t kHalfSlabWidth = 64;
// Roles of x's shape (x, g, out, s): each has a slab of a float16 call's tile.
constexpr int kFullShapeRoles = [] {
  int count = 0;
  for (int i = 0; i < kRoleCount; ++i) {
    count += !is_per_row(static_cast<Role>(i)) && !is_mask(static_cast<Role>(i));
  }
  return count;
}();

// `per_thread` elements of scratch for each thread, allocated before a parallel region (nothing
// inside one may throw). Each thread's part starts on its own cache line: two threads writing
// the ends of neighbouring parts into one line made (98304, 512) softmax on 2 threads 1.5x
// slower. Not zeroed: value-initialising it cost ~20 us on (8, 50257). A small call's scratch
// (a short row's, with its 4 KiB of placement room: rows.hpp) is held in the object, on the
// caller's stack: a heap block per call was a tenth of a (1, 10) softmax's time in C++.
template <class T>
class Scratch {
 public:
  Scratch(int threads, int64_t per_thread) : stride_((per_thread + kLine - 1) / kLine * kLine) {
    const auto elements = static_cast<std::size_t>(threads * stride_ + kLine);
    if (elements > kHeld) heap_.reset(new T[elements]);
    T* const storage = heap_ ? heap_.get() : held_;
    const auto misaligned = reinterpret_cast<std::uintptr_t>(storage) % kLineBytes;
    base_ = storage + (misaligned ? (kLineBytes - misaligned) / sizeof(T) : 0);
  }
  T* part(int64_t thread) const { return base_ + thread * stride_; }

 private:
  static constexpr std::uintptr_t kLineBytes = 64;
  static constexpr int64_t kLine = kLineBytes / sizeof(T);  // elements per cache line
  static constexpr std::size_t kHeld = 16384 / sizeof(T);
  int64_t stride_;
  std::unique_ptr<T[]> heap_;
  T* base_;  // the storage's first cache-line boundary
  T held_[kHeld];
};

// How many threads a call of `elements` elements split into `tasks` tasks should wake.
int threads_for(int requested, int64_t tasks, int64_t elements) {
  if (threads_lost_to_fork()) return 1;  // see the Note on fork in dispatch.cpp
  int64_t count = std::min<int64_t>(cap_threads(requested), tasks);
  count = std::min<int64_t>(count, std::max<int64_t>(1, elements / kGrainElements));
  return static_cast<int>(std::max<int64_t>(count, 1));
}

// body(begin, end, thread) over [0, tasks) split in contiguous ranges, one per thread.
// Nothing inside may throw: scratch is allocated by the caller before the parallel region.
template <class F>
void parallel_ranges(int64_t tasks, int threads, F&& body) {
#ifdef _OPENMP
  if (threads > 1) {
    note_parallel_region();
#pragma omp parallel num_threads(threads)
    {
      const int64_t t = omp_get_thread_num();
      const int64_t count = omp_get_num_threads();
      body(tasks * t / count, tasks * (t + 1) / count, t);
    }
    return;
  }
#endif
  body(0, tasks, 0);
}

template <class T>
T* element(const Operand& a, int64_t m, int64_t j, int64_t k) {
  return static_cast<T*>(a.data) + m * a.stride[0] + j * a.stride[1] + k * a.stride[2];
}

// Each operand's element (m, j, k), null where the block has no such operand; the mask's in
// Row::where. Inlined: the rows walk takes it twice per row.
template <class T>
[[gnu::always_inline]] inline Row<T> elements(const Block& b, int64_t m, int64_t j, int64_t k) {
  Row<T> at;
  for (int i = 0; i < kRoleCount; ++i) {
    const Operand& a = b.operands.item[i];
    if (a.data && !is_mask(static_cast<Role>(i))) at.item[i] = element<T>(a, m, j, k);
  }
  const Operand& where = b.operands[Role::where];
  if (where.data) at.where = element<const std::uint8_t>(where, m, j, k);
  return at;
}

// Whether every operand steps by `value` along dimension `dim`; a per-row output (stride 0
// along N) is left out of N's test.
bool all_strides(const Block& b, int dim, int64_t value) {
  for (int i = 0; i < kRoleCount; ++i) {
    const Operand& a = b.operands.item[i];
    if (dim == 1 && is_per_row(static_cast<Role>(i))) continue;
    if (a.data && a.stride[dim] != value) return false;
  }
  return true;
}

template <class T>
void gather(const T* src, int64_t stride, int64_t n, T* dst) {
  for (int64_t i = 0; i < n; ++i) dst[i] = src[i * stride];
}
template <class T>
void scatter(const T* src, int64_t n, T* dst, int64_t stride) {
  for (int64_t i = 0; i < n; ++i) dst[i * stride] = src[i];
}

// A float16 row is converted as it is gathered and scattered, by the widest conversion the
// level has (half.hpp). A strided row's halves are first copied to `staged` (n of them), so
// that the conversion always runs on contiguous elements.
void convert(const std::uint16_t* in, float* out, int64_t n) {
#if defined(__AVX512F__)
  half::from_half_avx512(in, out, n);
#elif defined(__F16C__)
  half::from_half_f16c(in, out, n);
#else
  half::from_half_scalar(in, out, n);
#endif
}
void convert(const float* in, std::uint16_t* out, int64_t n) {
#if defined(__AVX512F__)
  half::to_half_avx512(in, out, n);
#elif defined(__F16C__)
  half::to_half_f16c(in, out, n);
#else
  half::to_half_scalar(in, out, n);
#endif
}
// A contiguous row is converted in blocks of kLineHalves, each with the line one row further
// on fetched into L2: in C order, the next row's (a prefetch never faults past the array).
void gather(const std::uint16_t* src, int64_t stride, int64_t n, float* dst,
            std::uint16_t* staged) {
  if (stride != 1) {
    gather(src, stride, n, staged);
    convert(staged, dst, n);
    return;
  }
  constexpr int64_t kLineHalves = 32;
  int64_t i = 0;
  for (; i + kLineHalves <= n; i += kLineHalves) {
    simd::prefetch(src + n + i);
    convert(src + i, dst + i, kLineHalves);
  }
  convert(src + i, dst + i, n - i);
}
void scatter(const float* src, int64_t n, std::uint16_t* dst, int64_t stride,
             std::uint16_t* staged, bool stream) {
#if defined(__AVX512F__)
  if (stream && stride == 1) return half::to_half_avx512_streamed(src, dst, n);
#endif
  (void)stream;
  convert(src, stride == 1 ? dst : staged, n);
  if (stride != 1) scatter(staged, n, dst, stride);
}
template <class T>
void gather(const T* src, int64_t stride, int64_t n, T* dst, T*) {
  gather(src, stride, n, dst);
}
template <class T>
void scatter(const T* src, int64_t n, T* dst, int64_t stride, T*, bool) {
  scatter(src, n, dst, stride);
}

// The elements of gathered_row's buffer: a row of each operand (the mask's bytes in its T row),
// the scratch row, and where the arrays hold S (float16) rather than T, n S for staging.
template <class T, class S = T>
int64_t gathered_elements(int64_t n) {
  const int64_t staged_bytes = std::is_same_v<S, T> ? 0 : n * int64_t(sizeof(S));
  return kRoleCount * n + scratch_elements<T>(n) + (staged_bytes + sizeof(T) - 1) / sizeof(T);
}

// One row (m, k) of any layout through contiguous copies in T: the operation's inputs
// gathered, its outputs scattered, each converted where the arrays hold S; per-row operands
// (T in every call: fastsoftmax.hpp) are read and written in place. `buffer` holds
// gathered_elements<T, S>(n).
template <class Operation, class T, class S = T>
void gathered_row(const Block& b, int64_t m, int64_t k, T* buffer, bool stream) {
  const int64_t n = b.n;
  ByRole<S*> at;  // the full-shape operands' element (m, 0, k)
  Row<T> row;
  for (int i = 0; i < kRoleCount; ++i) {
    const Role role = static_cast<Role>(i);
    const Operand& a = b.operands.item[i];
    if (!a.data || is_mask(role)) continue;
    if (is_per_row(role)) {
      row.item[i] = element<T>(a, m, 0, k);
    } else {
      at.item[i] = element<S>(a, m, 0, k);
      row.item[i] = buffer + i * n;
    }
  }
  T* const scratch = buffer + kRoleCount * n;
  S* const staged = reinterpret_cast<S*>(scratch + scratch_elements<T>(n));
  for (Role role : Operation::kInputs) {
    if (at[role]) gather(at[role], b.operands[role].stride[1], n, row[role], staged);
  }
  const Operand& mask = b.operands[Role::where];
  if (mask.data) {
    auto* where = reinterpret_cast<std::uint8_t*>(buffer + static_cast<int>(Role::where) * n);
    gather(element<const std::uint8_t>(mask, m, 0, k), mask.stride[1], n, where);
    row.where = where;
  }
  RowContext<T> ctx;
  ctx.scratch = scratch;
  row_op<Operation>(row, n, ctx);
  for (Role role : Operation::kOutputs) {
    if (at[role]) scatter(row[role], n, at[role], b.operands[role].stride[1], staged, stream);
  }
}

// Inlined: as a call, its result went through memory, and copying it stalled on the stores
// (no store forwarding): 5% of a (98304, 512) softmax on the Zen 4 VM.
template <class T>
[[gnu::always_inline]] inline Row<T> row_at(const Block& b, int64_t r) {
  return elements<T>(b, r / b.k, 0, r % b.k);
}

// Fewer rows than threads, each long: every thread takes a slice of every row. The first pass's
// partials meet at a barrier, combine exactly (reductions.hpp), and each thread writes its
// slice.
template <class Operation, class T>
void split_rows(const Block& b, int threads, bool stream) {
#ifdef _OPENMP
  using Red = typename Operation::Reduction;
  std::vector<typename Red::Partial> parts(static_cast<std::size_t>(threads));
  note_parallel_region();
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num();
    const int count = omp_get_num_threads();
    const int64_t begin = b.n * t / count, end = b.n * (t + 1) / count;
    RowContext<T> ctx;
    ctx.stream = stream;
    for (int64_t r = 0; r < b.m * b.k; ++r) {
      const Row<T> row = row_at<T>(b, r);
      parts[t] = first_pass<Operation>(row, begin, end, no_prefetch);
#pragma omp barrier
      const auto total = Red::combine(count, [&](int i) { return parts[i]; });
      if (needs_limit<Operation, T>(total)) {
        if (t == 0) limit_rows<Operation>(row, kUnitStrides, b.n);
      } else {
        if (t == 0) store_row_outputs<Operation>(row, total);
        second_pass<Operation>(row, begin, end, total, ctx);
      }
#pragma omp barrier  // parts[] is reused by the next row
    }
    if (stream) simd::stream_fence();
  }
#else
  (void)b;
  (void)threads;
  (void)stream;
#endif
}

template <class Operation, class T>
void walk_rows(const Block& b, int threads) {
  const int64_t rows = b.m * b.k;
  const int64_t elements = rows * b.n;
  const bool stream = elements * int64_t(sizeof(T)) > streaming_threshold_bytes() &&
                      b.n * int64_t(sizeof(T)) >= kStreamRowBytes;
  const int by_work = threads_for(threads, elements, elements);
  if (rows < by_work && b.n >= kSplitElements) {
    split_rows<Operation, T>(b, by_work, stream);
    return;
  }
  const int nt = threads_for(threads, rows, elements);
  const bool cached = needs_scratch_row<Operation, T>(b.n);
  const Scratch<T> scratch(nt, cached ? scratch_elements<T>(b.n) : 0);
  parallel_ranges(rows, nt, [&](int64_t begin, int64_t end, int64_t t) {
    RowContext<T> ctx;
    ctx.scratch = cached ? scratch.part(t) : nullptr;
    ctx.stream = stream;
    for (int64_t r = begin; r < end; ++r) {
      // Only arrays past the cache need the next row fetched early; in cache, fetching a long
      // next row into L2 evicted this one's (measured 20% slower on (8, 50257) backward).
      if (stream && r + 1 < end) {
        const Row<T> next = row_at<T>(b, r + 1);
        ctx.next_x = next[Role::x];
        ctx.next_g = next[Role::g];
      } else {
        ctx.next_x = ctx.next_g = nullptr;
      }
      row_op<Operation>(row_at<T>(b, r), b.n, ctx);
    }
    if (stream) simd::stream_fence();
  });
}

// Rows of any layout through gathered copies; float16 arrays (S) of every layout this way too,
// so a float16 call holds a few float32 rows per thread, never a float32 copy of its arrays.
// Their contiguous float16 outputs past the cache are streamed, as walk_rows streams.
template <class Operation, class T, class S = T>
void walk_gathered(const Block& b, int threads) {
  const int64_t rows = b.m * b.k;
  const int64_t row_bytes = b.n * int64_t(sizeof(S));
  const bool stream = !std::is_same_v<S, T> && rows * row_bytes > streaming_threshold_bytes() &&
                      row_bytes >= kStreamRowBytes;
  const int nt = threads_for(threads, rows, rows * b.n);
  const Scratch<T> scratch(nt, gathered_elements<T, S>(b.n));
  parallel_ranges(rows, nt, [&](int64_t begin, int64_t end, int64_t t) {
    for (int64_t r = begin; r < end; ++r) {
      gathered_row<Operation, T, S>(b, r / b.k, r % b.k, scratch.part(t), stream);
    }
    if (stream) simd::stream_fence();
  });
}

template <class T>
Tile<T> tile_at(const Block& b, int64_t m, int64_t k0, bool stream) {
  Tile<T> tile{elements<T>(b, m, 0, k0), {}, b.n, std::min(kMaxTileWidth, b.k - k0), stream};
  for (int i = 0; i < kRoleCount; ++i) tile.stride.item[i] = b.operands.item[i].stride[1];
  return tile;
}

// Column c of a tile alone, for a tile where some column's maximum is not finite: as a tile one
// column wide, or through the limit rule when it is such a column. Nothing is allocated (a
// gathered copy of a column of 200,000,000 rows would be 4 GB per thread).
template <class Operation, class T>
void redo_column(const Tile<T>& tile, int64_t c) {
  Tile<T> column = tile;
  for (T*& at : column.at.item) at = at ? at + c : nullptr;  // every role steps 1 along K
  if (column.at.where) column.at.where += c;
  column.w = 1;
  column.stream = false;
  if (tile_op<Operation>(column)) return;
  limit_rows<Operation>(column.at, column.stride, column.n);
}
template <class Operation, class T>
void redo_column(const Block& b, int64_t m, int64_t k) {
  redo_column<Operation>(tile_at<T>(b, m, k, false), 0);
}

// Fewer tiles than threads (few columns along a long axis): every thread takes a slice of every
// tile's rows, as split_rows does with long rows. The slices' first passes meet at a barrier
// and combine exactly, then each thread writes its slice. A tile where some slice has a column
// maximum that is not finite is redone column by column, its columns shared between threads.
// Measured on the Zen 4 VM along axis 0, 2 threads, against half-width tiles per thread:
// (4096, 1024) softmax_backward 2.3-2.7 -> 0.8-1.6 ms, softmax_jvp 3.8-4.2 -> 2.2-2.4 ms,
// softmax unchanged; (1024, 64) softmax_backward 80 -> 18 us.
template <class Operation, class T>
void split_tiles(const Block& b, int threads, int64_t tiles_per_m, bool stream) {
#ifdef _OPENMP
  std::vector<ColumnState<Operation, T>> parts(static_cast<std::size_t>(threads));
  std::vector<char> finite(static_cast<std::size_t>(threads));
  note_parallel_region();
#pragma omp parallel num_threads(threads)
  {
    const int t = omp_get_thread_num();
    const int count = omp_get_num_threads();
    ColumnState<Operation, T> total;
    for (int64_t task = 0; task < b.m * tiles_per_m; ++task) {
      const int64_t m = task / tiles_per_m;
      const int64_t k0 = task % tiles_per_m * kMaxTileWidth;
      const Tile<T> tile = tile_at<T>(b, m, k0, stream);
      const Tile<T> slice = tile_rows<Operation>(tile, b.n * t / count, b.n * (t + 1) / count);
      finite[t] = tile_first_pass<Operation>(slice, parts[t]);
#pragma omp barrier
      if (std::all_of(finite.begin(), finite.begin() + count, [](char f) { return f != 0; })) {
        combine_columns<Operation>(parts.data(), count, tile.w, total);
        tile_second_pass<Operation>(slice, total);
      } else {
        for (int64_t k = k0 + tile.w * t / count; k < k0 + tile.w * (t + 1) / count; ++k) {
          redo_column<Operation, T>(b, m, k);
        }
      }
#pragma omp barrier  // parts[] is reused by the next tile
    }
    if (stream) simd::stream_fence();
  }
#else
  (void)b;
  (void)threads;
  (void)tiles_per_m;
  (void)stream;
#endif
}

template <class Operation, class T>
void walk_columns(const Block& b, int threads) {
  // Tiles as wide as K allows (see the Note on tile width).
  const int64_t tiles_per_m = (b.k + kMaxTileWidth - 1) / kMaxTileWidth;
  const int64_t tasks = b.m * tiles_per_m;
  const int64_t elements = b.m * b.n * b.k;
  // Tile rows stream at any width: unlike short contiguous rows, they measured faster streamed
  // ((4096, 1024) along axis 0 on 2 threads, tiles 512 wide: 1.7-2.1 ms against 2.1-2.5).
  const bool stream = elements * int64_t(sizeof(T)) > streaming_threshold_bytes();
  // Tiles are shared when there are fewer than threads, or too few to balance a narrower last
  // one ((4096, 1500) along axis 0: tiles of 1024 and 476 columns); a slice needs rows, and
  // a thread 4 grains of work: the two barriers per tile made (256, 64) along axis 0 on 2
  // threads 2x slower than on 1 with one grain.
  const int by_work = threads_for(threads, b.n, elements / 4);
  if (by_work > 1 && (tasks < by_work || (tasks < 2 * by_work && b.k % kMaxTileWidth != 0))) {
    split_tiles<Operation, T>(b, by_work, tiles_per_m, stream);
    return;
  }
  const int nt = threads_for(threads, tasks, elements);
  parallel_ranges(tasks, nt, [&](int64_t begin, int64_t end, int64_t) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t m = task / tiles_per_m;
      const int64_t k0 = task % tiles_per_m * kMaxTileWidth;
      const Tile<T> tile = tile_at<T>(b, m, k0, stream);
      if (!tile_op<Operation>(tile)) {
        for (int64_t k = k0; k < k0 + tile.w; ++k) redo_column<Operation, T>(b, m, k);
      }
    }
    if (stream) simd::stream_fence();
  });
}

// float16 along an axis that is not the last: slabs of up to kHalfSlabWidth columns, all N
// rows, widened into a per-thread float32 tile, computed by the tile code and rounded back.
template <class Operation>
void walk_half_columns(const Block& b, int threads) {
  using T = float;
  using S = std::uint16_t;
  // Narrower where that gives each thread a slab.
  const int64_t by_threads = (b.k + threads - 1) / threads;
  const int64_t width = std::min({kHalfSlabWidth, b.k, std::max<int64_t>(16, by_threads)});
  const int64_t slabs_per_m = (b.k + width - 1) / width;
  const int64_t tasks = b.m * slabs_per_m;
  const int nt = threads_for(threads, tasks, b.m * b.n * b.k);
  const Scratch<T> scratch(nt, kFullShapeRoles * b.n * width);
  parallel_ranges(tasks, nt, [&](int64_t begin, int64_t end, int64_t t) {
    for (int64_t task = begin; task < end; ++task) {
      const int64_t m = task / slabs_per_m;
      const int64_t k0 = task % slabs_per_m * width;
      Tile<T> tile{{}, {}, b.n, std::min(width, b.k - k0), false};
      ByRole<const Operand*> half;  // the float16 operands, which the tile holds widened
      T* slot = scratch.part(t);
      for (int i = 0; i < kRoleCount; ++i) {
        const Role role = static_cast<Role>(i);
        const Operand& a = b.operands.item[i];
        if (!a.data) continue;
        tile.stride.item[i] = a.stride[1];
        if (is_mask(role)) {
          tile.at.where = element<const std::uint8_t>(a, m, 0, k0);
        } else if (is_per_row(role)) {
          tile.at.item[i] = element<T>(a, m, 0, k0);
        } else {
          half.item[i] = &a;
          tile.at.item[i] = slot;
          tile.stride.item[i] = tile.w;
          slot += b.n * width;
        }
      }
      for (Role role : Operation::kInputs) {
        if (!half[role]) continue;
        for (int64_t j = 0; j < b.n; ++j) {
          convert(element<const S>(*half[role], m, j, k0), tile.at[role] + j * tile.w, tile.w);
        }
      }
      if (!tile_op<Operation>(tile)) {
        for (int64_t c = 0; c < tile.w; ++c) redo_column<Operation>(tile, c);
      }
      for (Role role : Operation::kOutputs) {
        if (!half[role]) continue;
        for (int64_t j = 0; j < b.n; ++j) {
          convert(tile.at[role] + j * tile.w, element<S>(*half[role], m, j, k0), tile.w);
        }
      }
    }
  });
}

template <class Operation, class T>
void run(const Block& b, int threads) {
  if (b.n == 1 || all_strides(b, 1, 1)) {
    walk_rows<Operation, T>(b, threads);
  } else if (b.k > 1 && all_strides(b, 2, 1)) {
    walk_columns<Operation, T>(b, threads);
  } else {
    walk_gathered<Operation, T>(b, threads);
  }
}

template <class Operation>
void run_typed(const Block& b, int threads) {
  switch (b.dtype) {
    case DType::float32:
      return run<Operation, float>(b, threads);
    case DType::float64:
      return run<Operation, double>(b, threads);
    case DType::float16:
      if (b.n > 1 && !all_strides(b, 1, 1) && b.k > 1 && all_strides(b, 2, 1)) {
        return walk_half_columns<Operation>(b, threads);
      }
      return walk_gathered<Operation, float, std::uint16_t>(b, threads);
  }
}

// The operation, or its masked instantiation where the block has a mask (operations.hpp's Note
// on masks): a call without one runs code that has no mask in it.
template <class Operation>
void run_maybe_masked(const Block& b, int threads) {
  if (b.operands[Role::where].data) {
    run_typed<Masked<Operation>>(b, threads);
  } else {
    run_typed<Operation>(b, threads);
  }
}

template <class T>
void exp_values(const T* in, T* out, int64_t n) {
  for_each_vector<T>(n, [&](int64_t i, int64_t count) {
    store_n(out + i, simd::exp<T>(load_n(in + i, count, T(0))), count);
  });
}

}  // namespace

void exp_array(DType dtype, const void* in, void* out, std::int64_t n) {
  if (dtype == DType::float32) {
    exp_values(static_cast<const float*>(in), static_cast<float*>(out), n);
  } else {
    exp_values(static_cast<const double*>(in), static_cast<double*>(out), n);
  }
}

// The one place that knows which operation an Op names.
void run_block(const Block& block, int threads) {
  switch (block.op) {
    case Op::softmax:
      return run_maybe_masked<Softmax>(block, threads);
    case Op::log_softmax:
      return run_maybe_masked<LogSoftmax>(block, threads);
    case Op::softmax_backward:
      return run_maybe_masked<SoftmaxBackward>(block, threads);
    case Op::log_softmax_backward:
      return run_maybe_masked<LogSoftmaxBackward>(block, threads);
    case Op::softmax_jvp:
      return run_maybe_masked<SoftmaxJvp>(block, threads);
    case Op::logsumexp:
      if (block.operands[Role::g].data) return run_maybe_masked<LogSumExp<true>>(block, threads);
      return run_maybe_masked<LogSumExp<false>>(block, threads);
    case Op::row_partials:
      return run_maybe_masked<RowPartials>(block, threads);
    case Op::softmax_given:
      return run_maybe_masked<FromPartials<Softmax>>(block, threads);
    case Op::log_softmax_given:
      return run_maybe_masked<FromPartials<LogSoftmax>>(block, threads);
  }
}

}  // namespace fastsoftmax::FASTSOFTMAX_LEVEL
