"""The public functions: check the arguments once, then hand plain arrays to a backend.

Every backend function receives arrays of one shape and one float dtype (float32 or float64),
a non-negative ``axis`` (an axis tuple reaches them merged into one: ``_axes.py``), a non-empty
input, and outputs that share no memory with the inputs
unless they are exactly an input (see ``_checks.needs_scratch``). ``_reference.py`` states the
contract in code.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from . import _axes, _backends, _checks
from ._threads import get_num_threads

# The default backend's fast paths (the Note in _backends.py) when it is loaded at import, as
# the C++ one is: looked up once, since a call through one takes well under a microsecond.
_FAST = _backends.fast_paths(_backends.DEFAULT)

# What ``axis`` takes: one axis, several reduced jointly, or None for all of them.
Axis = int | tuple[int, ...] | None


def _output(
    out: object, like: np.ndarray, dtype: np.dtype, compute: np.dtype, inputs, name: str
) -> tuple[np.ndarray | None, np.ndarray]:
    """``(user's out or None, array the backend writes)``; they differ when a scratch is needed."""
    if out is None:
        # empty_like keeps the input's memory order, so an F-ordered input gets an F-ordered
        # result and the kernels see the same layout twice; but of a broadcast (zero-stride)
        # input it makes an F-ordered array, which would put the axis across rows.
        if 0 in like.strides:
            return None, np.empty(like.shape, like.dtype)
        return None, np.empty_like(like)
    checked = _checks.check_out(out, like.shape, dtype, name)
    if compute is not dtype or not checked.flags.aligned or _checks.needs_scratch(checked, inputs):
        return checked, np.empty_like(like)
    return checked, checked


def _as_dtype(array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``array`` in ``dtype``, aligned (what the kernels address); a copy only if it is not."""
    # Native float dtypes are singletons, so `is` settles the common case cheaply; a byte-swapped
    # float32 compares unequal and is converted.
    if array.dtype is dtype and array.flags.aligned:
        return array
    if array.dtype == np.float16:
        converted = np.empty_like(array, dtype)
        _copy_into(converted, array)
        return converted
    return array.astype(dtype)


def _deliver(user_out: np.ndarray | None, written: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if user_out is None:
        if written.dtype is not dtype:
            converted = np.empty_like(written, dtype)
            _copy_into(converted, written)
            written = converted
        # Of a 0-d input a NumPy scalar, as NumPy's ufuncs and SciPy's softmax give.
        return written[()] if written.ndim == 0 else written
    if user_out is not written:
        _copy_into(user_out, written)
    return user_out


_HALF_CASTS = {
    (np.dtype(np.float32), np.dtype(np.float16)),
    (np.dtype(np.float16), np.dtype(np.float32)),
}


def _copy_into(target: np.ndarray, source: np.ndarray) -> None:
    """``target[...] = source``; float32 to float16 or back by the C++ core where their
    layouts match and are aligned (cpp/src/half.cpp: NumPy's cast to float16 is 100x slower
    on a softmax's small probabilities), else by NumPy."""
    core = _backends.core()
    if core is not None and (source.dtype, target.dtype) in _HALF_CASTS:
        for t, s in ((target, source), (target.T, source.T)):  # C order, or Fortran
            if t.shape == s.shape and _contiguous_aligned(t) and _contiguous_aligned(s):
                core._convert_half(s, t)
                return
    with np.errstate(over="ignore"):  # float32 -> float16: out-of-range values become inf
        np.copyto(target, source, casting="unsafe")


def _contiguous_aligned(a: np.ndarray) -> bool:
    flags = a.flags
    return flags.c_contiguous and flags.aligned


def _compute(kernel, inputs: tuple, outputs: tuple, axis: int | tuple[int, ...]) -> None:
    """The backend's ``kernel`` on non-empty arrays, along one axis or several (`_axes.run`)."""
    if type(axis) is int:
        kernel(*inputs, *outputs, axis, get_num_threads())
    else:
        _axes.run(kernel, inputs, outputs, axis, get_num_threads())


def _unary(
    op_name: str, x: ArrayLike, axis: Axis, out: object, backend: str | None, where: object
) -> np.ndarray:
    fast = _FAST if backend is None else _backends.fast_paths(backend)
    if fast and where is None:
        result = fast[op_name](x, out, axis, get_num_threads())
        if result is None and type(axis) is not int:  # several axes, merged where they can be
            result = _axes.try_fast(fast[op_name], (x,), out, axis, get_num_threads())
        if result is not None:
            return result
    module = _backends.resolve(backend)
    x = _checks.as_array(x)
    compute, dtype = _checks.result_dtypes(x.dtype, "x")  # before the axis: a dict is 0-d
    ax = _checks.normalize_axis(axis, x.ndim)
    compute = _backends.input_dtype(module, compute, dtype)
    x = _as_dtype(x, compute)
    mask = _checks.broadcast_mask(where, x.shape)
    user_out, written = _output(out, x, dtype, compute, _present(x, mask), "out")
    if x.size:
        _compute(getattr(module, op_name), (x, mask), (written,), ax)
    return _deliver(user_out, written, dtype)


def _present(*arrays: np.ndarray | None) -> tuple[np.ndarray, ...]:
    """The arrays that are given (a mask may be None), for the overlap checks."""
    return tuple(a for a in arrays if a is not None)


def _two_inputs(
    module: object, first: ArrayLike, second: ArrayLike, names: tuple[str, str], axis: Axis
) -> tuple[np.ndarray, np.ndarray, int | tuple[int, ...], np.dtype, np.dtype]:
    """Both inputs checked and in the dtype ``module`` computes them in, the axis,
    ``(compute, result)`` dtypes."""
    a = _checks.as_array(first)
    b = _checks.as_array(second)
    compute, dtype = _checks.result_dtypes(_checks.common_dtype(a, b, names), names[0])
    compute = _backends.input_dtype(module, compute, dtype)
    _checks.same_shape(a, b, names)
    ax = _checks.normalize_axis(axis, a.ndim)
    return _as_dtype(a, compute), _as_dtype(b, compute), ax, compute, dtype


def _binary(
    op_name: str,
    names: tuple[str, str],
    first: ArrayLike,
    second: ArrayLike,
    axis: Axis,
    out: object,
    backend: str | None,
    where: object,
    unasked: tuple = (),
) -> np.ndarray:
    """``op_name`` of two inputs; ``unasked`` are the outputs its kernel also takes that the
    call does not ask for (None each: softmax_jvp's softmax)."""
    fast = _FAST if backend is None else _backends.fast_paths(backend)
    if fast and where is None:
        result = fast[op_name](first, second, out, axis, get_num_threads())
        if result is None and type(axis) is not int:  # several axes, merged where they can be
            result = _axes.try_fast(fast[op_name], (first, second), out, axis, get_num_threads())
        if result is not None:
            return result
    module = _backends.resolve(backend)
    a, b, ax, compute, dtype = _two_inputs(module, first, second, names, axis)
    mask = _checks.broadcast_mask(where, a.shape)
    user_out, written = _output(out, a, dtype, compute, _present(a, b, mask), "out")
    if a.size:
        _compute(getattr(module, op_name), (a, b, mask), (written, *unasked), ax)
    return _deliver(user_out, written, dtype)


def softmax(
    x: ArrayLike,
    axis: Axis = -1,
    *,
    where: ArrayLike | None = None,
    out: np.ndarray | None = None,
    backend: str | None = None,
) -> np.ndarray:
    """Softmax along an axis or over several: ``exp(x - max(x)) / sum(exp(x - max(x)))``.

    Parameters
    ----------
    x : array_like
        Logits. float32 and float64 are computed as they are, float16 in float32 (the result is
        float16), integers and bools in float64.
    axis : int, tuple of ints or None, optional
        The axis the probabilities sum to 1 along, or the axes they sum to 1 over jointly (as
        in ``scipy.special.softmax``): a row is then every entry that shares its index along
        the other axes. Negative axes count from the end; ``None`` takes all axes, ``()`` none
        (each entry is a row of length 1, whose softmax is 1). Default -1.
    where : array_like of bool, optional
        Broadcastable to ``x``'s shape: only the entries where it is True take part, as in
        ``jax.nn.softmax(x, where=...)``. The others are never read for the row's maximum
        and sums, and get probability 0; a row with no True entry is 0 throughout (not NaN,
        and no warning). The mask is read through its own strides: a broadcast mask (a
        ``(512, 512)`` causal mask for ``(8, 12, 512, 512)`` logits) is never expanded.
    out : ndarray, optional
        Where to write the result: the result's shape and dtype, writeable. It may be ``x``
        itself (in place); any other overlap with ``x`` is handled through a scratch copy.
    backend : {None, "cpp", "numba", "numpy"}, optional
        Which implementation computes; ``None`` takes the default (see ``available_backends``).

    Returns
    -------
    ndarray
        The probabilities, ``out`` if it was given.

    Raises
    ------
    TypeError
        For complex, object, string or longdouble input, an ``out`` of the wrong dtype, an
        ``axis`` that is not an int, a tuple of ints or None (a bool is refused, a list too),
        or a ``where`` that is not boolean.
    numpy.exceptions.AxisError
        If an axis is out of range (a 0-d input has none: it takes ``None`` or ``()``).
    ValueError
        For an ``out`` of the wrong shape or a read-only one, an axis named twice in ``axis``,
        a ``where`` that does not broadcast to ``x``'s shape, or an unknown backend.

    Notes
    -----
    Finite inputs never overflow. ``-inf`` entries get probability 0. A row that is all
    ``-inf`` or holds a NaN is NaN. A row holding ``+inf`` gets the limit: its ``+inf`` entries
    share probability 1 equally, the rest get 0. Each float32 output is within
    ``(8 + |x_i - max|) * 2**-24`` of the exact value, relatively.

    Examples
    --------
    >>> import numpy as np, fastsoftmax as fsm
    >>> fsm.softmax(np.array([1.0, 2.0, 3.0])).round(4)
    array([0.09  , 0.2447, 0.6652])
    >>> fsm.softmax(np.zeros((2, 2, 3)), axis=(0, 2))[:, 0]
    array([[0.16666667, 0.16666667, 0.16666667],
           [0.16666667, 0.16666667, 0.16666667]])
    >>> causal = np.tril(np.ones((3, 3), dtype=bool))  # row i attends to 0..i
    >>> fsm.softmax(np.zeros((3, 3)), where=causal).round(4)
    array([[1.    , 0.    , 0.    ],
           [0.5   , 0.5   , 0.    ],
           [0.3333, 0.3333, 0.3333]])
    """
    return _unary("softmax", x, axis, out, backend, where)


def log_softmax(
    x: ArrayLike,
    axis: Axis = -1,
    *,
    where: ArrayLike | None = None,
    out: np.ndarray | None = None,
    backend: str | None = None,
) -> np.ndarray:
    """Log of the softmax along an axis or over several: ``x - max - log(sum(exp(x - max)))``.

    Parameters, returns and errors are those of `softmax`; where ``where`` is False the result
    is ``-inf`` (a row with no True entry is ``-inf`` throughout).

    Notes
    -----
    ``x - max`` is formed first, so the result is exact to rounding even where the softmax
    underflows. ``-inf`` entries give ``-inf``; in a row holding ``+inf`` the ``k`` infinite
    entries give ``-log(k)`` and the rest ``-inf``; a row that is all ``-inf`` or holds a NaN
    is NaN.

    Examples
    --------
    >>> import numpy as np, fastsoftmax as fsm
    >>> fsm.log_softmax(np.array([0.0, 0.0])).round(4)
    array([-0.6931, -0.6931])
    """
    return _unary("log_softmax", x, axis, out, backend, where)


def softmax_backward(
    y: ArrayLike,
    grad: ArrayLike,
    axis: Axis = -1,
    *,
    where: ArrayLike | None = None,
    out: np.ndarray | None = None,
    backend: str | None = None,
) -> np.ndarray:
    """Vector-Jacobian product of softmax, from its saved output: ``y * (grad - sum(y * grad))``.

    This is ``(diag(y) - y yᵀ) @ grad`` for every row, in O(N) per row, without the N×N matrix.

    Parameters
    ----------
    y : array_like
        The forward output ``softmax(x, axis)``.
    grad : array_like
        The gradient of the loss with respect to ``y``; same shape as ``y``.
    axis, out, backend
        As in `softmax`; the result dtype is ``numpy.result_type(y, grad)`` under the dtype rules
        of `softmax`. ``out`` may be ``y`` or ``grad`` itself.
    where : array_like of bool, optional
        The mask of the forward call, broadcastable to ``y``'s shape: the result is then the
        gradient of the masked forward. Entries where it is False are not read (neither ``y``
        nor ``grad``) and get gradient 0.

    Returns
    -------
    ndarray
        The gradient with respect to the logits.

    Raises
    ------
    ValueError
        If ``y`` and ``grad`` differ in shape, besides the errors of `softmax`.

    Examples
    --------
    >>> import numpy as np, fastsoftmax as fsm
    >>> y = fsm.softmax(np.array([1.0, 2.0, 3.0]))
    >>> fsm.softmax_backward(y, np.array([1.0, 0.0, 0.0])).round(4)
    array([ 0.0819, -0.022 , -0.0599])
    """
    return _binary("softmax_backward", ("y", "grad"), y, grad, axis, out, backend, where)


def log_softmax_backward(
    y: ArrayLike,
    grad: ArrayLike,
    axis: Axis = -1,
    *,
    where: ArrayLike | None = None,
    out: np.ndarray | None = None,
    backend: str | None = None,
) -> np.ndarray:
    """Vector-Jacobian product of log-softmax, from its saved output: ``grad - exp(y) * sum(grad)``.

    Parameters
    ----------
    y : array_like
        The forward output ``log_softmax(x, axis)``.
    grad : array_like
        The gradient of the loss with respect to ``y``; same shape as ``y``.
    axis, where, out, backend
        As in `softmax_backward`: given the forward's mask, the sum runs over the True entries
        only, and the others get gradient 0.

    Returns
    -------
    ndarray
        The gradient with respect to the logits.

    Examples
    --------
    >>> import numpy as np, fastsoftmax as fsm
    >>> y = fsm.log_softmax(np.array([0.0, 0.0]))
    >>> fsm.log_softmax_backward(y, np.array([1.0, 0.0]))
    array([ 0.5, -0.5])
    """
    return _binary("log_softmax_backward", ("y", "grad"), y, grad, axis, out, backend, where)


def softmax_jvp(
    x: ArrayLike,
    v: ArrayLike,
    axis: Axis = -1,
    *,
    return_softmax: bool = False,
    where: ArrayLike | None = None,
    out: np.ndarray | tuple[np.ndarray | None, np.ndarray | None] | None = None,
    backend: str | None = None,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Jacobian-vector product of softmax from the logits, fused with the forward pass.

    Computes ``s = softmax(x, axis)`` internally and returns ``s * (v - sum(s * v))``. The
    softmax Jacobian is symmetric, so this is also the vector-Jacobian product.

    Parameters
    ----------
    x : array_like
        Logits.
    v : array_like
        The tangent (or, for reverse mode, the output gradient); same shape as ``x``.
    axis, backend
        As in `softmax`; the result dtype is ``numpy.result_type(x, v)`` under its rules.
    return_softmax : bool, optional
        Also return ``s``, which the pass computes anyway. Default False.
    where : array_like of bool, optional
        As in `softmax`: ``s`` is the masked softmax, and the product is 0 where ``where`` is
        False (``v`` is not read there).
    out : ndarray or tuple of two, optional
        Where to write the product; with ``return_softmax=True`` a pair ``(s_out, jvp_out)``
        as NumPy's two-output ufuncs take it, either of which may be None.

    Returns
    -------
    ndarray or (ndarray, ndarray)
        The product, or ``(s, product)`` with ``return_softmax=True``.

    Notes
    -----
    In a row of ``x`` holding ``+inf`` the Jacobian is the zero matrix (the probabilities no
    longer move), so the product is 0 there whatever ``v`` holds.

    Examples
    --------
    >>> import numpy as np, fastsoftmax as fsm
    >>> fsm.softmax_jvp(np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 0.0])).round(4)
    array([ 0.0819, -0.022 , -0.0599])
    """
    if not return_softmax:  # the call of a binary operation, fast path included
        return _binary("softmax_jvp", ("x", "v"), x, v, axis, out, backend, where, (None,))
    module = _backends.resolve(backend)
    s_out, jvp_out = _jvp_outputs(out)
    a, b, ax, compute, dtype = _two_inputs(module, x, v, ("x", "v"), axis)
    mask = _checks.broadcast_mask(where, a.shape)
    user_jvp, jvp = _output(jvp_out, a, dtype, compute, _present(a, b, mask), "out")
    # The softmax is written before v is read in full, so it may not overlap v at all.
    user_s, s = _output(s_out, a, dtype, compute, _present(a, mask), "out[0]")
    if s is user_s and np.may_share_memory(s, b):
        s = np.empty_like(a)
    # The user's arrays, not the scratch ones a float16 result is computed in.
    if np.may_share_memory(s if user_s is None else user_s, jvp if user_jvp is None else user_jvp):
        raise ValueError("the two outputs of softmax_jvp must not share memory")
    if a.size:
        _compute(module.softmax_jvp, (a, b, mask), (jvp, s), ax)
    return _deliver(user_s, s, dtype), _deliver(user_jvp, jvp, dtype)


def _jvp_outputs(out: object) -> tuple[object, object]:
    """Split ``out=`` of `softmax_jvp` with ``return_softmax`` into ``(s_out, jvp_out)``."""
    if out is None:
        return None, None
    if not isinstance(out, tuple) or len(out) != 2:
        raise TypeError(
            "with return_softmax=True, out must be a tuple (s_out, jvp_out); "
            f"got {type(out).__name__}"
        )
    return out
