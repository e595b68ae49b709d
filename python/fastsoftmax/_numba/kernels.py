"""The walks (cpp/src/kernels.cpp): which kernel runs a block, on how many threads, over which
rows or tiles; and the backend's five functions.

A block is ``(M, N, K)`` reduced along N: contiguous rows when ``K == 1`` (or ``N == 1``), else
tiles of N x W columns whose inner loops run along contiguous K. The walks are
kernels.cpp's parallel_ranges: a serial body over a range of tasks, run directly for one thread
and once per thread (contiguous ranges) under prange for more; the caller sets Numba's thread
count to ``parts`` before a parallel walk.

[Note: tile width]
Tiles are as wide as K allows up to MAX_TILE_WIDTH = 16384 columns (columns.hpp: 1024): every
inner loop pays a fixed cost for LLVM's run-time overlap checks, and narrower tiles measured
slower at every shape tried (Zen 4 VM, one thread: (4096, 1024) along axis 0 2.9 ms at 1024
columns against 7.8 at 512; (4096, 4096) 14.5 ms at 4096 against 30.5 at 512; (16, 262144)
4.3 ms at 16384, 5.7 at 65536).
"""

from __future__ import annotations

import math

import numpy as np
from numba import prange

from .._cache_size import streaming_threshold_bytes
from .._constants import SPLIT_ELEMENTS
from .columns import combine_slices, gathered_row, tile_first_pass, tile_op, tile_second_pass
from .operations import LOG_SOFTMAX, LOG_SOFTMAX_BACKWARD, SOFTMAX, SOFTMAX_BACKWARD, SOFTMAX_JVP
from .primitives import compiled, row, stream_fence
from .rows import row_first_pass, row_op, row_second_pass, stream_backward
from .threads import GRAIN_ELEMENTS, NumbaThreads, threads_for

MAX_TILE_WIDTH = 16384
# Streaming stores (see the Note on them in primitives.py): the shortest row that streams, and
# the scratch chunk a row's outputs go through (4 KiB of float32, in L1).
STREAM_ROW_BYTES = 4096
STREAM_CHUNK = 1024

# The walks, as kernels.cpp's parallel_ranges: a serial body over a range of tasks, run directly
# for one thread and once per thread (contiguous ranges) under prange for more. The caller sets
# Numba's thread count to ``parts`` before a parallel walk.


@compiled
def row_range(op, x, g, out, s, want_s, private, begin, end):
    own = np.empty(x.shape[1] if private else 0, x.dtype)  # see the Note on aliasing
    for r in range(begin, end):
        row_out = own if private else row(out, r)  # see the Notes on aliasing, borrowed rows
        row_op(op, row(x, r), row(g, r), row_out, row(s, r), want_s)
        if private:
            row(out, r)[:] = own


@compiled
def streamed_row_range(y, grad, out, begin, end):
    """softmax_backward over rows [begin, end), as `rows` computes it (the same bits), its
    outputs streamed (see the Note on streaming stores). ``out`` is no input."""
    chunk = np.empty(STREAM_CHUNK, y.dtype)
    for r in range(begin, end):
        y_row, grad_row, out_row = row(y, r), row(grad, r), row(out, r)
        _, total, _ = row_first_pass(SOFTMAX_BACKWARD, y_row, grad_row, out_row)
        stream_backward(y_row, grad_row, out_row, y.dtype.type(total), chunk)
    stream_fence()


@compiled
def tile_range(op, x, g, out, s, want_s, width, begin, end):
    tiles_per_m = (x.shape[2] + width - 1) // width
    for task in range(begin, end):
        i, k0 = task // tiles_per_m, task % tiles_per_m * width
        k1 = min(k0 + width, x.shape[2])
        if not tile_op(op, x, g, out, s, want_s, (i, k0, k1)):
            for k in range(k0, k1):
                gathered_row(op, x, g, out, s, want_s, i, k)


@compiled(parallel=True)
def parallel_row_range(op, x, g, out, s, want_s, private, parts):
    tasks = x.shape[0]
    for part in prange(parts):
        begin, end = tasks * part // parts, tasks * (part + 1) // parts
        row_range(op, x, g, out, s, want_s, private, begin, end)


@compiled(parallel=True)
def parallel_streamed_row_range(y, grad, out, parts):
    tasks = y.shape[0]
    for part in prange(parts):
        streamed_row_range(y, grad, out, tasks * part // parts, tasks * (part + 1) // parts)


@compiled
def slice_bounds(n, p, parts):
    """Slice p of ``parts`` nearly equal slices of range(n)."""
    return n * p // parts, n * (p + 1) // parts


@compiled(parallel=True)
def parallel_row_slices(op, x, g, out, s, want_s, private, parts):
    """Fewer rows than threads, each long: each row split between ``parts`` threads, as
    kernels.cpp split_rows does. The slices' first passes combine as a tile's slices do (one
    column); a row where some slice's max is not finite is redone whole, by one thread.
    """
    n = x.shape[1]
    own = np.empty(n if private else 0, x.dtype)  # see the Note on aliasing
    for r in range(x.shape[0]):
        row_out = own if private else out[r]
        ms = np.empty((parts, 1), x.dtype)
        sums, dots = np.empty((parts, 1)), np.empty((parts, 1))
        for p in prange(parts):
            j0, j1 = slice_bounds(n, p, parts)
            ms[p, 0], sums[p, 0], dots[p, 0] = row_first_pass(
                op, x[r, j0:j1], g[r, j0:j1], row_out[j0:j1]
            )
        if np.isfinite(ms).all():
            m, scale, a, b = combine_slices(op, ms, sums, dots)
            for p in prange(parts):
                j0, j1 = slice_bounds(n, p, parts)
                row_second_pass(
                    op, x[r, j0:j1], g[r, j0:j1], row_out[j0:j1], s[r, j0:j1], want_s,
                    m[0], scale[p, 0], a[0], b[0],
                )  # fmt: skip
        else:
            row_op(op, x[r], g[r], row_out, s[r], want_s)
        if private:
            out[r] = own


@compiled
def block_rows(a, i, j0, j1):
    """Rows [j0, j1) of block i of ``a`` as a C-contiguous (1, rows, K) block (``a[:, j0:j1]``
    would lose the contiguous layout, and LLVM's vectorising with it: 4x slower)."""
    return a[i, j0:j1].reshape((1, j1 - j0, a.shape[2]))


@compiled
def slice_rows(x, g, out, s, i, p, parts):
    """Slice p of ``parts`` of block i's rows, of each array."""
    j0, j1 = slice_bounds(x.shape[1], p, parts)
    return (
        block_rows(x, i, j0, j1),
        block_rows(g, i, j0, j1),
        block_rows(out, i, j0, j1),
        block_rows(s, i, j0, j1),
    )


@compiled(parallel=True)
def parallel_tile_slices(op, x, g, out, s, want_s, width, parts):
    """Fewer tiles than threads: each tile's rows split between ``parts`` threads, as kernels.cpp
    split_tiles does; a tile where some slice has a maximum that is not finite is redone column
    by column.
    """
    tiles_per_m = (x.shape[2] + width - 1) // width
    for task in range(x.shape[0] * tiles_per_m):
        i, k0 = task // tiles_per_m, task % tiles_per_m * width
        k1 = min(k0 + width, x.shape[2])
        t = (0, k0, k1)  # of each slice
        ms = np.empty((parts, k1 - k0), x.dtype)
        sums, dots = np.empty((parts, k1 - k0)), np.empty((parts, k1 - k0))
        finite = np.empty(parts, np.bool_)
        for p in prange(parts):
            xs, gs, outs, _ = slice_rows(x, g, out, s, i, p, parts)
            finite[p], ms[p], sums[p], dots[p] = tile_first_pass(op, xs, gs, outs, t)
        if not finite.all():
            for k in prange(k0, k1):
                gathered_row(op, x, g, out, s, want_s, i, k)
            continue
        m, scale, a, b = combine_slices(op, ms, sums, dots)
        for p in prange(parts):
            xs, gs, outs, ss = slice_rows(x, g, out, s, i, p, parts)
            tile_second_pass(op, xs, gs, outs, ss, want_s, t, m, scale[p], a, b)


@compiled(parallel=True)
def parallel_tile_range(op, x, g, out, s, want_s, width, parts):
    tasks = x.shape[0] * ((x.shape[2] + width - 1) // width)
    for part in prange(parts):
        begin, end = tasks * part // parts, tasks * (part + 1) // parts
        tile_range(op, x, g, out, s, want_s, width, begin, end)


def run(op: int, axis: int, threads: int, inputs: tuple, out: np.ndarray, s=None) -> None:
    """Hand the arrays to a walk as C-contiguous ``(M*K, N)`` rows or ``(M, N, K)`` blocks.

    C- and Fortran-contiguous arrays are viewed, never copied (Fortran as its C-contiguous
    transpose, chosen by the first input); anything else goes through a C-contiguous scratch,
    and so does an output that is an input when the walk is by columns (Note: aliasing).
    """
    x = inputs[0]
    if x.flags.f_contiguous and not x.flags.c_contiguous:
        inputs, out, s = tuple(a.T for a in inputs), out.T, None if s is None else s.T
        x, axis = inputs[0], x.ndim - 1 - axis
    m, n = math.prod(x.shape[:axis]), x.shape[axis]
    k = x.size // (m * n)
    as_rows = k == 1 or n == 1
    block = (m * k, n) if as_rows else (m, n, k)
    g = inputs[-1]
    private = np.may_share_memory(out, x) or (g is not x and np.may_share_memory(out, g))
    x_k, g_k = kernel_input(x, block), kernel_input(g, block)
    copy_back: list[tuple[np.ndarray, np.ndarray]] = []
    out_k = kernel_output(out, block, as_rows or not private, copy_back)
    s_k = out_k if s is None else kernel_output(s, block, True, copy_back)
    want_s = s is not None
    if as_rows:
        walk_rows(op, x_k, g_k, out_k, s_k, want_s, private, threads)
    else:
        walk_columns(op, x_k, g_k, out_k, s_k, want_s, threads)
    for target, result in copy_back:
        np.copyto(target, result.reshape(target.shape))


STREAM_BYTES = streaming_threshold_bytes()


def streams(op: int, x: np.ndarray) -> bool:
    """Whether the rows walk streams ``op``'s output of arrays like ``x``, unless it is an input
    (see the Note on streaming stores)."""
    return (
        op == SOFTMAX_BACKWARD
        and x.nbytes > STREAM_BYTES
        and x.shape[-1] * x.itemsize >= STREAM_ROW_BYTES
    )


def walk_rows(op, x, g, out, s, want_s, private, threads) -> None:
    """The rows walk over C-contiguous ``(rows, n)`` arrays, on up to ``threads`` threads;
    fewer long rows than threads share each row (kernels.cpp walk_rows)."""
    rows, n = x.shape
    stream = not private and streams(op, x)  # a private row goes through a buffer in L1
    used = threads_for(threads, x.size)
    if rows < used and n >= SPLIT_ELEMENTS:
        with NumbaThreads(used):
            parallel_row_slices(op, x, g, out, s, want_s, private, used)
        return
    used = min(used, rows)
    if used > 1:
        with NumbaThreads(used):
            if stream:
                parallel_streamed_row_range(x, g, out, used)
            else:
                parallel_row_range(op, x, g, out, s, want_s, private, used)
    elif stream:
        streamed_row_range(x, g, out, 0, rows)
    else:
        row_range(op, x, g, out, s, want_s, private, 0, rows)


def walk_columns(op, x, g, out, s, want_s, threads) -> None:
    """The columns walk over C-contiguous ``(M, N, K)`` blocks, on up to ``threads`` threads;
    with fewer tiles than threads, the threads share each tile's rows, each with 4 grains of
    work at least (kernels.cpp walk_columns)."""
    m, n, k = x.shape
    width = min(MAX_TILE_WIDTH, k)
    tiles = m * -(-k // width)
    used = threads_for(threads, x.size)
    if tiles < used:
        used = min(used, n, max(1, x.size // (4 * GRAIN_ELEMENTS)))
        if used > 1:
            with NumbaThreads(used):
                parallel_tile_slices(op, x, g, out, s, want_s, width, used)
            return
    used = min(used, tiles)
    if used > 1:
        with NumbaThreads(used):
            parallel_tile_range(op, x, g, out, s, want_s, width, used)
    else:
        tile_range(op, x, g, out, s, want_s, width, 0, tiles)


def kernel_input(a: np.ndarray, block: tuple) -> np.ndarray:
    """``a`` as a C-contiguous ``block``: itself when it is one already, else a view or a copy."""
    if a.shape == block and a.flags.c_contiguous:
        return a
    return np.ascontiguousarray(a).reshape(block)


def kernel_output(a: np.ndarray, block: tuple, may_view: bool, copy_back: list) -> np.ndarray:
    """``a`` as the walk's C-contiguous output, or a scratch that is copied back into it."""
    if may_view and a.flags.c_contiguous:
        return a if a.shape == block else a.reshape(block)
    scratch = np.empty(block, a.dtype)
    copy_back.append((a, scratch))
    return scratch


def softmax(x: np.ndarray, out: np.ndarray, axis: int, threads: int) -> None:
    run(SOFTMAX, axis, threads, (x,), out)


def log_softmax(x: np.ndarray, out: np.ndarray, axis: int, threads: int) -> None:
    run(LOG_SOFTMAX, axis, threads, (x,), out)


def softmax_backward(
    y: np.ndarray, grad: np.ndarray, out: np.ndarray, axis: int, threads: int
) -> None:
    run(SOFTMAX_BACKWARD, axis, threads, (y, grad), out)


def log_softmax_backward(
    y: np.ndarray, grad: np.ndarray, out: np.ndarray, axis: int, threads: int
) -> None:
    run(LOG_SOFTMAX_BACKWARD, axis, threads, (y, grad), out)


def softmax_jvp(
    x: np.ndarray,
    v: np.ndarray,
    out: np.ndarray,
    s_out: np.ndarray | None,
    axis: int,
    threads: int,
) -> None:
    run(SOFTMAX_JVP, axis, threads, (x, v), out, s_out)
