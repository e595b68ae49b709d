// The kernels, written once and compiled once per instruction-set level (see CMakeLists.txt);
// FASTSOFTMAX_LEVEL names this copy's namespace.
//
// A block is (M, N, K) reduced along N. Three walks cover every layout:
// - rows:     the axis has unit stride in every operand; each of the M*K rows is contiguous.
// - columns:  the K dimension has unit stride; a tile of N x W elements is processed with the
//             vectors running across K (axis != -1 on a C-contiguous array), never transposed.
// - gathered: anything else; each row is copied into a per-thread buffer, computed, copied back.
//
// [Note: passes over a row]
// The forward makes three passes: max; exp stored and summed; scale by 1/sum. The second and
// third passes hit L1/L2 for any row that fits there, so each element is read from memory once
// and written once. A single "online" max-and-sum pass would need a second exp per element,
// which measured slower for rows that fit in cache. The backward makes two: dot, then output.
//
// [Note: summation]
// A float32 running sum over a row of N loses up to ~log2(N) bits, and even short float partial
// sums (a few hundred terms per lane) put a softmax near its maximum past 8 units of rounding.
// So two vectors of terms are added in T (one rounding), then widened and added into double
// lanes: the sums are exact to about one float rounding for any N, for two extra vector
// instructions per pair of vectors. Double terms get a Kahan-compensated double sum instead.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "block.hpp"
#include "simd.hpp"
#include "vec_exp.hpp"

namespace fastsoftmax::FASTSOFTMAX_LEVEL {
namespace {

using simd::Vec;
using std::int64_t;

// Elements one thread must have before a call wakes a second one: below this, starting a
// parallel region costs more than the work it splits.
constexpr int64_t kGrainElements = 1 << 15;
// The columns walk keeps an N x W tile near L2-sized so its later passes stay in cache.
constexpr int64_t kTileBytes = 256 * 1024;
constexpr int64_t kMaxTileWidth = 256;  // elements; bounds the per-lane state arrays

template <class T>
constexpr T kInf = std::numeric_limits<T>::infinity();
template <class T>
constexpr int64_t L = simd::kLanes<T>;

// A full vector when count == L (the compiler folds the test away in the main loops), else
// the first `count` lanes with the rest set to `fill`.
template <class T>
inline Vec<T> load_n(const T* p, int64_t count, T fill) {
  return count == L<T> ? simd::load(p) : simd::load_first(p, count, fill);
}
template <class T>
inline void store_n(T* p, Vec<T> v, int64_t count) {
  if (count == L<T>) {
    simd::store(p, v);
  } else {
    simd::store_first(p, v, count);
  }
}

// Calls f(i, count) over [0, n) in vector steps, the last one partial.
template <class T, class F>
inline void for_each_vector(int64_t n, F&& f) {
  int64_t i = 0;
  for (; i + L<T> <= n; i += L<T>) f(i, L<T>);
  if (i < n) f(i, n - i);
}

// sum over i of term(i, count), accumulated in double (see the Note on summation).
template <class T, class F>
inline double fold_sum(int64_t n, F&& term) {
  simd::WideSum<T> sum;
  int64_t i = 0;
  for (; i + 2 * L<T> <= n; i += 2 * L<T>) sum.add(term(i, L<T>) + term(i + L<T>, L<T>));
  for (; i < n; i += L<T>) sum.add(term(i, std::min(L<T>, n - i)));
  return sum.total();
}

template <class T>
inline bool is_finite(T v) {
  return v > -kInf<T> && v < kInf<T>;
}

// ---------------------------------------------------------------------------------------------
// One contiguous row.

template <class T>
T row_max(const T* x, int64_t n) {
  Vec<T> m0 = simd::splat(-kInf<T>), m1 = m0, m2 = m0, m3 = m0;
  int64_t i = 0;
  for (; i + 4 * L<T> <= n; i += 4 * L<T>) {
    m0 = simd::max<T>(simd::load(x + i), m0);
    m1 = simd::max<T>(simd::load(x + i + L<T>), m1);
    m2 = simd::max<T>(simd::load(x + i + 2 * L<T>), m2);
    m3 = simd::max<T>(simd::load(x + i + 3 * L<T>), m3);
  }
  for (; i < n; i += L<T>) m0 = simd::max<T>(load_n(x + i, std::min(L<T>, n - i), -kInf<T>), m0);
  return simd::reduce_max<T>(simd::max<T>(simd::max<T>(m0, m1), simd::max<T>(m2, m3)));
}

// exp(x - m) into e (which may be x), returning its sum.
template <class T>
double exp_store_sum(const T* x, T m, T* e, int64_t n) {
  return fold_sum<T>(n, [&](int64_t i, int64_t count) {
    const Vec<T> v = simd::exp<T>(load_n(x + i, count, -kInf<T>) - m);
    store_n(e + i, v, count);
    return v;
  });
}

template <class T>
double exp_sum(const T* x, T m, int64_t n) {
  return fold_sum<T>(n, [&](int64_t i, int64_t count) {
    return simd::exp<T>(load_n(x + i, count, -kInf<T>) - m);
  });
}

template <class T>
double dot(const T* a, const T* b, int64_t n) {
  return fold_sum<T>(n, [&](int64_t i, int64_t count) {
    return load_n(a + i, count, T(0)) * load_n(b + i, count, T(0));
  });
}

template <class T>
double sum(const T* a, int64_t n) {
  return fold_sum<T>(n, [&](int64_t i, int64_t count) { return load_n(a + i, count, T(0)); });
}

template <class T>
void scale(const T* src, T factor, T* dst, int64_t n) {
  for_each_vector<T>(n, [&](int64_t i, int64_t count) {
    store_n(dst + i, load_n(src + i, count, T(0)) * factor, count);
  });
}

// y = src * scale; s = y if s is given; out = y * (g - d). With scale 1 this is the softmax
// backward from the saved output; softmax_jvp passes exp(x - max) and 1/sum.
template <class T>
void backward_out(const T* src, T scale, const T* g, T d, T* out, T* s, int64_t n) {
  for_each_vector<T>(n, [&](int64_t i, int64_t count) {
    const Vec<T> y = load_n(src + i, count, T(0)) * scale;
    if (s) store_n(s + i, y, count);
    store_n(out + i, y * (load_n(g + i, count, T(0)) - d), count);
  });
}

// [Note: rows whose maximum is not finite]
// Subtracting the maximum fails only when it is +inf (inf - inf) or -inf (the row is all -inf,
// or -inf and NaN). Both are rare, so the fast path only tests the maximum and this scalar
// path does the rest: a NaN anywhere, or no +inf, makes the row NaN; otherwise the k entries at
// +inf share probability 1 (log-probability -log k) and the rest get 0 (-inf).
// Returns false when the row came out NaN.
template <class T>
bool limit_row(const T* x, int64_t sx, T* out, int64_t so, int64_t n, bool log) {
  int64_t infinite = 0;
  bool nan = false;
  for (int64_t i = 0; i < n; ++i) {
    infinite += x[i * sx] == kInf<T>;
    nan |= x[i * sx] != x[i * sx];
  }
  if (nan || infinite == 0) {
    for (int64_t i = 0; i < n; ++i) out[i * so] = std::numeric_limits<T>::quiet_NaN();
    return false;
  }
  const T hit = log ? -std::log(T(infinite)) : T(1) / T(infinite);
  const T miss = log ? -kInf<T> : T(0);
  for (int64_t i = 0; i < n; ++i) out[i * so] = x[i * sx] == kInf<T> ? hit : miss;
  return true;
}

// softmax_jvp in a row whose maximum is not finite: s is the limit, the product NaN or 0
// (the Jacobian of a saturated softmax is zero).
template <class T>
void limit_jvp(const T* x, int64_t sx, T* out, int64_t so, T* s, int64_t ss, int64_t n) {
  const T value = limit_row(x, sx, s, ss, n, false) ? T(0) : std::numeric_limits<T>::quiet_NaN();
  for (int64_t i = 0; i < n; ++i) out[i * so] = value;
}

// Pointers to one row of each operand; g and s may be null.
template <class T>
struct Row {
  const T* x;
  const T* g;
  T* out;
  T* s;
};

// `scratch` holds n elements (softmax_jvp keeps exp(x - max) there when s is not wanted).
template <class T>
void row_op(Op op, const Row<T>& r, int64_t n, T* scratch) {
  switch (op) {
    case Op::softmax: {
      const T m = row_max(r.x, n);
      if (!is_finite(m)) {
        limit_row(r.x, 1, r.out, 1, n, false);
        return;
      }
      const double total = exp_store_sum(r.x, m, r.out, n);
      scale(r.out, T(1.0 / total), r.out, n);
      return;
    }
    case Op::log_softmax: {
      const T m = row_max(r.x, n);
      if (!is_finite(m)) {
        limit_row(r.x, 1, r.out, 1, n, true);
        return;
      }
      const T lse = T(std::log(exp_sum(r.x, m, n)));
      // [Note: order of subtraction] (x - max) is exact for nearby values and is formed first;
      // folding max + lse into one constant would round it and lose the small log-probabilities.
      for_each_vector<T>(n, [&](int64_t i, int64_t count) {
        store_n(r.out + i, (load_n(r.x + i, count, T(0)) - m) - lse, count);
      });
      return;
    }
    case Op::softmax_backward:
      backward_out<T>(r.x, T(1), r.g, T(dot(r.x, r.g, n)), r.out, nullptr, n);
      return;
    case Op::log_softmax_backward: {
      const T total = T(sum(r.g, n));
      for_each_vector<T>(n, [&](int64_t i, int64_t count) {
        const Vec<T> p = simd::exp<T>(load_n(r.x + i, count, T(0)));
        store_n(r.out + i, load_n(r.g + i, count, T(0)) - p * total, count);
      });
      return;
    }
    case Op::softmax_jvp: {
      const T m = row_max(r.x, n);
      T* e = r.s ? r.s : scratch;
      if (!is_finite(m)) {
        limit_jvp(r.x, 1, r.out, 1, e, 1, n);
        return;
      }
      const double total = exp_store_sum(r.x, m, e, n);
      const double inv = 1.0 / total;
      backward_out<T>(e, T(inv), r.g, T(dot(e, r.g, n) * inv), r.out, r.s, n);
      return;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// A tile of N rows by W (<= kMaxTileWidth) contiguous columns, vectors running across columns.
// Each column is a softmax row; per-column state lives in arrays of W lanes.

template <class T>
struct Tile {
  const T* x;
  const T* g;
  T* out;
  T* s;
  int64_t sx, sg, so, ss;  // element strides between the tile's rows
  int64_t n, w;
};

// Per-column state, padded to whole vectors so the last partial vector can be loaded whole.
template <class T>
struct alignas(64) Lanes {
  T v[kMaxTileWidth];
};

template <class T>
inline int64_t padded_width(int64_t w) {
  return (w + L<T> - 1) / L<T> * L<T>;
}

template <class T>
inline Vec<T> lanes_at(const Lanes<T>& a, int64_t c) {
  return simd::load(a.v + c);
}

template <class T, class F>
inline void for_each_cell(const Tile<T>& t, F&& f) {
  for (int64_t j = 0; j < t.n; ++j) {
    for_each_vector<T>(t.w, [&](int64_t c, int64_t count) { f(j, c, count); });
  }
}

// Returns false if a column's maximum is not finite: the caller then walks the tile column by
// column through the scalar limit path (see the Note on rows whose maximum is not finite).
template <class T>
bool column_max(const Tile<T>& t, Lanes<T>& m) {
  std::fill(m.v, m.v + kMaxTileWidth, -kInf<T>);
  for_each_cell(t, [&](int64_t j, int64_t c, int64_t count) {
    simd::store(m.v + c, simd::max<T>(load_n(t.x + j * t.sx + c, count, -kInf<T>), lanes_at(m, c)));
  });
  return std::all_of(m.v, m.v + t.w, [](T v) { return is_finite(v); });
}

// total[c] = sum over rows j of term(j, c, count)[lane], rows added in pairs and then in double
// (the Note on summation). `total` has kMaxTileWidth entries.
template <class T, class F>
void column_sum(const Tile<T>& t, F&& term, double* total) {
  alignas(64) double carry[kMaxTileWidth] = {};
  std::fill(total, total + kMaxTileWidth, 0.0);
  int64_t j = 0;
  for (; j + 2 <= t.n; j += 2) {
    for_each_vector<T>(t.w, [&](int64_t c, int64_t count) {
      simd::add_wide(total + c, carry + c, term(j, c, count) + term(j + 1, c, count));
    });
  }
  if (j < t.n) {
    for_each_vector<T>(t.w, [&](int64_t c, int64_t count) {
      simd::add_wide(total + c, carry + c, term(j, c, count));
    });
  }
  for (int64_t c = 0; c < t.w; ++c) total[c] -= carry[c];
}

// The tile's operation; false when it must be redone column by column (non-finite maximum).
// `scratch` holds n * padded_width(w) elements for softmax_jvp.
template <class T>
bool tile_op(Op op, const Tile<T>& t, T* scratch) {
  Lanes<T> m, per_column;
  alignas(64) double total[kMaxTileWidth];
  auto at = [&](const T* base, int64_t stride, int64_t j, int64_t c) { return base + j * stride + c; };
  switch (op) {
    case Op::softmax: {
      if (!column_max(t, m)) return false;
      column_sum(t, [&](int64_t j, int64_t c, int64_t count) {
        const Vec<T> e = simd::exp<T>(load_n(at(t.x, t.sx, j, c), count, -kInf<T>) - lanes_at(m, c));
        store_n(t.out + j * t.so + c, e, count);
        return e;
      }, total);
      for (int64_t c = 0; c < t.w; ++c) per_column.v[c] = T(1.0 / total[c]);
      for_each_cell(t, [&](int64_t j, int64_t c, int64_t count) {
        T* o = t.out + j * t.so + c;
        store_n(o, load_n(o, count, T(0)) * lanes_at(per_column, c), count);
      });
      return true;
    }
    case Op::log_softmax: {
      if (!column_max(t, m)) return false;
      column_sum(t, [&](int64_t j, int64_t c, int64_t count) {
        return simd::exp<T>(load_n(at(t.x, t.sx, j, c), count, -kInf<T>) - lanes_at(m, c));
      }, total);
      for (int64_t c = 0; c < t.w; ++c) per_column.v[c] = T(std::log(total[c]));
      for_each_cell(t, [&](int64_t j, int64_t c, int64_t count) {
        const Vec<T> x = load_n(at(t.x, t.sx, j, c), count, T(0));
        store_n(t.out + j * t.so + c, (x - lanes_at(m, c)) - lanes_at(per_column, c), count);
      });
      return true;
    }
    case Op::softmax_backward: {
      column_sum(t, [&](int64_t j, int64_t c, int64_t count) {
        return load_n(at(t.x, t.sx, j, c), count, T(0)) * load_n(at(t.g, t.sg, j, c), count, T(0));
      }, total);
      for (int64_t c = 0; c < t.w; ++c) per_column.v[c] = T(total[c]);
      for_each_cell(t, [&](int64_t j, int64_t c, int64_t count) {
        const Vec<T> y = load_n(at(t.x, t.sx, j, c), count, T(0));
        const Vec<T> g = load_n(at(t.g, t.sg, j, c), count, T(0));
        store_n(t.out + j * t.so + c, y * (g - lanes_at(per_column, c)), count);
      });
      return true;
    }
    case Op::log_softmax_backward: {
      column_sum(t, [&](int64_t j, int64_t c, int64_t count) {
        return load_n(at(t.g, t.sg, j, c), count, T(0));
      }, total);
      for (int64_t c = 0; c < t.w; ++c) per_column.v[c] = T(total[c]);
      for_each_cell(t, [&](int64_t j, int64_t c, int64_t count) {
        const Vec<T> p = simd::exp<T>(load_n(at(t.x, t.sx, j, c), count, T(0)));
        const Vec<T> g = load_n(at(t.g, t.sg, j, c), count, T(0));
        store_n(t.out + j * t.so + c, g - p * lanes_at(per_column, c), count);
      });
      return true;
    }
    case Op::softmax_jvp: {
      if (!column_max(t, m)) return false;
      // exp(x - max) goes to a private buffer: out may be g itself and s may be absent.
      const int64_t stride = padded_width<T>(t.w);
      column_sum(t, [&](int64_t j, int64_t c, int64_t count) {
        const Vec<T> e = simd::exp<T>(load_n(at(t.x, t.sx, j, c), count, -kInf<T>) - lanes_at(m, c));
        simd::store(scratch + j * stride + c, e);
        return e;
      }, total);
      Lanes<T> inv;
      for (int64_t c = 0; c < t.w; ++c) inv.v[c] = T(1.0 / total[c]);
      column_sum(t, [&](int64_t j, int64_t c, int64_t count) {
        return simd::load(scratch + j * stride + c) * load_n(at(t.g, t.sg, j, c), count, T(0));
      }, total);
      for (int64_t c = 0; c < t.w; ++c) per_column.v[c] = T(total[c] * double(inv.v[c]));
      for_each_cell(t, [&](int64_t j, int64_t c, int64_t count) {
        const Vec<T> y = simd::load(scratch + j * stride + c) * lanes_at(inv, c);
        if (t.s) store_n(t.s + j * t.ss + c, y, count);
        const Vec<T> g = load_n(at(t.g, t.sg, j, c), count, T(0));
        store_n(t.out + j * t.so + c, y * (g - lanes_at(per_column, c)), count);
      });
      return true;
    }
  }
  return true;
}

// ---------------------------------------------------------------------------------------------
// Walking a block.

// How many threads a call of `elements` elements split into `tasks` tasks should wake.
int threads_for(int requested, int64_t tasks, int64_t elements) {
  int64_t count = std::min<int64_t>(requested, tasks);
  count = std::min<int64_t>(count, std::max<int64_t>(1, elements / kGrainElements));
#ifdef _OPENMP
  count = std::min<int64_t>(count, omp_get_max_threads());
#endif
  return static_cast<int>(std::max<int64_t>(count, 1));
}

// body(begin, end, thread) over [0, tasks) split in contiguous ranges, one per thread.
// Nothing inside may throw: scratch is allocated by the caller before the parallel region.
template <class F>
void parallel_ranges(int64_t tasks, int threads, F&& body) {
#ifdef _OPENMP
  if (threads > 1) {
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

bool all_strides(const Block& b, int dim, int64_t value) {
  for (const Operand* a : {&b.x, &b.g, &b.out, &b.s}) {
    if (a->data && a->stride[dim] != value) return false;
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

// One row (m, k) of any layout through contiguous copies. `buffer` holds 5 * n elements.
template <class T>
void gathered_row(const Block& b, int64_t m, int64_t k, T* buffer) {
  const int64_t n = b.n;
  T* const x = buffer;
  T* const g = buffer + n;
  T* const out = buffer + 2 * n;
  T* const s = buffer + 3 * n;
  gather(element<T>(b.x, m, 0, k), b.x.stride[1], n, x);
  if (b.g.data) gather(element<T>(b.g, m, 0, k), b.g.stride[1], n, g);
  row_op<T>(b.op, {x, g, out, b.s.data ? s : nullptr}, n, buffer + 4 * n);
  scatter(out, n, element<T>(b.out, m, 0, k), b.out.stride[1]);
  if (b.s.data) scatter(s, n, element<T>(b.s, m, 0, k), b.s.stride[1]);
}

template <class T>
void walk_rows(const Block& b, int threads) {
  const int64_t rows = b.m * b.k;
  const int nt = threads_for(threads, rows, rows * b.n);
  const bool scratch_needed = b.op == Op::softmax_jvp && !b.s.data;
  std::vector<T> scratch(scratch_needed ? static_cast<std::size_t>(nt * b.n) : 0);
  parallel_ranges(rows, nt, [&](int64_t begin, int64_t end, int64_t t) {
    T* own = scratch_needed ? scratch.data() + t * b.n : nullptr;
    for (int64_t r = begin; r < end; ++r) {
      const int64_t m = r / b.k, k = r % b.k;
      const Row<T> row{element<T>(b.x, m, 0, k), b.g.data ? element<T>(b.g, m, 0, k) : nullptr,
                       element<T>(b.out, m, 0, k), b.s.data ? element<T>(b.s, m, 0, k) : nullptr};
      row_op<T>(b.op, row, b.n, own);
    }
  });
}

template <class T>
void walk_gathered(const Block& b, int threads) {
  const int64_t rows = b.m * b.k;
  const int nt = threads_for(threads, rows, rows * b.n);
  std::vector<T> scratch(static_cast<std::size_t>(nt * 5 * b.n));
  parallel_ranges(rows, nt, [&](int64_t begin, int64_t end, int64_t t) {
    for (int64_t r = begin; r < end; ++r) gathered_row<T>(b, r / b.k, r % b.k, scratch.data() + t * 5 * b.n);
  });
}

template <class T>
void walk_columns(const Block& b, int threads) {
  // W columns per tile: as many as keep an N x W tile within kTileBytes, whole vectors.
  const int64_t fit = kTileBytes / static_cast<int64_t>(sizeof(T)) / b.n / L<T> * L<T>;
  const int64_t width = std::min({std::max(fit, L<T>), kMaxTileWidth, b.k});
  const int64_t tiles_per_m = (b.k + width - 1) / width;
  const int64_t tasks = b.m * tiles_per_m;
  const int nt = threads_for(threads, tasks, b.m * b.n * b.k);
  // Per thread: the jvp's exp tile, or the gathered walk's 5 rows for a column redone alone.
  const int64_t per_thread = std::max(b.n * padded_width<T>(width), 5 * b.n);
  std::vector<T> scratch(static_cast<std::size_t>(nt * per_thread));
  parallel_ranges(tasks, nt, [&](int64_t begin, int64_t end, int64_t t) {
    T* own = scratch.data() + t * per_thread;
    for (int64_t task = begin; task < end; ++task) {
      const int64_t m = task / tiles_per_m;
      const int64_t k0 = task % tiles_per_m * width;
      const Tile<T> tile{element<T>(b.x, m, 0, k0), b.g.data ? element<T>(b.g, m, 0, k0) : nullptr,
                         element<T>(b.out, m, 0, k0), b.s.data ? element<T>(b.s, m, 0, k0) : nullptr,
                         b.x.stride[1], b.g.stride[1], b.out.stride[1], b.s.stride[1],
                         b.n, std::min(width, b.k - k0)};
      if (!tile_op<T>(b.op, tile, own)) {
        for (int64_t k = k0; k < k0 + tile.w; ++k) gathered_row<T>(b, m, k, own);
      }
    }
  });
}

template <class T>
void run(const Block& b, int threads) {
  if (b.n == 1 || all_strides(b, 1, 1)) {
    walk_rows<T>(b, threads);
  } else if (b.k > 1 && all_strides(b, 2, 1)) {
    walk_columns<T>(b, threads);
  } else {
    walk_gathered<T>(b, threads);
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

void run_block(const Block& block, int threads) {
  if (block.dtype == DType::float32) {
    run<float>(block, threads);
  } else {
    run<double>(block, threads);
  }
}

}  // namespace fastsoftmax::FASTSOFTMAX_LEVEL
