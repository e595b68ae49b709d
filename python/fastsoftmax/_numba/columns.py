"""The columns kernels (cpp/src/columns.hpp): the axis is not the contiguous dimension, so a
tile of N rows by W contiguous columns is processed with the loops running across the columns;
each column is a softmax row. Here no output is an input (see the Note on aliasing in rows.py).
"""

from __future__ import annotations

import math

import numpy as np

from .operations import LOG_SOFTMAX, LOG_SOFTMAX_BACKWARD, SOFTMAX, SOFTMAX_BACKWARD, SOFTMAX_JVP
from .primitives import compiled, is_finite, tile_row
from .rows import pass_constants, row_op
from .vec_exp import exp
from .vector_loops import column_dot, column_exp_store_sum, column_exp_sum, column_total


@compiled
def column_max(x, t):
    i, k0, k1 = t
    m = np.full(k1 - k0, -np.inf, x.dtype)
    for j in range(x.shape[1]):
        row = tile_row(x, i, j, k0, k1)
        for c in range(m.shape[0]):
            m[c] = row[c] if row[c] > m[c] else m[c]  # NaN loses, as in simd::max
    return m


@compiled
def scale_columns(a, factor, t):
    """a *= factor[column] over tile ``t``."""
    i, k0, k1 = t
    for j in range(a.shape[1]):
        row = tile_row(a, i, j, k0, k1)
        for c in range(factor.shape[0]):
            row[c] *= factor[c]


@compiled
def tile_first_pass(op, x, g, out, t):
    """``(finite, m, sums, dots)`` of tile ``t``, per column: the maxima (forward ops), the sums
    the second pass needs and softmax_jvp's sums of exp(x - m) * v. softmax and softmax_jvp keep
    exp(x - m) in ``out``. ``finite`` is False when a maximum is not finite (redo column-wise).
    """
    i, k0, k1 = t
    m = np.zeros(k1 - k0, x.dtype)
    dots = np.zeros(k1 - k0)
    if op == SOFTMAX_BACKWARD:
        return True, m, column_dot(x, g, x[i, 0], out, t), dots
    if op == LOG_SOFTMAX_BACKWARD:
        return True, m, column_total(g, g, x[i, 0], out, t), dots
    m = column_max(x, t)
    for c in range(m.shape[0]):
        if not is_finite(m[c]):
            return False, m, dots, dots
    if op == LOG_SOFTMAX:
        return True, m, column_exp_sum(x, x, m, out, t), dots
    sums = column_exp_store_sum(x, x, m, out, t)
    if op == SOFTMAX_JVP:
        dots = column_dot(out, g, m, out, t)
    return True, m, sums, dots


@compiled
def combine_slices(op, ms, sums, dots):
    """The second pass's per-column constants from the first passes over consecutive slices of
    a tile's rows (one row of ``ms``, ``sums``, ``dots`` per slice), combined exactly as
    kernels.cpp combines them: ``(m, scale, a, b)``, m the maxima, scale[p] the factor of slice
    p's exps (softmax, softmax_jvp), a and b as `tile_second_pass` takes them.
    """
    parts, w = sums.shape
    forward = op != SOFTMAX_BACKWARD and op != LOG_SOFTMAX_BACKWARD
    m = ms[0].copy()
    for p in range(1, parts):
        for c in range(w):
            m[c] = max(m[c], ms[p, c])
    rescale = np.ones((parts, w))
    total, dot = np.zeros(w), np.zeros(w)
    for p in range(parts):
        for c in range(w):
            if forward:
                rescale[p, c] = math.exp(np.float64(ms[p, c]) - np.float64(m[c]))
            total[c] += sums[p, c] * rescale[p, c]
            dot[c] += dots[p, c] * rescale[p, c]
    scale = np.empty((parts, w), ms.dtype)
    a, b = np.empty(w, ms.dtype), np.empty(w, ms.dtype)
    for c in range(w):
        inv, a[c], b[c] = pass_constants(op, total[c], dot[c])
        for p in range(parts):
            scale[p, c] = rescale[p, c] * inv
    return m, scale, a, b


@compiled
def tile_second_pass(op, x, g, out, s, want_s, t, m, scale, a, b):
    """The outputs of tile ``t``: softmax_backward ``y (g - a)``; log_softmax_backward
    ``g - exp(y) a``; log_softmax ``(x - m) - a``; softmax ``out * scale`` (out holds the exps);
    softmax_jvp ``s = out * scale``, ``s (v - b)``.
    """
    i, k0, k1 = t
    if op == SOFTMAX:
        scale_columns(out, scale, t)
        return
    for j in range(x.shape[1]):
        x_row, g_row = tile_row(x, i, j, k0, k1), tile_row(g, i, j, k0, k1)
        out_row = tile_row(out, i, j, k0, k1)
        if op == SOFTMAX_BACKWARD:
            for c in range(a.shape[0]):
                out_row[c] = x_row[c] * (g_row[c] - a[c])
        elif op == LOG_SOFTMAX_BACKWARD:
            for c in range(a.shape[0]):
                out_row[c] = g_row[c] - exp(x_row[c]) * a[c]
        elif op == LOG_SOFTMAX:
            for c in range(a.shape[0]):
                out_row[c] = (x_row[c] - m[c]) - a[c]
        else:
            if want_s:
                s_row = tile_row(s, i, j, k0, k1)
                for c in range(scale.shape[0]):
                    s_row[c] = out_row[c] * scale[c]
            for c in range(scale.shape[0]):
                out_row[c] = (out_row[c] * scale[c]) * (g_row[c] - b[c])


@compiled
def tile_op(op, x, g, out, s, want_s, t):
    """``op`` on tile ``t``; False when a column's max is not finite (redo it column-wise)."""
    finite, m, sums, dots = tile_first_pass(op, x, g, out, t)
    if not finite:
        return False
    m, scale, a, b = combine_slices(op, m.reshape(1, -1), sums.reshape(1, -1), dots.reshape(1, -1))
    tile_second_pass(op, x, g, out, s, want_s, t, m, scale[0], a, b)
    return True


@compiled
def gathered_row(op, x, g, out, s, want_s, i, k):
    """Column k of a tile through contiguous copies, for a column whose max is not finite."""
    row_x, row_g = x[i, :, k].copy(), g[i, :, k].copy()
    row_out, row_s = np.empty_like(row_x), np.empty_like(row_x)
    row_op(op, row_x, row_g, row_out, row_s, want_s)
    out[i, :, k] = row_out
    if want_s:
        s[i, :, k] = row_s
