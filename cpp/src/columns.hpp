// The columns kernels: the axis is not the contiguous dimension (axis != -1 on a C-contiguous
// array), so a tile of N rows by W (<= kMaxTileWidth) contiguous columns is processed with the
// vectors running across the columns, never transposed. Each column is a softmax row; the
// per-column state (max, sums) lives in arrays of W lanes. The passes are those of the rows
// kernels (see rows.hpp).
//
// [Note: tile width]
// Tiles are as wide as K allows, up to kMaxTileWidth, although such a tile (N x 1024) does not
// stay in L2 between passes: each of its rows is then a contiguous run the hardware prefetcher
// streams. Tiles narrow enough for L2 (16 columns when N = 4096) make every tile row a separate
// 64-byte line a page apart, and measured 5x slower on (4096, 1024) along axis 0.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "fastsoftmax/fastsoftmax.hpp"
#include "vec_exp.hpp"
#include "vector_loops.hpp"

namespace fastsoftmax::FASTSOFTMAX_LEVEL {
namespace {

constexpr int64_t kMaxTileWidth = 1024;  // elements; bounds the per-lane state arrays

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
template <class T>
bool tile_op(Op op, const Tile<T>& t) {
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
      // exp(x - max) is computed twice rather than kept: out may be g itself, and a kept tile
      // would be N x W extra memory per thread.
      auto e = [&](int64_t j, int64_t c, int64_t count) {
        return simd::exp<T>(load_n(at(t.x, t.sx, j, c), count, -kInf<T>) - lanes_at(m, c));
      };
      alignas(64) double dots[kMaxTileWidth];
      column_sum(t, e, total);
      column_sum(t, [&](int64_t j, int64_t c, int64_t count) {
        return e(j, c, count) * load_n(at(t.g, t.sg, j, c), count, T(0));
      }, dots);
      Lanes<T> inv;
      for (int64_t c = 0; c < t.w; ++c) {
        inv.v[c] = T(1.0 / total[c]);
        per_column.v[c] = T(dots[c] / total[c]);
      }
      for_each_cell(t, [&](int64_t j, int64_t c, int64_t count) {
        const Vec<T> y = e(j, c, count) * lanes_at(inv, c);
        if (t.s) store_n(t.s + j * t.ss + c, y, count);
        const Vec<T> g = load_n(at(t.g, t.sg, j, c), count, T(0));
        store_n(t.out + j * t.so + c, y * (g - lanes_at(per_column, c)), count);
      });
      return true;
    }
  }
  return true;
}

}  // namespace
}  // namespace fastsoftmax::FASTSOFTMAX_LEVEL
