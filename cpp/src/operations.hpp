// The operations, each defined once, in one struct; the walks (rows.hpp, columns.hpp,
// kernels.cpp) are templates on it and never test which operation runs.
//
// [Note: what an operation holds]
// - kInputs, kOutputs: the roles it reads and writes (fastsoftmax.hpp's Role). An optional
//   output (softmax_jvp's s) is written where the call gives it. Outputs are written in this
//   order, except that one which is x itself is written last (operands.hpp).
// - Reduction: Shifted<K> or Plain<K> (reductions.hpp); terms(view) gives the K terms a vector
//   of the row adds to the sums (view: operands.hpp).
// - derive(sums): the per-row constants (kConstants of them) the output step uses.
// - output<role>(constants, view): the elementwise step, one vector of that output.
// - limit(at, stride, n): a shifted reduction's rule for rows whose maximum is not finite.
// - kMaskedOutput: the value of its elementwise outputs where a mask leaves an entry out.
// - kKeepsE: a row short enough for the cache keeps e in a scratch row between its sums and its
//   output step (rows.hpp's Note on passes), so e is computed once per element.
// - kRowOutputs, row_outputs(at, partial): an operation with per-row outputs (fastsoftmax.hpp's
//   lse and sign) writes them from the row's combined partial, at[role][0] for each, once per
//   row, after the combine; the walks call it through store_row_outputs. Its kOutputs (the
//   elementwise ones) may then be empty.
// Adding an operation: one struct here, one Op and one case in kernels.cpp's run_block.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "fastsoftmax/fastsoftmax.hpp"
#include "operands.hpp"
#include "reductions.hpp"
#include "vec_exp.hpp"
#include "vector_loops.hpp"

namespace fastsoftmax::FASTSOFTMAX_LEVEL {
namespace {

template <class View>
using TypeOf = typename View::Type;
template <class View, int N>
using Vectors = std::array<Vec<TypeOf<View>>, N>;

// [Note: rows whose maximum is not finite]
// Subtracting the maximum fails only when it is +inf (inf - inf) or -inf (the row is all -inf,
// or -inf and NaN). Both are rare, so the fast path only tests the maximum and this scalar
// path does the rest: a NaN anywhere, or no +inf, makes the row NaN; otherwise the k entries at
// +inf share probability 1 (log-probability -log k) and the rest get 0 (-inf). Under a mask
// the rule looks at the kept entries only, the others get the masked value, and a row with no
// kept entry is the masked value throughout (the Note on masks).
// Returns false when the row came out NaN.
template <class T>
bool saturated_softmax(const Row<T>& at, const ByRole<int64_t>& stride, Role y, int64_t n,
                       bool log) {
  const T* x = at[Role::x];
  const int64_t sx = stride[Role::x], sy = stride[y];
  const T miss = log ? -kInf<T> : T(0);  // also the masked value
  int64_t infinite = 0, counted = 0;
  bool nan = false;
  for (int64_t i = 0; i < n; ++i) {
    if (!kept(at, stride, i)) continue;
    ++counted;
    infinite += x[i * sx] == kInf<T>;
    nan |= x[i * sx] != x[i * sx];
  }
  if (counted == 0) {
    for (int64_t i = 0; i < n; ++i) at[y][i * sy] = miss;
    return true;
  }
  if (nan || infinite == 0) {
    for (int64_t i = 0; i < n; ++i) {
      at[y][i * sy] = kept(at, stride, i) ? std::numeric_limits<T>::quiet_NaN() : miss;
    }
    return false;
  }
  // 0 - log k, not -log k: a lone +inf gets +0, as x - max gives where max is finite.
  const T hit = log ? T(0) - std::log(T(infinite)) : T(1) / T(infinite);
  for (int64_t i = 0; i < n; ++i) {
    at[y][i * sy] = kept(at, stride, i) && x[i * sx] == kInf<T> ? hit : miss;
  }
  return true;
}

// [Note: masks]
// An operation runs masked as Masked<Operation> (operands.hpp): the views load an entry the
// mask leaves out as the reduction's fill (x) or 0 (g), so it adds nothing to any sum or
// maximum, whatever it holds (a NaN or inf there does not leak), and output_at stores the
// operation's kMaskedOutput there: what its masked forward gives (probability 0, log-probability
// -inf, gradient 0). A row with no kept entry has no mass: a shifted reduction's maximum is
// then -inf and its limit rule writes the masked value; a plain one's sums are 0.

// out = exp(x - max) / sum(exp(x - max))
struct Softmax {
  static constexpr Role kInputs[] = {Role::x};
  static constexpr Role kOutputs[] = {Role::out};
  using Reduction = Shifted<1>;  // sum of e
  static constexpr bool kKeepsE = true;
  static constexpr int kConstants = 1;  // 1 / sum
  static constexpr double kMaskedOutput = 0;
  static constexpr bool kOutputVanishesWithE = true;  // e * (1 / sum): OutputVanishesWithE

  template <class V>
  [[gnu::always_inline]] static Vectors<V, 1> terms(const V& v) {
    return {v.e()};
  }
  template <class T>
  static std::array<T, kConstants> derive(const std::array<double, 1>& sum) {
    return {T(1.0 / sum[0])};
  }
  template <Role R, class V>
  [[gnu::always_inline]] static Vec<TypeOf<V>> output(const Vectors<V, kConstants>& c,
                                                      const V& v) {
    return v.e() * c[0];
  }
  template <class T>
  static void limit(const Row<T>& at, const ByRole<int64_t>& stride, int64_t n) {
    saturated_softmax(at, stride, Role::out, n, false);
  }
};

// out = x - max - log(sum(exp(x - max)))
struct LogSoftmax {
  static constexpr Role kInputs[] = {Role::x};
  static constexpr Role kOutputs[] = {Role::out};
  using Reduction = Shifted<1>;  // sum of e
  static constexpr bool kKeepsE = false;  // the output step needs x - max, not e
  static constexpr int kConstants = 1;    // log(sum)
  static constexpr double kMaskedOutput = -std::numeric_limits<double>::infinity();

  template <class V>
  [[gnu::always_inline]] static Vectors<V, 1> terms(const V& v) {
    return {v.e()};
  }
  template <class T>
  static std::array<T, kConstants> derive(const std::array<double, 1>& sum) {
    return {T(std::log(sum[0]))};
  }
  // [Note: order of subtraction] (x - max) is exact for nearby values and is formed first;
  // folding max + log(sum) into one constant would round it and lose small log-probabilities.
  template <Role R, class V>
  [[gnu::always_inline]] static Vec<TypeOf<V>> output(const Vectors<V, kConstants>& c,
                                                      const V& v) {
    return v.shifted() - c[0];
  }
  template <class T>
  static void limit(const Row<T>& at, const ByRole<int64_t>& stride, int64_t n) {
    saturated_softmax(at, stride, Role::out, n, true);
  }
};

// out = x * (g - sum(x * g)), x being the saved softmax
struct SoftmaxBackward {
  static constexpr Role kInputs[] = {Role::x, Role::g};
  static constexpr Role kOutputs[] = {Role::out};
  using Reduction = Plain<1>;  // sum of x g
  static constexpr bool kKeepsE = false;
  static constexpr int kConstants = 1;  // that sum
  static constexpr double kMaskedOutput = 0;

  template <class V>
  [[gnu::always_inline]] static Vectors<V, 1> terms(const V& v) {
    return {v.x() * v.g()};
  }
  template <class T>
  static std::array<T, kConstants> derive(const std::array<double, 1>& sum) {
    return {T(sum[0])};
  }
  template <Role R, class V>
  [[gnu::always_inline]] static Vec<TypeOf<V>> output(const Vectors<V, kConstants>& c,
                                                      const V& v) {
    return v.x() * (v.g() - c[0]);
  }
};

// out = g - exp(x) * sum(g), x being the saved log-softmax
struct LogSoftmaxBackward {
  static constexpr Role kInputs[] = {Role::x, Role::g};
  static constexpr Role kOutputs[] = {Role::out};
  using Reduction = Plain<1>;  // sum of g
  static constexpr bool kKeepsE = false;
  static constexpr int kConstants = 1;  // that sum
  static constexpr double kMaskedOutput = 0;

  template <class V>
  [[gnu::always_inline]] static Vectors<V, 1> terms(const V& v) {
    return {v.g()};
  }
  template <class T>
  static std::array<T, kConstants> derive(const std::array<double, 1>& sum) {
    return {T(sum[0])};
  }
  template <Role R, class V>
  [[gnu::always_inline]] static Vec<TypeOf<V>> output(const Vectors<V, kConstants>& c,
                                                      const V& v) {
    using T = TypeOf<V>;
    return v.g() - simd::exp<T>(v.x()) * c[0];
  }
};

// s = softmax(x) (where the call gives s); out = s * (g - sum(s * g))
struct SoftmaxJvp {
  static constexpr Role kInputs[] = {Role::x, Role::g};
  // s first, as out may be x; where s is x (out then is not), it goes last (operands.hpp).
  static constexpr Role kOutputs[] = {Role::s, Role::out};
  using Reduction = Shifted<2>;  // sums of e and of e g
  static constexpr bool kKeepsE = true;
  static constexpr int kConstants = 2;  // 1 / sum, and the dot: sum(e g) / sum
  static constexpr double kMaskedOutput = 0;  // of s and of the product

  template <class V>
  [[gnu::always_inline]] static Vectors<V, 2> terms(const V& v) {
    const auto e = v.e();
    return {e, e * v.g()};
  }
  template <class T>
  static std::array<T, kConstants> derive(const std::array<double, 2>& sum) {
    const double inv = 1.0 / sum[0];
    return {T(inv), T(sum[1] * inv)};
  }
  template <Role R, class V>
  [[gnu::always_inline]] static Vec<TypeOf<V>> output(const Vectors<V, kConstants>& c,
                                                      const V& v) {
    const auto y = v.e() * c[0];
    if constexpr (R == Role::s) {
      return y;
    } else {
      return y * (v.g() - c[1]);
    }
  }
  // s (if wanted) is the limit, the product NaN or 0 (the Jacobian of a saturated softmax is
  // zero).
  template <class T>
  static void limit(const Row<T>& at, const ByRole<int64_t>& stride, int64_t n) {
    const Role y = at[Role::s] ? Role::s : Role::out;
    const bool finite = saturated_softmax(at, stride, y, n, false);
    const T value = finite ? T(0) : std::numeric_limits<T>::quiet_NaN();
    for (int64_t i = 0; i < n; ++i) {
      at[Role::out][i * stride[Role::out]] = kept(at, stride, i) ? value : T(0);
    }
  }
};

// Stores a row's logsumexp and its sign from the shift and the sum of b exp(x - shift): the
// sign is +1, -1, 0 (sum 0: lse -inf) or NaN; without a sign output a negative sum gives NaN,
// the log of a negative number, as scipy.special.logsumexp does.
template <class T>
void store_logsumexp(const ByRole<T*>& at, double shift, double sum) {
  const double sign = sum > 0 ? 1.0 : sum < 0 ? -1.0 : sum == 0 ? 0.0 : sum;
  const double lse = shift + std::log(std::abs(sum));
  if (at[Role::sign]) at[Role::sign][0] = T(sign);
  at[Role::lse][0] = sign < 0 && !at[Role::sign] ? std::numeric_limits<T>::quiet_NaN() : T(lse);
}

// lse = max + log|sum(b exp(x - max))| per row, with its sign; b is the g role where kWeighted,
// else 1. No elementwise output: the per-row ones are written after the combine.
// [Note: b as the g role] b is a second input of x's shape read through its own strides (a
// broadcast b has zero strides): exactly what g is, so it needs no load of its own. Entries the
// caller excludes (b == 0, where=False) arrive as x = -inf (python/fastsoftmax/_logsumexp.py),
// so the maximum is over the entries that count.
template <bool kWeighted>
struct LogSumExp {
  static constexpr Role kInputs[] = {Role::x, Role::g};  // g only where kWeighted
  static constexpr std::array<Role, 0> kOutputs{};
  static constexpr Role kRowOutputs[] = {Role::lse, Role::sign};  // sign where the call gives it
  using Reduction = Shifted<1>;  // sum of e b
  static constexpr bool kKeepsE = false;
  static constexpr int kConstants = 0;

  template <class V>
  [[gnu::always_inline]] static Vectors<V, 1> terms(const V& v) {
    if constexpr (kWeighted) {
      return {v.e() * v.g()};
    } else {
      return {v.e()};
    }
  }
  template <class T>
  static std::array<T, kConstants> derive(const std::array<double, 1>&) {
    return {};
  }
  template <class T>
  static void row_outputs(const ByRole<T*>& at, const typename Reduction::Partial& p) {
    store_logsumexp(at, p.max, p.sum[0].value());
  }
  // The maximum is +-inf: sum(b exp(x)) unshifted, in double, as SciPy computes it then (+inf
  // entries give +-inf by the sign of their b, opposite signs NaN; a row all -inf gives -inf,
  // sign 0; a NaN, NaN).
  template <class T>
  static void limit(const Row<T>& at, const ByRole<int64_t>& stride, int64_t n) {
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) {
      if (!kept(at, stride, i)) continue;
      const double e = std::exp(double(at[Role::x][i * stride[Role::x]]));
      sum += kWeighted ? e * double(at[Role::g][i * stride[Role::g]]) : e;
    }
    store_logsumexp(at, 0.0, sum);
  }
};

// Output R of the operation at one vector: its output step, and under a mask its kMaskedOutput
// where the mask leaves an entry out (the Note on masks). The walks store only this.
template <class Operation, Role R, class C, class V>
[[gnu::always_inline]] inline Vec<TypeOf<V>> output_at(const C& constants, const V& v) {
  using T = TypeOf<V>;
  const auto value = Operation::template output<R>(constants, v);
  if constexpr (IsMasked<Operation>::value) {
    return simd::select<T>(v.kept(), value, simd::splat(T(Operation::kMaskedOutput)));
  } else {
    return value;
  }
}

// Whether every output of the operation is its kMaskedOutput, 0, wherever e is 0 and its sums
// are finite (softmax's e / sum): where e is read back from a scratch row, 0 at every excluded
// entry, its output pass then needs no mask (a causal (8, 12, 512, 512) float32 softmax: 1.22x the unmasked time with the
// mask read there, 1.17x without; Xeon, one thread).
template <class Operation, class = void>
struct OutputVanishesWithE : std::false_type {};
template <class Operation>
struct OutputVanishesWithE<Operation, std::enable_if_t<Operation::kOutputVanishesWithE>>
    : std::true_type {};

// [Note: row partials]
// A softmax whose rows are split into chunks (a Dask array's) is computed from two operations.
// row_partials reduces each chunk's rows to the pair a shifted reduction holds (reductions.hpp):
// the maximum over the kept entries and sum(exp(x - max)); pairs combine across chunks as
// Shifted::combine does. softmax_given then writes each chunk's softmax (log-softmax) from the
// combined pair, with the arithmetic of the whole-row operation, so a row split into chunks
// gives what the whole row gives, to the rounding of the combine. A row whose maximum is +inf
// counts its +inf entries as its sum (exp(inf - inf) taken as 1, the limit), so that combined
// pairs give the limit rule's 1/k; one whose maximum is -inf (all -inf, or nothing kept) has
// sum 0 (NaN if it holds a NaN), and its softmax given such a pair is NaN, as for an all -inf
// row (an entry the mask leaves out still gets the masked value).

// row_max, row_sum per row: the partial of the whole row (a chunk of one, to the caller).
struct RowPartials {
  static constexpr Role kInputs[] = {Role::x};
  static constexpr std::array<Role, 0> kOutputs{};
  static constexpr Role kRowOutputs[] = {Role::row_max, Role::row_sum};
  using Reduction = Shifted<1>;  // sum of e
  static constexpr bool kKeepsE = false;
  static constexpr int kConstants = 0;

  template <class V>
  [[gnu::always_inline]] static Vectors<V, 1> terms(const V& v) {
    return {v.e()};
  }
  template <class T>
  static std::array<T, kConstants> derive(const std::array<double, 1>&) {
    return {};
  }
  template <class T>
  static void row_outputs(const ByRole<T*>& at, const typename Reduction::Partial& p) {
    at[Role::row_max][0] = T(p.max);
    at[Role::row_sum][0] = T(p.sum[0].value());
  }
  // The maximum is +-inf: the count of +inf entries, or 0 (NaN where a NaN is kept).
  template <class T>
  static void limit(const Row<T>& at, const ByRole<int64_t>& stride, int64_t n) {
    T max = -kInf<T>;
    double infinite = 0;
    bool nan = false;
    for (int64_t i = 0; i < n; ++i) {
      if (!kept(at, stride, i)) continue;
      const T v = at[Role::x][i * stride[Role::x]];
      max = v > max ? v : max;
      infinite += v == kInf<T>;
      nan |= v != v;
    }
    at[Role::row_max][0] = max;
    at[Role::row_sum][0] = nan ? std::numeric_limits<T>::quiet_NaN() : T(infinite);
  }
};

// The softmax (Forward = Softmax) or log-softmax (LogSoftmax) of a chunk given the pair of its
// whole row (row_max and row_sum, per-row inputs): Forward's constants and output step, at that
// pair.
template <class Forward>
struct FromPartials : Forward {
  using Reduction = Given;
  static constexpr bool kKeepsE = false;
  // The given maximum is not finite: +inf gives the limit (the +inf entries share 1/row_sum,
  // the rest 0: log-probabilities -log(row_sum) and -inf), -inf or NaN gives NaN.
  template <class T>
  static void limit(const Row<T>& at, const ByRole<int64_t>& stride, int64_t n) {
    constexpr bool log = std::is_same_v<Forward, LogSoftmax>;
    const double sum = at[Role::row_sum][0];
    const T hit = log ? T(0 - std::log(sum)) : T(1 / sum);
    const T miss = T(Forward::kMaskedOutput);
    const bool saturated = at[Role::row_max][0] == kInf<T>;
    for (int64_t i = 0; i < n; ++i) {
      const T v = at[Role::x][i * stride[Role::x]];
      const T value = saturated ? (v == kInf<T> ? hit : miss) : std::numeric_limits<T>::quiet_NaN();
      at[Role::out][i * stride[Role::out]] = kept(at, stride, i) ? value : miss;
    }
  }
};

// The per-row outputs of a row (at[role][0]) from its combined partial, for an operation that
// has them; none where the first is null (a slice of a tile's rows that does not start it).
template <class Operation, class = void>
struct HasRowOutputs : std::false_type {};
template <class Operation>
struct HasRowOutputs<Operation, std::void_t<decltype(Operation::kRowOutputs)>> : std::true_type {};

// Whether the operation writes `role` once per row (a per-row output, not a per-row input).
template <class Operation>
constexpr bool writes_per_row(Role role) {
  if constexpr (HasRowOutputs<Operation>::value) {
    for (Role r : Operation::kRowOutputs) {
      if (r == role) return true;
    }
  }
  return false;
}

template <class Operation, class T>
void store_row_outputs(const ByRole<T*>& at, const typename Operation::Reduction::Partial& p) {
  if constexpr (HasRowOutputs<Operation>::value) {
    if (at[Operation::kRowOutputs[0]]) Operation::row_outputs(at, p);
  }
}

// The operation's limit rule where its reduction has a maximum (plain ones have none).
template <class Operation, class T>
void limit_rows(const Row<T>& at, const ByRole<int64_t>& stride, int64_t n) {
  if constexpr (Operation::Reduction::kHasMax) Operation::limit(at, stride, n);
}

// Whether the combined partial leaves the row to the limit rule (a maximum that is not finite).
template <class Operation, class T>
bool needs_limit(const typename Operation::Reduction::Partial& p) {
  if constexpr (Operation::Reduction::kHasMax) {
    return !is_finite(T(p.max));
  } else {
    return false;
  }
}

}  // namespace
}  // namespace fastsoftmax::FASTSOFTMAX_LEVEL
