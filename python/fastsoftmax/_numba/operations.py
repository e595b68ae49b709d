"""The operations, each defined once: what the walks (rows.py, columns.py, kernels.py) run,
knowing nothing else about them.

An `Operation` names its inputs and outputs (operands.py holds them as two tuples) and gives:

- its reduction over a row: `SHIFTED` (sums of terms of ``e = exp(x - m)`` against the row's
  maximum ``m`` of ``x``, the first input), `PLAIN` (sums of terms of the loaded inputs) or
  `GIVEN` (``m`` and the one sum read from per-row inputs: the Note on row partials), with
  the terms, one per sum, each of ``(inputs, outputs, m)`` values at one element, and
  whether it is added in float64 throughout (vector_loops.py's Note on compensated folding)
  and, optionally, whether its values lie in [0, 1] (e itself: that Note on sums of exps);
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
- ``per_row``: its outputs are per-row (logsumexp's, row_partials'): one element per row,
  ``(rows, 1)`` or ``(M, 1, K)`` arrays in the walks, written once per row by ``element`` of
  no loaded values (``element((), (), m, constants)``) after the combine; its terms then see
  no outputs. Per-row inputs are inputs like any other (operands.py's Note on them).

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

from .operands import kept, mask_of, tile_rows_at, values_at
from .primitives import compiled
from .vec_exp import exp, exp_nonpositive, exp_summand, row_max
from .vector_loops import column_max


class Reduction(NamedTuple):
    """A kind of reduction: the row's maximum (or 0), ``row_max(ins)`` of a row's inputs
    (operands.py), per column over a tile, ``column_max(ins, t)``, and ``combine``.

    ``combine(ms, sums)`` takes the partials of consecutive slices, ``ms[p, c]`` and
    ``sums[p, s, c]`` (slice p, sum s, column c), and gives ``(m, totals, rescale)``: the
    maxima, the float64 sums ``totals[s, c]`` and ``rescale[p, c]``, the factor of slice p's
    ``e`` at the combined maximum (1 for a plain reduction).

    A reduction that reads its sums instead of summing the operation's terms (`GIVEN`) gives
    them as the terms' sums would be (vector_loops.py): ``row_sums(ins, outs, m)``, a tuple,
    and ``column_sums(ins, outs, m, t)``, ``sums[s, c]``.
    """

    shifted: bool
    row_max: Callable
    column_max: Callable
    combine: Callable
    row_sums: Callable | None = None
    column_sums: Callable | None = None


@compiled
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


@compiled
def _combine_plain(ms, sums):
    parts, count, w = sums.shape
    totals = np.zeros((count, w))
    for p in range(parts):
        for s in range(count):
            for c in range(w):
                totals[s, c] += sums[p, s, c]
    return ms[0], totals, np.ones((parts, w))


@compiled(inline=True)
def _combine_given(ms, sums):
    """Every slice of a row read the same pair: the first's is the row's."""
    return ms[0], sums[0], np.ones((ms.shape[0], ms.shape[1]))


@compiled(inline=True)
def _max_of_x(ins):
    return row_max(ins[0], mask_of(ins))


@compiled(inline=True)
def _zero(ins):
    return ins[0].dtype.type(0)


@compiled(inline=True)
def _zeros(ins, t):
    return np.zeros(t[2] - t[1], ins[0].dtype)


@compiled(inline=True)
def _no_limit(ins, outs):
    """A plain reduction has no maximum, so no row takes a limit."""


# [Note: row partials]
# A softmax whose rows are split into chunks (a Dask array's) is computed from two operations,
# as in cpp/src/operations.hpp (its Note of that name): ROW_PARTIALS reduces each chunk's rows
# to the pair a shifted reduction holds, (max, sum(exp(x - max))), per-row outputs; the pairs
# combine across chunks as `_combine_shifted` combines slices (_partials.combine); and
# SOFTMAX_GIVEN or LOG_SOFTMAX_GIVEN writes each chunk's result from the combined pair, the
# per-row inputs row_max and row_sum (after x), with the whole-row operation's derive and
# output step. Their reduction, GIVEN, reads the pair instead of reducing the row: each
# element of a row loads its row's pair (operands.py's Note on per-row inputs), read here at
# the row's first element or each column of a tile's first row. Every slice of a row reads the
# same pair, so slices combine by taking one.


@compiled(inline=True)
def _given_pair(values):
    """``(row_max, row_sum)`` of the loaded values at one element, the sum in float64."""
    return values[1], np.float64(values[2])


@compiled(inline=True)
def _given_row_max(ins):
    return _given_pair(values_at(ins, 0))[0]


@compiled(inline=True)
def _given_row_sums(ins, outs, m):
    return (_given_pair(values_at(ins, 0))[1],)


@compiled
def _given_columns(ins, t):
    """The pairs of tile ``t``'s columns: the maxima and ``sums[0, c]``."""
    i, k0, k1 = t
    first = tile_rows_at(ins, i, 0, k0, k1)
    m = np.empty(k1 - k0, ins[0].dtype)
    sums = np.empty((1, k1 - k0))
    for c in range(k1 - k0):
        m[c], sums[0, c] = _given_pair(values_at(first, c))
    return m, sums


@compiled(inline=True)
def _given_column_max(ins, t):
    return _given_columns(ins, t)[0]


@compiled(inline=True)
def _given_column_sums(ins, outs, m, t):
    return _given_columns(ins, t)[1]


SHIFTED = Reduction(True, _max_of_x, column_max, _combine_shifted)
PLAIN = Reduction(False, _zero, _zeros, _combine_plain)
GIVEN = Reduction(
    True, _given_row_max, _given_column_max, _combine_given, _given_row_sums, _given_column_sums
)


class Operation(NamedTuple):
    name: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    reduction: Reduction
    terms: tuple[tuple, ...]  # (term, wide[, unit]), one per sum (vector_loops.py)
    keeps_exp: bool
    derive: Callable
    element: Callable
    limit: Callable
    masked: tuple[float, ...] = ()
    streams: bool = False
    per_row: bool = False


@compiled
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
@compiled(inline=True)
def _stored_exp(ins, outs, m):
    return outs[0]


@compiled(inline=True)
def _exp_of_x(ins, outs, m):
    return exp_summand(ins[0] - m)  # a term only, of a sum holding exp(max - max) = 1


@compiled(inline=True)
def _stored_exp_times_g(ins, outs, m):
    return outs[0] * ins[1]


@compiled(inline=True)
def _x_times_g(ins, outs, m):
    return ins[0] * ins[1]


@compiled(inline=True)
def _g(ins, outs, m):
    return ins[1]


# softmax: e / sum(e).
@compiled(inline=True)
def _softmax_derive(sums, rescale, like):
    # np.divide: a pair given to softmax_given may hold a sum of 0: inf, as in C++ (`/` raises).
    return (like.dtype.type(rescale * np.divide(1.0, sums[0])),)


@compiled(inline=True)
def _softmax_element(ins, outs, m, c):
    return (outs[0] * c[0],)


@compiled(inline=True)
def _softmax_limit(ins, outs):
    limit_row(ins[0], mask_of(ins), outs[0], False)


# log_softmax: (x - m) - log(sum(e)).
@compiled(inline=True)
def _log_softmax_derive(sums, rescale, like):
    return (like.dtype.type(math.log(sums[0])),)


@compiled(inline=True)
def _log_softmax_element(ins, outs, m, c):
    return ((ins[0] - m) - c[0],)  # [Note: order of subtraction] in rows.hpp


@compiled(inline=True)
def _log_softmax_limit(ins, outs):
    limit_row(ins[0], mask_of(ins), outs[0], True)


# softmax_backward: y (g - sum(y g)). A backward op's sum may be 0 and needs no division.
@compiled(inline=True)
def _sum_derive(sums, rescale, like):
    """The sum itself (the backwards' constant, row_partials' row_sum)."""
    return (like.dtype.type(sums[0]),)


@compiled(inline=True)
def _softmax_backward_element(ins, outs, m, c):
    return (ins[0] * (ins[1] - c[0]),)


# log_softmax_backward: g - exp(y) sum(g).
@compiled(inline=True)
def _log_softmax_backward_element(ins, outs, m, c):
    return (ins[1] - exp(ins[0]) * c[0],)


# softmax_jvp: s (v - sum(s v)), s = e / sum(e), and s itself when it is asked for.
@compiled(inline=True)
def _jvp_derive(sums, rescale, like):
    return like.dtype.type(rescale * (1.0 / sums[0])), like.dtype.type(sums[1] / sums[0])


@compiled(inline=True)
def _jvp_element(ins, outs, m, c):
    return ((outs[0] * c[0]) * (ins[1] - c[1]),)


@compiled(inline=True)
def _jvp_with_softmax_element(ins, outs, m, c):
    s = outs[0] * c[0]
    return s * (ins[1] - c[1]), s


@compiled
def _fill_jvp_limit(saturated, where, out):
    """The Jacobian of a saturated softmax is zero; else NaN, but where the mask leaves out."""
    value = out.dtype.type(0 if saturated else np.nan)
    for i in range(out.shape[0]):
        out[i] = kept(where, i, value, 0)


@compiled(inline=True)
def _jvp_limit(ins, outs):
    where = mask_of(ins)
    _fill_jvp_limit(limit_row(ins[0], where, outs[0], False), where, outs[0])


@compiled(inline=True)
def _jvp_with_softmax_limit(ins, outs):
    where = mask_of(ins)
    _fill_jvp_limit(limit_row(ins[0], where, outs[1], False), where, outs[0])


# logsumexp: m + log|sum(e b)| (b = 1 without it) and the sum's sign, per row; the public
# function masks out the entries whose b is 0 (python/fastsoftmax/_logsumexp.py).
@compiled(inline=True)
def _exp_of_x_times_b(ins, outs, m):
    return exp_nonpositive(ins[0] - m) * ins[1]


@compiled(inline=True)
def _lse_derive(sums, rescale, like):
    """log|sum| and the sign of the sum (+1, -1, 0 or NaN)."""
    s = sums[0]
    sign = 1.0 if s > 0 else -1.0 if s < 0 else 0.0 if s == 0 else s
    return like.dtype.type(np.log(np.abs(s))), like.dtype.type(sign)


@compiled(inline=True)
def _lse_element(ins, outs, m, c):
    return m + c[0], c[1]


@compiled(inline=True)
def _store_unshifted(s, outs):
    """A row whose maximum is not finite, summed unshifted as SciPy does (operations.hpp)."""
    outs[0][0] = np.log(np.abs(s))
    outs[1][0] = 1.0 if s > 0 else -1.0 if s < 0 else 0.0 if s == 0 else s


@compiled
def _lse_limit(ins, outs):
    x, where, s = ins[0], mask_of(ins), 0.0
    for i in range(x.shape[0]):
        s += kept(where, i, math.exp(np.float64(x[i])), 0)
    _store_unshifted(s, outs)


@compiled
def _weighted_lse_limit(ins, outs):
    x, b, where, s = ins[0], ins[1], mask_of(ins), 0.0
    for i in range(x.shape[0]):
        s += kept(where, i, math.exp(np.float64(x[i])) * np.float64(b[i]), 0)
    _store_unshifted(s, outs)


# row_partials: the row's maximum and sum(e), or its limit (`_row_partials_limit`).
@compiled(inline=True)
def _row_partials_element(ins, outs, m, c):
    return m, c[0]


@compiled
def _row_partials_limit(ins, outs):
    """The maximum over the kept entries (NaN ignored) and, as its sum, the count of +inf
    entries (exp(inf - inf) taken as 1, so that combined pairs give the limit rule's 1/k): 0
    at a maximum of -inf (all -inf, or nothing kept); NaN where a NaN is kept."""
    x, where = ins[0], mask_of(ins)
    m, infinite, nan = x.dtype.type(-np.inf), 0, False
    for i in range(x.shape[0]):
        v = kept(where, i, x[i], -np.inf)
        m = v if v > m else m
        infinite += v == np.inf
        nan |= v != v
    outs[0][0] = m
    outs[1][0] = np.nan if nan else infinite


# softmax_given and log_softmax_given: the forward's derive and output step at the given pair.
@compiled(inline=True)
def _softmax_given_element(ins, outs, m, c):
    """softmax's output step at ``e = exp(x - m)``, which softmax reads back from its output
    (``keeps_exp``) and this computes: with no sums to take, no pass comes between."""
    return _softmax_element(ins, (exp_nonpositive(ins[0] - m),), m, c)


@compiled
def _given_limit(ins, outs, log):
    """A given maximum that is not finite (cpp/src/operations.hpp FromPartials::limit): +inf
    gives the limit, the +inf entries 1/row_sum (log: -log(row_sum)), the others 0 (-inf);
    -inf or NaN gives NaN. The entries the mask leaves out get 0 (-inf)."""
    x, where = ins[0], mask_of(ins)
    m, total = _given_pair(values_at(ins, 0))
    saturated = m == np.inf
    miss = x.dtype.type(-np.inf if log else 0)
    hit = x.dtype.type(np.nan)
    if saturated:  # 0 - log k: a lone +inf gets +0; np.divide: a sum of 0 gives inf, no raise
        hit = x.dtype.type(0 - np.log(total) if log else np.divide(1.0, total))
    for i in range(x.shape[0]):
        value = hit if x[i] == np.inf or not saturated else miss
        outs[0][i] = kept(where, i, value, miss)


@compiled(inline=True)
def _softmax_given_limit(ins, outs):
    _given_limit(ins, outs, False)


@compiled(inline=True)
def _log_softmax_given_limit(ins, outs):
    _given_limit(ins, outs, True)


# fmt: off
SOFTMAX = Operation(
    "softmax", ("x",), ("out",), SHIFTED, ((_stored_exp, True, True),), True,
    _softmax_derive, _softmax_element, _softmax_limit, (0.0,),
)
LOG_SOFTMAX = Operation(
    "log_softmax", ("x",), ("out",), SHIFTED, ((_exp_of_x, False, True),), False,
    _log_softmax_derive, _log_softmax_element, _log_softmax_limit, (-np.inf,),
)
SOFTMAX_BACKWARD = Operation(
    "softmax_backward", ("y", "grad"), ("out",), PLAIN, ((_x_times_g, False),), False,
    _sum_derive, _softmax_backward_element, _no_limit, (0.0,), streams=True,
)
LOG_SOFTMAX_BACKWARD = Operation(
    "log_softmax_backward", ("y", "grad"), ("out",), PLAIN, ((_g, True),), False,
    _sum_derive, _log_softmax_backward_element, _no_limit, (0.0,),
)
_JVP_TERMS = ((_stored_exp, True, True), (_stored_exp_times_g, False))
SOFTMAX_JVP = Operation(
    "softmax_jvp", ("x", "v"), ("out",), SHIFTED, _JVP_TERMS, True,
    _jvp_derive, _jvp_element, _jvp_limit, (0.0,),
)
SOFTMAX_JVP_WITH_SOFTMAX = Operation(
    "softmax_jvp_with_softmax", ("x", "v"), ("out", "s"), SHIFTED, _JVP_TERMS, True,
    _jvp_derive, _jvp_with_softmax_element, _jvp_with_softmax_limit, (0.0, 0.0),
)
LOGSUMEXP = Operation(
    "logsumexp", ("x",), ("out", "sign"), SHIFTED, ((_exp_of_x, False, True),), False,
    _lse_derive, _lse_element, _lse_limit, per_row=True,
)
WEIGHTED_LOGSUMEXP = Operation(
    "weighted_logsumexp", ("x", "b"), ("out", "sign"), SHIFTED, ((_exp_of_x_times_b, False),),
    False, _lse_derive, _lse_element, _weighted_lse_limit, per_row=True,
)
# Its sum is wide, as softmax sums its stored exps: it is a softmax's denominator.
ROW_PARTIALS = Operation(
    "row_partials", ("x",), ("row_max", "row_sum"), SHIFTED, ((_exp_of_x, True, True),), False,
    _sum_derive, _row_partials_element, _row_partials_limit, per_row=True,
)
# The forwards with the pair given: their terms only count the one sum GIVEN reads.
SOFTMAX_GIVEN = SOFTMAX._replace(
    name="softmax_given", inputs=("x", "row_max", "row_sum"), reduction=GIVEN,
    keeps_exp=False, element=_softmax_given_element, limit=_softmax_given_limit,
)
LOG_SOFTMAX_GIVEN = LOG_SOFTMAX._replace(
    name="log_softmax_given", inputs=("x", "row_max", "row_sum"), reduction=GIVEN,
    limit=_log_softmax_given_limit,
)
# fmt: on
