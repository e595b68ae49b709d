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
- ``masked``: the outputs at an entry the mask leaves out (none for per-row outputs);
- ``streams``: whether the rows walk writes its output with non-temporal stores past the cache
  (primitives.py's Note on streaming stores);
- ``per_row``: its outputs are per-row (logsumexp's): one element per row, ``(rows, 1)`` or
  ``(M, 1, K)`` arrays in the walks, written once per row by ``element`` of no loaded values
  (``element((), (), m, constants)``) after the combine; its terms then see no outputs.

How two partial reductions combine belongs to the reduction kind (`Reduction.combine`): threads
sharing a row or a tile's rows, and one tile's columns, all combine through it.

With a mask (operands.py's Note on the mask), an entry it leaves out takes no part: it reads as
-inf for the maximum, its terms are not summed (as if x were -inf and every other input 0), its
outputs are ``masked``, and ``limit`` rules over the kept entries alone. A row with none kept
has the maximum -inf, and so takes the limit: every output ``masked``, logsumexp's sum 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

import numpy as np
from numba import njit

from .operands import kept, mask_of
from .vec_exp import exp, row_max
from .vector_loops import column_max


class Reduction(NamedTuple):
    """A kind of reduction: the row's maximum (or 0), ``row_max(x, where)`` of a row and its
    mask row (or None), per column over a tile, ``column_max(ins, t)``, and ``combine``.

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
def _zero(x, where):
    return x.dtype.type(0)


@njit(nogil=True)
def _zeros(ins, t):
    return np.zeros(t[2] - t[1], ins[0].dtype)


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
    masked: tuple[float, ...] = ()
    streams: bool = False
    per_row: bool = False


@njit(nogil=True)
def limit_row(x, where, out, log):
    """A row whose max is not finite (see rows.hpp), over the entries the mask row ``where``
    keeps (None: all), the others as masked softmax or log_softmax outputs (the limit's miss);
    False when it came out NaN."""
    infinite = 0
    nan = False
    for i in range(x.shape[0]):
        infinite += kept(where, i, x[i] == np.inf, False)
        nan |= kept(where, i, x[i] != x[i], False)
    miss = x.dtype.type(-np.inf if log else 0)
    if nan or infinite == 0:
        for i in range(x.shape[0]):
            out[i] = kept(where, i, x.dtype.type(np.nan), miss)
        return False
    count = x.dtype.type(infinite)
    hit = x.dtype.type(0) - np.log(count) if log else x.dtype.type(1) / count  # +0 for one inf
    for i in range(x.shape[0]):
        out[i] = kept(where, i, hit if x[i] == np.inf else miss, miss)
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
    limit_row(ins[0], mask_of(ins), outs[0], False)


# log_softmax: (x - m) - log(sum(e)).
@njit(nogil=True)
def _log_softmax_derive(sums, rescale, like):
    return (like.dtype.type(math.log(sums[0])),)


@njit(nogil=True)
def _log_softmax_element(ins, outs, m, c):
    return ((ins[0] - m) - c[0],)  # [Note: order of subtraction] in rows.hpp


@njit(nogil=True)
def _log_softmax_limit(ins, outs):
    limit_row(ins[0], mask_of(ins), outs[0], True)


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
def _fill_jvp_limit(saturated, where, out):
    """The Jacobian of a saturated softmax is zero; else NaN, but where the mask leaves out."""
    value = out.dtype.type(0 if saturated else np.nan)
    for i in range(out.shape[0]):
        out[i] = kept(where, i, value, 0)


@njit(nogil=True)
def _jvp_limit(ins, outs):
    where = mask_of(ins)
    _fill_jvp_limit(limit_row(ins[0], where, outs[0], False), where, outs[0])


@njit(nogil=True)
def _jvp_with_softmax_limit(ins, outs):
    where = mask_of(ins)
    _fill_jvp_limit(limit_row(ins[0], where, outs[1], False), where, outs[0])


# logsumexp: m + log|sum(e b)| (b = 1 without it) and the sum's sign, per row; the public
# function masks out the entries whose b is 0 (python/fastsoftmax/_logsumexp.py).
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
    x, where, s = ins[0], mask_of(ins), 0.0
    for i in range(x.shape[0]):
        s += kept(where, i, math.exp(np.float64(x[i])), 0)
    _store_unshifted(s, outs)


@njit(nogil=True)
def _weighted_lse_limit(ins, outs):
    x, b, where, s = ins[0], ins[1], mask_of(ins), 0.0
    for i in range(x.shape[0]):
        s += kept(where, i, math.exp(np.float64(x[i])) * np.float64(b[i]), 0)
    _store_unshifted(s, outs)


# fmt: off
SOFTMAX = Operation(
    "softmax", ("x",), ("out",), SHIFTED, ((_stored_exp, True),), True,
    _softmax_derive, _softmax_element, _softmax_limit, (0.0,),
)
LOG_SOFTMAX = Operation(
    "log_softmax", ("x",), ("out",), SHIFTED, ((_exp_of_x, False),), False,
    _log_softmax_derive, _log_softmax_element, _log_softmax_limit, (-np.inf,),
)
SOFTMAX_BACKWARD = Operation(
    "softmax_backward", ("y", "grad"), ("out",), PLAIN, ((_x_times_g, False),), False,
    _backward_derive, _softmax_backward_element, _no_limit, (0.0,), streams=True,
)
LOG_SOFTMAX_BACKWARD = Operation(
    "log_softmax_backward", ("y", "grad"), ("out",), PLAIN, ((_g, True),), False,
    _backward_derive, _log_softmax_backward_element, _no_limit, (0.0,),
)
_JVP_TERMS = ((_stored_exp, True), (_stored_exp_times_g, False))
SOFTMAX_JVP = Operation(
    "softmax_jvp", ("x", "v"), ("out",), SHIFTED, _JVP_TERMS, True,
    _jvp_derive, _jvp_element, _jvp_limit, (0.0,),
)
SOFTMAX_JVP_WITH_SOFTMAX = Operation(
    "softmax_jvp_with_softmax", ("x", "v"), ("out", "s"), SHIFTED, _JVP_TERMS, True,
    _jvp_derive, _jvp_with_softmax_element, _jvp_with_softmax_limit, (0.0, 0.0),
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
