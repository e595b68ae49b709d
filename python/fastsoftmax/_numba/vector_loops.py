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
from numba import njit

from .primitives import is_finite, tile_row
from .vec_exp import exp

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
# bound at one element of (41945, 200) on an Intel Xeon. So `value_sum`, which sums the stored exps
# of softmax and softmax_jvp, adds in float64 (0.30 -> 0.43 us a row of 4096 on that machine),
# as kernels.cpp does after four terms; the sums with exp in the loop keep float32 partials.
# A tile folds every 8 rows: each column's partial is a sequential sum, and 256 rows of it
# exceeded the float32 softmax bound.


@njit(nogil=True)
def add_compensated(total, carry, value):
    """Neumaier's step: ``total + carry`` gains ``value``, ``carry`` keeps what rounding lost."""
    new_total = total + value
    if abs(total) >= abs(value):
        carry += (total - new_total) + value
    else:
        carry += (value - new_total) + total
    return new_total, carry


@njit(nogil=True)
def compensated_result(total, carry):
    return total + carry if is_finite(total) else total  # inf - inf in the carry is no NaN


def make_fold_sum(term, wide=False):
    """The sum over a row of ``term(a, b, m, i)``, which only reads (Note: deterministic sums);
    with ``wide``, each term is added in float64 (Note: compensated folding)."""

    def partial_sum(a, b, m):
        part = a.dtype.type(0)
        for i in range(a.shape[0]):
            part += term(a, b, m, i)
        return part

    def wide_partial_sum(a, b, m):
        part = 0.0
        for i in range(a.shape[0]):
            part += np.float64(term(a, b, m, i))
        return part

    partial_sum = njit(nogil=True, fastmath={"reassoc"})(  # see the Note on fastmath
        wide_partial_sum if wide else partial_sum
    )

    def fold_sum(a, b, m):
        total = carry = 0.0
        for start in range(0, a.shape[0], FOLD_ELEMENTS):
            stop = start + FOLD_ELEMENTS  # slices from 0: indices LLVM knows are non-negative
            part = partial_sum(a[start:stop], b[start:stop], m)
            total, carry = add_compensated(total, carry, np.float64(part))
        return compensated_result(total, carry)

    return njit(nogil=True)(fold_sum)


def make_column_sum(add_row):
    """Per-column sums over tile ``t`` of ``add_row(part, a_row, b_row, m, out_row)``."""

    def column_sum(a, b, m, out, t):
        i, k0, k1 = t
        part = np.zeros(k1 - k0, a.dtype)
        total, carry = np.zeros(k1 - k0), np.zeros(k1 - k0)
        for j in range(a.shape[1]):
            add_row(
                part, tile_row(a, i, j, k0, k1), tile_row(b, i, j, k0, k1), m,
                tile_row(out, i, j, k0, k1),
            )  # fmt: skip
            if (j + 1) % FOLD_ROWS == 0 or j + 1 == a.shape[1]:
                for c in range(part.shape[0]):
                    total[c], carry[c] = add_compensated(total[c], carry[c], part[c])
                    part[c] = 0
        for c in range(total.shape[0]):
            total[c] = compensated_result(total[c], carry[c])
        return total

    return njit(nogil=True)(column_sum)


@njit(nogil=True)
def _exp_term(x, unused, m, i):
    return exp(x[i] - m)


@njit(nogil=True)
def _product_term(a, b, unused, i):
    return a[i] * b[i]


@njit(nogil=True)
def _value_term(a, unused, unused_m, i):
    return a[i]


@njit(nogil=True)
def _add_exp_store(part, x, unused, m, e):
    for c in range(part.shape[0]):
        value = exp(x[c] - m[c])
        e[c] = value
        part[c] += value


@njit(nogil=True)
def _add_exp(part, x, unused, m, unused_out):
    for c in range(part.shape[0]):
        part[c] += exp(x[c] - m[c])


@njit(nogil=True)
def _add_product(part, a, b, unused, unused_out):
    for c in range(part.shape[0]):
        part[c] += a[c] * b[c]


@njit(nogil=True)
def _add_value(part, a, unused, unused_m, unused_out):
    for c in range(part.shape[0]):
        part[c] += a[c]


exp_sum = make_fold_sum(_exp_term)
dot = make_fold_sum(_product_term)
value_sum = make_fold_sum(_value_term, wide=True)
column_exp_store_sum = make_column_sum(_add_exp_store)
column_exp_sum = make_column_sum(_add_exp)
column_dot = make_column_sum(_add_product)
column_total = make_column_sum(_add_value)


@njit(nogil=True)
def store_exp(x, m, e):
    """e = exp(x - m), elementwise: its sum is taken afterwards (Note: deterministic sums)."""
    for i in range(x.shape[0]):
        e[i] = exp(x[i] - m)
