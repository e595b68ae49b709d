"""The expected result of a masked call (``where=``), from the unmasked reference of each row's
kept entries.

A masked row is, by definition, the row made of its True entries alone: each row is compressed
to those, the operation's float64 reference and tolerance rule (``support.reference``,
``support.tolerances``) are applied to that shorter row, and the results are put back in place.
An entry the mask leaves out expects exactly the masked forward's value there (softmax 0,
log_softmax -inf, every gradient 0), and so does every entry of a row with no True entry. This
shares no code with the package's own masked kernels or its NumPy backend.
"""

from __future__ import annotations

import numpy as np

from .operations import OPERATIONS
from .tolerances import Expected

# What an entry the mask leaves out holds, by function.
MASKED_VALUE = {
    "softmax": 0.0,
    "log_softmax": -np.inf,
    "softmax_backward": 0.0,
    "log_softmax_backward": 0.0,
    "softmax_jvp": 0.0,
}


def _rows(a: np.ndarray, axes: tuple[int, ...]) -> np.ndarray:
    """``a`` with ``axes`` moved last and merged: (rows, n), a copy."""
    moved = np.moveaxis(a, axes, range(a.ndim - len(axes), a.ndim))
    n = int(np.prod([a.shape[d] for d in axes], dtype=np.int64))
    return moved.reshape(-1, n).copy()


def _unrows(rows: np.ndarray, shape: tuple[int, ...], axes: tuple[int, ...]) -> np.ndarray:
    """The inverse of `_rows` for an array of ``shape``."""
    batch = [shape[d] for d in range(len(shape)) if d not in axes]
    moved = rows.reshape(*batch, *[shape[d] for d in axes])
    return np.moveaxis(moved, range(len(shape) - len(axes), len(shape)), axes)


def _axes(axis: int | tuple[int, ...] | None, ndim: int) -> tuple[int, ...]:
    if axis is None:
        return tuple(range(ndim))
    return tuple(sorted(d % ndim for d in ((axis,) if isinstance(axis, int) else axis)))


def expect_masked(
    name: str,
    inputs: tuple[np.ndarray, ...],
    where: np.ndarray,
    axis: int | tuple[int, ...] | None,
    dtype: np.dtype,
) -> Expected:
    """The reference value of ``name`` on ``inputs`` masked by ``where`` (broadcastable), and
    its tolerance in ``dtype``: row by row, on the kept entries only."""
    op = OPERATIONS[name]
    shape = np.shape(inputs[0])
    axes = _axes(axis, len(shape))
    rows = [_rows(np.asarray(a, np.float64), axes) for a in inputs]
    keep = _rows(np.broadcast_to(where, shape), axes)
    value = np.full(rows[0].shape, MASKED_VALUE[name])
    tol = np.zeros(rows[0].shape)
    for r in range(keep.shape[0]):
        kept = keep[r]
        if not kept.any():
            continue
        part = tuple(a[r, kept][np.newaxis] for a in rows)
        expected = op.rule(op.reference(*part, -1), part, -1, dtype)
        value[r, kept] = expected.value[0]
        tol[r, kept] = expected.tol[0]
    return Expected(_unrows(value, shape, axes), _unrows(tol, shape, axes))


def masked_saved_input(
    forward: str, x: np.ndarray, where: np.ndarray, axis: int, dtype: np.dtype
) -> np.ndarray:
    """What the masked ``forward`` gives on ``x``: a backward's saved input under the mask."""
    return expect_masked(forward, (x,), where, axis, dtype).value.astype(dtype)
