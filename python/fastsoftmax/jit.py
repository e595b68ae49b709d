"""The Numba backend's kernels as functions for your own ``@numba.njit`` code, one row a call.

Each function works on one row: 1-D float32 or float64 arrays (all of one dtype, one length),
contiguous or strided views (a column ``x[:, j]`` is copied into a contiguous row first, as the
backend copies such layouts). They run in nopython mode, inside ``prange`` loops too, release
nothing they do not own, and give the same bits for a row as the numba backend gives for it
(``fastsoftmax.softmax(x, backend="numba")``) on one thread; a backend call on more threads
splits rows of at least ``_constants.SPLIT_ELEMENTS`` between them and may round their sums
differently. An output may be its input (in place). Importing this module imports Numba and
compiles each function at its first call for each dtype and layout (seconds); importing
``fastsoftmax`` does not.

=====================================  ====================================================
``softmax_row(x, out)``                ``out = exp(x - max) / sum(exp(x - max))``
``log_softmax_row(x, out)``            ``out = x - max - log(sum(exp(x - max)))``
``softmax_backward_row(y, g, out)``    ``out = y * (g - sum(y * g))``, y the saved softmax
``log_softmax_backward_row(y, g, out)``  ``out = g - exp(y) * sum(g)``, y the saved log-softmax
``softmax_jvp_row(x, v, out)``         ``out = s * (v - sum(s * v))``, ``s = softmax(x)``
``logsumexp_row(x)``                   returns ``log(sum(exp(x)))``
``cross_entropy_row(logits, label, grad_out)``  returns ``-log softmax(logits)[label]``;
                                       ``grad_out = softmax(logits) - onehot(label)``
=====================================  ====================================================

The special values are those of the array functions: a row with a NaN is NaN, a row with
``+inf`` takes the limit, an all ``-inf`` row is NaN (logsumexp ``-inf``). A row of another
length than its input, or a label outside ``[0, len(logits))``, raises ``ValueError`` or
``IndexError`` (Numba's exceptions carry no values).

Example (`tests/test_jit.py` runs it)::

    import numba
    import numpy as np
    from fastsoftmax import jit as fsj

    @numba.njit(parallel=True)
    def batch_loss(logits, labels, grad):
        total = 0.0
        for r in numba.prange(logits.shape[0]):
            total += fsj.cross_entropy_row(logits[r], labels[r], grad[r])
        return total / logits.shape[0]
"""

from __future__ import annotations

import numpy as np
from numba import njit
from numba.core import types
from numba.extending import overload

from ._numba.kernels import KERNELS
from ._numba.primitives import copy_into

_SOFTMAX = KERNELS["softmax"].row_range
_LOG_SOFTMAX = KERNELS["log_softmax"].row_range
_SOFTMAX_BACKWARD = KERNELS["softmax_backward"].row_range
_LOG_SOFTMAX_BACKWARD = KERNELS["log_softmax_backward"].row_range
_SOFTMAX_JVP = KERNELS["softmax_jvp"].row_range
_LOGSUMEXP = KERNELS["logsumexp"].row_range
_ROW_PARTIALS = KERNELS["row_partials"].row_range
_SOFTMAX_GIVEN = KERNELS["softmax_given"].row_range


def _as_input(a):
    """``a`` as the walks' one-row block ``(1, n)``: a view of a contiguous row, else a copy."""


@overload(_as_input)
def _as_input_typed(a):
    if a.layout == "C":
        return lambda a: a.reshape((1, a.shape[0]))
    return lambda a: np.ascontiguousarray(a).reshape((1, a.shape[0]))


def _as_output(a):
    """``a`` as a ``(1, n)`` block the walk may write: a view of a contiguous row, else a
    scratch row that `_deliver` copies into it."""


@overload(_as_output)
def _as_output_typed(a):
    if a.layout == "C":
        return lambda a: a.reshape((1, a.shape[0]))
    return lambda a: np.empty((1, a.shape[0]), a.dtype)


def _deliver(out, block):
    """Copy a scratch block into ``out`` (nothing when ``block`` is ``out`` itself)."""


@overload(_deliver)
def _deliver_typed(out, block):
    if out.layout == "C":
        return lambda out, block: None

    def copy(out, block):
        copy_into(out, block[0])

    return copy


def _check(row, other):
    """ValueError unless ``other`` is a 1-D float array of ``row``'s dtype and length."""


@overload(_check)
def _check_typed(row, other):
    for a in (row, other):
        if not (
            isinstance(a, types.Array) and a.ndim == 1 and a.dtype in (types.float32, types.float64)
        ):
            raise TypeError("fastsoftmax.jit takes 1-D float32 or float64 arrays")
    if row.dtype != other.dtype:
        raise TypeError("fastsoftmax.jit takes arrays of one dtype")

    def check(row, other):
        if other.shape[0] != row.shape[0]:
            raise ValueError("fastsoftmax.jit: the arrays of a row must have one length")

    return check


@njit(nogil=True)
def _overlaps(a, b):
    """Whether two contiguous rows share memory (an output that is its input: the walk then
    computes into a private row, rows.py's Note on aliasing)."""
    a0, b0 = a.ctypes.data, b.ctypes.data
    return a0 < b0 + b.nbytes and b0 < a0 + a.nbytes


@njit(nogil=True)
def _unary(row_range, x, out):
    _check(x, out)
    xb, ob = _as_input(x), _as_output(out)
    row_range((xb,), (ob,), _overlaps(xb, ob), 0, 1)
    _deliver(out, ob)


@njit(nogil=True)
def _binary(row_range, x, g, out):
    _check(x, g)
    _check(x, out)
    xb, gb, ob = _as_input(x), _as_input(g), _as_output(out)
    row_range((xb, gb), (ob,), _overlaps(xb, ob) or _overlaps(gb, ob), 0, 1)
    _deliver(out, ob)


@njit(nogil=True)
def softmax_row(x, out):
    """``out = softmax(x)`` of one row."""
    _unary(_SOFTMAX, x, out)


@njit(nogil=True)
def log_softmax_row(x, out):
    """``out = log_softmax(x)`` of one row."""
    _unary(_LOG_SOFTMAX, x, out)


@njit(nogil=True)
def softmax_backward_row(y, g, out):
    """``out = y * (g - sum(y * g))``, from the saved softmax ``y`` and the gradient ``g``."""
    _binary(_SOFTMAX_BACKWARD, y, g, out)


@njit(nogil=True)
def log_softmax_backward_row(y, g, out):
    """``out = g - exp(y) * sum(g)``, from the saved log-softmax ``y`` and the gradient ``g``."""
    _binary(_LOG_SOFTMAX_BACKWARD, y, g, out)


@njit(nogil=True)
def softmax_jvp_row(x, v, out):
    """``out = s * (v - sum(s * v))`` with ``s = softmax(x)``, fused."""
    _binary(_SOFTMAX_JVP, x, v, out)


@njit(nogil=True)
def logsumexp_row(x):
    """``log(sum(exp(x)))`` of one row, in its dtype."""
    _check(x, x)
    lse = np.empty((1, 1), x.dtype)
    sign = np.empty((1, 1), x.dtype)
    _LOGSUMEXP((_as_input(x),), (lse, sign), False, 0, 1)
    return lse[0, 0]


@njit(nogil=True)
def cross_entropy_row(logits, label, grad_out):
    """The loss ``-log softmax(logits)[label]`` of one row, in its dtype, and its gradient
    ``softmax(logits) - onehot(label)`` written into ``grad_out`` (which may be ``logits``):
    what ``softmax_cross_entropy(logits, label, reduction="sum")`` gives for the row."""
    _check(logits, grad_out)
    n = logits.shape[0]
    if not 0 <= label < n:
        raise IndexError("fastsoftmax.jit.cross_entropy_row: label out of range")
    xb = _as_input(logits)
    row_max = np.empty((1, 1), logits.dtype)
    row_sum = np.empty((1, 1), logits.dtype)
    _ROW_PARTIALS((xb,), (row_max, row_sum), False, 0, 1)
    m, x_t = np.float64(row_max[0, 0]), np.float64(logits[label])
    if np.isfinite(m):
        loss = (0.0 if x_t == m else m - x_t) + np.log(np.float64(row_sum[0, 0]))
    else:  # the limit of the float64 log-softmax, as the array function takes it
        logp = np.empty((1, n))
        _LOG_SOFTMAX((xb.astype(np.float64),), (logp,), False, 0, 1)
        loss = -logp[0, label]
    pair = (np.broadcast_to(row_max, (1, n)), np.broadcast_to(row_sum, (1, n)))
    ob = _as_output(grad_out)
    _SOFTMAX_GIVEN((xb, *pair), (ob,), _overlaps(xb, ob), 0, 1)
    ob[0, label] -= 1
    _deliver(grad_out, ob)
    result = np.empty(1, logits.dtype)
    result[0] = loss
    return result[0]
