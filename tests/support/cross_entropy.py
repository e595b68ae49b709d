"""The cross-entropy oracle: ``torch.nn.functional.cross_entropy``'s semantics restated from its
definition, in NumPy, in wide precision, with the gradient of the reduced loss.

For class-index targets (the logits' shape without the class axis), row r with target t and
class weights w (ones without ``weight``), smoothing e over C classes:

    loss_r = (1 - e) w_t (-logp_rt) + (e / C) sum_c w_c (-logp_rc),   0 where t == ignore_index

``"mean"`` divides the sum by the summed ``w_t`` of the counted rows (their count without
weights): NaN when that is 0 (PyTorch's 0 / 0), and then the gradient of every counted row is
NaN and an ignored row's 0. For probability targets q (the logits' shape),
q' = (1 - e) q + e / C and loss_r = sum_c w_c q'_c (-logp_rc); ``"mean"`` divides by the number
of rows, weights or not, and ignore_index does not apply. ``"none"`` keeps loss_r; its gradient
is that of sum_r loss_r. A zero coefficient times an infinite -logp is 0 (xlogy), which is
where PyTorch gives NaN for logits at +-float max (its issue 11752).

The gradient: with dlogp_rc = -coef_rc / D (the loss is sum coef (-logp) / D),
dx_rc = dlogp_rc - s_rc * sum_c dlogp_rc, s = softmax(x) (log_softmax's backward).
"""

from __future__ import annotations

import numpy as np

from .reference import WIDE, narrow, ref_log_softmax


def ref_cross_entropy(
    logits: np.ndarray,
    target: np.ndarray,
    axis: int = -1,
    weight: np.ndarray | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> tuple[np.ndarray, np.ndarray]:
    """``(loss, d loss / d logits)`` in float64, the gradient in the logits' layout."""
    x = np.moveaxis(np.asarray(logits), axis, -1)
    classes = x.shape[-1]
    logp = np.asarray(ref_log_softmax(x, axis=-1), WIDE)
    w = np.ones(classes, WIDE) if weight is None else np.asarray(weight, WIDE)
    smoothing = WIDE(label_smoothing)
    target = np.asarray(target)
    if target.dtype.kind in "iub":
        counted = target != ignore_index
        safe = np.where(counted, target, 0).astype(np.intp)
        onehot = np.arange(classes) == safe[..., np.newaxis]
        coef = (1 - smoothing) * w[safe][..., np.newaxis] * onehot + smoothing / classes * w
        coef = np.where(counted[..., np.newaxis], coef, 0)
        denominator = np.sum(np.where(counted, w[safe], 0))
        ignored = ~counted[..., np.newaxis]
    else:
        q = np.moveaxis(target, axis, -1).astype(WIDE)
        coef = w * ((1 - smoothing) * q + smoothing / classes)
        denominator = WIDE(np.prod(x.shape[:-1]))
        ignored = np.zeros((*x.shape[:-1], 1), bool)
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        terms = np.where(coef == 0, 0, coef * -logp)  # xlogy: 0 * inf is 0
        per_row = terms.sum(axis=-1)
        scale = {"none": WIDE(1), "sum": WIDE(1), "mean": 1 / denominator}[reduction]
        loss = per_row if reduction == "none" else per_row.sum() * scale
        if reduction == "mean" and denominator == 0:
            loss = WIDE(np.nan)  # 0 / 0, smoothing or not, as PyTorch
        dlogp = np.where(ignored, 0, -coef * scale)  # an ignored row's gradient is 0
        grad = dlogp - np.exp(logp) * dlogp.sum(axis=-1, keepdims=True)
    return narrow(np.asarray(loss)), np.moveaxis(narrow(grad), -1, axis)
