"""The explicit Jacobians of softmax and log_softmax, for teaching, checking and second-order code.

The gradients never need them (`softmax_backward` and `softmax_jvp` are the O(N) products);
these build the stacked ``(..., N, N)`` matrices from one softmax of each row, computed by the
chosen backend.

[Note: the diagonal near 1]
The diagonal holds ``1 - s_i`` (times ``s_i`` for softmax). Where ``s_i`` is close to 1,
``1 - s_i`` cancels: its relative error is ``s_i``'s magnified by ``s_i / (1 - s_i)`` (1e10 for a
logit gap of 23). Only the row's largest probability can exceed 1/2, so there ``1 - s_i`` is
taken as the sum of the row's other probabilities, which has no cancellation; elsewhere
``1 - s_i`` is at least 1/2 and exact to a rounding.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike

from . import _checks
from ._api import Axis, softmax


def softmax_jacobian(
    x: ArrayLike, axis: Axis = -1, *, max_bytes: int | None = 2**30, backend: str | None = None
) -> np.ndarray:
    """The Jacobian of `softmax` at ``x``, one ``(N, N)`` matrix per row: ``diag(s) - s sᵀ``.

    Parameters
    ----------
    x : array_like
        Logits, with the dtypes `softmax` takes (float16 is computed in float32 and returned as
        float16; integers and bools give float64).
    axis : int, tuple of ints or None, optional
        The axis (or axes, jointly, as in `softmax`) the probabilities sum to 1 along. Default -1.
    max_bytes : int or None, optional
        The largest result allowed, in bytes (default 1 GiB); ``None`` for no limit. The size is
        checked before anything is allocated.
    backend : {None, "cpp", "numba", "numpy"}, optional
        Which implementation computes the softmax; ``None`` takes the default.

    Returns
    -------
    ndarray
        Shape ``(*batch, N, N)``: ``batch`` is the shape of the axes not reduced over, in order,
        and ``N`` the length of a row (the product of the reduced axes' lengths, their entries
        in C order). Entry ``[..., i, j]`` is ``d s_i / d x_j = s_i (δ_ij - s_j)``.

    Raises
    ------
    ValueError
        If the result would take more than ``max_bytes`` (the message names its shape and
        size), or ``max_bytes`` is negative.
    TypeError
        For the inputs `softmax` refuses, or a ``max_bytes`` that is not an integer or None.
    numpy.exceptions.AxisError
        If an axis is out of range.

    Notes
    -----
    Each entry is within a few units of rounding of the product of the computed probabilities,
    which are within `softmax`'s bound; the diagonal at a probability near 1 is computed
    without cancellation (``1 - s_i`` as the sum of the row's other probabilities). A row that
    `softmax` makes NaN is NaN; a row holding ``+inf`` gets the Jacobian of its limit. To
    multiply a vector by the Jacobian, `softmax_jvp` does it in O(N) without building it.

    Examples
    --------
    >>> import numpy as np, fastsoftmax as fsm
    >>> fsm.softmax_jacobian(np.array([0.0, np.log(3.0)]))
    array([[ 0.1875, -0.1875],
           [-0.1875,  0.1875]])
    >>> fsm.softmax_jacobian(np.zeros((5, 3))).shape
    (5, 3, 3)
    """
    return _jacobian(x, axis, max_bytes, backend, log=False)


def log_softmax_jacobian(
    x: ArrayLike, axis: Axis = -1, *, max_bytes: int | None = 2**30, backend: str | None = None
) -> np.ndarray:
    """The Jacobian of `log_softmax` at ``x``, one ``(N, N)`` matrix per row: ``I - 1 sᵀ``.

    Parameters
    ----------
    x : array_like
        Logits, with the dtypes `log_softmax` takes.
    axis : int, tuple of ints or None, optional
        As in `softmax_jacobian`. Default -1.
    max_bytes : int or None, optional
        The largest result allowed, in bytes (default 1 GiB); ``None`` for no limit.
    backend : {None, "cpp", "numba", "numpy"}, optional
        Which implementation computes the softmax; ``None`` takes the default.

    Returns
    -------
    ndarray
        Shape ``(*batch, N, N)`` as in `softmax_jacobian`; entry ``[..., i, j]`` is
        ``d log_softmax_i / d x_j = δ_ij - s_j``, with ``s = softmax(x)``.

    Raises
    ------
    ValueError, TypeError, numpy.exceptions.AxisError
        As `softmax_jacobian`.

    Notes
    -----
    Every row of the matrix is the same ``-s`` plus the identity; the diagonal at a probability
    near 1 is computed without cancellation, as in `softmax_jacobian`.

    Examples
    --------
    >>> import numpy as np, fastsoftmax as fsm
    >>> fsm.log_softmax_jacobian(np.array([0.0, np.log(3.0)]))
    array([[ 0.75, -0.75],
           [-0.25,  0.25]])
    """
    return _jacobian(x, axis, max_bytes, backend, log=True)


def _jacobian(
    x: ArrayLike, axis: Axis, max_bytes: object, backend: str | None, log: bool
) -> np.ndarray:
    name = "log_softmax_jacobian" if log else "softmax_jacobian"
    x = _checks.as_array(x)
    compute, dtype = _checks.result_dtypes(x.dtype, "x")
    ax = _checks.normalize_axis(axis, x.ndim)
    reduced = (ax,) if type(ax) is int else ax
    others = tuple(a for a in range(x.ndim) if a not in reduced)
    batch = tuple(x.shape[a] for a in others)
    n = math.prod(x.shape[a] for a in reduced)
    _check_size(name, (*batch, n, n), dtype, max_bytes)
    rows = np.transpose(x, others + reduced).reshape(*batch, n).astype(compute, copy=False)
    if n == 0:
        return np.empty((*batch, 0, 0), dtype)
    s = softmax(rows, axis=-1, backend=backend)
    # 1 - s_i, at the row's largest probability the sum of the others (the Note above).
    top = np.argmax(s, axis=-1)[..., np.newaxis]
    others_only = s.copy()
    np.put_along_axis(others_only, top, 0, axis=-1)
    complement = 1 - s
    rest = np.sum(others_only, axis=-1, keepdims=True, dtype=np.float64).astype(compute)
    np.put_along_axis(complement, top, rest, axis=-1)
    if log:
        jac = np.repeat(-s[..., np.newaxis, :], n, axis=-2)
        diagonal = complement
    else:
        jac = s[..., :, np.newaxis] * -s[..., np.newaxis, :]
        diagonal = s * complement
    index = np.arange(n)
    jac[..., index, index] = diagonal
    return jac.astype(dtype, copy=False)


def _check_size(name: str, shape: tuple[int, ...], dtype: np.dtype, max_bytes: object) -> None:
    """ValueError, naming the size, if a result of ``shape`` would exceed ``max_bytes``."""
    if max_bytes is None:
        return
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, (int, np.integer)):
        raise TypeError(f"max_bytes must be an integer or None; got {max_bytes!r}")
    if max_bytes < 0:
        raise ValueError(f"max_bytes must be at least 0; got {max_bytes}")
    size = math.prod(shape) * dtype.itemsize
    if size > max_bytes:
        raise ValueError(
            f"{name} would be a {dtype} array of shape {shape}, {size:,} bytes "
            f"({size / 2**30:.3g} GiB), more than max_bytes={max_bytes:,}: pass a larger "
            "max_bytes (or None), or use softmax_jvp / softmax_backward, which multiply by the "
            "Jacobian without building it"
        )
