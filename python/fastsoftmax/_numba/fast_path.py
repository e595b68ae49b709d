"""The fast path (the Note in _backends.py): calls in C-contiguous rows along the last axis go
straight to the rows walk. (1, 10) float32 softmax through the public function: 4.0 -> 1.9 us.
"""

from __future__ import annotations

import numpy as np

from .kernels import row_range, streamed_row_range, streams, walk_rows
from .operations import LOG_SOFTMAX, LOG_SOFTMAX_BACKWARD, SOFTMAX, SOFTMAX_BACKWARD
from .primitives import compiled
from .threads import GRAIN_ELEMENTS

_FLOAT32, _FLOAT64 = np.dtype(np.float32), np.dtype(np.float64)


@compiled
def overlap(out, a):
    """For C-contiguous arrays of one shape and dtype: 1 when ``out`` is the memory of ``a``, 0
    when they are apart, -1 when they overlap in part."""
    p, q = out.ctypes.data, a.ctypes.data
    if p == q:
        return 1
    return -1 if q < p + out.nbytes and p < q + a.nbytes else 0


@compiled
def in_place_code(out, x, g):
    """1 when ``out`` is ``x`` or ``g`` (see the Note on aliasing), 0 when it overlaps neither,
    -1 when it overlaps one in part (inputs may be read-only: no tuple of the two)."""
    on_x, on_g = overlap(out, x), overlap(out, g)
    return -1 if min(on_x, on_g) < 0 else max(on_x, on_g)


@compiled
def all_rows(op, x, g, out, stream):
    """Every row along the last axis of C-contiguous arrays of any shape, on one thread; False,
    having done nothing, when ``out`` overlaps an input in part. ``stream`` is `streams`."""
    in_place = in_place_code(out, x, g)
    if in_place < 0:
        return False
    block = (x.size // x.shape[-1], x.shape[-1])
    x_rows, g_rows, out_rows = x.reshape(block), g.reshape(block), out.reshape(block)
    if stream and in_place == 0:
        streamed_row_range(x_rows, g_rows, out_rows, 0, block[0])
    else:
        row_range(op, x_rows, g_rows, out_rows, out_rows, False, in_place == 1, 0, block[0])
    return True


def plain(a: object, dtype: np.dtype, shape: tuple, writeable: bool = False) -> bool:
    """An ndarray of ``dtype`` and ``shape``, C-contiguous and aligned (and writeable)."""
    if type(a) is not np.ndarray or a.dtype is not dtype or a.shape != shape:
        return False
    flags = a.flags  # looked up once: each lookup builds a flags object
    return flags.carray if writeable else flags.c_contiguous and flags.aligned


def try_op(
    op: int, x: object, g: object, out: object, axis: object, threads: int
) -> np.ndarray | None:
    """``op``'s result when the call is one the fast path takes, else None. Each check costs
    a visible part of a small call, so the common case takes as few as it can."""
    if type(x) is not np.ndarray:
        return None
    dtype, shape = x.dtype, x.shape
    if (dtype is not _FLOAT32 and dtype is not _FLOAT64) or not x.size:
        return None
    if type(axis) is not int or not shape or (axis != -1 and axis != len(shape) - 1):
        return None
    flags = x.flags  # x's type, dtype and shape are known: only its layout is left
    if not (flags.c_contiguous and flags.aligned):
        return None
    if g is not x and not plain(g, dtype, shape):
        return None
    if out is None:
        out = np.empty_like(x)
    elif not plain(out, dtype, shape, writeable=True):
        return None
    if threads == 1 or x.size < 2 * GRAIN_ELEMENTS:  # one thread (`threads_for`)
        # One compiled call, the overlap checks in it: ~1 us less than `walk_rows` and
        # np.may_share_memory.
        taken = all_rows(op, x, g, out, streams(op, x))
        return out if taken else None  # else a scratch copy: `_api` makes it
    in_place = in_place_code(out, x, g)
    if in_place < 0:
        return None
    block = (x.size // x.shape[-1], x.shape[-1])
    rows = out.reshape(block)
    walk_rows(op, x.reshape(block), g.reshape(block), rows, rows, False, in_place == 1, threads)
    return out


def try_softmax(x: object, out: object, axis: object, threads: int) -> np.ndarray | None:
    return try_op(SOFTMAX, x, x, out, axis, threads)


def try_log_softmax(x: object, out: object, axis: object, threads: int) -> np.ndarray | None:
    return try_op(LOG_SOFTMAX, x, x, out, axis, threads)


def try_softmax_backward(
    y: object, grad: object, out: object, axis: object, threads: int
) -> np.ndarray | None:
    return try_op(SOFTMAX_BACKWARD, y, grad, out, axis, threads)


def try_log_softmax_backward(
    y: object, grad: object, out: object, axis: object, threads: int
) -> np.ndarray | None:
    return try_op(LOG_SOFTMAX_BACKWARD, y, grad, out, axis, threads)
