"""Private: a softmax whose rows are split into chunks, from per-chunk row partials.

What a distributed softmax (a Dask array chunked along the softmax axis) is built from, as the
online softmax of Milakov and Gimelshein (2018): each chunk's rows reduced to the pair
``(max, sum(exp(x - max)))`` (`row_partials`), the pairs combined across the chunks of a row
(`combine`), and each chunk's softmax or log-softmax written from the combined pair
(`softmax_given`). Two reads of the data in all. The kernels are those of the whole-row
functions (cpp/src/operations.hpp's Note on row partials), so a row split into chunks gives the
whole row's result to the rounding of the combine. One integer axis; ``where=`` and
``backend=`` as in `fastsoftmax.softmax`: every backend has these kernels (the Numba ones in
``_numba/operations.py``'s Note on row partials).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from . import _api, _backends, _checks
from ._threads import get_num_threads


def row_partials(
    x: ArrayLike, axis: int = -1, *, where: ArrayLike | None = None, backend: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(row_max, row_sum)``, each of x's shape without ``axis``: the maximum of each row over
    its kept entries (NaN ignored) and ``sum(exp(x - row_max))`` over them, in the compute dtype
    (float32 for float16 and float32 input, else float64). A row whose maximum is ``+inf`` has
    the count of its ``+inf`` entries as its sum (the limit); one with no mass (all ``-inf``,
    nothing kept, or no entries) has maximum ``-inf`` and sum 0; a NaN makes the sum NaN."""
    module = _backends.resolve(backend)
    x = _checks.as_array(x)
    compute, _ = _checks.result_dtypes(x.dtype, "x")
    ax = _checks.normalize_axis(axis, x.ndim)
    if type(ax) is not int:
        raise TypeError(f"row_partials takes one integer axis; got {axis!r}")
    x = _api._as_dtype(x, compute)
    mask = _checks.broadcast_mask(where, x.shape)
    row_shape = x.shape[:ax] + x.shape[ax + 1 :]
    row_max = np.full(row_shape, -np.inf, compute)
    row_sum = np.zeros(row_shape, compute)
    if x.size:
        module.row_partials(x, mask, row_max, row_sum, ax, get_num_threads())
    return row_max, row_sum


def combine(
    maxima: tuple[np.ndarray, ...], sums: tuple[np.ndarray, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """The pairs of a row's chunks combined into the row's pair, as the kernels combine the
    slices of a row (cpp/src/reductions.hpp): the largest maximum, and each chunk's sum
    rescaled by ``exp(chunk max - row max)`` (1 at the row's maximum, +inf's included) and
    added in float64."""
    row_max = np.maximum.reduce([np.asarray(m) for m in maxima])
    total = np.zeros(row_max.shape)
    for m, s in zip(maxima, sums, strict=True):
        with np.errstate(invalid="ignore"):  # -inf - -inf, inf - inf: where m is the maximum
            scale = np.where(m == row_max, 1.0, np.exp(m.astype(np.float64) - row_max))
        total += s * scale
    return row_max, total.astype(row_max.dtype)


def softmax_given(
    x: ArrayLike,
    row_max: ArrayLike,
    row_sum: ArrayLike,
    axis: int = -1,
    *,
    log: bool = False,
    where: ArrayLike | None = None,
    out: np.ndarray | None = None,
    backend: str | None = None,
) -> np.ndarray:
    """The softmax (``log=True``: log-softmax) of ``x`` along ``axis``, each row's pair over
    the whole row given (x's shape without ``axis``): ``exp(x - row_max) / row_sum`` and
    ``(x - row_max) - log(row_sum)``. A ``+inf`` maximum gives the limit (``1/row_sum`` at the
    ``+inf`` entries, 0 elsewhere); a ``-inf`` one, a row with no mass, NaN (the whole-row
    functions' rule for an all ``-inf`` row). Entries ``where`` leaves out get 0 (``-inf``)."""
    module = _backends.resolve(backend)
    x = _checks.as_array(x)
    compute, dtype = _checks.result_dtypes(x.dtype, "x")
    ax = _checks.normalize_axis(axis, x.ndim)
    if type(ax) is not int:
        raise TypeError(f"softmax_given takes one integer axis; got {axis!r}")
    row_shape = x.shape[:ax] + x.shape[ax + 1 :]
    pair = []
    for name, value in (("row_max", row_max), ("row_sum", row_sum)):
        array = np.require(np.asarray(value, dtype=compute), requirements="A")
        if array.shape != row_shape:
            raise ValueError(
                f"{name} must have x's shape without the axis {row_shape}; got {array.shape}"
            )
        pair.append(array)
    x = _api._as_dtype(x, compute)
    mask = _checks.broadcast_mask(where, x.shape)
    inputs = (x, *pair) if mask is None else (x, *pair, mask)
    user_out, written = _api._output(out, x, dtype, compute, inputs, "out")
    if x.size:
        kernel = module.log_softmax_given if log else module.softmax_given
        kernel(x, mask, *pair, written, ax, get_num_threads())
    return _api._deliver(user_out, written, dtype)
