"""Plain NumPy backend: the readable statement of what every backend computes.

Every function here has the backend signature the public API calls (see ``_api.py``): the arrays
have one shape and one float dtype (float32 or float64), ``axis`` is a valid non-negative axis,
the arrays are not empty, and ``out`` either shares no memory with an input or *is* that input.
``threads`` is accepted for a uniform signature; NumPy decides its own threading.

``where`` follows the inputs in every signature: None, or a boolean array of x's shape (often a
broadcast view with zero strides). An entry where it is False takes no part: it is not read for
the row's reductions, and its output is the masked forward's there (probability 0, log-probability
``-inf``, gradient 0), even in a row with no True entry (logsumexp: ``-inf``, sign 0).

``logsumexp`` has per-row outputs instead: ``out`` and ``sign_out`` (which may be None) have x's
shape without the axis, share no memory with the inputs or each other, and its ``b`` (None for
all ones) has x's shape, often as a broadcast view with zero strides. Entries where ``b == 0``
arrive masked out by ``where`` (``_logsumexp.py``).

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
        total = rows.sum(axis=-1)
    if values.dtype != np.float64 or rows.shape[-1] < 2:
        return total  # float32 terms: float64 has 29 bits to spare for the roundings
    # Float64 terms: pairwise sums add a row's small terms into its largest one several times,
    # rounding each time (a row of one 0 and 126 entries of -29.2: its log-sum off by 22 units
    # of rounding; the log_softmax bound is 8). So each term is split into a multiple of a grid
    # per row, fine enough for the row's length, whose sums are exact in any order, and a small
    # rest.
    with np.errstate(invalid="ignore"):
        top = np.max(np.abs(rows), axis=-1, keepdims=True)
    _, exponent = np.frexp(np.where(np.isfinite(top), top, 1.0))
    digits = np.finfo(np.float64).nmant + 1
    grid = np.ldexp(1.0, np.maximum(exponent + int(rows.shape[-1]).bit_length() - digits, -1022))
    with np.errstate(invalid="ignore"):
        whole = np.round(rows / grid) * grid
        split = whole.sum(axis=-1) + (rows - whole).sum(axis=-1)
    return np.where(np.isfinite(total), split, total)


def _sum(values: np.ndarray, axis: int) -> np.ndarray:
    with np.errstate(over="ignore"):  # a float64 sum past float32's range is inf, as computed
        return np.expand_dims(_sum64(values, axis), axis).astype(values.dtype)


def _exp_and_sum(shifted: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray]:
    exps = np.exp(shifted)
    return exps, _sum(exps, axis)


def _kept(values: np.ndarray, where: np.ndarray | None, fill: float) -> np.ndarray:
    """``values`` where ``where`` is True, ``fill`` elsewhere (``values`` itself without a mask)."""
    return values if where is None else np.where(where, values, values.dtype.type(fill))


def softmax(
    x: np.ndarray, where: np.ndarray | None, out: np.ndarray, axis: int, threads: int
) -> None:
    exps, total = _exp_and_sum(_shifted(_kept(x, where, -np.inf), axis), axis)
    with np.errstate(invalid="ignore"):  # an all -inf row is 0/0: NaN by design
        np.copyto(out, _kept(exps / total, where, 0))


def log_softmax(
    x: np.ndarray, where: np.ndarray | None, out: np.ndarray, axis: int, threads: int
) -> None:
    shifted = _shifted(_kept(x, where, -np.inf), axis)
    _, total = _exp_and_sum(shifted, axis)
    with np.errstate(divide="ignore", invalid="ignore"):  # log(0) and -inf - -inf: by design
        np.copyto(out, _kept(shifted - np.log(total), where, -np.inf))


def softmax_backward(
    y: np.ndarray,
    grad: np.ndarray,
    where: np.ndarray | None,
    out: np.ndarray,
    axis: int,
    threads: int,
) -> None:
    y, grad = _kept(y, where, 0), _kept(grad, where, 0)
    with np.errstate(over="ignore", invalid="ignore"):  # inf - inf in grad - dot is the formula's
        dot = _sum(y * grad, axis)
        np.copyto(out, _kept(y * (grad - dot), where, 0))


def log_softmax_backward(
    y: np.ndarray,
    grad: np.ndarray,
    where: np.ndarray | None,
    out: np.ndarray,
    axis: int,
    threads: int,
) -> None:
    total = _sum(_kept(grad, where, 0), axis)
    with np.errstate(over="ignore", invalid="ignore"):  # as in softmax_backward
        np.copyto(out, _kept(grad - np.exp(y) * total, where, 0))


def softmax_jvp(
    x: np.ndarray,
    v: np.ndarray,
    where: np.ndarray | None,
    out: np.ndarray,
    s_out: np.ndarray | None,
    axis: int,
    threads: int,
) -> None:
    s = np.empty_like(x) if s_out is None else s_out
    inf_rows = np.isposinf(np.max(_kept(x, where, -np.inf), axis=axis, keepdims=True))
    softmax(x, where, s, axis, threads)
    v = _kept(v, where, 0)
    with np.errstate(over="ignore", invalid="ignore"):  # as in softmax_backward
        dot = _sum(s * v, axis)
        # In a +inf row the Jacobian is exactly zero (see the module note), whatever v holds.
        np.copyto(out, _kept(np.where(inf_rows, 0, s * (v - dot)), where, 0))


def logsumexp(
    x: np.ndarray,
    b: np.ndarray | None,
    where: np.ndarray | None,
    out: np.ndarray,
    sign_out: np.ndarray | None,
    axis: int,
    threads: int,
) -> None:
    """``out = log|sum(b * exp(x))|`` along ``axis`` and ``sign_out`` the sum's sign (+1, -1, 0
    or NaN); without ``sign_out`` a negative sum gives NaN, the log of a negative number."""
    x = _kept(x, where, -np.inf)
    row_max = np.max(x, axis=axis, keepdims=True)
    # A row whose maximum is +-inf or NaN is summed unshifted, as scipy.special.logsumexp does.
    shift = np.where(np.isfinite(row_max), row_max, 0)
    with np.errstate(over="ignore", invalid="ignore"):  # inf - inf, 0 * inf: NaN by design
        terms = np.exp(x - shift) if b is None else _kept(np.exp(x - shift) * b, where, 0)
    total = _sum64(terms, axis)
    with np.errstate(divide="ignore", invalid="ignore"):  # log(0) = -inf, log(NaN): by design
        lse = np.squeeze(shift, axis) + np.log(np.abs(total))
    sign = np.sign(total)
    if sign_out is None:
        lse = np.where(sign < 0, np.nan, lse)
    else:
        sign_out[...] = sign
    out[...] = lse


# [Note: row partials]
# The private operations a softmax split across chunks of its axis builds on (a Dask array's):
# each chunk's partial (max, sum of exp(x - max)) per row, combined across chunks as
# cpp/src/reductions.hpp combines a row's slices, then the softmax of each chunk given the
# combined pair. A row whose maximum is +inf counts its +inf entries as its sum (exp(inf - inf)
# taken as 1: the limit), so that combined pairs give the limit rule's 1/k; one whose maximum is
# -inf (all -inf, or no kept entry) has sum 0. A NaN makes the sum NaN.


def row_partials(
    x: np.ndarray,
    where: np.ndarray | None,
    max_out: np.ndarray,
    sum_out: np.ndarray,
    axis: int,
    threads: int,
) -> None:
    """``max_out``, ``sum_out`` (x's shape without the axis): the row's maximum over its kept
    entries (NaN ignored) and the sum of ``exp(x - max)`` over them (see the Note)."""
    x = _kept(x, where, -np.inf)
    with np.errstate(invalid="ignore"):  # an all-NaN row's maximum: -inf, its sum NaN
        row_max = np.fmax.reduce(x, axis=axis, keepdims=True, initial=-np.inf)
    saturated = np.isposinf(row_max)
    shift = np.where(np.isfinite(row_max), row_max, 0)
    with np.errstate(over="ignore", invalid="ignore"):  # inf - inf: replaced by the limit below
        terms = np.where(saturated, (x == np.inf).astype(x.dtype), np.exp(x - shift))
    terms = np.where(np.isnan(x), np.nan, terms)
    max_out[...] = np.squeeze(row_max, axis)
    sum_out[...] = _sum64(terms, axis)


def softmax_given(
    x: np.ndarray,
    where: np.ndarray | None,
    row_max: np.ndarray,
    row_sum: np.ndarray,
    out: np.ndarray,
    axis: int,
    threads: int,
) -> None:
    _given(x, where, row_max, row_sum, out, axis, log=False)


def log_softmax_given(
    x: np.ndarray,
    where: np.ndarray | None,
    row_max: np.ndarray,
    row_sum: np.ndarray,
    out: np.ndarray,
    axis: int,
    threads: int,
) -> None:
    _given(x, where, row_max, row_sum, out, axis, log=True)


def _given(
    x: np.ndarray,
    where: np.ndarray | None,
    row_max: np.ndarray,
    row_sum: np.ndarray,
    out: np.ndarray,
    axis: int,
    log: bool,
) -> None:
    """The softmax (``log``: log-softmax) of ``x`` in rows whose partials over the whole row,
    ``row_max`` and ``row_sum`` (x's shape without the axis), are given: ``exp(x - max) /
    sum`` and ``(x - max) - log(sum)``. A +inf maximum gives the limit (``1/sum`` at the +inf
    entries, ``sum`` being their count); a -inf one (no mass) NaN, as for an all -inf row."""
    m = np.expand_dims(row_max, axis).astype(x.dtype)
    total = np.expand_dims(row_sum, axis).astype(np.float64)
    with np.errstate(all="ignore"):  # inf - inf, log(0), 0/0: replaced or NaN by design
        if log:
            value = (x - m) - np.log(total).astype(x.dtype)
            limit = np.where(x == np.inf, 0 - np.log(total), -np.inf)  # a lone +inf: +0
        else:
            value = np.exp(x - m) / total
            limit = np.where(x == np.inf, 1 / total, 0)
    value = np.where(np.isposinf(m), limit, value)
    value = np.where(np.isneginf(m), np.nan, value).astype(x.dtype)
    np.copyto(out, _kept(value, where, -np.inf if log else 0))
