"""A reduction over several axes, handed to the backends as one along a single axis.

The backends reduce along one axis. `run` gives them a call over an axis tuple (``None`` and
``()`` included, as `_checks.normalize_axis` returns them) as such a call: in every operand of
x's shape the reduction axes move to the end and merge into one axis, the product of their
lengths long, and the other axes (the batch) keep their order, so an operand of x's shape
without the axes (a per-row result) already has the batch's shape and is passed as it is.
With ``axis=()`` the merged axis has length 1: every entry is its own row. `try_fast` gives a
backend's fast path (the Note in _backends.py) the same merged views, so a call whose axes
merge costs the one-axis call plus the few microseconds of Python that merging takes (the C++
fast path merges a run of adjacent axes itself, before this: cpp/src/module.cpp).

[Note: merging the axes]
Two axes ``p`` then ``q`` of an array merge into one, as a view, when ``stride[p] == stride[q] *
shape[q]`` (a length-1 axis merges with any), the rule a C-ordered reshape follows. A row is a
set of entries: the order the merged axis lists them in changes no result beyond rounding, but
it must be the same in every operand. We take the order by decreasing ``|stride|`` in x (ties:
the axes' own order), which merges a C- or Fortran-ordered x, its
transposes and any slice that keeps whole the axes it reduces over; every other operand is
checked in that order. So ``axis=(1, 2)`` of a C-contiguous ``(64, 32, 32)`` x becomes axis 1 of
a ``(64, 1024)`` view, the call the user could have made. An operand whose axes do not merge
(``axis=(0, 2)`` of a C-contiguous 3-D array) goes through a scratch (the Note on batches).

[Note: batches of rows]
Rows we cannot view are gathered, a batch at a time, into C-contiguous scratch arrays (along
whose last axis the backend reads a row as it would a C-contiguous one); a scratch output is
scattered back into its rows after the batch. The scratch arrays of a batch hold at most
``BATCH_BYTES`` = 8 MiB together, or one row of each where a row is larger. A transposed copy
of every operand would double a call's memory; 8 MiB is a bounded cost whatever the array, and
still large next to the Python work of a batch (slices, copies, the backend's own checks):
about 17 us a batch, against 3.8 ms for a batch of 8 MiB (softmax of a (64, 256, 64) float32
x over axes (0, 2) with its out, gathered and scattered; one thread, a loaded 2-core machine).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np

from . import _checks

BATCH_BYTES = 8 * 2**20  # see the Note on batches of rows
_FLOAT32, _FLOAT64 = np.dtype(np.float32), np.dtype(np.float64)


def run(
    kernel: Callable[..., None],
    inputs: tuple[np.ndarray, ...],
    outputs: tuple[np.ndarray | None, ...],
    axes: tuple[int, ...],
    threads: int,
    reduced: tuple[int, ...] = (),
) -> None:
    """``kernel(*inputs, *outputs, axis, threads)`` over ``axes`` of ``inputs[0]`` as one axis.

    ``axes`` are distinct, sorted and non-negative; the arrays are non-empty and follow the
    backend contract (see ``_api.py``). ``inputs`` and ``outputs`` may hold None (an operand
    the call does not have: no mask, an output it does not ask for), and the outputs at the
    positions in ``reduced`` have x's shape without ``axes``.
    """
    plan = _plan(axes, inputs[0])
    perm, chain, merged_shape = plan
    full = [a for i, a in enumerate(outputs) if a is not None and i not in reduced]
    views: dict[int, np.ndarray | None] = {}  # by id: the same array gets the same view
    for a in (*inputs, *full):
        if a is not None and id(a) not in views:
            views[id(a)] = a.transpose(perm).reshape(merged_shape) if _merges(a, chain) else None
    if all(view is not None for view in views.values()):
        merged_outputs = tuple(
            a if a is None or i in reduced else views[id(a)] for i, a in enumerate(outputs)
        )
        merged_inputs = (a if a is None else views[id(a)] for a in inputs)
        kernel(*merged_inputs, *merged_outputs, len(merged_shape) - 1, threads)
        return
    _run_in_batches(kernel, inputs, outputs, reduced, views, plan, threads)


def try_fast(
    fast: Callable[..., np.ndarray | None],
    inputs: tuple[object, ...],
    out: object,
    axis: object,
    threads: int,
) -> np.ndarray | None:
    """A backend's fast path ``fast`` (the Note in _backends.py) on the views `run` would make.

    For an ``axis`` that is not an int, after the fast path declined it: where the inputs are
    native float arrays of one shape and every operand's axes merge, the call is that of the
    merged views along their last axis, the result as `run` would give it; anything else
    returns None and the Python layer takes it (the axis errors are those it would raise).
    """
    x = inputs[0]
    if type(x) is not np.ndarray or (x.dtype is not _FLOAT32 and x.dtype is not _FLOAT64):
        return None
    for a in inputs[1:]:
        if type(a) is not np.ndarray or a.dtype is not x.dtype or a.shape != x.shape:
            return None
    if out is not None and (type(out) is not np.ndarray or out.shape != x.shape):
        return None
    axes = _checks.normalize_axis(axis, x.ndim)
    if type(axes) is int:
        return fast(*inputs, out, axes, threads)
    if axes and axes[0] == x.ndim - len(axes):
        trailing = _try_trailing(fast, inputs, out, axes[0], threads)
        if trailing is not None:
            return trailing
    perm, chain, merged_shape = _plan(axes, x)
    arrays = inputs if out is None else (*inputs, out)
    if not all(_merges(a, chain) for a in arrays):  # type: ignore[arg-type]
        return None
    views = [a.transpose(perm).reshape(merged_shape) for a in arrays]  # type: ignore[union-attr]
    if out is not None:
        return None if fast(*views, len(merged_shape) - 1, threads) is None else out
    result = fast(*views, None, len(merged_shape) - 1, threads)
    if result is None:
        return None
    # C-contiguous as x's merged view is: back in x's axis order it has x's layout.
    if x.ndim == 0:
        return result.reshape(())[()]  # a NumPy scalar, as `_api` gives for a 0-d input
    result = result.reshape([x.shape[d] for d in perm])
    return result.transpose(sorted(range(x.ndim), key=perm.__getitem__))  # the inverse of perm


def _try_trailing(
    fast: Callable[..., np.ndarray | None],
    inputs: tuple[np.ndarray, ...],
    out: np.ndarray | None,
    first: int,
    threads: int,
) -> np.ndarray | None:
    """`try_fast` for the axes ``first, ..., ndim - 1`` of C-contiguous operands, the common
    case, by one reshape each way: the general plan's Python (~4 us) is a fifth of a (64, 32,
    32) softmax's 22 us, this about 1 us."""
    arrays = inputs if out is None else (*inputs, out)
    if not all(a.flags.c_contiguous for a in arrays):  # type: ignore[union-attr]
        return None
    x = inputs[0]
    merged = (*x.shape[:first], math.prod(x.shape[first:]))
    views = [a.reshape(merged) for a in arrays]  # type: ignore[union-attr]
    if out is not None:
        return None if fast(*views, first, threads) is None else out
    result = fast(*views, None, first, threads)
    return None if result is None else result.reshape(x.shape)


def _plan(axes: tuple[int, ...], x: np.ndarray) -> tuple[tuple[int, ...], list[int], tuple]:
    """``(perm, chain, merged_shape)``: the axes in the order that puts the batch first and the
    reduction axes last, those of the latter longer than 1, and the shape of a merged view."""
    shape, strides = x.shape, x.strides
    # By decreasing |stride| of x (the Note on merging); sorted() keeps ties in axis order.
    order = sorted(axes, key=lambda d: -abs(strides[d])) if len(axes) > 1 else axes
    batch = [d for d in range(len(shape)) if d not in axes]
    length = 1
    for d in axes:
        length *= shape[d]
    return (
        (*batch, *order),
        [d for d in order if shape[d] != 1],
        (*[shape[d] for d in batch], length),
    )


def _merges(a: np.ndarray, chain: list[int]) -> bool:
    """Whether the axes ``chain`` of ``a``, in that order, merge into one as a view."""
    strides, shape = a.strides, a.shape
    return all(strides[p] == strides[q] * shape[q] for p, q in itertools.pairwise(chain))


def _run_in_batches(
    kernel: Callable[..., None],
    inputs: tuple[np.ndarray, ...],
    outputs: tuple[np.ndarray | None, ...],
    reduced: tuple[int, ...],
    views: dict[int, np.ndarray | None],
    plan: tuple[tuple[int, ...], list[int], tuple],
    threads: int,
) -> None:
    """`run` for operands some of which do not merge: the Note on batches of rows."""
    perm, _, merged_shape = plan
    x = inputs[0]
    batch_shape, n = merged_shape[:-1], merged_shape[-1]
    row_shape = tuple(x.shape[d] for d in perm[len(batch_shape) :])
    full = [i for i, a in enumerate(outputs) if a is not None and i not in reduced]
    # One scratch per array that does not merge; an output that is exactly an input (in place)
    # is computed in that input's scratch, as the backends allow.
    owners: list[np.ndarray] = []  # the array each scratch is for: inputs, then outputs
    slot: dict[int, int] = {}  # id of an array that does not merge -> its scratch
    for group in ([a for a in inputs if a is not None], [outputs[i] for i in full]):
        filled = len(owners)  # after the inputs: the scratches each batch fills
        for a in group:
            if views[id(a)] is None and id(a) not in slot:
                twin = next((k for k, b in enumerate(owners) if _checks.same_view(a, b)), None)
                if twin is None:
                    twin = len(owners)
                    owners.append(a)
                slot[id(a)] = twin
    gathers = [(a.transpose(perm), k) for k, a in enumerate(owners[:filled])]
    scatters = [(a.transpose(perm), slot[id(a)]) for i in full if id(a := outputs[i]) in slot]
    split, chunk = _split(batch_shape, max(1, BATCH_BYTES // (n * x.itemsize * len(owners))))
    lead = batch_shape if split < 0 else (chunk, *batch_shape[split + 1 :])
    scratches = [np.empty((*lead, *row_shape), a.dtype) for a in owners]  # a mask's: bool
    for index in _batches(batch_shape, split, chunk):
        parts = scratches if split < 0 else [s[: _length(index[split])] for s in scratches]
        for source, k in gathers:
            np.copyto(parts[k], source[index])
        rows = [part.reshape((*part.shape[: len(lead)], n)) for part in parts]  # C order: views

        def operand(a: np.ndarray | None, rows: list = rows, index: tuple = index):
            if a is None:
                return None
            view = views[id(a)]
            return rows[slot[id(a)]] if view is None else view[index]

        kernel(
            *(operand(a) for a in inputs),
            *(
                a if a is None else a[index] if i in reduced else operand(a)
                for i, a in enumerate(outputs)
            ),
            len(lead),
            threads,
        )
        for target, k in scatters:
            np.copyto(target[index], parts[k])


def _split(batch_shape: tuple[int, ...], rows: int) -> tuple[int, int]:
    """``(axis, chunk)``: batches are ``chunk`` indices of batch axis ``axis`` times all of the
    axes after it, at most ``rows`` rows; axis -1 when the whole batch fits in one."""
    inner = 1
    for axis in reversed(range(len(batch_shape))):
        if inner * batch_shape[axis] > rows:
            return axis, max(1, rows // inner)
        inner *= batch_shape[axis]
    return -1, 1


def _batches(batch_shape: tuple[int, ...], split: int, chunk: int):
    """The index of every batch into an array whose leading axes are ``batch_shape``."""
    if split < 0:
        yield (Ellipsis,)
        return
    length = batch_shape[split]
    for prefix in itertools.product(*map(range, batch_shape[:split])):
        for start in range(0, length, chunk):
            yield (*prefix, slice(start, min(start + chunk, length)), Ellipsis)


def _length(part: slice) -> int:
    return part.stop - part.start
