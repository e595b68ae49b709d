"""The walks (cpp/src/kernels.cpp): which kernel runs a block, on how many threads, over which
rows or tiles; and the backend's functions.

`make_kernels` makes the walks of one operation, closures over its row and tile kernels: one
specialised compiled function per operation and walk, none of which asks which operation it
runs (compiled in each process: the Note on no compiled-code cache in primitives.py).

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
from types import SimpleNamespace

import numpy as np
from numba import prange

from .._cache_size import streaming_threshold_bytes
from .._constants import SPLIT_ELEMENTS
from . import operations
from .columns import make_tile_kernels
from .operands import block_rows_at, items_at, rows_at, slices_of, with_first
from .primitives import compiled, copy_into, is_finite, row, stream_fence
from .rows import make_row_kernels
from .threads import GRAIN_ELEMENTS, NumbaThreads, threads_for

MAX_TILE_WIDTH = 16384
# Streaming stores (see the Note on them in primitives.py): the shortest row that streams, and
# the scratch chunk a row's outputs go through (4 KiB of float32, in L1).
STREAM_ROW_BYTES = 4096
STREAM_CHUNK = 1024
STREAM_BYTES = streaming_threshold_bytes()


@compiled(inline=True)
def slice_bounds(n, p, parts):
    """Slice p of ``parts`` nearly equal slices of range(n)."""
    return n * p // parts, n * (p + 1) // parts


def make_kernels(op: operations.Operation) -> SimpleNamespace:
    """The walks of operation ``op``, each compiled for it alone. Each takes the tuples of the
    inputs and the outputs (operands.py), C-contiguous ``(rows, n)`` arrays or ``(M, N, K)``
    blocks; ``private`` means the first output is an input (rows.py's Note on aliasing)."""
    row_kernels = make_row_kernels(op)
    first_pass, output, row_op = row_kernels.first_pass, row_kernels.output, row_kernels.row_op
    streamed_output = row_kernels.streamed_output
    tiles = make_tile_kernels(op, row_op)
    tile_first_pass, tile_constants, tile_output = tiles.first_pass, tiles.constants, tiles.output
    tile_op, gathered_row = tiles.tile_op, tiles.gathered_row
    combine, derive, count = op.reduction.combine, op.derive, len(op.terms)
    limit = op.limit
    jit = compiled(key=op.name)
    parallel = compiled(parallel=True, key=op.name)

    @jit
    def row_range(ins, outs, private, begin, end):
        own = np.empty(ins[0].shape[1] if private else 0, ins[0].dtype)
        for r in range(begin, end):
            row_outs = rows_at(outs, r)  # see the Notes on aliasing, borrowed rows
            if private:
                row_outs = with_first(row_outs, own)
            row_op(rows_at(ins, r), row_outs)
            if private:
                copy_into(row(outs[0], r), own)

    @jit
    def streamed_row_range(ins, outs, begin, end):
        """Rows [begin, end) as `row_range` computes them (the same bits), their one output
        streamed (see the Note on streaming stores). The output is no input."""
        chunk = np.empty(STREAM_CHUNK, ins[0].dtype)
        for r in range(begin, end):
            row_ins, row_outs = rows_at(ins, r), rows_at(outs, r)
            m, sums = first_pass(row_ins, row_outs)
            if not is_finite(m):
                limit(row_ins, row_outs)
                continue
            streamed_output(row_ins, row_outs, m, derive(sums, 1.0, ins[0]), chunk)
        stream_fence()

    @jit
    def tile_range(ins, outs, width, begin, end):
        tiles_per_m = (ins[0].shape[2] + width - 1) // width
        for task in range(begin, end):
            i, k0 = task // tiles_per_m, task % tiles_per_m * width
            k1 = min(k0 + width, ins[0].shape[2])
            if not tile_op(ins, outs, (i, k0, k1)):
                for k in range(k0, k1):
                    gathered_row(ins, outs, i, k)

    @parallel
    def parallel_row_range(ins, outs, private, parts):
        tasks = ins[0].shape[0]
        for part in prange(parts):
            begin, end = tasks * part // parts, tasks * (part + 1) // parts
            row_range(ins, outs, private, begin, end)

    @parallel
    def parallel_streamed_row_range(ins, outs, parts):
        tasks = ins[0].shape[0]
        for part in prange(parts):
            streamed_row_range(ins, outs, tasks * part // parts, tasks * (part + 1) // parts)

    @parallel
    def parallel_row_slices(ins, outs, private, parts):
        """Fewer rows than threads, each long: each row split between ``parts`` threads, as
        kernels.cpp split_rows does. The slices' first passes combine as a tile's slices do
        (one column); a row where some slice's max is not finite is redone whole, by one
        thread."""
        x = ins[0]
        n = x.shape[1]
        own = np.empty(n if private else 0, x.dtype)  # see the Note on aliasing
        for r in range(x.shape[0]):
            row_ins, row_outs = items_at(ins, r), items_at(outs, r)
            if private:
                row_outs = with_first(row_outs, own)
            ms = np.empty((parts, 1), x.dtype)
            sums = np.empty((parts, count, 1))
            for p in prange(parts):
                j0, j1 = slice_bounds(n, p, parts)
                m_p, sums_p = first_pass(slices_of(row_ins, j0, j1), slices_of(row_outs, j0, j1))
                ms[p, 0] = m_p
                for s in range(count):
                    sums[p, s, 0] = sums_p[s]
            if np.isfinite(ms).all():
                m, totals, rescale = combine(ms, sums)
                for p in prange(parts):
                    j0, j1 = slice_bounds(n, p, parts)
                    constants = derive(totals[:, 0], rescale[p, 0], x)
                    output(slices_of(row_ins, j0, j1), slices_of(row_outs, j0, j1), m[0], constants)
            else:
                row_op(row_ins, row_outs)
            if private:
                copy_into(outs[0][r], own)

    @parallel
    def parallel_tile_slices(ins, outs, width, parts):
        """Fewer tiles than threads: each tile's rows split between ``parts`` threads, as
        kernels.cpp split_tiles does; a tile where some slice has a maximum that is not finite
        is redone column by column."""
        x = ins[0]
        tiles_per_m = (x.shape[2] + width - 1) // width
        for task in range(x.shape[0] * tiles_per_m):
            i, k0 = task // tiles_per_m, task % tiles_per_m * width
            k1 = min(k0 + width, x.shape[2])
            t = (0, k0, k1)  # of each slice
            ms = np.empty((parts, k1 - k0), x.dtype)
            sums = np.empty((parts, count, k1 - k0))
            finite = np.empty(parts, np.bool_)
            for p in prange(parts):
                j0, j1 = slice_bounds(x.shape[1], p, parts)
                block_ins = block_rows_at(ins, i, j0, j1)
                block_outs = block_rows_at(outs, i, j0, j1)
                finite[p], ms[p], sums[p] = tile_first_pass(block_ins, block_outs, t)
            if not finite.all():
                for k in prange(k0, k1):
                    gathered_row(ins, outs, i, k)
                continue
            m, totals, rescale = combine(ms, sums)
            for p in prange(parts):
                j0, j1 = slice_bounds(x.shape[1], p, parts)
                block_ins = block_rows_at(ins, i, j0, j1)
                block_outs = block_rows_at(outs, i, j0, j1)
                constants = tile_constants(totals, rescale[p], m)
                tile_output(block_ins, block_outs, t, m, constants)

    @parallel
    def parallel_tile_range(ins, outs, width, parts):
        tasks = ins[0].shape[0] * ((ins[0].shape[2] + width - 1) // width)
        for part in prange(parts):
            begin, end = tasks * part // parts, tasks * (part + 1) // parts
            tile_range(ins, outs, width, begin, end)

    return SimpleNamespace(
        operation=op,
        row_range=row_range,
        streamed_row_range=streamed_row_range,
        tile_range=tile_range,
        parallel_row_range=parallel_row_range,
        parallel_streamed_row_range=parallel_streamed_row_range,
        parallel_row_slices=parallel_row_slices,
        parallel_tile_slices=parallel_tile_slices,
        parallel_tile_range=parallel_tile_range,
    )


KERNELS = {
    op.name: make_kernels(op)
    for op in (
        operations.SOFTMAX,
        operations.LOG_SOFTMAX,
        operations.SOFTMAX_BACKWARD,
        operations.LOG_SOFTMAX_BACKWARD,
        operations.SOFTMAX_JVP,
        operations.SOFTMAX_JVP_WITH_SOFTMAX,
        operations.LOGSUMEXP,
        operations.WEIGHTED_LOGSUMEXP,
        operations.ROW_PARTIALS,
        operations.SOFTMAX_GIVEN,
        operations.LOG_SOFTMAX_GIVEN,
    )
}


def run(
    kernels,
    axis: int,
    threads: int,
    inputs: tuple,
    where: np.ndarray | None,
    outputs: tuple,
    row_inputs: tuple = (),
) -> None:
    """Hand the arrays to a walk as C-contiguous ``(M*K, N)`` rows or ``(M, N, K)`` blocks, the
    per-row inputs (x's shape without the axis) after the others (`row_input`), and the mask,
    if any, as the last input (`kernel_mask`).

    C- and Fortran-contiguous arrays are viewed, never copied (Fortran as its C-contiguous
    transpose, chosen by the first input); anything else goes through a C-contiguous scratch,
    and so does an output that is an input when the walk is by columns (Note: aliasing).
    """
    x = inputs[0]
    if x.flags.f_contiguous and not x.flags.c_contiguous:
        inputs, outputs = tuple(a.T for a in inputs), tuple(a.T for a in outputs)
        row_inputs = tuple(a.T for a in row_inputs)
        where = None if where is None else where.T
        x, axis = inputs[0], x.ndim - 1 - axis
    m, n = math.prod(x.shape[:axis]), x.shape[axis]
    k = x.size // (m * n)
    as_rows = k == 1 or n == 1
    block = (m * k, n) if as_rows else (m, n, k)
    row_block = (m * k, 1) if as_rows else (m, 1, k)  # x's shape without the axis
    # Plain loops and lists, not generators: this Python is all a (1, 10) call costs besides
    # the walk (generators took 1 us more of its 7).
    private = False
    for a in inputs:
        private = private or np.may_share_memory(outputs[0], a)
    ins = [kernel_input(a, block) for a in inputs]
    for a in row_inputs:
        ins.append(row_input(a, row_block, block))
    if where is not None:
        ins.append(kernel_mask(where, axis, as_rows))
    copy_back: list[tuple[np.ndarray, np.ndarray]] = []
    if kernels.operation.per_row:  # one element a row
        block = row_block
    outs = [kernel_output(outputs[0], block, as_rows or not private, copy_back)]
    for a in outputs[1:]:
        outs.append(kernel_output(a, block, True, copy_back))
    ins, outs = tuple(ins), tuple(outs)
    if as_rows:
        walk_rows(kernels, ins, outs, private, threads)
    else:
        walk_columns(kernels, ins, outs, threads)
    for target, result in copy_back:
        np.copyto(target, result.reshape(target.shape))


def streams(op: operations.Operation, x: np.ndarray) -> bool:
    """Whether the rows walk streams ``op``'s output of arrays like ``x``, unless it is an input
    (see the Note on streaming stores)."""
    return op.streams and x.nbytes > STREAM_BYTES and x.shape[-1] * x.itemsize >= STREAM_ROW_BYTES


def walk_rows(kernels, ins: tuple, outs: tuple, private: bool, threads: int) -> None:
    """The rows walk over C-contiguous ``(rows, n)`` arrays, on up to ``threads`` threads;
    fewer long rows than threads share each row (kernels.cpp walk_rows)."""
    x = ins[0]
    rows, n = x.shape
    stream = not private and streams(kernels.operation, x)  # a private row goes through L1
    used = threads_for(threads, x.size)
    if rows < used and n >= SPLIT_ELEMENTS:
        with NumbaThreads(used):
            kernels.parallel_row_slices(ins, outs, private, used)
        return
    used = min(used, rows)
    if used > 1:
        with NumbaThreads(used):
            if stream:
                kernels.parallel_streamed_row_range(ins, outs, used)
            else:
                kernels.parallel_row_range(ins, outs, private, used)
    elif stream:
        kernels.streamed_row_range(ins, outs, 0, rows)
    else:
        kernels.row_range(ins, outs, private, 0, rows)


def walk_columns(kernels, ins: tuple, outs: tuple, threads: int) -> None:
    """The columns walk over C-contiguous ``(M, N, K)`` blocks, on up to ``threads`` threads;
    with fewer tiles than threads, the threads share each tile's rows, each with 4 grains of
    work at least (kernels.cpp walk_columns)."""
    x = ins[0]
    m, n, k = x.shape
    width = min(MAX_TILE_WIDTH, k)
    tiles = m * -(-k // width)
    used = threads_for(threads, x.size)
    if tiles < used:
        used = min(used, n, max(1, x.size // (4 * GRAIN_ELEMENTS)))
        if used > 1:
            with NumbaThreads(used):
                kernels.parallel_tile_slices(ins, outs, width, used)
            return
    used = min(used, tiles)
    if used > 1:
        with NumbaThreads(used):
            kernels.parallel_tile_range(ins, outs, width, used)
    else:
        kernels.tile_range(ins, outs, width, 0, tiles)


def kernel_input(a: np.ndarray, block: tuple) -> np.ndarray:
    """``a`` as a C-contiguous ``block``: itself when it is one already, else a view or a copy."""
    if a.shape == block and a.flags.c_contiguous:
        return a
    return np.ascontiguousarray(a).reshape(block)


def row_input(a: np.ndarray, row_block: tuple, block: tuple) -> np.ndarray:
    """A per-row input as a read-only view of the walk's ``block`` whose stride along the axis
    is 0 (operands.py's Note on per-row inputs), from ``a`` as a C-contiguous ``row_block``."""
    return np.broadcast_to(np.ascontiguousarray(a).reshape(row_block), block)


def kernel_mask(where: np.ndarray, axis: int, as_rows: bool) -> np.ndarray:
    """The mask as a read-only view of the walk's block (operands.py's Note on the mask): its
    dimensions but the axis merged where their strides allow into the leading ones, then the
    axis (and the inner ones, merged into one, for the columns walk). A mask whose inner
    dimensions do not merge into one is copied first (C order merges them)."""
    shape, strides = where.shape, where.strides
    if as_rows:  # rows over every dimension but the axis: the others are 1 (K or N is 1)
        dims = _merged(shape[:axis] + shape[axis + 1 :], strides[:axis] + strides[axis + 1 :])
        dims.append((shape[axis], strides[axis]))
    else:
        inner = _merged(shape[axis + 1 :], strides[axis + 1 :])
        if len(inner) > 1:
            return kernel_mask(np.ascontiguousarray(where), axis, as_rows)
        dims = [*_merged(shape[:axis], strides[:axis]), (shape[axis], strides[axis]), *inner]
    sizes, steps = zip(*dims, strict=True)
    return np.lib.stride_tricks.as_strided(where, sizes, steps, writeable=False)


def _merged(shape: tuple, strides: tuple) -> list[tuple[int, int]]:
    """``(size, stride)`` of dimensions that index like ``shape`` with ``strides``, as few as
    they can be: a dimension of 1 dropped, two merged when the outer's stride spans the
    inner; one of size 1 for none."""
    dims: list[tuple[int, int]] = []
    for size, stride in zip(shape, strides, strict=True):
        if size == 1:
            continue
        if dims and dims[-1][1] == size * stride:
            dims[-1] = (dims[-1][0] * size, stride)
        else:
            dims.append((size, stride))
    return dims or [(1, 0)]


def kernel_output(a: np.ndarray, block: tuple, may_view: bool, copy_back: list) -> np.ndarray:
    """``a`` as the walk's C-contiguous output, or a scratch that is copied back into it."""
    if may_view and a.flags.c_contiguous:
        return a if a.shape == block else a.reshape(block)
    scratch = np.empty(block, a.dtype)
    copy_back.append((a, scratch))
    return scratch


def softmax(
    x: np.ndarray, where: np.ndarray | None, out: np.ndarray, axis: int, threads: int
) -> None:
    run(KERNELS["softmax"], axis, threads, (x,), where, (out,))


def log_softmax(
    x: np.ndarray, where: np.ndarray | None, out: np.ndarray, axis: int, threads: int
) -> None:
    run(KERNELS["log_softmax"], axis, threads, (x,), where, (out,))


def softmax_backward(
    y: np.ndarray,
    grad: np.ndarray,
    where: np.ndarray | None,
    out: np.ndarray,
    axis: int,
    threads: int,
) -> None:
    run(KERNELS["softmax_backward"], axis, threads, (y, grad), where, (out,))


def log_softmax_backward(
    y: np.ndarray,
    grad: np.ndarray,
    where: np.ndarray | None,
    out: np.ndarray,
    axis: int,
    threads: int,
) -> None:
    run(KERNELS["log_softmax_backward"], axis, threads, (y, grad), where, (out,))


def softmax_jvp(
    x: np.ndarray,
    v: np.ndarray,
    where: np.ndarray | None,
    out: np.ndarray,
    s_out: np.ndarray | None,
    axis: int,
    threads: int,
) -> None:
    if s_out is None:
        run(KERNELS["softmax_jvp"], axis, threads, (x, v), where, (out,))
    else:
        run(KERNELS["softmax_jvp_with_softmax"], axis, threads, (x, v), where, (out, s_out))


def logsumexp(
    x: np.ndarray,
    b: np.ndarray | None,
    where: np.ndarray | None,
    out: np.ndarray,
    sign_out: np.ndarray | None,
    axis: int,
    threads: int,
) -> None:
    sign = np.empty_like(out) if sign_out is None else sign_out
    if b is None:
        run(KERNELS["logsumexp"], axis, threads, (x,), where, (out, sign))
    else:
        run(KERNELS["weighted_logsumexp"], axis, threads, (x, b), where, (out, sign))
    if sign_out is None:
        out[sign < 0] = np.nan  # the log of a negative sum


def row_partials(
    x: np.ndarray,
    where: np.ndarray | None,
    max_out: np.ndarray,
    sum_out: np.ndarray,
    axis: int,
    threads: int,
) -> None:
    run(KERNELS["row_partials"], axis, threads, (x,), where, (max_out, sum_out))


def softmax_given(
    x: np.ndarray,
    where: np.ndarray | None,
    row_max: np.ndarray,
    row_sum: np.ndarray,
    out: np.ndarray,
    axis: int,
    threads: int,
) -> None:
    run(KERNELS["softmax_given"], axis, threads, (x,), where, (out,), (row_max, row_sum))


def log_softmax_given(
    x: np.ndarray,
    where: np.ndarray | None,
    row_max: np.ndarray,
    row_sum: np.ndarray,
    out: np.ndarray,
    axis: int,
    threads: int,
) -> None:
    run(KERNELS["log_softmax_given"], axis, threads, (x,), where, (out,), (row_max, row_sum))
