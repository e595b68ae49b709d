"""The public `logsumexp`: its arguments checked, the excluded entries folded into ``x``, and
its per-row outputs chosen, then one backend call along one axis (several: `_axes.run`)."""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from . import _axes, _backends, _checks
from ._threads import get_num_threads


def logsumexp(
    x: ArrayLike,
    axis: int | tuple[int, ...] | None = -1,
    *,
    b: ArrayLike | None = None,
    keepdims: bool = False,
    return_sign: bool = False,
    where: ArrayLike | None = None,
    out: np.ndarray | tuple[np.ndarray | None, np.ndarray | None] | None = None,
    backend: str | None = None,
) -> np.ndarray | np.generic | tuple[np.ndarray | np.generic, np.ndarray | np.generic]:
    """Log of the sum of exponentials along an axis: ``log(|sum(b * exp(x))|)``, computed stably.

    The semantics of ``scipy.special.logsumexp``, but along the last axis by default.

    Parameters
    ----------
    x : array_like
        The values. float32 and float64 are computed as they are, float16 in float32 (the
        result is float16), integers and bools in float64.
    axis : int, tuple of ints or None, optional
        The axis summed over, or the axes summed over jointly; negative counts from the end,
        ``None`` sums over every axis and ``()`` over none (each entry alone). Default -1
        (SciPy's default is None).
    b : array_like, optional
        Weights, broadcast together with ``x`` as in SciPy (the result then has the broadcast
        shape); they may be negative.
        Entries where ``b == 0`` do not count at all, so an ``inf`` or NaN of ``x`` there does
        not make the result NaN. The result dtype is ``numpy.result_type(x, b)`` under the rules
        for ``x``.
    keepdims : bool, optional
        Keep the summed axes, with length 1. Default False.
    return_sign : bool, optional
        Also return the sign of the sum: +1, -1, 0 (a sum of 0, whose log is ``-inf``) or NaN.
        Without it, a negative sum gives NaN. Default False.
    where : array_like of bool, optional
        Broadcastable to ``x``'s shape: only the entries where it is True count (as if ``b``
        were 0 elsewhere); the others are not read. A row with none gives ``-inf`` (sign 0).
    out : ndarray or tuple of two, optional
        Where to write the result: the result's shape (``x``'s without the axis, or with it of
        length 1 under ``keepdims``) and dtype, writeable. With ``return_sign=True`` a pair
        ``(out, sign_out)``, either of which may be None.
    backend : {None, "cpp", "numba", "numpy"}, optional
        Which implementation computes; ``None`` takes the default (see ``available_backends``).

    Returns
    -------
    ndarray or scalar, or a pair of them
        The log of the sums, ``out`` if given; a NumPy scalar for a 1-d ``x`` without
        ``keepdims`` (as NumPy's reductions). With ``return_sign=True``, ``(result, sign)``.

    Raises
    ------
    TypeError
        For complex, object, string or longdouble ``x`` or ``b``, a ``where`` that is not
        boolean, an ``out`` of the wrong dtype or ``out`` not a pair under ``return_sign``.
    numpy.exceptions.AxisError
        If ``axis`` is out of range (a 0-d input has no axis).
    ValueError
        If ``b`` or ``where`` does not broadcast to ``x``'s shape; for an ``out`` of the wrong
        shape, a read-only one or outputs that share memory; for an unknown backend.

    Notes
    -----
    The sum is taken against the row's maximum ``m`` over the entries that count, as
    ``m + log|sum(b * exp(x - m))|``, the sums in float64: finite inputs never overflow. Where
    ``m`` is not finite the sum is taken unshifted, as SciPy does: a row all ``-inf`` gives
    ``-inf`` (sign 0), a ``+inf`` entry ``+inf`` with the sign of its ``b`` (``+inf`` entries
    whose ``b`` differ in sign give NaN), a NaN gives NaN. An empty axis gives ``-inf`` with
    sign 0 (SciPy's sign there is -1). A negative sum gives NaN without ``return_sign`` and no
    warning, as in SciPy. Complex input, which SciPy accepts, is refused.

    Each result is within ``2 ulp + u * (8 * sum(|b e|) + sum(|b e| |x - m|)) / |sum(b e)|``
    of the exact value (``e = exp(x - m)``, ``u`` 2**-24 for float32 and 2**-53 for float64,
    ``ulp`` of the result): the second term is the error of the sum (the exp's few ulp, the
    rounding of ``x - m``), which the log turns into an absolute one, so near a result of 0
    and where signed weights cancel the error is absolute, not relative.

    ``x``, ``b`` and ``where`` are read through their own broadcast strides, never copied or
    expanded to the result's size; where ``b`` has zeros, a boolean mask of them is made at
    the broadcast shape of ``b`` and ``where`` (SciPy copies ``x`` with ``-inf`` there).

    Examples
    --------
    >>> import numpy as np, fastsoftmax as fsm
    >>> float(fsm.logsumexp(np.array([1000.0, 1000.0])).round(4))
    1000.6931
    >>> lse, sign = fsm.logsumexp(
    ...     np.array([[0.0, 0.0], [1.0, 2.0]]), b=np.array([1.0, -1.0]), return_sign=True
    ... )
    >>> lse.round(4), sign  # log|1 - 1| and log|e - e**2|
    (array([  -inf, 1.5413]), array([ 0., -1.]))
    >>> float(fsm.logsumexp(np.array([0.0, 5.0, 1.0]), where=np.array([True, False, True])))
    1.3132616875182228
    """
    module = _backends.resolve(backend)
    lse_out, sign_out = _outputs(out, return_sign)
    x = _checks.as_array(x)
    weights = None if b is None else _checks.as_array(b)
    if weights is None:
        compute, dtype = _checks.result_dtypes(x.dtype, "x")
    else:
        compute, dtype = _checks.result_dtypes(_checks.common_dtype(x, weights, ("x", "b")), "x")
    x, weights, mask = _operands(x, weights, where, _backends.input_dtype(module, compute, dtype))
    axes = _checks.normalize_axis(axis, x.ndim)
    summed = (axes,) if type(axes) is int else axes
    row_shape = tuple(n for d, n in enumerate(x.shape) if d not in summed)
    kept = tuple(1 if d in summed else n for d, n in enumerate(x.shape))
    shape = kept if keepdims else row_shape
    inputs = (x, weights, mask)
    user_lse, lse = _row_output(lse_out, shape, row_shape, dtype, compute, inputs, "out")
    user_sign, sign = None, None
    if return_sign:
        user_sign, sign = _row_output(sign_out, shape, row_shape, dtype, compute, inputs, "out[1]")
        both = user_lse is not None and user_sign is not None
        if both and np.may_share_memory(user_lse, user_sign):
            raise ValueError("the two outputs of logsumexp must not share memory")
    if math.prod(x.shape[d] for d in summed) == 0:  # an empty sum: 0, whose log is -inf
        lse.fill(-np.inf)
        if sign is not None:
            sign.fill(0)
    elif x.size:
        if type(axes) is int:
            module.logsumexp(*inputs, lse, sign, axes, get_num_threads())
        else:
            _axes.run(module.logsumexp, inputs, (lse, sign), axes, get_num_threads(), (0, 1))
    result = _deliver(user_lse, lse, shape, dtype)
    if not return_sign:
        return result
    return result, _deliver(user_sign, sign, shape, dtype)  # type: ignore[arg-type]


def _outputs(out: object, return_sign: bool) -> tuple[object, object]:
    """Split ``out=`` into ``(out, sign_out)``."""
    if not return_sign:
        return out, None
    if out is None:
        return None, None
    if not isinstance(out, tuple) or len(out) != 2:
        raise TypeError(
            f"with return_sign=True, out must be a tuple (out, sign_out); got {type(out).__name__}"
        )
    return out


def _operands(
    x: np.ndarray, b: np.ndarray | None, where: ArrayLike | None, compute: np.dtype
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """``(x, b, mask)``: ``x`` broadcast with ``b`` (as SciPy does) in the compute dtype, ``b``
    in it broadcast to that shape (a view, or None), and the mask of the entries that count
    (``where``, and ``b != 0``), broadcast to it as well, or None when every entry counts.

    An entry where ``b == 0`` does not count at all, as in SciPy (an inf or NaN of ``x`` there
    does not make the result NaN): the kernels leave such an entry out as they do one that
    ``where`` masks. The mask of ``b``'s zeros is built at the broadcast shape of ``b`` and
    ``where``, not x's, and only when ``b`` has a zero.
    """
    keep = None
    if b is not None:
        # x and b broadcast together, as in SciPy: a b that enlarges x gives x zero strides.
        try:
            shape = np.broadcast_shapes(x.shape, b.shape)
        except ValueError:
            raise ValueError(
                f"b must broadcast together with x: shapes {b.shape} and {x.shape}"
            ) from None
        x = np.broadcast_to(x, shape)
        b = _as_compute(b, compute)
        if not b.all():
            keep = b != 0
    mask = _checks.broadcast_mask(where, x.shape)
    if keep is not None:
        mask = np.broadcast_to(keep if mask is None else keep & mask, x.shape)
    x = _as_compute(x, compute)
    if b is not None:
        b = np.broadcast_to(b, x.shape)
    return x, b, mask


def _as_compute(array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """``array`` in ``dtype``, aligned (what the kernels address); a copy only if it is not."""
    if array.dtype is dtype and array.flags.aligned:
        return array
    return array.astype(dtype)


def _row_output(
    out: object,
    shape: tuple[int, ...],
    row_shape: tuple[int, ...],
    dtype: np.dtype,
    compute: np.dtype,
    inputs: tuple[np.ndarray | None, ...],
    name: str,
) -> tuple[np.ndarray | None, np.ndarray]:
    """``(user's out or None, the array the backend writes)``: the result of ``shape``, the
    summed axes removed if kept. A per-row output is written while rows that come later are
    still to be read, so any overlap with an input, even exact, goes through a scratch array."""
    if out is None:
        return None, np.empty(row_shape, compute)
    checked = _checks.check_out(out, shape, dtype, name)
    overlaps = any(a is not None and np.may_share_memory(checked, a) for a in inputs)
    if compute is not dtype or not checked.flags.aligned or overlaps:
        return checked, np.empty(row_shape, compute)
    return checked, checked.reshape(row_shape)  # dropping length-1 axes: always a view


def _deliver(
    user_out: np.ndarray | None, written: np.ndarray, shape: tuple[int, ...], dtype: np.dtype
) -> np.ndarray | np.generic:
    if user_out is not None:
        if not np.may_share_memory(user_out, written):  # a scratch, never near user_out
            with np.errstate(over="ignore"):  # float32 -> float16: out-of-range values become inf
                np.copyto(user_out, written.reshape(shape), casting="unsafe")
        return user_out
    if written.dtype is not dtype:
        with np.errstate(over="ignore"):  # as above
            written = written.astype(dtype)
    result = written.reshape(shape)
    return result[()] if result.ndim == 0 else result
