// The columns kernels: the axis is not the contiguous dimension (axis != -1 on a C-contiguous
// array), so a tile of N rows by W (<= kMaxTileWidth) contiguous columns is processed with the
// vectors running across the columns, never transposed. Each column is a softmax row; the
// per-column state (max, sums) lives in arrays of W lanes. The passes are those of a long row
// (rows.hpp's Note on passes), per column: blocks of tile rows small enough to stay in L1/L2
// get their column maxima, then their exps summed against the running maxima (the sums
// rescaled where a maximum grew), so the input is read from memory once for both; a second
// pass recomputes exp for the output, streamed past the cache when the arrays are larger than
// it. Measured on (4096, 1024) along axis 0, 1 thread: 4.35 ms with separate max,
// exp-and-store and rescale passes over the whole tile, 2.7-3.2 ms this way. The first pass
// over consecutive slices of a tile's rows combines exactly (combine_columns), which is how
// threads share a tile (kernels.cpp, split_tiles).
//
// [Note: tile width]
// Tiles are as wide as K allows, up to kMaxTileWidth: each tile row is then a contiguous run
// the hardware prefetcher streams, and the first pass's blocks of rows keep it in cache. Tiles
// narrow enough for L2 (16 columns when N = 4096) make every tile row a separate 64-byte line
// a page apart, and measured 5x slower on (4096, 1024) along axis 0. Threads therefore share
// a tile's rows rather than narrower tiles.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "fastsoftmax/fastsoftmax.hpp"
#include "rows.hpp"
#include "vec_exp.hpp"
#include "vector_loops.hpp"

namespace fastsoftmax::FASTSOFTMAX_LEVEL {
namespace {

constexpr int64_t kMaxTileWidth = 1024;  // elements; bounds the per-lane state arrays

constexpr int64_t kColumnBlockBytes = 64 * 1024;  // a block of tile rows: stays in L1/L2

template <class T>
struct Tile {
  const T* x;
  const T* g;
  T* out;
  T* s;
  int64_t sx, sg, so, ss;  // element strides between the tile's rows
  int64_t n, w;
  bool stream;  // outputs go past the cache (see the Note on streaming stores in kernels.cpp)
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

// The lanes a tile of w columns reads: whole vectors of T (a column redone alone is a tile of
// one, so filling all kMaxTileWidth lanes would cost it more than its own rows).
template <class T>
inline int64_t used_lanes(int64_t w) {
  return (w + L<T> - 1) / L<T> * L<T>;
}

// Per-column sums in double: total and carry compensated as simd::add_to does for double terms
// (float terms are widened exactly and need none).
struct ColumnSums {
  alignas(64) double total[kMaxTileWidth];
  alignas(64) double carry[kMaxTileWidth];

  void clear(int64_t lanes) {
    std::fill(total, total + lanes, 0.0);
    std::fill(carry, carry + lanes, 0.0);
  }
  void scale(int64_t c, double factor) {
    total[c] *= factor;
    carry[c] *= factor;
  }
  double value(int64_t c) const { return simd::compensated_value(total[c], carry[c]); }
};

// sums[c] += term(j, c, count)[lane] over tile rows [j0, j1), rows added in pairs and then in
// double (the Note on summation).
template <class T, class F>
void column_sum(const Tile<T>& t, int64_t j0, int64_t j1, F&& term, ColumnSums& sums) {
  int64_t j = j0;
  for (; j + 2 <= j1; j += 2) {
    for_each_vector<T>(t.w, [&](int64_t c, int64_t count) {
      simd::add_wide(sums.total + c, sums.carry + c, term(j, c, count) + term(j + 1, c, count));
    });
  }
  if (j < j1) {
    for_each_vector<T>(t.w, [&](int64_t c, int64_t count) {
      simd::add_wide(sums.total + c, sums.carry + c, term(j, c, count));
    });
  }
}

// The forward ops' first pass (see the header): m, the column maxima; sums, of exp(x - m);
// with `dots`, also of exp(x - m) * g. Returns false if a column's maximum is not finite: the
// caller then walks the tile column by column through the scalar limit path (see the Note on
// rows whose maximum is not finite). A NaN never wins a maximum but makes its column's sum NaN.
template <class T>
bool column_first_pass(const Tile<T>& t, Lanes<T>& m, ColumnSums& sums, ColumnSums* dots) {
  const int64_t lanes = used_lanes<T>(t.w);
  std::fill(m.v, m.v + lanes, -kInf<T>);
  sums.clear(lanes);
  if (dots) dots->clear(lanes);
  const int64_t block = std::max<int64_t>(1, kColumnBlockBytes / (t.w * int64_t(sizeof(T))));
  Lanes<T> block_max;
  // What the exps subtract: m, but 0 while a column has seen only -inf (and NaN), whose exps
  // must sum to 0 (or NaN), not exp(-inf - -inf) = NaN, as rows.hpp skips such blocks.
  Lanes<T> shift;
  std::fill(shift.v, shift.v + lanes, T(0));
  auto e = [&](int64_t j, int64_t c, int64_t count) {
    const Vec<T> x = load_n(t.x + j * t.sx + c, count, -kInf<T>);
    return simd::exp_nonpositive<T>(x - lanes_at(shift, c));
  };
  for (int64_t j0 = 0; j0 < t.n; j0 += block) {
    const int64_t j1 = std::min(t.n, j0 + block);
    std::fill(block_max.v, block_max.v + lanes, -kInf<T>);
    for (int64_t j = j0; j < j1; ++j) {
      for_each_vector<T>(t.w, [&](int64_t c, int64_t count) {
        const Vec<T> x = load_n(t.x + j * t.sx + c, count, -kInf<T>);
        simd::store(block_max.v + c, simd::max<T>(x, lanes_at(block_max, c)));
      });
    }
    for (int64_t c = 0; c < t.w; ++c) {
      if (!(block_max.v[c] > m.v[c])) continue;
      if (m.v[c] > -kInf<T>) {  // sums so far were taken against a smaller maximum
        const double factor = std::exp(double(m.v[c]) - double(block_max.v[c]));
        sums.scale(c, factor);
        if (dots) dots->scale(c, factor);
      }
      m.v[c] = block_max.v[c];
      shift.v[c] = m.v[c];
    }
    // The next block arrives while this one computes (its max pass then finds it in cache).
    column_sum(t, j0, j1, [&](int64_t j, int64_t c, int64_t count) {
      simd::prefetch(t.x + std::min(j + j1 - j0, t.n - 1) * t.sx + c);
      return e(j, c, count);
    }, sums);
    if (dots) {
      column_sum(t, j0, j1, [&](int64_t j, int64_t c, int64_t count) {
        return e(j, c, count) * load_n(t.g + j * t.sg + c, count, T(0));
      }, *dots);
    }
  }
  return std::all_of(m.v, m.v + t.w, [](T v) { return is_finite(v); });
}

// What a tile's first pass leaves its second, per column.
template <class T>
struct ColumnState {
  Lanes<T> m;       // forward ops: the maxima
  ColumnSums sums;  // forward: of exp(x - m); softmax_backward: of y g; log_softmax_backward: of g
  ColumnSums dots;  // softmax_jvp: of exp(x - m) * v
};

// False when the tile must be redone column by column (a maximum not finite).
template <class T>
bool tile_first_pass(Op op, const Tile<T>& t, ColumnState<T>& state) {
  switch (op) {
    case Op::softmax_backward:
      state.sums.clear(used_lanes<T>(t.w));
      column_sum(t, 0, t.n, [&](int64_t j, int64_t c, int64_t count) {
        return load_n(t.x + j * t.sx + c, count, T(0)) * load_n(t.g + j * t.sg + c, count, T(0));
      }, state.sums);
      return true;
    case Op::log_softmax_backward:
      state.sums.clear(used_lanes<T>(t.w));
      column_sum(t, 0, t.n, [&](int64_t j, int64_t c, int64_t count) {
        return load_n(t.g + j * t.sg + c, count, T(0));
      }, state.sums);
      return true;
    default: {
      ColumnSums* dots = op == Op::softmax_jvp ? &state.dots : nullptr;
      return column_first_pass(t, state.m, state.sums, dots);
    }
  }
}

// The states of consecutive row slices of one tile, as if one first pass had seen them all:
// each column's slices combine as a row's do (rows.hpp). Every slice's maxima must be finite.
template <class T>
void combine_columns(Op op, const ColumnState<T>* parts, int count, int64_t w,
                     ColumnState<T>& total) {
  for (int64_t c = 0; c < w; ++c) {
    const Partial p = combine(count, [&](int i) {
      Partial slice;  // the backward ops have no maxima: -inf, no rescaling
      if (is_forward(op)) slice.max = parts[i].m.v[c];
      slice.sum.add(parts[i].sums.value(c));
      if (op == Op::softmax_jvp) slice.dot.add(parts[i].dots.value(c));
      return slice;
    });
    total.m.v[c] = T(p.max);
    total.sums.total[c] = p.sum.value();
    total.sums.carry[c] = 0;
    total.dots.total[c] = p.dot.value();
    total.dots.carry[c] = 0;
  }
}

// The tile's outputs from its (combined) first pass.
template <class T>
void tile_second_pass(Op op, const Tile<T>& t, const ColumnState<T>& state) {
  const Lanes<T>& m = state.m;
  Lanes<T> per_column;
  auto x_at = [&](int64_t j, int64_t c, int64_t count, T fill) {
    return load_n(t.x + j * t.sx + c, count, fill);
  };
  auto g_at = [&](int64_t j, int64_t c, int64_t count) {
    return load_n(t.g + j * t.sg + c, count, T(0));
  };
  // out row j = value(j, c, count) over the tile's columns.
  auto write = [&](T* base, int64_t stride, auto&& value) {
    for (int64_t j = 0; j < t.n; ++j) {
      write_row(base + j * stride, t.w, t.stream,
                [&](int64_t c, int64_t count) { return value(j, c, count); });
    }
  };
  switch (op) {
    case Op::softmax: {
      for (int64_t c = 0; c < t.w; ++c) per_column.v[c] = T(1.0 / state.sums.value(c));
      write(t.out, t.so, [&](int64_t j, int64_t c, int64_t count) {
        const Vec<T> e = simd::exp_nonpositive<T>(x_at(j, c, count, -kInf<T>) - lanes_at(m, c));
        return e * lanes_at(per_column, c);
      });
      return;
    }
    case Op::log_softmax: {
      for (int64_t c = 0; c < t.w; ++c) per_column.v[c] = T(std::log(state.sums.value(c)));
      write(t.out, t.so, [&](int64_t j, int64_t c, int64_t count) {
        return (x_at(j, c, count, T(0)) - lanes_at(m, c)) - lanes_at(per_column, c);
      });
      return;
    }
    case Op::softmax_backward: {
      for (int64_t c = 0; c < t.w; ++c) per_column.v[c] = T(state.sums.value(c));
      write(t.out, t.so, [&](int64_t j, int64_t c, int64_t count) {
        return x_at(j, c, count, T(0)) * (g_at(j, c, count) - lanes_at(per_column, c));
      });
      return;
    }
    case Op::log_softmax_backward: {
      for (int64_t c = 0; c < t.w; ++c) per_column.v[c] = T(state.sums.value(c));
      write(t.out, t.so, [&](int64_t j, int64_t c, int64_t count) {
        const Vec<T> p = simd::exp<T>(x_at(j, c, count, T(0)));
        return g_at(j, c, count) - p * lanes_at(per_column, c);
      });
      return;
    }
    case Op::softmax_jvp: {
      Lanes<T> inv;
      for (int64_t c = 0; c < t.w; ++c) {
        inv.v[c] = T(1.0 / state.sums.value(c));
        per_column.v[c] = T(state.dots.value(c) / state.sums.value(c));
      }
      // exp(x - max) is computed again rather than kept: out may be g itself, and a kept tile
      // would be N x W extra memory per thread.
      auto y = [&](int64_t j, int64_t c, int64_t count) {
        const Vec<T> e = simd::exp_nonpositive<T>(x_at(j, c, count, -kInf<T>) - lanes_at(m, c));
        return e * lanes_at(inv, c);
      };
      if (!t.s) {
        write(t.out, t.so, [&](int64_t j, int64_t c, int64_t count) {
          return y(j, c, count) * (g_at(j, c, count) - lanes_at(per_column, c));
        });
        return;
      }
      // Both outputs from one read of each element: s may be x itself.
      for (int64_t j = 0; j < t.n; ++j) {
        for_each_vector<T>(t.w, [&](int64_t c, int64_t count) {
          const Vec<T> s = y(j, c, count);
          const Vec<T> out = s * (g_at(j, c, count) - lanes_at(per_column, c));
          store_n(t.s + j * t.ss + c, s, count);
          store_n(t.out + j * t.so + c, out, count);
        });
      }
      return;
    }
  }
}

// The tile's operation; false when it must be redone column by column (non-finite maximum).
template <class T>
bool tile_op(Op op, const Tile<T>& t) {
  ColumnState<T> state;
  if (!tile_first_pass(op, t, state)) return false;
  tile_second_pass(op, t, state);
  return true;
}

// Rows [j0, j1) of a tile.
template <class T>
Tile<T> tile_rows(const Tile<T>& t, int64_t j0, int64_t j1) {
  Tile<T> part = t;
  part.x += j0 * t.sx;
  if (part.g) part.g += j0 * t.sg;
  part.out += j0 * t.so;
  if (part.s) part.s += j0 * t.ss;
  part.n = j1 - j0;
  return part;
}

}  // namespace
}  // namespace fastsoftmax::FASTSOFTMAX_LEVEL
