"""The sums over a row and over a tile's columns (cpp/src/vector_loops.hpp): partial sums in
the row's dtype, vectorised by LLVM, folded into a compensated float64 total.

[Note: fold sizes]
Partial sums stay in the row's dtype for FOLD_ELEMENTS (256) terms, 8 rows of a tile
(FOLD_ROWS); vector_loops.hpp widens them every two vectors. LLVM gives a loop one vector
width, so a float64 accumulator in the exp loop halved its float32 speed. Longer partials are
too coarse: LLVM keeps 32 of them, and with 128 terms each (folding every 4096) the N = 4096
normal row of test_accuracy.py exceeded its bound (1.12x); with 8 terms it is well inside.
"""

from __future__ import annotations

import numpy as np
from numba.extending import overload
from numba.np.numpy_support import as_dtype

from .operands import kept, mask_of, slices_of, tile_rows_at, values_at
from .primitives import compiled, inner, is_finite, prefer_wide_vectors
from .vec_exp import exp_nonpositive

FOLD_ELEMENTS = 256
FOLD_ROWS = 8

# Sums, as in cpp/src/vector_loops.hpp: partial sums in the row's dtype, vectorised
# by LLVM, then added into float64. Each sum is one term function closed into a fold, since a
# function passed to a compiled function as an argument would make its callers uncachable.
#
# [Note: compensated folding]
# The float64 total takes one addition per fold, 10**6 / 256 of them for a row of 10**6; for
# float64 input it is no wider than the partials, and a plain running total lost ~18 units of
# rounding (test_threads.py, a float64 row of 300001). Neumaier's compensated addition keeps it to
# about one rounding for a few operations per fold. A float32 partial of 256 terms, as LLVM
# splits it into lanes, was off by up to 6 roundings, and a softmax's 1 / sum with it: past the
# bound at one element of (41945, 200) on an Intel Xeon. So the sums of stored exps (softmax,
# softmax_jvp) are wide, added in float64 (0.30 -> 0.43 us a row of 4096 on that machine), as
# vector_loops.hpp does after four terms; the sums with exp in the loop keep float32 partials.
# A tile folds every 8 rows: each column's partial is a sequential sum, and 256 rows of it
# exceeded the float32 softmax bound.


@compiled(inline=True)
def add_compensated(total, carry, value):
    """Neumaier's step: ``total + carry`` gains ``value``, ``carry`` keeps what rounding lost."""
    new_total = total + value
    if abs(total) >= abs(value):
        carry += (total - new_total) + value
    else:
        carry += (value - new_total) + total
    return new_total, carry


@compiled(inline=True)
def compensated_result(total, carry):
    return total + carry if is_finite(total) else total  # inf - inf in the carry is no NaN


# [Note: sums of exps]
# A shifted reduction's sum of e = exp(x - m) holds a 1 (at the maximum) and often many terms
# far below it; LLVM's lanes and their final reduction add those into the lane holding the 1,
# rounding each time. A float32 row of a 0 and 254 entries of -16.6 came out with a log-sum off
# by 19 units of rounding, a float64 row of 31 by 8 (the log_softmax bound is 8). So a sum of
# terms in [0, 1] splits each, scaled by a power of two, into its whole part and the rest: the
# whole parts of FOLD_ELEMENTS terms add exactly in the row's dtype in any order, and the rests
# are small. The split costs a fold of 256 exps 1.2-1.3x (Intel Xeon, Rocket Lake, 512-bit
# vectors: float32 0.27 -> 0.36 ns an element); its terms' exp_summand (vec_exp.py), which
# scales once and needs no underflow mask, pays for it: a (64, 1000) float32 row sum took 21.4
# us with plain float32 partials and exp, 27.0 split, 19.1 split with exp_summand (Zen 4 VM,
# one thread). A wide sum of float32 terms needs no split.
_UNIT_SCALE = {
    np.dtype(d): 2.0 ** (np.finfo(d).nmant + 1 - int(np.log2(FOLD_ELEMENTS)))
    for d in (np.float32, np.float64)
}


def make_row_sum(term, wide, unit=False):
    """The sum over contiguous rows ``(ins, outs)`` (operands.py) of ``term`` at each element
    the mask keeps, in a loop that only reads (rows.py's Note on deterministic sums); with
    ``wide``, each term is added in float64 (Note: compensated folding); with ``unit``, the
    terms lie in [0, 1] and are split (Note: sums of exps)."""

    def partial_sum(ins, outs, m):
        # Not prefer_wide_vectors(): a fold of 256 products is too short for 512-bit vectors
        # ((64, 1000) float32 softmax_backward on the Xeon: 15.7 us with them, 11.3 without).
        where, part = mask_of(ins), ins[0].dtype.type(0)
        for i in range(ins[0].shape[0]):
            part += kept(where, i, term(values_at(ins, i), values_at(outs, i), m), 0)
        return part

    def wide_partial_sum(ins, outs, m):
        prefer_wide_vectors()
        where, part = mask_of(ins), 0.0
        for i in range(ins[0].shape[0]):
            value = kept(where, i, term(values_at(ins, i), values_at(outs, i), m), 0)
            part += np.float64(value)
        return part

    def unit_partial_sum(ins, outs, m):
        prefer_wide_vectors()
        where, dtype = mask_of(ins), ins[0].dtype
        scale = dtype.type(_unit_scale(dtype))
        whole = rest = dtype.type(0)
        for i in range(ins[0].shape[0]):
            value = kept(where, i, term(values_at(ins, i), values_at(outs, i), m), 0) * scale
            part = np.floor(value)
            whole += part
            rest += value - part
        return (np.float64(whole) + np.float64(rest)) / np.float64(scale)

    key = _key(((term, wide, unit),))
    fast = inner(key, fastmath={"reassoc"})  # see the Note on fastmath
    partial_sum = fast(
        unit_partial_sum if unit and not wide else wide_partial_sum if wide else partial_sum
    )
    if unit and wide:  # float32 terms added in float64 are exact enough; float64 ones split
        partial_sum = _by_dtype(partial_sum, fast(unit_partial_sum))

    def fold_sum(ins, outs, m):
        total = carry = 0.0
        for start in range(0, ins[0].shape[0], FOLD_ELEMENTS):
            stop = start + FOLD_ELEMENTS  # slices from 0: indices LLVM knows are non-negative
            part = partial_sum(slices_of(ins, start, stop), slices_of(outs, start, stop), m)
            total, carry = add_compensated(total, carry, np.float64(part))
        return compensated_result(total, carry)

    return inner(key)(fold_sum)


def _unit_scale(dtype):
    """The scale of a unit sum's terms in ``dtype`` (Note: sums of exps)."""


@overload(_unit_scale)
def _overload_unit_scale(dtype):
    scale = _UNIT_SCALE[as_dtype(dtype.dtype)]
    return lambda dtype: scale


def _by_dtype(single, double):
    """A function of ``(ins, outs, m)`` that calls ``single`` for float32 rows, else
    ``double``: chosen as it is typed, so that only the one called is compiled."""

    def call(ins, outs, m):
        raise NotImplementedError("only callable from Numba-compiled code")

    @overload(call)
    def _overload_call(ins, outs, m):
        chosen = single if as_dtype(ins[0].dtype) == np.float32 else double
        return lambda ins, outs, m: chosen(ins, outs, m)

    return call


def _key(terms) -> str:
    """What closures over ``terms`` are made for (primitives.py's Note on the cache)."""
    return "+".join(f"{term.__name__}:{':'.join(map(str, flags))}" for term, *flags in terms)


def make_row_sums(terms):
    """The tuple of the float64 sums of ``terms`` (``(term, wide)`` pairs) over a row."""
    first = make_row_sum(*terms[0])
    if len(terms) == 1:
        return inner(_key(terms), inline=True)(lambda ins, outs, m: (first(ins, outs, m),))
    rest = make_row_sums(terms[1:])
    return inner(_key(terms), inline=True)(
        lambda ins, outs, m: (first(ins, outs, m), *rest(ins, outs, m))
    )


def _make_add_terms(terms, first=0):
    """``part[first + s, c] += term_s(...)`` for each of ``terms``, where the mask row
    ``where`` keeps column c; a unit term's scaled value is split between ``part`` and ``rest``
    (Note: sums of exps)."""
    term, unit = terms[0][0], _is_unit(terms[0])
    others = _make_add_terms(terms[1:], first + 1) if len(terms) > 1 else None

    def add(part, rest, c, where, ins, outs, m):
        value = kept(where, c, term(ins, outs, m), 0)
        if unit:
            value = value * part.dtype.type(_unit_scale(part.dtype))
            whole = np.floor(value)
            part[first, c] += whole
            rest[first, c] += value - whole
        else:
            part[first, c] += value
        if others is not None:
            others(part, rest, c, where, ins, outs, m)

    # On its own, though it holds no loop (primitives.py's Note on inlined helpers): inlined into
    # `column_sums`' loop, a (4096, 1024) float32 softmax along axis 0 took 24.6 ms, not 3.5.
    return inner(f"{_key(terms)}@{first}")(add)


def _is_unit(term) -> bool:
    """Whether a ``(term, wide[, unit])`` entry's values lie in [0, 1]."""
    return len(term) > 2 and term[2]


def make_column_sums(terms, keeps_exp):
    """``sums[s, c]``, the float64 sums of ``terms`` down each column c of tile ``t`` of blocks
    ``(ins, outs)``, over the entries the mask keeps; with ``keeps_exp``, ``exp(x - m)`` is
    stored in the first output on the way, for the terms to read. Each column's partial is
    sequential, so the terms are added in the row's dtype whether or not they are wide, folded
    every FOLD_ROWS rows."""
    add_terms = _make_add_terms(terms)
    count = len(terms)
    units = tuple(_is_unit(term) for term in terms)

    # On its own: as a loop of `column_sums`, a (4096, 1024) float32 softmax along axis 0
    # took 2.53-2.81 ms in its first pass, 2.29-2.41 as this (Zen 4 VM, one thread).
    @inner(f"{_key(terms)}:{keeps_exp}")
    def add_row(part, rest, in_rows, out_rows, m):
        """A tile row's terms into the partials, its exps stored first with ``keeps_exp``."""
        prefer_wide_vectors()
        where = mask_of(in_rows)
        for c in range(m.shape[0]):
            if keeps_exp:
                out_rows[0][c] = exp_nonpositive(in_rows[0][c] - m[c])
            add_terms(part, rest, c, where, values_at(in_rows, c), values_at(out_rows, c), m[c])

    def column_sums(ins, outs, m, t):
        prefer_wide_vectors()
        i, k0, k1 = t
        x = ins[0]
        part, rest = np.zeros((count, k1 - k0), x.dtype), np.zeros((count, k1 - k0), x.dtype)
        total, carry = np.zeros((count, k1 - k0)), np.zeros((count, k1 - k0))
        scale = np.float64(_unit_scale(x.dtype))
        for j in range(x.shape[1]):
            in_rows, out_rows = tile_rows_at(ins, i, j, k0, k1), tile_rows_at(outs, i, j, k0, k1)
            add_row(part, rest, in_rows, out_rows, m)
            if (j + 1) % FOLD_ROWS == 0 or j + 1 == x.shape[1]:
                for s in range(count):
                    for c in range(k1 - k0):
                        value = np.float64(part[s, c])
                        if units[s]:
                            value = (value + np.float64(rest[s, c])) / scale
                        total[s, c], carry[s, c] = add_compensated(total[s, c], carry[s, c], value)
                        part[s, c] = rest[s, c] = 0
        for s in range(count):
            for c in range(k1 - k0):
                total[s, c] = compensated_result(total[s, c], carry[s, c])
        return total

    return inner(f"{_key(terms)}:{keeps_exp}")(column_sums)


@compiled
def column_max(ins, t):
    """The maximum of each column of tile ``t`` of the first input (NaN loses, as in
    simd::max), of the entries the mask keeps: -inf for none."""
    prefer_wide_vectors()
    i, k0, k1 = t
    x = ins[0]
    m = np.full(k1 - k0, -np.inf, x.dtype)
    for j in range(x.shape[1]):
        rows = tile_rows_at(ins, i, j, k0, k1)
        row, where = rows[0], mask_of(rows)
        for c in range(m.shape[0]):
            value = kept(where, c, row[c], -np.inf)
            m[c] = value if value > m[c] else m[c]
    return m


@compiled
def store_exp(x, m, e):
    """e = exp(x - m), elementwise: its sum is taken afterwards (Note: deterministic sums)."""
    prefer_wide_vectors()
    for i in range(x.shape[0]):
        e[i] = exp_nonpositive(x[i] - m)
