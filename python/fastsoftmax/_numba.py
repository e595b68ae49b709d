"""Numba backend: the C++ kernels of ``cpp/src/kernels.cpp``, one-to-one, as JIT-compiled loops.

The five functions have the backend signature ``_api.py`` calls and compute what
``_reference.py`` computes, to rounding: arrays of one shape and one dtype (float32 or float64),
a valid non-negative ``axis``, outputs that are either disjoint from the inputs or exactly one of
them. Numba is imported here at module level; ``_backends.py`` imports this module only when the
numba backend is used.

Each array is seen as ``(M, N, K)``: the rows before the axis, the axis, the positions after it.
Per row the forward makes three passes (max; exp stored and summed; scale by 1/sum) and the
backward two (dot; output), as the C++ kernels do. With ``K == 1`` a row is contiguous; otherwise
the block kernels walk an ``(N, width)`` slab with the inner loop along contiguous ``K``, keeping
one max and one sum per column.

[Note: accuracy and fastmath]
Row sums and dot products accumulate in float64 even for float32 input: a float32 running sum
over 4096 terms already costs more than the whole error budget of ``(8 + |x - max|) * 2**-24``.
Only the four reduction loops (`_exp_sum`, `_sum_exp`, `_sum`, `_dot`) are compiled with
``reassoc``, which lets LLVM split the sum into vector lanes: the order of a sum changes its
rounding, not whether it is inf or NaN. `_exp` allows ``contract`` (FMA), which only drops
roundings. Nothing assumes away inf or NaN (no ``nnan``/``ninf``).

[Note: +inf rows]
``x - max`` is NaN at +inf entries when the max is +inf, so those rows take a separate slow path
(`_limit_row`) that writes the limit ``_reference.py`` describes. It is chosen from the row max,
after the first pass, so it costs the finite rows one comparison.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from numba import njit, prange, types
from numba.extending import overload

__all__ = ["log_softmax", "log_softmax_backward", "softmax", "softmax_backward", "softmax_jvp"]

_SOFTMAX, _LOG_SOFTMAX, _SOFTMAX_BACKWARD, _LOG_SOFTMAX_BACKWARD, _SOFTMAX_JVP = range(5)

# Below this many elements one thread does the work: waking the pool costs more than it saves.
_PARALLEL_MIN_ELEMENTS = 1 << 15
# Elements of one (N, width) slab of a K > 1 array; its three passes then run in L2.
_SLAB_ELEMENTS = 1 << 14
_SLAB_MIN_WIDTH = 16

_JIT = {"cache": True, "nogil": True}
_REDUCE = {**_JIT, "fastmath": {"reassoc"}}  # see the module note on accuracy and fastmath


# --- per-dtype primitives ------------------------------------------------------------------


def _exp(x):
    """``exp(x)`` for one float32 or float64, in a form LLVM vectorises (libm's exp is a call).

    Valid for every input: underflow is gradual down to 0, overflow gives +inf, ``exp(-inf)``
    is 0, ``exp(+inf)`` is +inf and NaN stays NaN. Maximum relative error, measured over the
    whole range: 1.4 ulp for float32, 1.4 units of 2**-53 for float64.
    """
    raise NotImplementedError("only callable from Numba-compiled code")


def _row_max(row):
    """The maximum of a contiguous row, or NaN if the row's maximum key is a NaN.

    [Note: why integer keys]
    LLVM does not vectorise a float max reduction unless it may assume there are no NaNs. The
    bits of a float, read as a signed integer with the magnitude bits flipped for negative
    numbers, order like the floats, and an integer max reduction vectorises. A NaN may or may
    not win: either way it reaches the row sum, which makes the row NaN, and the +inf path
    checks for NaN itself.
    """
    raise NotImplementedError("only callable from Numba-compiled code")


def _make_exp(float_t, int_t, mantissa_bits, lo, hi, ln2_hi, ln2_lo, coefficients):
    """``_exp`` for one dtype: Cody-Waite reduction, ``exp(r) = 1 + r + r**2 q(r)``, 2**n."""
    f = float_t
    shift = f(1.5 * 2.0**mantissa_bits)  # x + shift rounds x to an integer in the low bits
    shift_bits = np.array(shift).view(int_t)[()]
    bias = int_t(np.finfo(float_t).maxexp - 1)
    lo, hi, log2e, ln2_hi, ln2_lo = f(lo), f(hi), f(1 / math.log(2)), f(ln2_hi), f(ln2_lo)
    q_coefficients = tuple(f(c) for c in coefficients)
    one = f(1)

    def exp(x):
        x = lo if x < lo else x  # written so that NaN passes both clamps
        x = hi if x > hi else x
        t = x * log2e + shift
        n_float = t - shift
        r = x - n_float * ln2_hi
        r = r - n_float * ln2_lo
        q = q_coefficients[0]
        for c in q_coefficients[1:]:
            q = q * r + c
        p = q * (r * r) + r + one
        n = f(t).view(int_t) - shift_bits
        # 2**n in two factors, so that results below the smallest normal round once, gradually.
        half = n >> 1
        scale_1 = int_t((half + bias) << mantissa_bits).view(float_t)
        scale_2 = int_t((n - half + bias) << mantissa_bits).view(float_t)
        return p * scale_1 * scale_2

    return exp


def _make_row_max(float_t, int_t):
    magnitude = int_t(np.iinfo(int_t).max)
    sign_shift = int_t(np.iinfo(int_t).bits - 1)
    lowest = int_t(np.iinfo(int_t).min)

    def row_max(row):
        bits = row.view(int_t)
        best = lowest
        for i in range(bits.shape[0]):
            key = bits[i] ^ ((bits[i] >> sign_shift) & magnitude)
            best = key if key > best else best
        return int_t(best ^ ((best >> sign_shift) & magnitude)).view(float_t)

    return row_max


# Clamps: exp(lo) rounds to 0 and exp(hi) overflows. Polynomials: near-minimax fits on
# [-ln2/2, ln2/2] (degree 6 for float32, 11 for float64); ln2 split as in Cephes and fdlibm.
_EXPS = {
    types.float32: _make_exp(
        np.float32, np.int32, 23, -104.0, 89.0, 0.693359375, -2.12194440e-4,
        (0.001381461275741458, 0.008368710055947304, 0.04166838899254799,
         0.1666652113199234, 0.4999999403953552),
    ),
    types.float64: _make_exp(
        np.float64, np.int64, 52, -746.0, 710.0, 6.93147180369123816490e-01,
        1.90821492927058770002e-10,
        (2.5100375832840034e-08, 2.762007588034591e-07, 2.755726848030944e-06,
         2.480152132236793e-05, 0.00019841269863040545, 0.0013888888917196719,
         0.008333333333330065, 0.041666666666624164, 0.16666666666666669, 0.5000000000000001),
    ),
}  # fmt: skip
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


# --- reductions (float64 accumulators; see the module note) --------------------------------


@njit(**_REDUCE)
def _exp_sum(x, m, out):
    """Write ``exp(x - m)`` to ``out``; return its sum."""
    total = 0.0
    for i in range(x.shape[0]):
        e = _exp(x[i] - m)
        out[i] = e
        total += np.float64(e)
    return total


@njit(**_REDUCE)
def _sum_exp(x, m):
    total = 0.0
    for i in range(x.shape[0]):
        total += np.float64(_exp(x[i] - m))
    return total


@njit(**_REDUCE)
def _sum(x):
    total = 0.0
    for i in range(x.shape[0]):
        total += np.float64(x[i])
    return total


@njit(**_REDUCE)
def _dot(x, y):
    total = 0.0
    for i in range(x.shape[0]):
        total += np.float64(x[i]) * np.float64(y[i])
    return total


# --- contiguous rows (K == 1) --------------------------------------------------------------
# Every kernel reads element i of its inputs before it writes element i of an output, so an
# output may be one of the inputs.


@njit(**_JIT)
def _limit_row(x, out, log):
    """Write the limit of a row whose max is +inf; return False (NaN row) if it holds a NaN."""
    count = 0
    for i in range(x.shape[0]):
        if x[i] != x[i]:
            out[:] = np.nan
            return False
        count += x[i] == np.inf
    hit = -math.log(count) if log else 1.0 / count
    miss = -np.inf if log else 0.0
    for i in range(x.shape[0]):
        out[i] = hit if x[i] == np.inf else miss
    return True


@njit(**_JIT)
def _softmax_row(x, out):
    m = _row_max(x)
    if m == np.inf:
        _limit_row(x, out, False)
        return
    inv = x.dtype.type(1.0 / _exp_sum(x, m, out))
    for i in range(out.shape[0]):
        out[i] *= inv


@njit(**_JIT)
def _log_softmax_row(x, out):
    m = _row_max(x)
    if m == np.inf:
        _limit_row(x, out, True)
        return
    log_sum = x.dtype.type(math.log(_sum_exp(x, m)))
    for i in range(x.shape[0]):
        out[i] = (x[i] - m) - log_sum  # x - max first: exact where the softmax underflows


@njit(**_JIT)
def _softmax_backward_row(y, grad, out):
    dot = y.dtype.type(_dot(y, grad))
    for i in range(y.shape[0]):
        out[i] = y[i] * (grad[i] - dot)


@njit(**_JIT)
def _log_softmax_backward_row(y, grad, out):
    total = y.dtype.type(_sum(grad))
    for i in range(y.shape[0]):
        out[i] = grad[i] - _exp(y[i]) * total


@njit(**_JIT)
def _softmax_jvp_row(x, v, out, s):
    """``s`` holds exp(x - max) between passes; it may be ``x`` or ``out``, never ``v``."""
    m = _row_max(x)
    if m == np.inf:
        out[:] = 0.0 if _limit_row(x, s, False) else np.nan
        return
    inv = 1.0 / _exp_sum(x, m, s)
    dot = x.dtype.type(_dot(s, v) * inv)
    inv = x.dtype.type(inv)
    for i in range(x.shape[0]):
        p = s[i] * inv
        s[i] = p  # before out: when s is out, out must win
        out[i] = p * (v[i] - dot)


@njit(**_JIT)
def _row_op(op, a, b, out, s):
    """Run ``op`` on one row; ``b`` and ``s`` are ignored by the ops that do not take them."""
    if op == _SOFTMAX:
        _softmax_row(a, out)
    elif op == _LOG_SOFTMAX:
        _log_softmax_row(a, out)
    elif op == _SOFTMAX_BACKWARD:
        _softmax_backward_row(a, b, out)
    elif op == _LOG_SOFTMAX_BACKWARD:
        _log_softmax_backward_row(a, b, out)
    else:
        _softmax_jvp_row(a, b, out, s)


# --- slabs of columns (K > 1): x[i, :, k0:k1], inner loops along contiguous K --------------


@njit(**_JIT)
def _column_max(x, i, k0, k1):
    best = x[i, 0, k0:k1].copy()
    for n in range(1, x.shape[1]):
        row = x[i, n, k0:k1]
        for j in range(best.shape[0]):
            best[j] = row[j] if row[j] > best[j] else best[j]  # a skipped NaN reaches the sum
    return best


@njit(**_JIT)
def _columns_as_rows(op, a, b, out, s, i, k0, k1):
    """The slow path of a slab holding a +inf column: each column through its row kernel."""
    ca, cb = np.empty(a.shape[1], a.dtype), np.empty(a.shape[1], a.dtype)
    c_out, c_s = np.empty_like(ca), np.empty_like(ca)
    for k in range(k0, k1):
        ca[:] = a[i, :, k]
        cb[:] = b[i, :, k]
        _row_op(op, ca, cb, c_out, c_s)
        if op == _SOFTMAX_JVP:
            s[i, :, k] = c_s  # before out: when s is out, out must win
        out[i, :, k] = c_out


@njit(**_JIT)
def _exp_sum_columns(x, m, out, i, k0, k1):
    """Write ``exp(x - m)`` to ``out`` column-wise; return the per-column sums."""
    total = np.zeros(m.shape[0])
    for n in range(x.shape[1]):
        row, out_row = x[i, n, k0:k1], out[i, n, k0:k1]
        for j in range(m.shape[0]):
            e = _exp(row[j] - m[j])
            out_row[j] = e
            total[j] += e
    return total


@njit(**_JIT)
def _softmax_slab(x, out, i, k0, k1):
    m = _column_max(x, i, k0, k1)
    if np.any(m == np.inf):
        _columns_as_rows(_SOFTMAX, x, x, out, out, i, k0, k1)
        return
    inv = (1.0 / _exp_sum_columns(x, m, out, i, k0, k1)).astype(x.dtype)
    for n in range(x.shape[1]):
        out[i, n, k0:k1] *= inv


@njit(**_JIT)
def _log_softmax_slab(x, out, i, k0, k1):
    m = _column_max(x, i, k0, k1)
    if np.any(m == np.inf):
        _columns_as_rows(_LOG_SOFTMAX, x, x, out, out, i, k0, k1)
        return
    total = np.zeros(m.shape[0])
    for n in range(x.shape[1]):
        row = x[i, n, k0:k1]
        for j in range(m.shape[0]):
            total[j] += _exp(row[j] - m[j])
    log_sum = np.log(total).astype(x.dtype)
    for n in range(x.shape[1]):
        row, out_row = x[i, n, k0:k1], out[i, n, k0:k1]
        for j in range(m.shape[0]):
            out_row[j] = (row[j] - m[j]) - log_sum[j]


@njit(**_JIT)
def _softmax_backward_slab(y, grad, out, i, k0, k1):
    dot = np.zeros(k1 - k0)
    for n in range(y.shape[1]):
        y_row, g_row = y[i, n, k0:k1], grad[i, n, k0:k1]
        for j in range(dot.shape[0]):
            dot[j] += np.float64(y_row[j]) * np.float64(g_row[j])
    dot_t = dot.astype(y.dtype)
    for n in range(y.shape[1]):
        y_row, g_row, out_row = y[i, n, k0:k1], grad[i, n, k0:k1], out[i, n, k0:k1]
        for j in range(dot_t.shape[0]):
            out_row[j] = y_row[j] * (g_row[j] - dot_t[j])


@njit(**_JIT)
def _log_softmax_backward_slab(y, grad, out, i, k0, k1):
    total = np.zeros(k1 - k0)
    for n in range(y.shape[1]):
        g_row = grad[i, n, k0:k1]
        for j in range(total.shape[0]):
            total[j] += g_row[j]
    total_t = total.astype(y.dtype)
    for n in range(y.shape[1]):
        y_row, g_row, out_row = y[i, n, k0:k1], grad[i, n, k0:k1], out[i, n, k0:k1]
        for j in range(total_t.shape[0]):
            out_row[j] = g_row[j] - _exp(y_row[j]) * total_t[j]


@njit(**_JIT)
def _softmax_jvp_slab(x, v, out, s, i, k0, k1):
    m = _column_max(x, i, k0, k1)
    if np.any(m == np.inf):
        _columns_as_rows(_SOFTMAX_JVP, x, v, out, s, i, k0, k1)
        return
    inv = 1.0 / _exp_sum_columns(x, m, s, i, k0, k1)
    dot = np.zeros(m.shape[0])
    for n in range(x.shape[1]):
        s_row, v_row = s[i, n, k0:k1], v[i, n, k0:k1]
        for j in range(dot.shape[0]):
            dot[j] += np.float64(s_row[j]) * np.float64(v_row[j])
    dot_t = (dot * inv).astype(x.dtype)
    inv_t = inv.astype(x.dtype)
    for n in range(x.shape[1]):
        s_row, v_row, out_row = s[i, n, k0:k1], v[i, n, k0:k1], out[i, n, k0:k1]
        for j in range(dot_t.shape[0]):
            p = s_row[j] * inv_t[j]
            s_row[j] = p  # before out: when s is out, out must win
            out_row[j] = p * (v_row[j] - dot_t[j])


@njit(**_JIT)
def _slab_op(op, a, b, out, s, i, k0, k1):
    if op == _SOFTMAX:
        _softmax_slab(a, out, i, k0, k1)
    elif op == _LOG_SOFTMAX:
        _log_softmax_slab(a, out, i, k0, k1)
    elif op == _SOFTMAX_BACKWARD:
        _softmax_backward_slab(a, b, out, i, k0, k1)
    elif op == _LOG_SOFTMAX_BACKWARD:
        _log_softmax_backward_slab(a, b, out, i, k0, k1)
    else:
        _softmax_jvp_slab(a, b, out, s, i, k0, k1)


# --- parallel drivers: the thread count is set by the caller --------------------------------


@njit(parallel=True, **_JIT)
def _over_rows(op, a, b, out, s):
    for i in prange(a.shape[0]):
        _row_op(op, a[i], b[i], out[i], s[i])


@njit(parallel=True, **_JIT)
def _over_slabs(op, a, b, out, s, width):
    per_row = (a.shape[2] + width - 1) // width
    for task in prange(a.shape[0] * per_row):
        i, k0 = task // per_row, task % per_row * width
        _slab_op(op, a, b, out, s, i, k0, min(k0 + width, a.shape[2]))


# --- Python glue ---------------------------------------------------------------------------


def _run(op: int, axis: int, threads: int, inputs: tuple, outputs: tuple) -> None:
    """Hand the arrays to the kernels as C-contiguous ``(M, N)`` or ``(M, N, K)`` arrays.

    A C- or Fortran-contiguous input is viewed, never copied (Fortran as its C-contiguous
    transpose); any other layout goes through a C-contiguous scratch. An output given twice
    (softmax_jvp's ``s`` as ``out``) is one kernel array.
    """
    x = inputs[0]
    transposed = not x.flags.c_contiguous and x.flags.f_contiguous
    shape = x.shape[::-1] if transposed else x.shape
    if transposed:
        axis = x.ndim - 1 - axis
    m, n, k = math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1 :])
    rows = (m, n) if k == 1 else (m, n, k)

    def framed(a: np.ndarray) -> np.ndarray:
        return a.T if transposed else a

    kernel_inputs = [np.ascontiguousarray(framed(a)).reshape(rows) for a in inputs]
    kernel_outputs: list[np.ndarray] = []
    copy_back = []
    for index, a in enumerate(outputs):
        if index and a is outputs[0]:
            kernel_outputs.append(kernel_outputs[0])
        elif framed(a).flags.c_contiguous:
            kernel_outputs.append(framed(a).reshape(rows))
        else:
            kernel_outputs.append(np.empty(rows, x.dtype))
            copy_back.append((framed(a), kernel_outputs[-1]))

    a, b = kernel_inputs[0], kernel_inputs[-1]
    out, s = kernel_outputs[0], kernel_outputs[-1]
    width = min(k, max(_SLAB_MIN_WIDTH, _SLAB_ELEMENTS // n))
    tasks = m if k == 1 else m * -(-k // width)
    used = 1 if x.size < _PARALLEL_MIN_ELEMENTS else min(threads, tasks)
    numba.set_num_threads(min(used, numba.config.NUMBA_NUM_THREADS))
    if k == 1:
        _over_rows(op, a, b, out, s)
    else:
        _over_slabs(op, a, b, out, s, width)
    for target, result in copy_back:
        target[...] = result.reshape(target.shape)


def softmax(x: np.ndarray, out: np.ndarray, axis: int, threads: int) -> None:
    _run(_SOFTMAX, axis, threads, (x,), (out,))


def log_softmax(x: np.ndarray, out: np.ndarray, axis: int, threads: int) -> None:
    _run(_LOG_SOFTMAX, axis, threads, (x,), (out,))


def softmax_backward(
    y: np.ndarray, grad: np.ndarray, out: np.ndarray, axis: int, threads: int
) -> None:
    _run(_SOFTMAX_BACKWARD, axis, threads, (y, grad), (out,))


def log_softmax_backward(
    y: np.ndarray, grad: np.ndarray, out: np.ndarray, axis: int, threads: int
) -> None:
    _run(_LOG_SOFTMAX_BACKWARD, axis, threads, (y, grad), (out,))


def softmax_jvp(
    x: np.ndarray,
    v: np.ndarray,
    out: np.ndarray,
    s_out: np.ndarray | None,
    axis: int,
    threads: int,
) -> None:
    if s_out is None:
        # The kernel keeps exp(x - max) between passes; out can hold it unless out is v.
        s_out = np.empty_like(x) if np.may_share_memory(out, v) else out
    _run(_SOFTMAX_JVP, axis, threads, (x, v), (out, s_out))
