"""Plain NumPy backend: the readable statement of what every backend computes.

Every function here has the backend signature the public API calls (see ``_api.py``): the arrays
have one shape and one float dtype (float32 or float64), ``axis`` is a valid non-negative axis,
the arrays are not empty, and ``out`` either shares no memory with an input or *is* that input.
``threads`` is accepted for a uniform signature; NumPy decides its own threading.

``logsumexp`` has per-row outputs instead: ``out`` and ``sign_out`` (which may be None) have x's
shape without the axis, share no memory with the inputs or each other, and its ``b`` (None for
all ones) has x's shape, often as a broadcast view with zero strides. Entries that do not count
(``b == 0``, ``where=False``) arrive as ``x = -inf`` (``_logsumexp.py``).

[Note: rows whose maximum is +inf]
Subtracting the row maximum makes every other row safe, but in a row holding +inf it gives
``inf - inf = nan``. We return the limit instead: the +inf entries share probability 1 equally,
so their shifted value is 0 and every other entry's is -inf. ``np.max`` propagates NaN, so a row
whose maximum is +inf holds no NaN.
"""

from __future__ import annotations

import numpy as np


def _shifted(x: np.ndarray, axis: int) -> np.ndarray:
    """``x - max(x)`` along ``axis``, with the +inf-row limit described in the module note."""
    row_max = np.max(x, axis=axis, keepdims=True)
    with np.errstate(invalid="ignore", over="ignore"):  # inf - inf, handled below; -max - max
        shifted = x - row_max
    inf_rows = np.isposinf(row_max)
    if inf_rows.any():
        limit = np.where(np.isposinf(x), 0.0, -np.inf).astype(x.dtype)
        shifted = np.where(inf_rows, limit, shifted)
    return shifted


def _sum64(values: np.ndarray, axis: int) -> np.ndarray:
    """The float64 sums along ``axis`` (removed)."""
    # NumPy sums pairwise only along a contiguous axis; along any other a running sum would
    # break the accuracy bound every backend promises. So: float64, along a contiguous copy.
    rows = np.ascontiguousarray(np.moveaxis(values, axis, -1), dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):  # a sum past the range is inf, as computed
        return rows.sum(axis=-1)


def _sum(values: np.ndarray, axis: int) -> np.ndarray:
    with np.errstate(over="ignore"):  # a float64 sum past float32's range is inf, as computed
        return np.expand_dims(_sum64(values, axis), axis).astype(values.dtype)


def _exp_and_sum(shifted: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    exps = np.exp(shifted)
    return exps, _sum(exps, axis)


def softmax(x: np.ndarray, out: np.ndarray, axis: int, threads: int) -> None:
    exps, total = _exp_and_sum(_shifted(x, axis), axis)
    with np.errstate(invalid="ignore"):  # an all -inf row is 0/0: NaN by design
        np.divide(exps, total, out=out)


def log_softmax(x: np.ndarray, out: np.ndarray, axis: int, threads: int) -> None:
    shifted = _shifted(x, axis)
    _, total = _exp_and_sum(shifted, axis)
    with np.errstate(divide="ignore", invalid="ignore"):  # log(0) and -inf - -inf: by design
        np.subtract(shifted, np.log(total), out=out)


def softmax_backward(
    y: np.ndarray, grad: np.ndarray, out: np.ndarray, axis: int, threads: int
) -> None:
    with np.errstate(over="ignore", invalid="ignore"):  # inf - inf in grad - dot is the formula's
        dot = _sum(y * grad, axis)
        np.multiply(y, grad - dot, out=out)


def log_softmax_backward(
    y: np.ndarray, grad: np.ndarray, out: np.ndarray, axis: int, threads: int
) -> None:
    total = _sum(grad, axis)
    with np.errstate(over="ignore", invalid="ignore"):  # as in softmax_backward
        np.subtract(grad, np.exp(y) * total, out=out)


def softmax_jvp(
    x: np.ndarray,
    v: np.ndarray,
    out: np.ndarray,
    s_out: np.ndarray | None,
    axis: int,
    threads: int,
) -> None:
    s = np.empty_like(x) if s_out is None else s_out
    inf_rows = np.isposinf(np.max(x, axis=axis, keepdims=True))
    softmax(x, s, axis, threads)
    with np.errstate(over="ignore", invalid="ignore"):  # as in softmax_backward
        dot = _sum(s * v, axis)
        # In a +inf row the Jacobian is exactly zero (see the module note), whatever v holds.
        np.copyto(out, np.where(inf_rows, 0, s * (v - dot)))


def logsumexp(
    x: np.ndarray,
    b: np.ndarray | None,
    out: np.ndarray,
    sign_out: np.ndarray | None,
    axis: int,
    threads: int,
) -> None:
    """``out = log|sum(b * exp(x))|`` along ``axis`` and ``sign_out`` the sum's sign (+1, -1, 0
    or NaN); without ``sign_out`` a negative sum gives NaN, the log of a negative number."""
    row_max = np.max(x, axis=axis, keepdims=True)
    # A row whose maximum is +-inf or NaN is summed unshifted, as scipy.special.logsumexp does.
    shift = np.where(np.isfinite(row_max), row_max, 0)
    with np.errstate(over="ignore", invalid="ignore"):  # inf - inf, 0 * inf: NaN by design
        terms = np.exp(x - shift) if b is None else np.exp(x - shift) * b
    total = _sum64(terms, axis)
    with np.errstate(divide="ignore", invalid="ignore"):  # log(0) = -inf, log(NaN): by design
        lse = np.squeeze(shift, axis) + np.log(np.abs(total))
    sign = np.sign(total)
    if sign_out is None:
        lse = np.where(sign < 0, np.nan, lse)
    else:
        sign_out[...] = sign
    out[...] = lse
