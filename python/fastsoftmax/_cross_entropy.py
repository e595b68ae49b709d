"""The public `softmax_cross_entropy`: PyTorch's ``F.cross_entropy`` and its gradient.

[Note: two reads of the logits]
Row r's loss is ``sum_c coef_rc * (lse_r - x_rc)``, where ``lse_r = m_r + log(s_r)`` for the
row's maximum ``m_r`` and ``s_r = sum_c exp(x_rc - m_r)``, and ``coef`` holds the target's
weights, probabilities and smoothing (tests/support/cross_entropy.py). Its gradient is
``scale * (C_r * softmax(x)_rc - coef_rc)`` with ``C_r = sum_c coef_rc`` and the reduction's
``scale``. So the backend's kernels read the logits twice and nothing else does:
``row_partials`` gives ``(m_r, s_r)``, and ``softmax_given`` writes ``scale * C_r * softmax(x)``
straight into the gradient, as the softmax given the pair ``(m_r, s_r / (scale * C_r))``. A
class-index target's ``coef`` is ``(1 - eps) w_t`` at one class plus ``eps * w_c / C`` at every
class: the first term is subtracted at one element per row, the second (only with smoothing) in
one pass over the gradient; no array of the logits' shape holds either. A probability target's
``coef`` is computed and subtracted in blocks of rows.

The loss is computed in float64 from ``(m_r, s_r)`` and, per row, from ``m_r - x_rt`` (exact
for float32 logits), so it stays finite at logits of +-float max where the maximum is subtracted
first (PyTorch issue 11752). A row whose maximum is not finite (+inf, or no entry with mass) is
computed from its float64 log-softmax instead, with ``0 * inf = 0`` as ``xlogy`` has it.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from numpy.typing import ArrayLike

from . import _api, _backends, _checks
from ._threads import get_num_threads

_REDUCTIONS = ("mean", "sum", "none")
_BLOCK_ELEMENTS = 1 << 16  # a block of rows worked on at once: 256 KiB of float32, in L2


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

    Exactly ``torch.nn.functional.cross_entropy`` with the classes along ``axis`` (PyTorch's
    dim 1 is ``axis=1``), and ``d loss / d logits`` under the chosen reduction, computed
    together without a probability or one-hot array (two reads of the logits).

    Parameters
    ----------
    logits : array_like
        Unnormalised scores, the classes along ``axis``. float32 and float64 are computed as
        they are, float16 in float32, integers in float64.
    target : array_like
        Either class indices (an integer array of the logits' shape without ``axis``) or class
        probabilities (a float array of the logits' shape).
    axis : int, optional
        The class axis. Default -1.
    weight : array_like, optional
        A weight per class (shape ``(C,)``). For class indices a row counts with its target's
        weight, and ``"mean"`` divides by the summed weights of the counted rows; for
        probabilities each class's term is weighted and ``"mean"`` divides by the row count.
    ignore_index : int, optional
        A class-index target equal to it is not counted: loss 0, gradient 0, no weight in the
        mean. Default -100. Probability targets have none.
    reduction : {"mean", "sum", "none"}, optional
        ``"none"`` gives the loss per row (the logits' shape without ``axis``). A ``"mean"``
        over no counted row (or a zero total weight) is NaN, and so is the gradient of every
        counted row, as in PyTorch (0 / 0); ignored rows still get 0.
    label_smoothing : float, optional
        In [0, 1]: the target is mixed with the uniform distribution over the classes,
        ``(1 - eps) * target + eps / C`` (weights applied to both parts, as PyTorch does).
    where : array_like of bool, optional
        Classes that take part, broadcastable to the logits (as `fastsoftmax.softmax`): the
        others get probability 0 and gradient 0, the smoothing is spread over the kept classes
        of each row, and a class-index target on a class left out is a ValueError.
    return_grad : bool, optional
        Return ``(loss, grad)`` (default) or the loss alone.
    grad_out : ndarray, optional
        Where the gradient is written: the logits' shape and dtype. It may be ``logits`` itself
        (their values are read before the gradient is written).
    backend : str, optional
        The kernels: ``"cpp"``, ``"numba"``, ``"numpy"``, or None for the best available.

    Returns
    -------
    loss : numpy scalar or ndarray
        In the logits' dtype (float16 logits: float16).
    grad : ndarray
        ``d loss / d logits``, the logits' shape and dtype (only with ``return_grad``).

    Raises
    ------
    IndexError
        A counted class index outside ``[0, C)``, naming it and its position.
    ValueError
        A target of the wrong shape, a target on a masked class, a bad ``reduction``,
        ``label_smoothing`` or ``weight``.
    TypeError
        A target that holds neither integers nor floats, or a non-integer ``axis``.

    Examples
    --------
    >>> import numpy as np
    >>> import fastsoftmax as fsm
    >>> logits = np.array([[2.0, 0.5, -1.0], [0.0, 1.0, 0.0]])
    >>> loss, grad = fsm.softmax_cross_entropy(logits, np.array([0, 2]))
    >>> print(round(float(loss), 4))
    0.8964
    >>> print(grad.round(4))
    [[-0.1072  0.0876  0.0196]
     [ 0.106   0.2881 -0.394 ]]
    """
    x = _checks.as_array(logits)
    compute, dtype = _checks.result_dtypes(x.dtype, "logits")
    if type(axis) is not int:
        raise TypeError(f"axis must be an integer (the class axis); got {axis!r}")
    if x.ndim == 0:
        raise ValueError("logits must have a class axis; got a 0-d array")
    axis = _checks.normalize_axis(axis, x.ndim)
    if reduction not in _REDUCTIONS:
        raise ValueError(f"reduction must be one of {_REDUCTIONS}; got {reduction!r}")
    if not 0.0 <= label_smoothing <= 1.0:
        raise ValueError(f"label_smoothing must be in [0, 1]; got {label_smoothing!r}")
    shape = x.shape
    if grad_out is not None:
        _checks.check_out(grad_out, shape, dtype, "grad_out")
    module = _backends.resolve(backend)
    x = _classes_last(_api._as_dtype(x, compute), axis)
    mask = _checks.broadcast_mask(where, shape)
    if mask is not None:
        mask = _classes_last(mask, axis)
    weights = None if weight is None else _class_weights(weight, shape[axis], compute)
    t = _checks.as_array(target)
    if t.dtype.kind in "iu":
        terms = _IndexTarget(x, t, ignore_index, label_smoothing, weights, mask)
    elif t.dtype.kind == "f":
        terms = _ProbabilityTarget(x, _classes_last(t, axis, shape), label_smoothing, weights, mask)
    else:
        raise TypeError(
            f"target must hold class indices (integers) or probabilities (floats); got {t.dtype}"
        )

    rows = x.shape[:-1]
    threads = get_num_threads()
    if x.size:
        row_max, row_sum = np.empty(rows, compute), np.empty(rows, compute)
        module.row_partials(x, mask, row_max, row_sum, x.ndim - 1, threads)
    else:  # no classes: the partials of an empty row
        row_max, row_sum = np.full(rows, -np.inf, compute), np.zeros(rows, compute)
    # Warnings off: 0 * inf, inf - inf and 0 / 0 are PyTorch's NaNs (and are taken care of).
    with np.errstate(all="ignore"):
        per_row, total = terms.losses(row_max, row_sum)
        per_row = _exact_rows(per_row, row_max, x, mask, terms, backend)
        scale = 1 / np.float64(terms.denominator) if reduction == "mean" else np.float64(1)
        loss = per_row[0].astype(dtype)[()] if reduction == "none" else per_row.sum() * scale
        if reduction == "mean" and terms.denominator == 0:
            loss = np.nan  # PyTorch's 0 / 0, even where smoothing gave the rows a loss
        if reduction != "none":
            loss = dtype.type(loss)
        if not return_grad:
            return loss
        # 0 at an ignored row: a divisor of inf, a gradient of 0.
        divisor = (row_sum / _scaled(total, scale, terms.counted)).astype(compute)
        user_out = None if grad_out is None or dtype is not compute else grad_out
        out = None if user_out is None else _classes_last(user_out, axis)
        # (row_max and divisor are new arrays: only the logits or the mask can overlap out.)
        out, grad = _api._output(out, x, compute, compute, _api._present(x, mask), "grad_out")
        if x.size:
            module.softmax_given(x, mask, row_max, divisor, grad, x.ndim - 1, threads)
        terms.subtract(grad, scale)
    if out is not None and out is not grad:
        np.copyto(out, grad)
    if user_out is not None:
        return loss, user_out
    grad = np.moveaxis(grad[0], -1, axis)
    if dtype is compute:
        return loss, grad
    return loss, _api._deliver(grad_out, grad, dtype)


class _IndexTarget:
    """A class-index target: ``coef_rc = a_r [c == t_r] + b_r w_c`` with ``a_r = (1 - eps) w_t``
    and ``b_r = eps / (the row's kept classes)`` where the row counts, both 0 where it does
    not."""

    def __init__(self, x, t, ignore_index, smoothing, weights, mask):
        classes = x.shape[-1]
        if t.shape != x.shape[1:-1]:
            raise ValueError(
                "a class-index target must have the logits' shape without the class axis, "
                f"{x.shape[1:-1]}; got {t.shape}"
            )
        t = t[np.newaxis]
        counted = t != ignore_index
        every_row = bool(counted.all())
        safe = t if every_row else np.where(counted, t, 0)
        if safe.size and (safe.min() < 0 or safe.max() >= classes):
            _raise_out_of_range(t, counted, classes, ignore_index)
        self.at_target = (*np.indices(t.shape, sparse=True), safe)
        if mask is not None:
            _check_unmasked(t, counted, mask[self.at_target], ignore_index)
        self.x, self.mask, self.weights = x, mask, weights
        self.counted = counted
        if weights is None:
            self.a = counted * (1.0 - smoothing)
            self.denominator = float(t.size if every_row else np.count_nonzero(counted))
        else:
            w_t = weights[safe].astype(np.float64)
            self.a = np.where(counted, (1 - smoothing) * w_t, 0.0)
            self.denominator = float(np.sum(w_t, where=counted))
        self.b = None
        if smoothing:
            self.class_weights = np.ones(classes, x.dtype) if weights is None else weights
            kept = classes if mask is None else np.count_nonzero(mask, axis=-1)
            self.b = np.where(counted & (kept > 0), smoothing / np.maximum(kept, 1), 0.0)

    def losses(self, row_max, row_sum):
        """``(loss_r, C_r)``, exact where the row's maximum is finite (else _exact_rows)."""
        m = row_max.astype(np.float64)
        x_t = self.x[self.at_target]
        log_sum = np.log(row_sum.astype(np.float64))
        # -log p of the target: m - x_t first, exact for float32 logits. An ignored row's
        # 0 * inf (a logit of -inf) is NaN here, a row for _exact_rows.
        loss = self.a * ((m - x_t) + log_sum)
        total = self.a
        if self.b is not None:
            kept_weight, spread = _weighted_sums(self.x, row_max, self._smoothing_weights)
            loss = loss + self.b * (spread + kept_weight * log_sum)
            total = total + self.b * kept_weight
        return loss, total

    def _smoothing_weights(self, block):
        """w_c at the kept classes of the rows ``block`` (0 at the others), in x's dtype: one
        vector for every row where there is no mask."""
        w = self.class_weights
        return w if self.mask is None else np.where(self.mask[block], w, 0)

    def coefficients(self, rows):
        """coef at the rows ``rows`` (a tuple of index arrays), one row per index."""
        classes = self.x.shape[-1]
        target = self.at_target[-1][rows]
        coef = self.a[rows][:, np.newaxis] * (np.arange(classes) == target[:, np.newaxis])
        if self.b is not None:
            coef = coef + self.b[rows][:, np.newaxis] * self._smoothing_weights(rows)
        return coef

    def subtract(self, grad, scale):
        """grad -= scale * coef, grad holding scale * C_r * softmax."""
        grad[self.at_target] -= _scaled(self.a, scale, self.counted).astype(grad.dtype)
        if self.b is not None:
            rate = _scaled(self.b, scale, self.counted).astype(grad.dtype)
            unweighted = self.weights is None and self.mask is None
            for block in _row_blocks(grad.shape):
                step = rate[block][..., np.newaxis]
                grad[block] -= step if unweighted else step * self._smoothing_weights(block)


class _ProbabilityTarget:
    """A probability target q: ``coef_rc = w_c ((1 - eps) q_rc + eps / (kept classes))`` at
    the row's kept classes, 0 at the others; the mean divides by the row count."""

    def __init__(self, x, q, smoothing, weights, mask):
        self.q = q
        self.x, self.mask, self.weights, self.smoothing = x, mask, weights, smoothing
        self.counted = True  # every row
        self.denominator = float(np.prod(x.shape[1:-1]))

    def coefficients(self, block) -> np.ndarray:
        """coef at the rows ``block``, in x's dtype."""
        q = self.q[block].astype(self.x.dtype)
        classes = q.shape[-1]
        kept = None if self.mask is None else self.mask[block]
        count = classes if kept is None else np.count_nonzero(kept, axis=-1)[..., np.newaxis]
        coef = (1 - self.smoothing) * q + self.smoothing / np.maximum(count, 1)
        if self.weights is not None:
            coef *= self.weights
        return coef if kept is None else np.where(kept, coef, 0)

    def losses(self, row_max, row_sum):
        total, spread = _weighted_sums(self.x, row_max, self.coefficients)
        log_sum = np.log(row_sum.astype(np.float64))
        return spread + np.where(total == 0, 0.0, total * log_sum), total

    def subtract(self, grad, scale):
        for block in _row_blocks(grad.shape):
            grad[block] -= (scale * self.coefficients(block)).astype(grad.dtype)


def _scaled(values: np.ndarray, scale: np.float64, counted) -> np.ndarray:
    """``scale * values``, whose values are 0 at the rows not counted, and stay 0 there where
    the scale is a mean's 1/0 (0 * inf would be NaN)."""
    return scale * values if np.isfinite(scale) else np.where(counted, scale * values, 0)


def _weighted_sums(x, row_max, coefficients) -> tuple[np.ndarray, np.ndarray]:
    """Per row, in float64: ``sum_c coef_c`` and ``sum_c coef_c (m - x_c)``, over blocks of
    rows; ``coefficients(block)`` gives coef there, or one vector for all its rows. Every
    ``m - x_c >= 0``, so neither sum cancels: one vector's is a matrix-vector product in x's
    dtype (BLAS), 5x faster than a float64 sum of the products, within a few units of rounding
    on rows of 50,000; a coefficient array's products are summed in float64."""
    total = np.zeros(row_max.shape)
    spread = np.zeros(row_max.shape)
    vector_total = None  # one vector's sum, the same for every row
    for block in _row_blocks(x.shape):
        coef = coefficients(block)
        shifted = row_max[block][..., np.newaxis] - x[block]
        if coef.ndim == 1:
            if vector_total is None:
                vector_total = coef.sum(dtype=np.float64)
            total[block] = vector_total
            spread[block] = shifted @ coef
        else:
            total[block] = coef.sum(axis=-1, dtype=np.float64)
            products = np.multiply(coef, shifted, out=shifted)
            spread[block] = products.sum(axis=-1, dtype=np.float64)
    return total, spread


def _exact_rows(per_row, row_max, x, mask, terms, backend) -> np.ndarray:
    """per_row with the rows whose maximum or loss is not finite (an inf among the logits, no
    entry with mass, a NaN) recomputed from their float64 log-softmax, whose limit rule gives
    -log(k) at k entries of +inf, as ``sum coef * -logp`` with 0 * inf = 0."""
    # One sum tells that every row is finite (in float64, float32 maxima cannot overflow it).
    if np.isfinite(per_row.sum() + row_max.sum(dtype=np.float64)):
        return per_row
    rows = np.nonzero(~(np.isfinite(row_max) & np.isfinite(per_row)))
    logp = _api.log_softmax(
        x[rows].astype(np.float64), where=None if mask is None else mask[rows], backend=backend
    )
    coef = terms.coefficients(rows)
    per_row[rows] = np.where(coef == 0, 0.0, coef * -logp).sum(axis=-1)
    return per_row


def _classes_last(a: np.ndarray, axis: int, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """``a`` (of ``shape``, if given: a ValueError otherwise) with the class axis last and one
    row axis in front (so a 1-D logits is one row), as a view."""
    if shape is not None and a.shape != shape:
        raise ValueError(f"a probability target must have the logits' shape {shape}; got {a.shape}")
    if axis != a.ndim - 1:
        a = np.moveaxis(a, axis, -1)
    return a[np.newaxis]


def _row_blocks(shape: tuple[int, ...]) -> Iterator[tuple]:
    """Index tuples of the rows of an array of ``shape`` (classes last), each a block of about
    _BLOCK_ELEMENTS elements, that together cover it."""
    step = max(1, _BLOCK_ELEMENTS // max(shape[-1], 1))
    for head in np.ndindex(*shape[:-2]):
        for j in range(0, shape[-2], step):
            yield (*head, slice(j, j + step))


def _raise_out_of_range(t, counted, classes, ignore_index) -> None:
    """IndexError naming the first counted target outside [0, classes) and its position."""
    bad = counted & ((t < 0) | (t >= classes))
    where = tuple(int(i) for i in np.argwhere(bad)[0][1:])
    raise IndexError(
        f"target {int(t[(0, *where)])} at position {where} is not a class index in "
        f"[0, {classes}) nor ignore_index={ignore_index}"
    )


def _check_unmasked(t, counted, on_kept, ignore_index) -> None:
    """ValueError naming the first counted target on a class the mask leaves out."""
    masked = counted & ~on_kept
    if masked.any():
        where = tuple(int(i) for i in np.argwhere(masked)[0][1:])
        raise ValueError(
            f"target {int(t[(0, *where)])} at position {where} is a class that where= leaves out"
        )


def _class_weights(weight: ArrayLike, classes: int, dtype: np.dtype) -> np.ndarray:
    w = np.asarray(weight)
    if w.dtype.kind not in "iuf":
        raise TypeError(f"weight must hold real numbers; got dtype {w.dtype}")
    if w.shape != (classes,):
        raise ValueError(f"weight must have one entry per class, shape ({classes},); got {w.shape}")
    return w.astype(dtype)
