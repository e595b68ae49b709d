"""Numba backend: the C++ kernels of ``cpp/src/`` (kernels.cpp and the rows.hpp, columns.hpp
it includes), one-to-one, as JIT-compiled loops.

The five functions take the arguments ``_api.py`` passes every backend and compute what
``_reference.py`` computes, to rounding; that module states the contract (one shape and one
dtype, float32 or float64; a valid non-negative axis; outputs disjoint from the inputs or exactly
one of them). ``_backends.py`` imports this module, and so Numba, only for the numba backend.

Each array is an ``(M, N, K)`` block reduced along N, walked as kernels.cpp walks it: as
contiguous rows when ``K == 1`` (or ``N == 1``), else as tiles of N x W columns whose inner loops
run along contiguous K. The passes, the exp, the limits at +-inf and NaN and the float64 sums are
those of kernels.cpp, whose Notes give the reasons. The differences come from LLVM vectorising
these loops instead of hand-written intrinsics:

- The row max works on integer keys (`_row_max`): LLVM vectorises no float max reduction.
- Partial sums stay in the row's dtype for 256 elements (8 rows of a tile), but for the sums of
  stored exps, which are float64 throughout, before they go into a
  compensated float64 total (see the Note on compensated folding); kernels.cpp widens them every
  two vectors. LLVM gives a loop one vector width, so a float64 accumulator in the exp loop
  halved its float32 speed. Longer partials are too coarse: LLVM keeps 32 of them, and with 128
  terms each (folding every 4096) the N = 4096 normal row of test_accuracy.py exceeded its
  bound (1.12x); with 8 terms it is well inside.
- Tiles are as wide as K allows up to 16384 columns (columns.hpp: 1024): every inner loop pays
  a fixed cost for LLVM's run-time overlap checks, and narrower tiles measured slower at every
  shape tried (Zen 4 VM, one thread: (4096, 1024) along axis 0 2.9 ms at 1024 columns against
  7.8 at 512; (4096, 4096) 14.5 ms at 4096 against 30.5 at 512; (16, 262144) 4.3 ms at 16384,
  5.7 at 65536). With fewer tiles than threads, the threads share each tile's rows, as in
  kernels.cpp ((4096, 1024) along axis 0 on 2 threads: softmax 3.1-3.4 -> 1.4 ms, backward
  2.9-3.3 -> 1.6 against half-width tiles), but without its rule for an unbalanced last tile.
- softmax and softmax_jvp along a non-contiguous axis keep exp(x - max) in ``out`` between the
  passes; columns.hpp computes it again (one more exp, one less write and read).
- No loop writes an array it also reads under another name (see the Note on aliasing), and
  softmax_jvp keeps exp(x - max) in ``out`` rather than in a scratch buffer.
- A layout that is neither C- nor Fortran-contiguous is copied into a C-contiguous scratch
  (kernels.cpp gathers it row by row).
- Fewer long rows than threads share each row between the threads, as kernels.cpp does, but
  a row where some thread's slice has a max that is not finite is redone by one thread. Rows
  are not summed in blocks against a running max (rows.hpp does for rows longer than L2), and
  no next row is prefetched.
- Only softmax_backward streams its output past the cache, in the rows walk, for rows of 4 KiB
  or more (kernels.cpp: every op and walk, rows of 1 KiB; see the Note on streaming stores).

[Note: fastmath]
We promise IEEE results at inf and NaN, so no function assumes them away (no ``nnan``/``ninf``).
The row sums (`_make_fold_sum`) have ``reassoc``, which lets LLVM split them into vector lanes,
as kernels.cpp does by hand: the order of a sum changes its rounding, not whether it is inf or
NaN. `_exp` has ``contract`` (FMA), which only removes roundings. Nothing else has flags:
``reassoc`` on ``(x - max) - lse`` would be free to round ``max + lse`` first.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic, overload
from numba.np.arrayobj import make_array, populate_array

from . import _threads

__all__ = ["log_softmax", "log_softmax_backward", "softmax", "softmax_backward", "softmax_jvp"]

_SOFTMAX, _LOG_SOFTMAX, _SOFTMAX_BACKWARD, _LOG_SOFTMAX_BACKWARD, _SOFTMAX_JVP = range(5)

# Constants as in kernels.cpp, but for the folding and the tile widths (see above). The grain is
# kernels.cpp's too: with Numba's omp threading layer, 8 K elements per thread measured best
# on 2 threads ((64, 1000) softmax 38.6 -> 22.5 us, its backward 17.5 -> 12.3 against 32 K).
_FOLD_ELEMENTS = 256
_FOLD_ROWS = 8
_GRAIN_ELEMENTS = 1 << 13
_MAX_TILE_WIDTH = 16384
_SPLIT_ELEMENTS = 1 << 16
# Streaming stores (see the Note on them): the shortest row that streams, and the scratch chunk
# a row's outputs go through (4 KiB of float32, in L1).
_STREAM_ROW_BYTES = 4096
_STREAM_CHUNK = 1024
_LINE_BYTES = 64
# Numba's thread pool size, fixed when Numba is imported (looked up once: each call's glue is a
# visible part of a small call).
_NUMBA_THREADS = numba.config.NUMBA_NUM_THREADS


def _can_cache() -> bool:
    """Whether Numba finds a writable cache directory for this file (the package's
    __pycache__, NUMBA_CACHE_DIR or the user's cache); without one, ``cache=True`` raises at
    the decorator, and a read-only install must still compute, compiling in each process."""
    try:
        njit(cache=True)(_can_cache_probe)
    except RuntimeError:  # "cannot cache function ...: no locator available"
        return False
    return True


def _can_cache_probe():
    return 0


_JIT = {"cache": _can_cache(), "nogil": True}


# ---------------------------------------------------------------------------------------------
# exp and the row max, one implementation per dtype behind a generic name.


def _exp(x):
    """``exp(x)`` of one float32 or float64, written so that LLVM vectorises its loops.

    cpp/src/vec_exp.hpp, operation for operation: clamp, Cody-Waite reduction, a polynomial of
    degree 5 (float32) or 11 (float64), 2**n built in the exponent bits in two halves.
    Measured: within 2.03 ulp (float32, every 101st float bit pattern) and 0.87 ulp (float64,
    3e6 points of [-746, 710]) for normal results, within 1.32 smallest subnormals below them;
    exp(-inf) = 0, exp(+inf) = +inf, NaN in gives NaN out.
    """
    raise NotImplementedError("only callable from Numba-compiled code")


def _row_max(row):
    """The maximum of a contiguous row, NaN if the row's top key is a NaN.

    [Note: integer keys]
    LLVM vectorises a float max reduction only if it may assume there are no NaNs. The bits of
    a float read as a signed integer, with the magnitude bits flipped when negative, order like
    the float, and an integer max reduction vectorises. A NaN may win or lose here; if it loses,
    it still makes the row sum NaN, and if it wins the max is not finite: the row is NaN either
    way, as it is in kernels.cpp.
    """
    raise NotImplementedError("only callable from Numba-compiled code")


def _make_exp(float_t, int_t, *, lowest, highest, ln2_head, ln2_tail, coefficients):
    """``_exp`` for one dtype; exp(r) is Horner's rule over ``coefficients``, highest first."""
    mantissa_bits = np.finfo(float_t).nmant
    bias = int_t(np.finfo(float_t).maxexp - 1)
    magic = float_t(1.5 * 2.0**mantissa_bits)  # adding it rounds to an integer
    magic_bits = magic.view(int_t)
    lowest, highest = float_t(lowest), float_t(highest)
    log2e, ln2_head, ln2_tail = float_t(1 / math.log(2)), float_t(ln2_head), float_t(ln2_tail)
    head, rest = float_t(coefficients[0]), tuple(float_t(c) for c in coefficients[1:])

    def exp(x):
        xc = lowest if x < lowest else x  # NaN compares false and passes both clamps
        xc = highest if xc > highest else xc
        shifted = xc * log2e + magic
        n = shifted - magic
        n_int = float_t(shifted).view(int_t) - magic_bits
        r = xc - n * ln2_head
        r = r - n * ln2_tail
        p = head
        for c in rest:
            p = p * r + c
        half = n_int >> 1
        scale_a = int_t((half + bias) << mantissa_bits).view(float_t)
        scale_b = int_t((n_int - half + bias) << mantissa_bits).view(float_t)
        return (p * scale_a) * scale_b

    return exp


_EXPS = {
    types.float32: _make_exp(
        np.float32,
        np.int32,
        lowest=-104.0,
        highest=89.0,
        ln2_head=0.693359375,
        ln2_tail=-2.12194440e-4,
        coefficients=(8.265906014e-3, 4.189947993e-2, 1.666811407e-1, 4.999913573e-1,
                      9.999994636e-1, 1.0),
    ),
    types.float64: _make_exp(
        np.float64,
        np.int64,
        lowest=-746.0,
        highest=710.0,
        ln2_head=6.93145751953125e-1,
        ln2_tail=1.42860682030941723212e-6,
        coefficients=(2.510520637395701e-08, 2.7626357241447223e-07, 2.7557255425746435e-06,
                      2.4801504346997686e-05, 0.00019841269874800493, 0.0013888888932488599,
                      0.008333333333326141, 0.04166666666657314, 0.1666666666666667,
                      0.5000000000000006, 1.0, 1.0),
    ),
}  # fmt: skip


def _make_row_max(float_t, int_t):
    magnitude = int_t(np.iinfo(int_t).max)
    sign_shift = int_t(np.iinfo(int_t).bits - 1)
    lowest_key = int_t(np.iinfo(int_t).min)

    def row_max(row):
        bits = row.view(int_t)
        best = lowest_key
        for i in range(bits.shape[0]):
            key = bits[i] ^ ((bits[i] >> sign_shift) & magnitude)
            best = key if key > best else best
        return int_t(best ^ ((best >> sign_shift) & magnitude)).view(float_t)

    return row_max


_ROW_MAXES = {
    types.float32: _make_row_max(np.float32, np.int32),
    types.float64: _make_row_max(np.float64, np.int64),
}


@overload(_exp, jit_options={"fastmath": {"contract"}})
def _overload_exp(x):
    return _EXPS.get(x)


@overload(_row_max)
def _overload_row_max(row):
    return _ROW_MAXES.get(row.dtype)


@njit(**_JIT)
def _is_finite(v):
    return -np.inf < v < np.inf


# ---------------------------------------------------------------------------------------------
# [Note: borrowed rows]
# A view such as ``x[r]`` takes a reference to its array's memory and drops it when done, each
# with an atomic instruction, which also waits for the stores in flight. Taken per row, the
# views cost a (64, 1000) softmax_backward a fifth of its time and a (256, 256) one a third
# (Zen 4 VM, one thread: 15.6 -> 12.7 and 33 -> 21 us with `_row`). The walks take their rows
# with `_row`, a view that holds no reference (its views and slices hold none either): the
# arrays it is taken from outlive every call that uses it. Only functions compiled without
# ``parallel=True`` use it: Numba's parallel passes take an array a call returns for a new one,
# and dropped ``_row(out, r)[:] = own`` as a write to an array nothing read afterwards.


@intrinsic
def _row(typingctx, a, r):
    """``a[r]`` of a C-contiguous array of two or more dimensions, holding no reference."""
    if not (isinstance(a, types.Array) and a.ndim >= 2 and a.layout == "C"):
        return None
    if not isinstance(r, types.Integer):
        return None
    view_type = a.copy(ndim=a.ndim - 1)

    def codegen(context, builder, signature, args):
        array = make_array(a)(context, builder, args[0])
        index = context.cast(builder, args[1], r, types.intp)
        shape = cgutils.unpack_tuple(builder, array.shape, a.ndim)
        strides = cgutils.unpack_tuple(builder, array.strides, a.ndim)
        view = make_array(view_type)(context, builder)
        populate_array(
            view,
            data=cgutils.pointer_add(builder, array.data, builder.mul(index, strides[0])),
            shape=shape[1:],
            strides=strides[1:],
            itemsize=array.itemsize,
            meminfo=None,
        )
        return view._getvalue()

    return view_type(a, r), codegen


@njit(**_JIT)
def _tile_row(a, i, j, k0, k1):
    """``a[i, j, k0:k1]`` of a C-contiguous block, holding no reference (see `_row`)."""
    return _row(_row(a, i), j)[k0:k1]


# ---------------------------------------------------------------------------------------------
# [Note: streaming stores]
# As in kernels.cpp (its Note of that name), an output larger than the cache can keep is better
# written with non-temporal stores, which do not first read the lines they write. LLVM
# vectorises no loop with such a store in it, so a row's outputs are computed a chunk at a time
# into a scratch in L1 by an ordinary loop, and `_stream_copy` moves whole cache lines of it out.
# Here only softmax_backward streams, in the rows walk (`_streamed_rows`), for rows of 4 KiB or
# more, when its output is not an input. Measured on the Zen 4 VM, one thread, against the same
# walk storing normally: (8192, 8192) 38.5 -> 29.5 ms, (1024, 4096) 2.00 -> 1.68 ms. Streaming
# log_softmax gained 3-6% there, log_softmax_backward lost 24-28%, and rows of 512 lost 15-50%;
# and a streaming branch inside `_row_op` cost every row that did not stream 3-17%.


@intrinsic
def _stream_copy(typingctx, dst, src, count):
    """``dst[:count] = src[:count]`` with non-temporal stores of whole cache lines: ``dst`` must
    start on a line and ``count`` fill whole lines. ``dst`` and ``src`` are contiguous, 1-d."""
    if not (isinstance(dst, types.Array) and isinstance(src, types.Array)):
        return None
    if dst.dtype != src.dtype or dst.ndim != 1 or src.ndim != 1:
        return None

    def codegen(context, builder, signature, args):
        target = make_array(dst)(context, builder, args[0])
        source = make_array(src)(context, builder, args[1])
        stop = context.cast(builder, args[2], signature.args[2], types.intp)
        element = context.get_data_type(dst.dtype)
        element_bytes = context.get_abi_sizeof(element)
        line = ir.VectorType(element, _LINE_BYTES // element_bytes)
        non_temporal = builder.module.add_metadata([ir.Constant(ir.IntType(32), 1)])
        step = ir.Constant(stop.type, line.count)
        with cgutils.for_range_slice(builder, stop.type(0), stop, step) as (i, _):
            from_ = builder.bitcast(builder.gep(source.data, [i]), line.as_pointer())
            to = builder.bitcast(builder.gep(target.data, [i]), line.as_pointer())
            store = builder.store(builder.load(from_, align=element_bytes), to, align=_LINE_BYTES)
            store.set_metadata("nontemporal", non_temporal)
        return context.get_dummy_value()

    return types.none(dst, src, count), codegen


@intrinsic
def _stream_fence(typingctx):
    """Orders this thread's non-temporal stores before its later stores, as stream_fence does in
    kernels.cpp (a full fence: LLVM's lighter ones do not cover non-temporal stores on x86)."""

    def codegen(context, builder, signature, args):
        builder.fence("seq_cst")
        return context.get_dummy_value()

    return types.none(), codegen


# ---------------------------------------------------------------------------------------------
# Sums, as fold_sum and column_sum in kernels.cpp: partial sums in the row's dtype, vectorised
# by LLVM, then added into float64. Each sum is one term function closed into a fold, since a
# function passed to a compiled function as an argument would make its callers uncachable.
#
# [Note: compensated folding]
# The float64 total takes one addition per fold, 10**6 / 256 of them for a row of 10**6; for
# float64 input it is no wider than the partials, and a plain running total lost ~18 units of
# rounding (test_threads.py, a float64 row of 300001). Neumaier's compensated addition keeps it to
# about one rounding for a few operations per fold. A float32 partial of 256 terms, as LLVM
# splits it into lanes, was off by up to 6 roundings, and a softmax's 1 / sum with it: past the
# bound at one element of (41945, 200) on an Intel Xeon. So `_sum`, which sums the stored exps
# of softmax and softmax_jvp, adds in float64 (0.30 -> 0.43 us a row of 4096 on that machine),
# as kernels.cpp does after four terms; the sums with exp in the loop keep float32 partials.
# A tile folds every 8 rows: each column's partial is a sequential sum, and 256 rows of it
# exceeded the float32 softmax bound.


@njit(nogil=True)
def _add_compensated(total, carry, value):
    """Neumaier's step: ``total + carry`` gains ``value``, ``carry`` keeps what rounding lost."""
    new_total = total + value
    if abs(total) >= abs(value):
        carry += (total - new_total) + value
    else:
        carry += (value - new_total) + total
    return new_total, carry


@njit(nogil=True)
def _compensated_result(total, carry):
    return total + carry if _is_finite(total) else total  # inf - inf in the carry is no NaN


def _make_fold_sum(term, wide=False):
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
        for start in range(0, a.shape[0], _FOLD_ELEMENTS):
            stop = start + _FOLD_ELEMENTS  # slices from 0: indices LLVM knows are non-negative
            part = partial_sum(a[start:stop], b[start:stop], m)
            total, carry = _add_compensated(total, carry, np.float64(part))
        return _compensated_result(total, carry)

    return njit(nogil=True)(fold_sum)


def _make_column_sum(add_row):
    """Per-column sums over tile ``t`` of ``add_row(part, a_row, b_row, m, out_row)``."""

    def column_sum(a, b, m, out, t):
        i, k0, k1 = t
        part = np.zeros(k1 - k0, a.dtype)
        total, carry = np.zeros(k1 - k0), np.zeros(k1 - k0)
        for j in range(a.shape[1]):
            add_row(
                part, _tile_row(a, i, j, k0, k1), _tile_row(b, i, j, k0, k1), m,
                _tile_row(out, i, j, k0, k1),
            )  # fmt: skip
            if (j + 1) % _FOLD_ROWS == 0 or j + 1 == a.shape[1]:
                for c in range(part.shape[0]):
                    total[c], carry[c] = _add_compensated(total[c], carry[c], part[c])
                    part[c] = 0
        for c in range(total.shape[0]):
            total[c] = _compensated_result(total[c], carry[c])
        return total

    return njit(nogil=True)(column_sum)


@njit(nogil=True)
def _exp_term(x, unused, m, i):
    return _exp(x[i] - m)


@njit(nogil=True)
def _product_term(a, b, unused, i):
    return a[i] * b[i]


@njit(nogil=True)
def _value_term(a, unused, unused_m, i):
    return a[i]


@njit(nogil=True)
def _add_exp_store(part, x, unused, m, e):
    for c in range(part.shape[0]):
        value = _exp(x[c] - m[c])
        e[c] = value
        part[c] += value


@njit(nogil=True)
def _add_exp(part, x, unused, m, unused_out):
    for c in range(part.shape[0]):
        part[c] += _exp(x[c] - m[c])


@njit(nogil=True)
def _add_product(part, a, b, unused, unused_out):
    for c in range(part.shape[0]):
        part[c] += a[c] * b[c]


@njit(nogil=True)
def _add_value(part, a, unused, unused_m, unused_out):
    for c in range(part.shape[0]):
        part[c] += a[c]


_exp_sum = _make_fold_sum(_exp_term)
_dot = _make_fold_sum(_product_term)
_sum = _make_fold_sum(_value_term, wide=True)
_column_exp_store_sum = _make_column_sum(_add_exp_store)
_column_exp_sum = _make_column_sum(_add_exp)
_column_dot = _make_column_sum(_add_product)
_column_total = _make_column_sum(_add_value)


@njit(nogil=True)
def _store_exp(x, m, e):
    """e = exp(x - m), elementwise: its sum is taken afterwards (Note: deterministic sums)."""
    for i in range(x.shape[0]):
        e[i] = _exp(x[i] - m)


# ---------------------------------------------------------------------------------------------
# One contiguous row.
#
# [Note: aliasing]
# LLVM vectorises a loop that reads one array and writes another only after a run-time check
# that they do not overlap; an output that *is* its input fails the check and the loop runs
# scalar, 4x slower. So no kernel loop writes an array it also reads through a second name:
# the rows walk gives a row whose output is an input a private buffer, the columns walk gets
# such outputs as scratch arrays from `_run`. ``s`` of softmax_jvp is written only after ``x``
# was last read, so it may be ``x``; exp(x - max) is kept in ``out``.
#
# [Note: deterministic sums]
# The check can also fail for arrays that merely lie close together: LLVM compares the
# distance between the pointers with the loop's vector step, not their extents. A loop that
# stored exp(x - m) and summed it in one went scalar then, and its reassociated sum came out
# in another order: the same call rounded its last bit differently from one allocation of
# the arrays to the next (softmax_jvp in place against out=None, once in a few runs). So no
# loop that sums also stores: exps are stored, then summed by a loop that only reads.


@njit(**_JIT)
def _limit_row(x, out, log):
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


@njit(**_JIT)
def _row_first_pass(op, x, g, out):
    """``(m, total, dot)`` of a row or a slice of one: its max (forward ops), the float64 sum
    the second pass needs (of exp(x - m), of y g, of g) and softmax_jvp's sum of exp(x - m) v.
    softmax and softmax_jvp keep exp(x - m) in ``out``. Nothing past the max when it is not
    finite: the row takes its limit then (see rows.hpp).
    """
    t = x.dtype.type
    if op == _SOFTMAX_BACKWARD:
        return t(0), _dot(x, g, 0), 0.0
    if op == _LOG_SOFTMAX_BACKWARD:
        return t(0), _sum(g, g, 0), 0.0
    m = _row_max(x)
    if not _is_finite(m):
        return m, 0.0, 0.0
    if op == _LOG_SOFTMAX:
        return m, _exp_sum(x, x, m), 0.0
    _store_exp(x, m, out)
    total = _sum(out, out, 0)
    return m, total, _dot(out, g, 0) if op == _SOFTMAX_JVP else 0.0


@njit(**_JIT)
def _pass_constants(op, total, dot):
    """``(inv, a, b)`` of `_row_second_pass` from a row's combined float64 sums: 1 / total,
    a = log(total) for log_softmax and the sum itself for the backward ops, b = dot / total.
    A backward op's sum may be 0 and needs no division."""
    if op in (_SOFTMAX_BACKWARD, _LOG_SOFTMAX_BACKWARD):
        return 1.0, total, 0.0
    return 1.0 / total, math.log(total) if op == _LOG_SOFTMAX else total, dot / total


@njit(nogil=True)
def _backward_values(y, grad, out, a):
    """softmax_backward's ``out = y (grad - a)`` over a row or a part of one."""
    for i in range(out.shape[0]):
        out[i] = y[i] * (grad[i] - a)


@njit(**_JIT)
def _row_second_pass(op, x, g, out, s, want_s, m, scale, a, b):
    """The outputs of a row or a slice of one, as `_tile_second_pass` computes a tile's, with
    one scalar for each of its per-column constants."""
    if op == _SOFTMAX_BACKWARD:
        _backward_values(x, g, out, a)
    elif op == _LOG_SOFTMAX_BACKWARD:
        for i in range(x.shape[0]):
            out[i] = g[i] - _exp(x[i]) * a
    elif op == _LOG_SOFTMAX:
        for i in range(x.shape[0]):
            out[i] = (x[i] - m) - a  # [Note: order of subtraction] in rows.hpp
    elif op == _SOFTMAX:
        for i in range(out.shape[0]):
            out[i] *= scale
    else:
        if want_s:
            for i in range(out.shape[0]):
                s[i] = out[i] * scale
        for i in range(out.shape[0]):
            out[i] = (out[i] * scale) * (g[i] - b)


@njit(**_JIT)
def _row_limit(op, x, out, s, want_s):
    """A row whose max is not finite."""
    if op == _SOFTMAX_JVP:
        saturated = _limit_row(x, s if want_s else out, False)
        out[:] = 0 if saturated else np.nan  # the Jacobian of a saturated softmax is zero
    else:
        _limit_row(x, out, op == _LOG_SOFTMAX)


@njit(**_JIT)
def _row_op(op, x, g, out, s, want_s):
    """One row of ``op``. ``g``, and ``s`` unless ``want_s``, are unused dummies."""
    m, total, dot = _row_first_pass(op, x, g, out)
    if not _is_finite(m):
        _row_limit(op, x, out, s, want_s)
        return
    t = x.dtype.type
    inv, a, b = _pass_constants(op, total, dot)
    _row_second_pass(op, x, g, out, s, want_s, m, t(inv), t(a), t(b))


# ---------------------------------------------------------------------------------------------
# A tile: rows 0..N of columns k0..k1 at index i of M, vectors running across the columns. Here
# no output is an input (see the Note on aliasing).


@njit(**_JIT)
def _column_max(x, t):
    i, k0, k1 = t
    m = np.full(k1 - k0, -np.inf, x.dtype)
    for j in range(x.shape[1]):
        row = _tile_row(x, i, j, k0, k1)
        for c in range(m.shape[0]):
            m[c] = row[c] if row[c] > m[c] else m[c]  # NaN loses, as in simd::max
    return m


@njit(**_JIT)
def _scale_columns(a, factor, t):
    """a *= factor[column] over tile ``t``."""
    i, k0, k1 = t
    for j in range(a.shape[1]):
        row = _tile_row(a, i, j, k0, k1)
        for c in range(factor.shape[0]):
            row[c] *= factor[c]


@njit(**_JIT)
def _tile_first_pass(op, x, g, out, t):
    """``(finite, m, sums, dots)`` of tile ``t``, per column: the maxima (forward ops), the sums
    the second pass needs and softmax_jvp's sums of exp(x - m) * v. softmax and softmax_jvp keep
    exp(x - m) in ``out``. ``finite`` is False when a maximum is not finite (redo column-wise).
    """
    i, k0, k1 = t
    m = np.zeros(k1 - k0, x.dtype)
    dots = np.zeros(k1 - k0)
    if op == _SOFTMAX_BACKWARD:
        return True, m, _column_dot(x, g, x[i, 0], out, t), dots
    if op == _LOG_SOFTMAX_BACKWARD:
        return True, m, _column_total(g, g, x[i, 0], out, t), dots
    m = _column_max(x, t)
    for c in range(m.shape[0]):
        if not _is_finite(m[c]):
            return False, m, dots, dots
    if op == _LOG_SOFTMAX:
        return True, m, _column_exp_sum(x, x, m, out, t), dots
    sums = _column_exp_store_sum(x, x, m, out, t)
    if op == _SOFTMAX_JVP:
        dots = _column_dot(out, g, m, out, t)
    return True, m, sums, dots


@njit(**_JIT)
def _combine_slices(op, ms, sums, dots):
    """The second pass's per-column constants from the first passes over consecutive slices of
    a tile's rows (one row of ``ms``, ``sums``, ``dots`` per slice), combined exactly as
    kernels.cpp combines them: ``(m, scale, a, b)``, m the maxima, scale[p] the factor of slice
    p's exps (softmax, softmax_jvp), a and b as `_tile_second_pass` takes them.
    """
    parts, w = sums.shape
    forward = op != _SOFTMAX_BACKWARD and op != _LOG_SOFTMAX_BACKWARD
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
        inv, a[c], b[c] = _pass_constants(op, total[c], dot[c])
        for p in range(parts):
            scale[p, c] = rescale[p, c] * inv
    return m, scale, a, b


@njit(**_JIT)
def _tile_second_pass(op, x, g, out, s, want_s, t, m, scale, a, b):
    """The outputs of tile ``t``: softmax_backward ``y (g - a)``; log_softmax_backward
    ``g - exp(y) a``; log_softmax ``(x - m) - a``; softmax ``out * scale`` (out holds the exps);
    softmax_jvp ``s = out * scale``, ``s (v - b)``.
    """
    i, k0, k1 = t
    if op == _SOFTMAX:
        _scale_columns(out, scale, t)
        return
    for j in range(x.shape[1]):
        x_row, g_row = _tile_row(x, i, j, k0, k1), _tile_row(g, i, j, k0, k1)
        out_row = _tile_row(out, i, j, k0, k1)
        if op == _SOFTMAX_BACKWARD:
            for c in range(a.shape[0]):
                out_row[c] = x_row[c] * (g_row[c] - a[c])
        elif op == _LOG_SOFTMAX_BACKWARD:
            for c in range(a.shape[0]):
                out_row[c] = g_row[c] - _exp(x_row[c]) * a[c]
        elif op == _LOG_SOFTMAX:
            for c in range(a.shape[0]):
                out_row[c] = (x_row[c] - m[c]) - a[c]
        else:
            if want_s:
                s_row = _tile_row(s, i, j, k0, k1)
                for c in range(scale.shape[0]):
                    s_row[c] = out_row[c] * scale[c]
            for c in range(scale.shape[0]):
                out_row[c] = (out_row[c] * scale[c]) * (g_row[c] - b[c])


@njit(**_JIT)
def _tile_op(op, x, g, out, s, want_s, t):
    """``op`` on tile ``t``; False when a column's max is not finite (redo it column-wise)."""
    finite, m, sums, dots = _tile_first_pass(op, x, g, out, t)
    if not finite:
        return False
    m, scale, a, b = _combine_slices(op, m.reshape(1, -1), sums.reshape(1, -1), dots.reshape(1, -1))
    _tile_second_pass(op, x, g, out, s, want_s, t, m, scale[0], a, b)
    return True


@njit(**_JIT)
def _gathered_row(op, x, g, out, s, want_s, i, k):
    """Column k of a tile through contiguous copies, for a column whose max is not finite."""
    row_x, row_g = x[i, :, k].copy(), g[i, :, k].copy()
    row_out, row_s = np.empty_like(row_x), np.empty_like(row_x)
    _row_op(op, row_x, row_g, row_out, row_s, want_s)
    out[i, :, k] = row_out
    if want_s:
        s[i, :, k] = row_s


# ---------------------------------------------------------------------------------------------
# The walks, as kernels.cpp's parallel_ranges: a serial body over a range of tasks, run directly
# for one thread and once per thread (contiguous ranges) under prange for more. The caller sets
# Numba's thread count to ``parts`` before a parallel walk.


@njit(**_JIT)
def _rows(op, x, g, out, s, want_s, private, begin, end):
    own = np.empty(x.shape[1] if private else 0, x.dtype)  # see the Note on aliasing
    for r in range(begin, end):
        row_out = own if private else _row(out, r)  # see the Notes on aliasing, borrowed rows
        _row_op(op, _row(x, r), _row(g, r), row_out, _row(s, r), want_s)
        if private:
            _row(out, r)[:] = own


@njit(nogil=True)
def _stream_backward(y, grad, out, a, chunk):
    """`_backward_values` over a row, the whole cache lines of ``out`` through ``chunk`` and
    `_stream_copy`, the part before the first line and after the last stored normally."""
    n, line = out.shape[0], _LINE_BYTES // out.itemsize
    done = min(n, (_LINE_BYTES - out.ctypes.data % _LINE_BYTES) % _LINE_BYTES // out.itemsize)
    _backward_values(y[:done], grad[:done], out[:done], a)
    while n - done >= line:
        count = min(chunk.shape[0], (n - done) // line * line)
        end = done + count
        _backward_values(y[done:end], grad[done:end], chunk[:count], a)
        _stream_copy(out[done:end], chunk, count)
        done = end
    _backward_values(y[done:], grad[done:], out[done:], a)


@njit(**_JIT)
def _streamed_rows(y, grad, out, begin, end):
    """softmax_backward over rows [begin, end), as `_rows` computes it (the same bits), its
    outputs streamed (see the Note on streaming stores). ``out`` is no input."""
    chunk = np.empty(_STREAM_CHUNK, y.dtype)
    for r in range(begin, end):
        y_row, grad_row, out_row = _row(y, r), _row(grad, r), _row(out, r)
        _, total, _ = _row_first_pass(_SOFTMAX_BACKWARD, y_row, grad_row, out_row)
        _stream_backward(y_row, grad_row, out_row, y.dtype.type(total), chunk)
    _stream_fence()


@njit(**_JIT)
def _columns(op, x, g, out, s, want_s, width, begin, end):
    tiles_per_m = (x.shape[2] + width - 1) // width
    for task in range(begin, end):
        i, k0 = task // tiles_per_m, task % tiles_per_m * width
        k1 = min(k0 + width, x.shape[2])
        if not _tile_op(op, x, g, out, s, want_s, (i, k0, k1)):
            for k in range(k0, k1):
                _gathered_row(op, x, g, out, s, want_s, i, k)


@njit(parallel=True, **_JIT)
def _parallel_rows(op, x, g, out, s, want_s, private, parts):
    tasks = x.shape[0]
    for part in prange(parts):
        _rows(op, x, g, out, s, want_s, private, tasks * part // parts, tasks * (part + 1) // parts)


@njit(parallel=True, **_JIT)
def _parallel_streamed_rows(y, grad, out, parts):
    tasks = y.shape[0]
    for part in prange(parts):
        _streamed_rows(y, grad, out, tasks * part // parts, tasks * (part + 1) // parts)


@njit(**_JIT)
def _slice_bounds(n, p, parts):
    """Slice p of ``parts`` nearly equal slices of range(n)."""
    return n * p // parts, n * (p + 1) // parts


@njit(parallel=True, **_JIT)
def _parallel_row_slices(op, x, g, out, s, want_s, private, parts):
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
            j0, j1 = _slice_bounds(n, p, parts)
            ms[p, 0], sums[p, 0], dots[p, 0] = _row_first_pass(
                op, x[r, j0:j1], g[r, j0:j1], row_out[j0:j1]
            )
        if np.isfinite(ms).all():
            m, scale, a, b = _combine_slices(op, ms, sums, dots)
            for p in prange(parts):
                j0, j1 = _slice_bounds(n, p, parts)
                _row_second_pass(
                    op, x[r, j0:j1], g[r, j0:j1], row_out[j0:j1], s[r, j0:j1], want_s,
                    m[0], scale[p, 0], a[0], b[0],
                )  # fmt: skip
        else:
            _row_op(op, x[r], g[r], row_out, s[r], want_s)
        if private:
            out[r] = own


@njit(**_JIT)
def _block_rows(a, i, j0, j1):
    """Rows [j0, j1) of block i of ``a`` as a C-contiguous (1, rows, K) block (``a[:, j0:j1]``
    would lose the contiguous layout, and LLVM's vectorising with it: 4x slower)."""
    return a[i, j0:j1].reshape((1, j1 - j0, a.shape[2]))


@njit(**_JIT)
def _slice_rows(x, g, out, s, i, p, parts):
    """Slice p of ``parts`` of block i's rows, of each array."""
    j0, j1 = _slice_bounds(x.shape[1], p, parts)
    return (
        _block_rows(x, i, j0, j1),
        _block_rows(g, i, j0, j1),
        _block_rows(out, i, j0, j1),
        _block_rows(s, i, j0, j1),
    )


@njit(parallel=True, **_JIT)
def _parallel_tile_slices(op, x, g, out, s, want_s, width, parts):
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
            xs, gs, outs, _ = _slice_rows(x, g, out, s, i, p, parts)
            finite[p], ms[p], sums[p], dots[p] = _tile_first_pass(op, xs, gs, outs, t)
        if not finite.all():
            for k in prange(k0, k1):
                _gathered_row(op, x, g, out, s, want_s, i, k)
            continue
        m, scale, a, b = _combine_slices(op, ms, sums, dots)
        for p in prange(parts):
            xs, gs, outs, ss = _slice_rows(x, g, out, s, i, p, parts)
            _tile_second_pass(op, xs, gs, outs, ss, want_s, t, m, scale[p], a, b)


@njit(parallel=True, **_JIT)
def _parallel_columns(op, x, g, out, s, want_s, width, parts):
    tasks = x.shape[0] * ((x.shape[2] + width - 1) // width)
    for part in prange(parts):
        begin, end = tasks * part // parts, tasks * (part + 1) // parts
        _columns(op, x, g, out, s, want_s, width, begin, end)


# ---------------------------------------------------------------------------------------------
# Python glue.


def _run(op: int, axis: int, threads: int, inputs: tuple, out: np.ndarray, s=None) -> None:
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
    x_k, g_k = _kernel_input(x, block), _kernel_input(g, block)
    copy_back: list[tuple[np.ndarray, np.ndarray]] = []
    out_k = _kernel_output(out, block, as_rows or not private, copy_back)
    s_k = out_k if s is None else _kernel_output(s, block, True, copy_back)
    want_s = s is not None
    if as_rows:
        _walk_rows(op, x_k, g_k, out_k, s_k, want_s, private, threads)
    else:
        _walk_columns(op, x_k, g_k, out_k, s_k, want_s, threads)
    for target, result in copy_back:
        np.copyto(target, result.reshape(target.shape))


def _streaming_threshold_bytes() -> int:
    """Where outputs start to stream: cpp/src/cache_size.cpp's rule (see its Note), one eighth
    of the L3 size Linux reports within [1, 32] MiB, 4 MiB if it reports none."""
    mib = 1 << 20
    for index in range(8):
        cache = f"/sys/devices/system/cpu/cpu0/cache/index{index}/"
        try:
            with open(cache + "level") as level, open(cache + "size") as size:  # size: "32768K"
                if level.read().strip() != "3":
                    continue
                text = size.read().strip()
        except OSError:
            continue
        number = text.rstrip("KM")
        scale = {"K": 1 << 10, "M": mib, "": 1}.get(text[len(number) :], 0)
        if number.isdigit() and int(number) * scale > 0:
            return min(max(int(number) * scale // 8, mib), 32 * mib)
        return 4 * mib
    return 4 * mib


_STREAM_BYTES = _streaming_threshold_bytes()


def _streams(op: int, x: np.ndarray) -> bool:
    """Whether the rows walk streams ``op``'s output of arrays like ``x``, unless it is an input
    (see the Note on streaming stores)."""
    return (
        op == _SOFTMAX_BACKWARD
        and x.nbytes > _STREAM_BYTES
        and x.shape[-1] * x.itemsize >= _STREAM_ROW_BYTES
    )


class _NumbaThreads:
    """``with _NumbaThreads(n):`` Numba's thread count in this thread is ``n`` inside, the
    caller's own setting again after (user code's ``prange`` must keep the count it set)."""

    __slots__ = ("count", "previous")

    def __init__(self, count: int) -> None:
        self.count = count

    def __enter__(self) -> None:
        _threads.note_numba_parallel()  # the pool may not survive a fork: see _threads.py
        self.previous = numba.get_num_threads()
        numba.set_num_threads(self.count)

    def __exit__(self, *exc: object) -> None:
        numba.set_num_threads(self.previous)


def _threads_for(threads: int, elements: int) -> int:
    """Threads for a call of ``elements``: one per grain at most (kernels.cpp threads_for)."""
    return min(threads, max(1, elements // _GRAIN_ELEMENTS), _NUMBA_THREADS)


def _walk_rows(op, x, g, out, s, want_s, private, threads) -> None:
    """The rows walk over C-contiguous ``(rows, n)`` arrays, on up to ``threads`` threads;
    fewer long rows than threads share each row (kernels.cpp walk_rows)."""
    rows, n = x.shape
    stream = not private and _streams(op, x)  # a private row goes through a buffer in L1
    used = _threads_for(threads, x.size)
    if rows < used and n >= _SPLIT_ELEMENTS:
        with _NumbaThreads(used):
            _parallel_row_slices(op, x, g, out, s, want_s, private, used)
        return
    used = min(used, rows)
    if used > 1:
        with _NumbaThreads(used):
            if stream:
                _parallel_streamed_rows(x, g, out, used)
            else:
                _parallel_rows(op, x, g, out, s, want_s, private, used)
    elif stream:
        _streamed_rows(x, g, out, 0, rows)
    else:
        _rows(op, x, g, out, s, want_s, private, 0, rows)


def _walk_columns(op, x, g, out, s, want_s, threads) -> None:
    """The columns walk over C-contiguous ``(M, N, K)`` blocks, on up to ``threads`` threads;
    with fewer tiles than threads, the threads share each tile's rows, each with 4 grains of
    work at least (kernels.cpp walk_columns)."""
    m, n, k = x.shape
    width = min(_MAX_TILE_WIDTH, k)
    tiles = m * -(-k // width)
    used = _threads_for(threads, x.size)
    if tiles < used:
        used = min(used, n, max(1, x.size // (4 * _GRAIN_ELEMENTS)))
        if used > 1:
            with _NumbaThreads(used):
                _parallel_tile_slices(op, x, g, out, s, want_s, width, used)
            return
    used = min(used, tiles)
    if used > 1:
        with _NumbaThreads(used):
            _parallel_columns(op, x, g, out, s, want_s, width, used)
    else:
        _columns(op, x, g, out, s, want_s, width, 0, tiles)


def _kernel_input(a: np.ndarray, block: tuple) -> np.ndarray:
    """``a`` as a C-contiguous ``block``: itself when it is one already, else a view or a copy."""
    if a.shape == block and a.flags.c_contiguous:
        return a
    return np.ascontiguousarray(a).reshape(block)


def _kernel_output(a: np.ndarray, block: tuple, may_view: bool, copy_back: list) -> np.ndarray:
    """``a`` as the walk's C-contiguous output, or a scratch that is copied back into it."""
    if may_view and a.flags.c_contiguous:
        return a if a.shape == block else a.reshape(block)
    scratch = np.empty(block, a.dtype)
    copy_back.append((a, scratch))
    return scratch


# ---------------------------------------------------------------------------------------------
# The fast path (the Note in _backends.py): C-contiguous rows along the last axis go straight to
# the rows walk. (1, 10) float32 softmax through the public function: 4.0 -> 1.9 us.

_FLOAT32, _FLOAT64 = np.dtype(np.float32), np.dtype(np.float64)


@njit(**_JIT)
def _overlap(out, a):
    """For C-contiguous arrays of one shape and dtype: 1 when ``out`` is the memory of ``a``, 0
    when they are apart, -1 when they overlap in part."""
    p, q = out.ctypes.data, a.ctypes.data
    if p == q:
        return 1
    return -1 if q < p + out.nbytes and p < q + a.nbytes else 0


@njit(**_JIT)
def _in_place(out, x, g):
    """1 when ``out`` is ``x`` or ``g`` (see the Note on aliasing), 0 when it overlaps neither,
    -1 when it overlaps one in part (inputs may be read-only: no tuple of the two)."""
    on_x, on_g = _overlap(out, x), _overlap(out, g)
    return -1 if min(on_x, on_g) < 0 else max(on_x, on_g)


@njit(**_JIT)
def _all_rows(op, x, g, out, stream):
    """Every row along the last axis of C-contiguous arrays of any shape, on one thread; False,
    having done nothing, when ``out`` overlaps an input in part. ``stream`` is `_streams`."""
    in_place = _in_place(out, x, g)
    if in_place < 0:
        return False
    block = (x.size // x.shape[-1], x.shape[-1])
    x_rows, g_rows, out_rows = x.reshape(block), g.reshape(block), out.reshape(block)
    if stream and in_place == 0:
        _streamed_rows(x_rows, g_rows, out_rows, 0, block[0])
    else:
        _rows(op, x_rows, g_rows, out_rows, out_rows, False, in_place == 1, 0, block[0])
    return True


def _plain(a: object, dtype: np.dtype, shape: tuple, writeable: bool = False) -> bool:
    """An ndarray of ``dtype`` and ``shape``, C-contiguous and aligned (and writeable)."""
    if type(a) is not np.ndarray or a.dtype is not dtype or a.shape != shape:
        return False
    flags = a.flags  # looked up once: each lookup builds a flags object
    return flags.carray if writeable else flags.c_contiguous and flags.aligned


def _try(
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
    if g is not x and not _plain(g, dtype, shape):
        return None
    if out is None:
        out = np.empty_like(x)
    elif not _plain(out, dtype, shape, writeable=True):
        return None
    if threads == 1 or x.size < 2 * _GRAIN_ELEMENTS:  # one thread (`_threads_for`)
        # One compiled call, the overlap checks in it: ~1 us less than `_walk_rows` and
        # np.may_share_memory.
        taken = _all_rows(op, x, g, out, _streams(op, x))
        return out if taken else None  # else a scratch copy: `_api` makes it
    in_place = _in_place(out, x, g)
    if in_place < 0:
        return None
    block = (x.size // x.shape[-1], x.shape[-1])
    rows = out.reshape(block)
    _walk_rows(op, x.reshape(block), g.reshape(block), rows, rows, False, in_place == 1, threads)
    return out


def try_softmax(x: object, out: object, axis: object, threads: int) -> np.ndarray | None:
    return _try(_SOFTMAX, x, x, out, axis, threads)


def try_log_softmax(x: object, out: object, axis: object, threads: int) -> np.ndarray | None:
    return _try(_LOG_SOFTMAX, x, x, out, axis, threads)


def try_softmax_backward(
    y: object, grad: object, out: object, axis: object, threads: int
) -> np.ndarray | None:
    return _try(_SOFTMAX_BACKWARD, y, grad, out, axis, threads)


def try_log_softmax_backward(
    y: object, grad: object, out: object, axis: object, threads: int
) -> np.ndarray | None:
    return _try(_LOG_SOFTMAX_BACKWARD, y, grad, out, axis, threads)


def softmax(x: np.ndarray, out: np.ndarray, axis: int, threads: int) -> None:
    _run(_SOFTMAX, axis, threads, (x,), out)


def log_softmax(x: np.ndarray, out: np.ndarray, axis: int, threads: int) -> None:
    _run(_LOG_SOFTMAX, axis, threads, (x,), out)


def softmax_backward(
    y: np.ndarray, grad: np.ndarray, out: np.ndarray, axis: int, threads: int
) -> None:
    _run(_SOFTMAX_BACKWARD, axis, threads, (y, grad), out)


def log_softmax_backward(
    y: np.ndarray, grad: np.ndarray, out: np.ndarray, axis: int, threads: int
) -> None:
    _run(_LOG_SOFTMAX_BACKWARD, axis, threads, (y, grad), out)


def softmax_jvp(
    x: np.ndarray,
    v: np.ndarray,
    out: np.ndarray,
    s_out: np.ndarray | None,
    axis: int,
    threads: int,
) -> None:
    _run(_SOFTMAX_JVP, axis, threads, (x, v), out, s_out)
