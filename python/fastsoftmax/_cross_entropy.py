"""The public `softmax_cross_entropy`: PyTorch's ``F.cross_entropy`` and its gradient.

WIP: composed from the chosen backend's log_softmax and NumPy; the fused kernel (two passes
over a row in cache, no probability or one-hot array) is the next step.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from . import _checks
from ._api import log_softmax

_REDUCTIONS = ("mean", "sum", "none")


def softmax_cross_entropy(
    logits: ArrayLike,
    target: ArrayLike,
    axis: int = -1,
    *,
    weight: ArrayLike | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    where: ArrayLike | None = None,
    return_grad: bool = True,
    grad_out: np.ndarray | None = None,
    backend: str | None = None,
):
    """The cross-entropy of ``softmax(logits)`` against ``target``, and its gradient.

    The semantics of ``torch.nn.functional.cross_entropy`` (see tests/support/cross_entropy.py
    for the formulas), with the classes along ``axis``.
    """
    x = _checks.as_array(logits)
    compute, dtype = _checks.result_dtypes(x.dtype, "logits")
    if type(axis) is not int:
        raise TypeError(f"axis must be an integer (the class axis); got {axis!r}")
    axis = _checks.normalize_axis(axis, x.ndim)
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}; got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1]; got {label_smoothing!r}")
    shape = x.shape
    x = np.moveaxis(x.astype(compute, copy=False), axis, -1)
    mask = None
    if where is not None:
        mask = np.moveaxis(_checks.broadcast_mask(where, shape), axis, -1)
    coef, denominator, ignored = _coefficients(
        x, target, axis, weight, ignore_index, label_smoothing, mask
    )
    # In float64: a float32 log-probability at -float max - float max would overflow to -inf.
    logp = log_softmax(x.astype(np.float64), axis=-1, where=mask, backend=backend)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        per_row = np.where(coef == 0, 0, coef * -logp).sum(axis=-1)  # xlogy: 0 * inf is 0
        scale = 1 / denominator if reduction == "mean" else 1.0
        if reduction == "none":
            loss = per_row
        elif reduction == "mean" and denominator == 0:
            loss = np.float64(np.nan)  # PyTorch's 0 / 0, smoothing or not
        else:
            loss = per_row.sum() * scale
    loss = np.asarray(loss).astype(dtype)[()]
    if not return_grad:
        return loss
    with np.errstate(invalid="ignore"):
        dlogp = np.where(ignored, 0, -coef * scale)
        grad = np.moveaxis(dlogp - np.exp(logp) * dlogp.sum(axis=-1, keepdims=True), -1, axis)
    if grad_out is None:
        return loss, grad.astype(dtype)
    checked = _checks.check_out(grad_out, shape, dtype, "grad_out")
    np.copyto(checked, grad, casting="unsafe")
    return loss, checked


def _coefficients(x, target, axis, weight, ignore_index, smoothing, mask):
    """``(coef, denominator, ignored)`` over the rows ``x`` (classes last): the loss is
    ``sum(coef * -logp) / denominator``; ``ignored`` marks rows whose gradient is 0.

    Under a mask the smoothing is spread over each row's kept classes, and a class-index target
    on a class the mask leaves out is an error (its probability is 0 by construction).
    """
    classes = x.shape[-1]
    w = np.ones(classes) if weight is None else _class_weights(weight, classes)
    kept = np.ones(x.shape, bool) if mask is None else mask
    with np.errstate(divide="ignore", invalid="ignore"):
        uniform = np.where(kept, w / kept.sum(axis=-1, keepdims=True), 0)  # w_c / C per class
    t = _checks.as_array(target)
    if t.dtype.kind in "iu":
        if t.shape != x.shape[:-1]:
            raise ValueError(
                "a class-index target must have the logits' shape without the class axis, "
                f"{x.shape[:-1]}; got {t.shape}"
            )
        counted = t != ignore_index
        safe = np.where(counted, t, 0)
        _check_indices(t, counted, safe, classes, ignore_index, kept)
        onehot = np.arange(classes) == safe[..., np.newaxis]
        coef = (1 - smoothing) * w[safe][..., np.newaxis] * onehot + smoothing * uniform
        coef = np.where(counted[..., np.newaxis], coef, 0)
        return coef, np.sum(np.where(counted, w[safe], 0)), ~counted[..., np.newaxis]
    if t.dtype.kind == "f":
        q = np.moveaxis(t, axis, -1) if t.ndim == x.ndim else t
        if q.shape != x.shape:
            expected = np.moveaxis(np.empty(x.shape, bool), -1, axis).shape
            raise ValueError(
                f"a probability target must have the logits' shape {expected}; got {t.shape}"
            )
        coef = np.where(kept, w * (1 - smoothing) * q.astype(np.float64), 0) + smoothing * uniform
        return coef, float(np.prod(x.shape[:-1])), np.zeros((*x.shape[:-1], 1), bool)
    raise TypeError(
        f"target must hold class indices (integers) or probabilities (floats); got {t.dtype}"
    )


def _check_indices(t, counted, safe, classes, ignore_index, kept) -> None:
    """IndexError for a counted target out of range, ValueError for one on a masked class."""
    bad = counted & ((t < 0) | (t >= classes))
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise IndexError(
            f"target {int(t[where])} at position {where} is not a class index in "
            f"[0, {classes}) nor ignore_index={ignore_index}"
        )
    on_kept = np.take_along_axis(kept, safe[..., np.newaxis], -1)[..., 0]
    masked = counted & ~on_kept
    if masked.any():
        where = tuple(int(i) for i in np.argwhere(masked)[0])
        raise ValueError(
            f"target {int(t[where])} at position {where} is a class that where= leaves out"
        )


def _class_weights(weight: ArrayLike, classes: int) -> np.ndarray:
    w = np.asarray(weight)
    if w.dtype.kind not in "iuf":
        raise TypeError(f"weight must hold real numbers; got dtype {w.dtype}")
    if w.shape != (classes,):
        raise ValueError(f"weight must have one entry per class, shape ({classes},); got {w.shape}")
    return w.astype(np.float64)
