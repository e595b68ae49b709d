"""Argument checks shared by the public functions: dtypes, axis, ``out=``, memory overlap."""

from __future__ import annotations

import operator

import numpy as np
from numpy.exceptions import AxisError

_FLOAT16 = np.dtype(np.float16)
_FLOAT32 = np.dtype(np.float32)
_FLOAT64 = np.dtype(np.float64)


def as_array(value: object) -> np.ndarray:
    """``np.asarray(value)``, skipped for an ndarray (the common case, and 10x cheaper)."""
    return value if type(value) is np.ndarray else np.asarray(value)


def common_dtype(first: np.ndarray, second: np.ndarray, names: tuple[str, str]) -> np.dtype:
    """NumPy's result type of two arrays, each refused if it has no softmax."""
    if first.dtype is second.dtype:
        return first.dtype
    for array, name in zip((first, second), names, strict=True):
        result_dtypes(array.dtype, name)
    return np.result_type(first.dtype, second.dtype)


def result_dtypes(dtype: np.dtype, name: str) -> tuple[np.dtype, np.dtype]:
    """``(compute dtype, result dtype)`` for an input dtype.

    float32 and float64 are computed as they are, float16 in float32 (its 11-bit mantissa would
    make the row sums useless), integers and bools in float64 as ``np.exp`` does.
    """
    known = _COMMON_DTYPES.get(dtype)  # one dict lookup on the per-call path
    if known is not None:
        return known
    return _dtype_rule(dtype, name)


def _dtype_rule(dtype: np.dtype, name: str) -> tuple[np.dtype, np.dtype]:
    if dtype.kind == "f" and dtype.itemsize in (4, 8):
        native = _FLOAT32 if dtype.itemsize == 4 else _FLOAT64
        return native, native
    if dtype.kind == "f" and dtype.itemsize == 2:
        return _FLOAT32, _FLOAT16
    if dtype.kind in "biu":
        return _FLOAT64, _FLOAT64
    raise TypeError(
        f"{name} must hold real numbers (float16/32/64, integer or bool); got dtype {dtype}"
        + (" (longdouble is not supported: cast to float64)" if dtype.kind == "f" else "")
    )


_INTEGER_TYPES = (np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64)
_COMMON_DTYPES = {
    np.dtype(t): _dtype_rule(np.dtype(t), "")
    for t in (np.float16, np.float32, np.float64, np.bool_, *_INTEGER_TYPES)
}


def normalize_axis(axis: object, ndim: int) -> int | tuple[int, ...]:
    """``axis`` as what the backends take: one non-negative index, or the sorted tuple of them.

    An int, or a tuple or None that selects exactly one axis, gives that axis as an int (the
    backends' own case); any other tuple or None gives the sorted tuple of the axes it selects,
    ``()`` included, for `_axes.run`. NumPy's AxisError for one out of range.
    """
    if type(axis) is int and -ndim <= axis < ndim:  # the common case, without the checks below
        return axis % ndim
    if axis is None:
        axes: tuple[int, ...] = tuple(range(ndim))
    elif type(axis) is tuple:
        axes = tuple(sorted(_axis_set(axis, ndim)))
    else:
        return _axis_index(axis, ndim, "axis must be an integer, a tuple of integers or None")
    return axes[0] if len(axes) == 1 else axes


def _axis_set(axis: tuple, ndim: int) -> set[int]:
    seen: set[int] = set()
    for entry in axis:
        if type(entry) is int and -ndim <= entry < ndim:  # the common case, as above
            index = entry % ndim
        else:
            index = _axis_index(entry, ndim, f"axis entries must be integers (in {axis!r})")
        if index in seen:
            raise ValueError(f"axis {index} appears twice in axis={axis!r}")
        seen.add(index)
    return seen


def _axis_index(axis: object, ndim: int, expected: str) -> int:
    # A bool is an int to Python, but axis=True is far likelier a mistake than a request for
    # axis 1: refused, as NumPy 2's reductions do.
    if isinstance(axis, bool):
        raise TypeError(f"{expected}; got {axis!r}")
    try:
        index = operator.index(axis)
    except TypeError:
        raise TypeError(f"{expected}; got {axis!r}") from None
    if not -ndim <= index < ndim:
        raise AxisError(index, ndim)  # also for 0-d input, which has no axis
    return index % ndim


def same_shape(first: np.ndarray, second: np.ndarray, names: tuple[str, str]) -> None:
    if first.shape != second.shape:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape; "
            f"got {first.shape} and {second.shape}"
        )


def broadcast_mask(where: object, shape: tuple[int, ...]) -> np.ndarray | None:
    """``where`` as a boolean array of ``shape``: a broadcast view (zero strides where it is
    shorter), never a copy; None for no mask."""
    if where is None:
        return None
    mask = as_array(where)
    if mask.dtype != np.bool_:
        raise TypeError(f"where must be a boolean array; got dtype {mask.dtype}")
    try:
        return np.broadcast_to(mask, shape)
    except ValueError:
        raise ValueError(
            f"where must broadcast to x's shape {shape}; got shape {mask.shape}"
        ) from None


def check_out(out: object, shape: tuple[int, ...], dtype: np.dtype, name: str) -> np.ndarray:
    """Refuse an ``out`` array the result cannot be written into exactly."""
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{name} must be a numpy.ndarray; got {type(out).__name__}")
    if out.shape != shape:
        raise ValueError(f"{name} must have the result's shape {shape}; got {out.shape}")
    if out.dtype != dtype:
        raise TypeError(f"{name} must have the result's dtype {dtype}; got {out.dtype}")
    flags = out.flags  # looked up once: each lookup builds a flags object
    if not flags.writeable:
        raise ValueError(f"{name} is read-only")
    # A contiguous array's elements are distinct: the common case, settled in a tenth of the
    # 0.7 us the general test takes (a fifth of a small softmax_jvp call).
    if not (flags.c_contiguous or flags.f_contiguous) and _has_internal_overlap(out):
        raise ValueError(
            f"{name} has elements that share memory (a view made with as_strided or a zero "
            "stride); write the result into an array whose elements are distinct"
        )
    return out


def _has_internal_overlap(a: np.ndarray) -> bool:
    """Whether two elements of ``a`` share a byte. Where each dimension, by increasing stride,
    steps past all the smaller ones (every array NumPy makes by slicing or transposing) it
    settles this at once; otherwise it compares the elements' byte offsets."""
    if a.size == 0:  # no elements (NumPy may give them any strides)
        return False
    dims = sorted((abs(st), n) for st, n in zip(a.strides, a.shape, strict=True) if n > 1)
    span = a.itemsize
    for stride, length in dims:
        if stride < span:
            break
        span += stride * (length - 1)
    else:
        return False
    offsets = np.zeros(1, np.int64)
    for stride, length in dims:
        offsets = (offsets[:, None] + stride * np.arange(length, dtype=np.int64)).ravel()
    offsets.sort()
    return bool((np.diff(offsets) < a.itemsize).any())


def same_view(first: np.ndarray, second: np.ndarray) -> bool:
    return (
        first.dtype == second.dtype
        and first.strides == second.strides
        and first.__array_interface__["data"][0] == second.__array_interface__["data"][0]
    )


def needs_scratch(out: np.ndarray, inputs: tuple[np.ndarray, ...]) -> bool:
    """Whether ``out`` overlaps an input other than by being exactly that input.

    Every kernel reads element i of its inputs before it writes element i of its output, so
    ``out`` may *be* an input; any other overlap is computed into a scratch array first.
    """
    for array in inputs:  # a plain loop: this runs on every call with out=
        if out is not array and np.may_share_memory(out, array) and not same_view(out, array):
            return True
    return False
