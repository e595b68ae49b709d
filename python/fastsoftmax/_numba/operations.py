"""The operations, each defined once: what the walks (rows.py, columns.py, kernels.py) run,
knowing nothing else about them.

An `Operation` names its inputs and outputs (operands.py holds them as two tuples) and gives:

- its reduction over a row: `SHIFTED` (sums of terms of ``e = exp(x - m)`` against the row's
  maximum ``m`` of ``x``, the first input) or `PLAIN` (sums of terms of the loaded inputs),
  with the terms, one per sum, each of ``(inputs, outputs, m)`` values at one element, and
  whether it is added in float64 throughout (vector_loops.py's Note on compensated folding);
- ``keeps_exp``: ``e`` is stored in the first output by the first pass, for the terms and the
  output step to read back (the sums of stored exps are then wide);
- ``derive``: the per-row constants in the dtype of ``like`` (an array), from the combined sums
  and the factor that rescales one slice's ``e`` to the row's maximum;
- ``element``: the output step at one element, of the loaded values, ``m`` and the constants,
  giving each output's value;
- ``limit``: the rule for a row whose maximum is not finite (rows.hpp's Note on such rows);
- ``streams``: whether the rows walk writes its output with non-temporal stores past the cache
  (primitives.py's Note on streaming stores);
- ``per_row``: its outputs are per-row (logsumexp's): one element per row, ``(rows, 1)`` or
  ``(M, 1, K)`` arrays in the walks, written once per row by ``element`` of no loaded values
  (``element((), (), m, constants)``) after the combine; its terms then see no outputs.

How two partial reductions combine belongs to the reduction kind (`Reduction.combine`): threads
sharing a row or a tile's rows, and one tile's columns, all combine through it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from numba import njit

from .vec_exp import exp, row_max
from .vector_loops import column_max


class Reduction(NamedTuple):
    """A kind of reduction: the row's maximum (or 0), per column over a tile, and ``combine``.

    ``combine(ms, sums)`` takes the partials of consecutive slices, ``ms[p, c]`` and
    ``sums[p, s, c]`` (slice p, sum s, column c), and gives ``(m, totals, rescale)``: the
    maxima, the float64 sums ``totals[s, c]`` and ``rescale[p, c]``, the factor of slice p's
    ``e`` at the combined maximum (1 for a plain reduction).
    """

    shifted: bool
    row_max: Callable
    column_max: Callable
    combine: Callable


@njit(nogil=True)
def _combine_shifted(ms, sums):
    parts, count, w = sums.shape
    m = ms[0].copy()
    for p in range(1, parts):
        for c in range(w):
            m[c] = max(m[c], ms[p, c])
    rescale = np.empty((parts, w))
    totals = np.zeros((count, w))
    for p in range(parts):
        for c in range(w):
            rescale[p, c] = math.exp(np.float64(ms[p, c]) - np.float64(m[c]))
            for s in range(count):
                totals[s, c] += sums[p, s, c] * rescale[p, c]
    return m, totals, rescale


@njit(nogil=True)
def _combine_plain(ms, sums):
    parts, count, w = sums.shape
    totals = np.zeros((count, w))
    for p in range(parts):
        for s in range(count):
            for c in range(w):
                totals[s, c] += sums[p, s, c]
    return ms[0], totals, np.ones((parts, w))


@njit(nogil=True)
def _zero(x):
    return x.dtype.type(0)


@njit(nogil=True)
def _zeros(x, t):
    return np.zeros(t[2] - t[1], x.dtype)


@njit(nogil=True)
def _no_limit(ins, outs):
    """A plain reduction has no maximum, so no row takes a limit."""


SHIFTED = Reduction(True, row_max, column_max, _combine_shifted)
PLAIN = Reduction(False, _zero, _zeros, _combine_plain)


class Operation(NamedTuple):
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    reduction: Reduction
    terms: tuple[tuple[Callable, bool], ...]  # (term, wide), one per sum
    keeps_exp: bool
    derive: Callable
    element: Callable
    limit: Callable
    streams: bool = False
    per_row: bool = False


@njit(nogil=True)
def limit_row(x, out, log):
    """A row whose max is not finite (see rows.hpp); False when it came out NaN."""
    infinite = 0
    nan = False
    for i in range(x.shape[0]):
        infinite += x[i] == np.inf
        nan |= x[i] != x[i]
    if nan or infinite == 0:
        out[:] = np.nan
        return False
    count = x.dtype.type(infinite)
    hit = x.dtype.type(0) - np.log(count) if log else x.dtype.type(1) / count  # +0 for one inf
    miss = x.dtype.type(-np.inf if log else 0)
    for i in range(x.shape[0]):
        out[i] = hit if x[i] == np.inf else miss
    return True


# Terms, of the values at one element: (inputs, outputs, m).
@njit(nogil=True)
def _stored_exp(ins, outs, m):
    return outs[0]


@njit(nogil=True)
def _exp_of_x(ins, outs, m):
    return exp(ins[0] - m)


@njit(nogil=True)
def _stored_exp_times_g(ins, outs, m):
    return outs[0] * ins[1]


@njit(nogil=True)
def _x_times_g(ins, outs, m):
    return ins[0] * ins[1]


@njit(nogil=True)
def _g(ins, outs, m):
    return ins[1]


# softmax: e / sum(e).
@njit(nogil=True)
def _softmax_derive(sums, rescale, like):
    return (like.dtype.type(rescale * (1.0 / sums[0])),)


@njit(nogil=True)
def _softmax_element(ins, outs, m, c):
    return (outs[0] * c[0],)


@njit(nogil=True)
def _softmax_limit(ins, outs):
    limit_row(ins[0], outs[0], False)


# log_softmax: (x - m) - log(sum(e)).
@njit(nogil=True)
def _log_softmax_derive(sums, rescale, like):
    return (like.dtype.type(math.log(sums[0])),)


@njit(nogil=True)
def _log_softmax_element(ins, outs, m, c):
    return ((ins[0] - m) - c[0],)  # [Note: order of subtraction] in rows.hpp


@njit(nogil=True)
def _log_softmax_limit(ins, outs):
    limit_row(ins[0], outs[0], True)


# softmax_backward: y (g - sum(y g)). A backward op's sum may be 0 and needs no division.
@njit(nogil=True)
def _backward_derive(sums, rescale, like):
    return (like.dtype.type(sums[0]),)


@njit(nogil=True)
def _softmax_backward_element(ins, outs, m, c):
    return (ins[0] * (ins[1] - c[0]),)


# log_softmax_backward: g - exp(y) sum(g).
@njit(nogil=True)
def _log_softmax_backward_element(ins, outs, m, c):
    return (ins[1] - exp(ins[0]) * c[0],)


# softmax_jvp: s (v - sum(s v)), s = e / sum(e), and s itself when it is asked for.
@njit(nogil=True)
def _jvp_derive(sums, rescale, like):
    return like.dtype.type(rescale * (1.0 / sums[0])), like.dtype.type(sums[1] / sums[0])


@njit(nogil=True)
def _jvp_element(ins, outs, m, c):
    return ((outs[0] * c[0]) * (ins[1] - c[1]),)


@njit(nogil=True)
def _jvp_with_softmax_element(ins, outs, m, c):
    s = outs[0] * c[0]
    return s * (ins[1] - c[1]), s


@njit(nogil=True)
def _jvp_limit(ins, outs):
    saturated = limit_row(ins[0], outs[0], False)
    outs[0][:] = 0 if saturated else np.nan  # the Jacobian of a saturated softmax is zero


@njit(nogil=True)
def _jvp_with_softmax_limit(ins, outs):
    saturated = limit_row(ins[0], outs[1], False)
    outs[0][:] = 0 if saturated else np.nan


# logsumexp: m + log|sum(e b)| (b = 1 without it) and the sum's sign, per row; the public
# function gives rows whose b is 0 as x = -inf (python/fastsoftmax/_logsumexp.py).
@njit(nogil=True)
def _exp_of_x_times_b(ins, outs, m):
    return exp(ins[0] - m) * ins[1]


@njit(nogil=True)
def _lse_derive(sums, rescale, like):
    """log|sum| and the sign of the sum (+1, -1, 0 or NaN)."""
    s = sums[0]
    sign = 1.0 if s > 0 else -1.0 if s < 0 else 0.0 if s == 0 else s
    return like.dtype.type(np.log(np.abs(s))), like.dtype.type(sign)


@njit(nogil=True)
def _lse_element(ins, outs, m, c):
    return m + c[0], c[1]


@njit(nogil=True)
def _store_unshifted(s, outs):
    """A row whose maximum is not finite, summed unshifted as SciPy does (operations.hpp)."""
    outs[0][0] = np.log(np.abs(s))
    outs[1][0] = 1.0 if s > 0 else -1.0 if s < 0 else 0.0 if s == 0 else s


@njit(nogil=True)
def _lse_limit(ins, outs):
    x, s = ins[0], 0.0
    for i in range(x.shape[0]):
        s += math.exp(np.float64(x[i]))
    _store_unshifted(s, outs)


@njit(nogil=True)
def _weighted_lse_limit(ins, outs):
    x, b, s = ins[0], ins[1], 0.0
    for i in range(x.shape[0]):
        s += math.exp(np.float64(x[i])) * np.float64(b[i])
    _store_unshifted(s, outs)


# fmt: off
SOFTMAX = Operation(
    "softmax", ("x",), ("out",), SHIFTED, ((_stored_exp, True),), True,
    _softmax_derive, _softmax_element, _softmax_limit,
)
LOG_SOFTMAX = Operation(
    "log_softmax", ("x",), ("out",), SHIFTED, ((_exp_of_x, False),), False,
    _log_softmax_derive, _log_softmax_element, _log_softmax_limit,
)
SOFTMAX_BACKWARD = Operation(
    "softmax_backward", ("y", "grad"), ("out",), PLAIN, ((_x_times_g, False),), False,
    _backward_derive, _softmax_backward_element, _no_limit, streams=True,
)
LOG_SOFTMAX_BACKWARD = Operation(
    "log_softmax_backward", ("y", "grad"), ("out",), PLAIN, ((_g, True),), False,
    _backward_derive, _log_softmax_backward_element, _no_limit,
)
_JVP_TERMS = ((_stored_exp, True), (_stored_exp_times_g, False))
SOFTMAX_JVP = Operation(
    "softmax_jvp", ("x", "v"), ("out",), SHIFTED, _JVP_TERMS, True,
    _jvp_derive, _jvp_element, _jvp_limit,
)
SOFTMAX_JVP_WITH_SOFTMAX = Operation(
    "softmax_jvp_with_softmax", ("x", "v"), ("out", "s"), SHIFTED, _JVP_TERMS, True,
    _jvp_derive, _jvp_with_softmax_element, _jvp_with_softmax_limit,
)
LOGSUMEXP = Operation(
    "logsumexp", ("x",), ("out", "sign"), SHIFTED, ((_exp_of_x, False),), False,
    _lse_derive, _lse_element, _lse_limit, per_row=True,
)
WEIGHTED_LOGSUMEXP = Operation(
    "weighted_logsumexp", ("x", "b"), ("out", "sign"), SHIFTED, ((_exp_of_x_times_b, False),),
    False, _lse_derive, _lse_element, _weighted_lse_limit, per_row=True,
)
# fmt: on
