"""The row kernels (cpp/src/rows.hpp): one contiguous row, or a slice of one when threads share
a long row, in two passes (a first pass of max and sums, then the outputs), and the limit path
for rows whose maximum is not finite."""

from __future__ import annotations

import math

import numpy as np
from numba import njit

from .operations import LOG_SOFTMAX, LOG_SOFTMAX_BACKWARD, SOFTMAX, SOFTMAX_BACKWARD, SOFTMAX_JVP
from .primitives import LINE_BYTES, compiled, is_finite, stream_copy
from .vec_exp import exp, row_max
from .vector_loops import dot, exp_sum, store_exp, value_sum

# [Note: aliasing]
# LLVM vectorises a loop that reads one array and writes another only after a run-time check
# that they do not overlap; an output that *is* its input fails the check and the loop runs
# scalar, 4x slower. So no kernel loop writes an array it also reads through a second name:
# the rows walk gives a row whose output is an input a private buffer, the columns walk gets
# such outputs as scratch arrays from `run`. ``s`` of softmax_jvp is written only after ``x``
# was last read, so it may be ``x``; exp(x - max) is kept in ``out``.
#
# [Note: deterministic sums]
# The check can also fail for arrays that merely lie close together: LLVM compares the
# distance between the pointers with the loop's vector step, not their extents. A loop that
# stored exp(x - m) and summed it in one went scalar then, and its reassociated sum came out
# in another order: the same call rounded its last bit differently from one allocation of
# the arrays to the next (softmax_jvp in place against out=None, once in a few runs). So no
# loop that sums also stores: exps are stored, then summed by a loop that only reads.


@compiled
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


@compiled
def row_first_pass(op, x, g, out):
    """``(m, total, dot)`` of a row or a slice of one: its max (forward ops), the float64 sum
    the second pass needs (of exp(x - m), of y g, of g) and softmax_jvp's sum of exp(x - m) v.
    softmax and softmax_jvp keep exp(x - m) in ``out``. Nothing past the max when it is not
    finite: the row takes its limit then (see rows.hpp).
    """
    t = x.dtype.type
    if op == SOFTMAX_BACKWARD:
        return t(0), dot(x, g, 0), 0.0
    if op == LOG_SOFTMAX_BACKWARD:
        return t(0), value_sum(g, g, 0), 0.0
    m = row_max(x)
    if not is_finite(m):
        return m, 0.0, 0.0
    if op == LOG_SOFTMAX:
        return m, exp_sum(x, x, m), 0.0
    store_exp(x, m, out)
    total = value_sum(out, out, 0)
    return m, total, dot(out, g, 0) if op == SOFTMAX_JVP else 0.0


@compiled
def pass_constants(op, total, dot):
    """``(inv, a, b)`` of `row_second_pass` from a row's combined float64 sums: 1 / total,
    a = log(total) for log_softmax and the sum itself for the backward ops, b = dot / total.
    A backward op's sum may be 0 and needs no division."""
    if op in (SOFTMAX_BACKWARD, LOG_SOFTMAX_BACKWARD):
        return 1.0, total, 0.0
    return 1.0 / total, math.log(total) if op == LOG_SOFTMAX else total, dot / total


@njit(nogil=True)
def backward_values(y, grad, out, a):
    """softmax_backward's ``out = y (grad - a)`` over a row or a part of one."""
    for i in range(out.shape[0]):
        out[i] = y[i] * (grad[i] - a)


@compiled
def row_second_pass(op, x, g, out, s, want_s, m, scale, a, b):
    """The outputs of a row or a slice of one, as `tile_second_pass` computes a tile's, with
    one scalar for each of its per-column constants."""
    if op == SOFTMAX_BACKWARD:
        backward_values(x, g, out, a)
    elif op == LOG_SOFTMAX_BACKWARD:
        for i in range(x.shape[0]):
            out[i] = g[i] - exp(x[i]) * a
    elif op == LOG_SOFTMAX:
        for i in range(x.shape[0]):
            out[i] = (x[i] - m) - a  # [Note: order of subtraction] in rows.hpp
    elif op == SOFTMAX:
        for i in range(out.shape[0]):
            out[i] *= scale
    else:
        if want_s:
            for i in range(out.shape[0]):
                s[i] = out[i] * scale
        for i in range(out.shape[0]):
            out[i] = (out[i] * scale) * (g[i] - b)


@compiled
def row_limit(op, x, out, s, want_s):
    """A row whose max is not finite."""
    if op == SOFTMAX_JVP:
        saturated = limit_row(x, s if want_s else out, False)
        out[:] = 0 if saturated else np.nan  # the Jacobian of a saturated softmax is zero
    else:
        limit_row(x, out, op == LOG_SOFTMAX)


@compiled
def row_op(op, x, g, out, s, want_s):
    """One row of ``op``. ``g``, and ``s`` unless ``want_s``, are unused dummies."""
    m, total, dot = row_first_pass(op, x, g, out)
    if not is_finite(m):
        row_limit(op, x, out, s, want_s)
        return
    t = x.dtype.type
    inv, a, b = pass_constants(op, total, dot)
    row_second_pass(op, x, g, out, s, want_s, m, t(inv), t(a), t(b))


@njit(nogil=True)
def stream_backward(y, grad, out, a, chunk):
    """`backward_values` over a row, the whole cache lines of ``out`` through ``chunk`` and
    `stream_copy`, the part before the first line and after the last stored normally."""
    n, line = out.shape[0], LINE_BYTES // out.itemsize
    done = min(n, (LINE_BYTES - out.ctypes.data % LINE_BYTES) % LINE_BYTES // out.itemsize)
    backward_values(y[:done], grad[:done], out[:done], a)
    while n - done >= line:
        count = min(chunk.shape[0], (n - done) // line * line)
        end = done + count
        backward_values(y[done:end], grad[done:end], chunk[:count], a)
        stream_copy(out[done:end], chunk, count)
        done = end
    backward_values(y[done:], grad[done:], out[done:], a)
