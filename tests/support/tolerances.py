"""Tolerance rules: how far from the reference each operation's result may be.

A rule takes the reference value (float64, from ``support.reference``), the inputs, the axis
and the compute dtype, and returns an ``Expected``: the value together with an elementwise
absolute tolerance derived from the rounding analysis of the formula (``u`` is the unit
roundoff of the compute dtype):

- softmax: ``(C + |x_i - max|) * u * s_i`` plus 4 subnormal quanta, with ``C = 8`` for float32
  (the spec's bound) and ``C = 16`` for float64 (the C++ kernel's own exp is "a few ulp").
- log_softmax: ``(8 + 2 |x_i - max| + 2 |log sum|) * u`` absolute: the two subtractions and
  the log of a sum that is itself off by a few ``u``.
- gradients: ``8 u`` of the result plus ``32 u`` of ``sum |terms|`` for the row reduction
  (pairwise or blocked sums meet this at N = 10**6; one long float32 running sum does not).

The ``underflow_*`` functions add what those rules leave out for inputs from the whole float
range (test_fuzz): the error of intermediates that underflow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .reference import logsumexp_terms, narrow, ref_logsumexp_shift, ref_softmax

# Constants of the tolerances described in the module docstring.
SOFTMAX_C = {np.dtype(np.float32): 8.0, np.dtype(np.float64): 16.0}
LOG_C = 8.0
GRAD_C = 8.0
REDUCTION_C = 32.0
# The vectorised exp of both compiled backends (cpp/src/vec_exp.hpp), over its whole range, with
# the worst errors measured at every level: float32 2.03 ulp (2.26 at the C++ baseline level,
# which has no FMA), float64 0.87 (baseline 1.15); results below the normal range within 1.32
# smallest subnormals.
EXP_MAX_ULP = {np.dtype(np.float32): 2.5, np.dtype(np.float64): 1.5}
EXP_SUBNORMAL_QUANTA = 1.5


def unit_roundoff(dtype: np.dtype) -> float:
    return float(np.finfo(dtype).eps) / 2


@dataclass
class Expected:
    """A float64 expected value and the elementwise absolute tolerance around it."""

    value: np.ndarray
    tol: np.ndarray

    def widened(self, factor: float) -> Expected:
        return Expected(self.value, self.tol * factor)


def assert_matches(actual: object, expected: Expected, what: str = "") -> None:
    """Every element within its tolerance; NaN and ±inf exactly where expected."""
    actual = np.asarray(actual)
    assert actual.shape == expected.value.shape, (what, actual.shape, expected.value.shape)
    a = actual.astype(np.float64)
    e = expected.value
    special = ~np.isfinite(e)
    with np.errstate(all="ignore"):
        err = np.abs(a - e)
    bad = np.where(special, ~((np.isnan(e) & np.isnan(a)) | (a == e)), ~(err <= expected.tol))
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        with np.errstate(all="ignore"):
            ratio = np.where(special, 0.0, err / expected.tol)
        worst = np.max(np.where(np.isnan(ratio), np.inf, ratio))  # NaN where a number was due
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {bad.size} elements off; first at {where}: "
            f"got {a[where]!r}, expected {e[where]!r} ± {expected.tol[where]!r}; "
            f"worst error/tolerance {worst:.3g}"
        )


# --------------------------------------------------------------------------------------------
# The rules, one per operation: (value, inputs, axis, dtype) -> Expected


def _distance_to_max(x: np.ndarray, axis: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(all="ignore"):
        d = x.max(axis=axis, keepdims=True) - x
    return np.where(np.isfinite(d), d, 0.0)


def _floor(dtype: np.dtype) -> float:
    """Absolute slack for results in the subnormal range: 4 quanta."""
    return 4 * float(np.finfo(dtype).smallest_subnormal)


def _finite(a: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(a), a, 0.0)


def _row_sum(a: np.ndarray, axis: int) -> np.ndarray:
    return _finite(a).sum(axis=axis, keepdims=True)


def softmax_rule(value: np.ndarray, inputs: tuple, axis: int, dtype: np.dtype) -> Expected:
    (x,) = inputs
    dtype = np.dtype(dtype)
    dist = _distance_to_max(x, axis)
    tol = (SOFTMAX_C[dtype] + dist) * unit_roundoff(dtype) * _finite(value) + _floor(dtype)
    return Expected(value, tol)


def log_softmax_rule(value: np.ndarray, inputs: tuple, axis: int, dtype: np.dtype) -> Expected:
    (x,) = inputs
    dtype = np.dtype(dtype)
    with np.errstate(over="ignore"):  # max - (-max) overflows the dtype: -inf is then right
        value = np.where(np.isinf(value.astype(dtype)), value.astype(dtype), value)
    lse = narrow(ref_logsumexp_shift(x, axis)[1])
    dist = _distance_to_max(x, axis)
    u = unit_roundoff(dtype)
    tol = LOG_C * u + 2 * u * dist + 2 * u * np.abs(_finite(lse))  # no overflow at float max
    return Expected(value, np.broadcast_to(tol, value.shape))


def softmax_backward_rule(value: np.ndarray, inputs: tuple, axis: int, dtype: np.dtype) -> Expected:
    y, g = inputs
    y64, g64 = _finite(np.asarray(y, np.float64)), _finite(np.asarray(g, np.float64))
    u = unit_roundoff(dtype)
    tol = GRAD_C * u * np.abs(_finite(value)) + REDUCTION_C * u * np.abs(y64) * _row_sum(
        np.abs(y64 * g64), axis
    )
    return Expected(value, tol + _floor(dtype))


def log_softmax_backward_rule(
    value: np.ndarray, inputs: tuple, axis: int, dtype: np.dtype
) -> Expected:
    y, g = inputs
    g64 = _finite(np.asarray(g, np.float64))
    with np.errstate(all="ignore"):
        p = _finite(np.exp(np.asarray(y, np.float64)))
    u = unit_roundoff(dtype)
    tol = GRAD_C * u * np.abs(_finite(value)) + (GRAD_C + REDUCTION_C) * u * p * _row_sum(
        np.abs(g64), axis
    )
    return Expected(value, tol + _floor(dtype))


def softmax_jvp_rule(value: np.ndarray, inputs: tuple, axis: int, dtype: np.dtype) -> Expected:
    """The product's tolerance carries the softmax's own error (``eps``) through the dot."""
    x, v = inputs
    dtype = np.dtype(dtype)
    s = _finite(ref_softmax(x, axis))
    v64 = _finite(np.asarray(v, np.float64))
    u = unit_roundoff(dtype)
    eps = (SOFTMAX_C[dtype] + _distance_to_max(x, axis)) * u
    dot = _row_sum(s * v64, axis)
    spread = _row_sum((eps + REDUCTION_C * u) * np.abs(s * v64), axis)
    tol = s * (eps * np.abs(v64 - dot) + spread) + GRAD_C * u * np.abs(_finite(value))
    return Expected(value, tol + _floor(dtype))


# --------------------------------------------------------------------------------------------
# Underflowing intermediates: (inputs, axis, dtype) -> extra absolute tolerance
#
# A probability computed in the compute dtype is off by up to half a subnormal quantum ``q``
# once it underflows (exp(-100) in float32 is subnormal, exp(-120) is 0), however exact the
# reference. The gradients multiply such probabilities by row-wide factors, so with gradients
# up to ``max / 4n`` (test_fuzz draws no larger) that error grows to ``q`` times the factor. It
# is ``q`` relative to the row's scale, the most a float computation can promise; 2 q per
# factor allowed. The forward operations' rules already hold 4 quanta.


def _quantum_and_magnitudes(inputs: tuple, axis: int, dtype: np.dtype):
    """``(q, |first|, |second| where finite else 0, row sums of the latter, n)``."""
    first, second = (np.abs(np.asarray(a, np.float64)) for a in inputs)
    with np.errstate(all="ignore"):
        second = np.where(np.isfinite(second), second, 0.0)
        row_sum = second.sum(axis=axis, keepdims=True)
    q = float(np.finfo(dtype).smallest_subnormal)
    return q, first, second, row_sum, inputs[0].shape[axis]


def underflow_softmax_backward(inputs: tuple, axis: int, dtype: np.dtype) -> np.ndarray:
    """The dot's ``n`` products."""
    q, y, _, _, n = _quantum_and_magnitudes(inputs, axis, dtype)
    return 2 * q * n * np.where(np.isfinite(y), y, 0.0)


def underflow_log_softmax_backward(inputs: tuple, axis: int, dtype: np.dtype) -> np.ndarray:
    """``p_i * sum(g)``."""
    q, _, _, row_sum, _ = _quantum_and_magnitudes(inputs, axis, dtype)
    return 2 * q * row_sum


def underflow_softmax_jvp(inputs: tuple, axis: int, dtype: np.dtype) -> np.ndarray:
    """``s_i * (v_i - dot)`` and the dot's own ``n`` terms: ``|v_i| + |dot| + sum |v|``."""
    q, _, v, row_sum, n = _quantum_and_magnitudes(inputs, axis, dtype)
    return 2 * q * (v + 2 * row_sum + n)


# logsumexp: m + log|S|, S = sum(b e), e = exp(x - m). The log turns the sum's relative error
# into an absolute one: each term b e is off by LSE_C u (the exp's few ulp, the product, the
# partial sums in the dtype) plus u |x - m| (the rounding of x - m in the exponent), so S is
# off by u (LSE_C sum|b e| + sum(|b e| |x - m|)), relative to |S|; the result is then rounded
# (2 ulp of it, with the add of m). Where signed weights cancel, |S| is small and the bound
# wide, as it must be. Measured on N(0, 3²)-N(0, 30²) rows of 7 to 20000 with positive and
# signed weights, the error past 2 ulp took at most 0.95 of u (sum|b e| + sum|b e||x - m|)/|S|.
LSE_C = 8.0


def logsumexp_tolerance(
    value: np.ndarray, x: np.ndarray, b: np.ndarray | None, axis: int, dtype: np.dtype
) -> Expected:
    """The tolerance of logsumexp's result ``value`` (float64, x's shape without the axis)."""
    dtype = np.dtype(dtype)
    u = unit_roundoff(dtype)
    shift, terms, _, xw = logsumexp_terms(x, b, axis)
    with np.errstate(all="ignore"):
        a = np.abs(terms).astype(np.float64)
        dist = np.abs((xw - shift).astype(np.float64))
        s_abs = np.where(np.isfinite(a), a, 0).sum(axis=axis)
        s_dist = np.where(np.isfinite(a * dist), a * dist, 0).sum(axis=axis)
        s = np.abs(terms.sum(axis=axis)).astype(np.float64)
        relative = u * (LSE_C * s_abs + s_dist) / s
    ulp = np.spacing(np.abs(_finite(value)).astype(dtype)).astype(np.float64)
    tol = 2 * ulp + np.where(np.isfinite(relative), relative, 0)
    return Expected(value, tol)
