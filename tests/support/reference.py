"""The independent reference: each operation from its formula, in NumPy, in wide precision.

Written from the formulas in the spec (issue 2), with the special-value rules spelled out; it
shares no code with ``fastsoftmax._reference``, which is one of the backends under test. Each
function returns float64.

Computed in WIDE precision: x87 extended (64-bit mantissa) where NumPy's longdouble is that,
else float64 with exact row sums (math.fsum). Every sum goes along a contiguous copy of the
rows, so the reference never shares the rounding pattern of a backend summing the same way.
"""

from __future__ import annotations

import math

import numpy as np

# An axis as the public functions take it: one int, a tuple of ints, or None (all axes).
Axis = int | tuple[int, ...] | None
WIDE = np.longdouble if np.finfo(np.longdouble).nmant >= 63 else np.float64


def _wide(a: object) -> np.ndarray:
    return np.asarray(a).astype(WIDE)


def narrow(a: np.ndarray) -> np.ndarray:
    """WIDE to float64; beyond float64's range is ±inf, as the backends give."""
    with np.errstate(over="ignore"):
        return a.astype(np.float64)


def _sum(a: np.ndarray, axis: Axis) -> np.ndarray:
    """Row sums over ``axis`` (keepdims), pairwise in WIDE, or exact if WIDE is float64.

    ``axis`` may be a tuple of axes (``()``: every entry its own row) or None (all axes): the
    row is every entry those axes select, as ``np.sum(a, axis, keepdims=True)`` takes it.
    """
    axes = _axis_tuple(axis, a.ndim)
    keep = tuple(1 if d in axes else n for d, n in enumerate(a.shape))
    moved = np.moveaxis(a, axes, tuple(range(a.ndim - len(axes), a.ndim)))
    row = math.prod(a.shape[d] for d in axes)
    rows = np.ascontiguousarray(moved).reshape((*moved.shape[: a.ndim - len(axes)], row))
    if WIDE is np.float64 and rows.size:
        total = np.apply_along_axis(math.fsum, -1, rows)
    else:
        total = rows.sum(axis=-1)
    return total.reshape(keep)


def _axis_tuple(axis: Axis, ndim: int) -> tuple[int, ...]:
    """``axis`` as a tuple of non-negative axes (written here, not taken from fastsoftmax)."""
    if axis is None:
        return tuple(range(ndim))
    return tuple(d % ndim for d in (axis if isinstance(axis, tuple) else (axis,)))


def _row_masks(x: np.ndarray, axis: Axis) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(nan rows, +inf rows, count of +inf)`` along ``axis``, keepdims."""
    nan_rows = np.isnan(x).any(axis=axis, keepdims=True) | np.isneginf(x).all(
        axis=axis, keepdims=True
    )
    count = np.isposinf(x).sum(axis=axis, keepdims=True)
    return nan_rows, (count > 0) & ~nan_rows, count


def _softmax_wide(x: np.ndarray, axis: Axis) -> np.ndarray:
    x = _wide(x)
    nan_rows, inf_rows, count = _row_masks(x, axis)
    with np.errstate(all="ignore"):
        safe = np.where(nan_rows | inf_rows, 0, x)
        e = np.exp(safe - safe.max(axis=axis, keepdims=True))
        s = e / _sum(e, axis)
        limit = np.where(np.isposinf(x), 1 / _wide(np.maximum(count, 1)), 0)
    return np.where(nan_rows, np.nan, np.where(inf_rows, limit, s))


def ref_softmax(x: np.ndarray, axis: Axis = -1) -> np.ndarray:
    """softmax; NaN rows (a NaN, or all -inf); +inf rows share 1 among the +inf entries."""
    return narrow(_softmax_wide(x, axis))


def ref_logsumexp_shift(x: np.ndarray, axis: Axis = -1) -> tuple[np.ndarray, np.ndarray]:
    """``(x - max, log(sum(exp(x - max))))`` in WIDE, for rows with a finite maximum."""
    x = _wide(x)
    with np.errstate(all="ignore"):
        m = x.max(axis=axis, keepdims=True)
        shifted = x - np.where(np.isfinite(m), m, 0)
        lse = np.log(_sum(np.exp(shifted), axis))
    return shifted, lse


def ref_log_softmax(x: np.ndarray, axis: Axis = -1) -> np.ndarray:
    x = _wide(x)
    nan_rows, inf_rows, count = _row_masks(x, axis)
    shifted, lse = ref_logsumexp_shift(np.where(nan_rows | inf_rows, 0, x), axis)
    with np.errstate(all="ignore"):
        y = shifted - lse
        limit = np.where(np.isposinf(x), -np.log(_wide(np.maximum(count, 1))), -np.inf)
    return narrow(np.where(nan_rows, np.nan, np.where(inf_rows, limit, y)))


def ref_softmax_backward(y: np.ndarray, g: np.ndarray, axis: Axis = -1) -> np.ndarray:
    y, g = _wide(y), _wide(g)
    with np.errstate(all="ignore"):
        return narrow(y * (g - _sum(y * g, axis)))


def ref_log_softmax_backward(y: np.ndarray, g: np.ndarray, axis: Axis = -1) -> np.ndarray:
    y, g = _wide(y), _wide(g)
    with np.errstate(all="ignore"):
        return narrow(g - np.exp(y) * _sum(g, axis))


def ref_softmax_jvp(x: np.ndarray, v: np.ndarray, axis: Axis = -1) -> np.ndarray:
    """``s * (v - sum(s * v))``, and exactly 0 in a row whose maximum is +inf."""
    s, v = _softmax_wide(x, axis), _wide(v)
    _, inf_rows, _ = _row_masks(_wide(x), axis)
    with np.errstate(all="ignore"):
        jvp = s * (v - _sum(s * v, axis))
    return narrow(np.where(inf_rows, 0, jvp))


def logsumexp_terms(x: np.ndarray, b: np.ndarray | None, axis: int):
    """``(shift, b * exp(x - shift), b, x)`` in WIDE: x at -inf where b == 0 (such entries do
    not count), the shift the row maximum where finite and 0 elsewhere (as SciPy sums then)."""
    x = _wide(x)
    b = np.ones_like(x) if b is None else np.broadcast_to(_wide(b), x.shape)
    x = np.where(b == 0, -np.inf, x)
    with np.errstate(all="ignore"):
        m = x.max(axis=axis, keepdims=True)
        shift = np.where(np.isfinite(m), m, 0)
        return shift, b * np.exp(x - shift), b, x


def ref_logsumexp(
    x: np.ndarray, b: np.ndarray | None = None, axis: int = -1
) -> tuple[np.ndarray, np.ndarray]:
    """``(log|sum(b exp(x))|, sign of the sum)`` along ``axis`` (removed), in float64; the
    sign is +1, -1, 0 or NaN, and the log NaN where the sum is NaN."""
    shift, terms, _, _ = logsumexp_terms(x, b, axis)
    total = _sum(terms, axis)
    with np.errstate(all="ignore"):
        lse = shift + np.log(np.abs(total))
    return narrow(np.squeeze(lse, axis)), narrow(np.squeeze(np.sign(total), axis))
