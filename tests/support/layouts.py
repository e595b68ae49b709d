"""Memory layouts an array is tested in: every layout a NumPy user can hand the functions."""

from __future__ import annotations

import numpy as np

LAYOUTS = (
    "C",
    "F",
    "strided",
    "negative",
    "negative-strided",
    "transposed",
    "unaligned",
)


def in_layout(values: np.ndarray, layout: str) -> tuple[np.ndarray, np.ndarray | None]:
    """``(array equal to values stored in layout, the whole buffer or None)``.

    Elements of the buffer outside the array hold NaN, so a kernel reading past the view shows.
    """
    shape = values.shape
    buffer: np.ndarray | None = None
    if layout == "C":
        array = np.ascontiguousarray(values).copy()
    elif layout == "F":
        array = np.array(values, order="F")  # a copy (ndarray.copy would make it C-ordered)
    elif layout in ("strided", "negative-strided"):
        # Every other element of a NaN-filled buffer: 1, 3, ... or 2n, 2n-2, ..., 2.
        buffer = np.full(tuple(2 * n + 1 for n in shape), np.nan, dtype=values.dtype)
        step = slice(None, None, -2) if layout == "negative-strided" else slice(1, None, 2)
        array = buffer[(step,) * len(shape)][tuple(slice(None, n) for n in shape)]
        array[...] = values
    elif layout == "negative":
        array = np.empty_like(values)[tuple(slice(None, None, -1) for _ in shape)]
        array[...] = values
    elif layout == "transposed":
        perm = tuple(reversed(range(values.ndim)))
        array = np.ascontiguousarray(values.transpose(perm)).transpose(perm)
    elif layout == "unaligned":
        raw = np.zeros(values.nbytes + values.itemsize + 1, dtype=np.uint8)
        array = raw[1 : 1 + values.nbytes].view(values.dtype).reshape(shape)
        array[...] = values
        assert not array.flags.aligned or values.itemsize == 1
    else:  # pragma: no cover
        raise ValueError(layout)
    assert np.array_equal(array, values, equal_nan=True)
    return array, buffer
