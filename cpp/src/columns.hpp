// The columns walk, for any operation (operations.hpp): the axis is not the contiguous
// dimension (axis != -1 on a C-contiguous array), so a tile of N rows by W (<= kMaxTileWidth)
// contiguous columns is processed with the vectors running across the columns, never
// transposed. Each column is a softmax row; the
// per-column state (max, sums) lives in arrays of W lanes. The passes are those of a long row
// (rows.hpp's Note on passes), per column: blocks of tile rows small enough to stay in L1/L2
// get their column maxima, then their exps summed against the running maxima (the sums
// rescaled where a maximum grew), so the input is read from memory once for both; a second
// pass recomputes exp for the output, streamed past the cache when the arrays are larger than
// it. Measured on (4096, 1024) along axis 0, 1 thread: 4.35 ms with separate max,
// exp-and-store and rescale passes over the whole tile, 2.7-3.2 ms this way. The first pass
// over consecutive slices of a tile's rows combines exactly (combine_columns, with the
// reduction's own rule), which is how threads share a tile (kernels.cpp, split_tiles).
//
// [Note: tile width]
// Tiles are as wide as K allows, up to kMaxTileWidth: each tile row is then a contiguous run
// the hardware prefetcher streams, and the first pass's blocks of rows keep it in cache. Tiles
// narrow enough for L2 (16 columns when N = 4096) make every tile row a separate 64-byte line
// a page apart, and measured 5x slower on (4096, 1024) along axis 0. Threads therefore share
// a tile's rows rather than narrower tiles.
#pragma once

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <iterator>
#include <utility>

#include "fastsoftmax/fastsoftmax.hpp"
#include "operands.hpp"
#include "operations.hpp"
#include "reductions.hpp"
#include "rows.hpp"
#include "vec_exp.hpp"
#include "vector_loops.hpp"

namespace fastsoftmax::FASTSOFTMAX_LEVEL {
namespace {

constexpr int64_t kMaxTileWidth = 1024;  // elements; bounds the per-lane state arrays

constexpr int64_t kColumnBlockBytes = 64 * 1024;  // a block of tile rows: stays in L1/L2

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

// What a tile's first pass leaves its second, per column.
template <class Operation, class T>
struct ColumnState {
  Lanes<T> m;  // shifted reductions: the maxima
  ColumnSums sums[Operation::Reduction::kSums];
};

// The tile's first pass (see the header): the column maxima, where the reduction has them, and
// the sums. A shifted reduction returns false if a column's maximum is not finite: the caller
// then walks the tile column by column through the limit rule. A NaN never wins a maximum but
// makes its column's sums NaN.
template <class Operation, class T>
bool tile_first_pass(const Tile<T>& tile, ColumnState<Operation, T>& state) {
  const Tile<T> t = tile;  // as in rows.hpp's second_pass
  using Red = typename Operation::Reduction;
  constexpr int K = Red::kSums;
  const int64_t lanes = used_lanes<T>(t.w);
  for (int k = 0; k < K; ++k) state.sums[k].clear(lanes);
  if constexpr (Red::kGiven) {
    std::fill(state.m.v, state.m.v + lanes, T(0));
    for (int64_t c = 0; c < t.w; ++c) {
      const typename Red::Partial p = Red::read(t.at, c);
      state.m.v[c] = T(p.max);
      state.sums[0].total[c] = p.sum[0].value();
    }
    return std::all_of(state.m.v, state.m.v + t.w, [](T v) { return is_finite(v); });
  } else if constexpr (!Red::kHasMax) {
    for_each_sum<K>([&](auto k) {
      column_sum(t, 0, t.n, [&](int64_t j, int64_t c, int64_t count) {
        return Operation::terms(TileView<T, Operation>{t, j, c, count, Vec<T>{}})[k];
      }, state.sums[k]);
    });
    return true;
  } else {
    Lanes<T>& m = state.m;
    std::fill(m.v, m.v + lanes, -kInf<T>);
    const int64_t block = std::max<int64_t>(1, kColumnBlockBytes / (t.w * int64_t(sizeof(T))));
    const T* const x = t.at[Role::x];
    const int64_t sx = t.stride[Role::x];
    Lanes<T> block_max;
    // What the exps subtract: m, but 0 while a column has seen only -inf (and NaN), whose exps
    // must sum to 0 (or NaN), not exp(-inf - -inf) = NaN, as rows.hpp skips such blocks.
    Lanes<T> shift;
    std::fill(shift.v, shift.v + lanes, T(0));
    for (int64_t j0 = 0; j0 < t.n; j0 += block) {
      const int64_t j1 = std::min(t.n, j0 + block);
      std::fill(block_max.v, block_max.v + lanes, -kInf<T>);
      for (int64_t j = j0; j < j1; ++j) {
        for_each_vector<T>(t.w, [&](int64_t c, int64_t count) {
          const Vec<T> v = TileView<T, Operation>{t, j, c, count, Vec<T>{}}.x();
          simd::store(block_max.v + c, simd::max<T>(v, lanes_at(block_max, c)));
        });
      }
      for (int64_t c = 0; c < t.w; ++c) {
        if (!(block_max.v[c] > m.v[c])) continue;
        if (m.v[c] > -kInf<T>) {  // sums so far were taken against a smaller maximum
          const double factor = std::exp(double(m.v[c]) - double(block_max.v[c]));
          for (int k = 0; k < K; ++k) state.sums[k].scale(c, factor);
        }
        m.v[c] = block_max.v[c];
        shift.v[c] = m.v[c];
      }
      for_each_sum<K>([&](auto k) {
        column_sum(t, j0, j1, [&](int64_t j, int64_t c, int64_t count) {
          // The next block arrives while this one computes (its max pass then finds it in
          // cache); the first sum's pass fetches it.
          if constexpr (decltype(k)::value == 0) {
            simd::prefetch(x + std::min(j + j1 - j0, t.n - 1) * sx + c);
          }
          return Operation::terms(TileView<T, Operation>{t, j, c, count, lanes_at(shift, c)})[k];
        }, state.sums[k]);
      });
    }
    return std::all_of(m.v, m.v + t.w, [](T v) { return is_finite(v); });
  }
}

// The states of consecutive row slices of one tile, as if one first pass had seen them all:
// each column's slices combine as a row's do (reductions.hpp). Every slice's maxima must be
// finite.
template <class Operation, class T>
void combine_columns(const ColumnState<Operation, T>* parts, int count, int64_t w,
                     ColumnState<Operation, T>& total) {
  using Red = typename Operation::Reduction;
  constexpr int K = Red::kSums;
  for (int64_t c = 0; c < w; ++c) {
    const typename Red::Partial p = Red::combine(count, [&](int i) {
      typename Red::Partial slice;
      if constexpr (Red::kHasMax) slice.max = parts[i].m.v[c];
      for (int k = 0; k < K; ++k) slice.sum[k].add(parts[i].sums[k].value(c));
      return slice;
    });
    if constexpr (Red::kHasMax) total.m.v[c] = T(p.max);
    for (int k = 0; k < K; ++k) {
      total.sums[k].total[c] = p.sum[k].value();
      total.sums[k].carry[c] = 0;
    }
  }
}

// Every output of tile row j at columns [c, c + count), all computed before any is stored:
// an output may be an input.
template <class Operation, class T, class C, class View, std::size_t... I>
void store_outputs(const Tile<T>& t, int64_t j, int64_t c, int64_t count, const C& constants,
                   const View& view, std::index_sequence<I...>) {
  constexpr Role roles[] = {Operation::kOutputs[I]...};
  const Vec<T> values[] = {output_at<Operation, Operation::kOutputs[I]>(constants, view)...};
  for (std::size_t o = 0; o < sizeof...(I); ++o) {
    store_n(t.at[roles[o]] + j * t.stride[roles[o]] + c, values[o], count);
  }
}

// The tile's outputs from its (combined) first pass. exp(x - max) is computed again rather
// than kept: out may be g itself, and a kept tile would be N x W extra memory per thread.
template <class Operation, class T>
void tile_second_pass(const Tile<T>& tile, const ColumnState<Operation, T>& state) {
  const Tile<T> t = tile;  // a streamed store may alias anything, a local no pointer
  using Red = typename Operation::Reduction;
  constexpr int K = Red::kSums;
  constexpr int kC = Operation::kConstants;
  std::array<Lanes<T>, kC> constants;
  for (int64_t c = 0; c < t.w; ++c) {
    typename Red::Partial p;
    if constexpr (Red::kHasMax) p.max = state.m.v[c];
    for (int k = 0; k < K; ++k) p.sum[k].add(state.sums[k].value(c));
    const std::array<T, kC> d = Operation::template derive<T>(p.values());
    for (int k = 0; k < kC; ++k) constants[k].v[c] = d[k];
    // Column c's per-row outputs: the tile's K stride is 1 in every operand.
    Row<T> at = t.at;
    for (int i = 0; i < kRoleCount; ++i) {
      if (at.item[i] && is_per_row(static_cast<Role>(i))) at.item[i] += c;
    }
    store_row_outputs<Operation>(at, p);
  }
  constexpr std::size_t outputs = std::size(Operation::kOutputs);
  if constexpr (outputs > 0) {  // the elementwise outputs
    const auto view = [&](int64_t j, int64_t c, int64_t count) {
      if constexpr (Red::kHasMax) {
        return TileView<T, Unmasked<Operation>>{t, j, c, count, lanes_at(state.m, c)};
      } else {
        return TileView<T, Unmasked<Operation>>{t, j, c, count, Vec<T>{}};
      }
    };
    const auto constants_at = [&](int64_t c) {
      std::array<Vec<T>, kC> v;
      for (int k = 0; k < kC; ++k) v[k] = lanes_at(constants[k], c);
      return v;
    };
    if constexpr (outputs > 1) {
      // All outputs wanted: from one read of each element.
      if (std::all_of(std::begin(Operation::kOutputs), std::end(Operation::kOutputs),
                      [&](Role role) { return t.at[role] != nullptr; })) {
        for (int64_t j = 0; j < t.n; ++j) {
          for_each_vector<T>(t.w, [&](int64_t c, int64_t count) {
            store_outputs<Operation>(t, j, c, count, constants_at(c), view(j, c, count),
                                     std::make_index_sequence<outputs>{});
          });
        }
        return;
      }
    }
    for_each_output<Operation>(t.at, [&](auto role) {
      constexpr Role r = decltype(role)::value;
      for (int64_t j = 0; j < t.n; ++j) {
        write_row(t.at[r] + j * t.stride[r], t.w, t.stream, [&](int64_t c, int64_t count) {
          return output_at<Operation, r>(constants_at(c), view(j, c, count));
        });
      }
    });
  }
}

// The tile's operation; false when it must be redone column by column (non-finite maximum).
template <class Operation, class T>
bool tile_op(const Tile<T>& t) {
  ColumnState<Operation, T> state;
  if (!tile_first_pass<Operation>(t, state)) return false;
  tile_second_pass<Operation>(t, state);
  return true;
}

// Rows [j0, j1) of a tile. The per-row outputs are written by the slice that starts the tile
// (of the slices sharing it, only that one holds them); per-row inputs are read by every one.
template <class Operation, class T>
Tile<T> tile_rows(const Tile<T>& t, int64_t j0, int64_t j1) {
  Tile<T> part = t;
  for (int i = 0; i < kRoleCount; ++i) {
    if (part.at.item[i]) part.at.item[i] += j0 * t.stride.item[i];
    if (j0 > 0 && writes_per_row<Operation>(static_cast<Role>(i))) part.at.item[i] = nullptr;
  }
  if (part.at.where) part.at.where += j0 * t.stride[Role::where];
  part.n = j1 - j0;
  return part;
}

}  // namespace
}  // namespace fastsoftmax::FASTSOFTMAX_LEVEL
