"""softmax_jacobian and log_softmax_jacobian: values against mpmath and central differences,
consistency with the O(N) products, shapes, dtypes and the size limit."""

from __future__ import annotations

import fastsoftmax as fsm
import mpmath
import numpy as np
import pytest
from support.reference import ref_softmax
from support.tolerances import unit_roundoff

JACOBIANS = {"softmax": fsm.softmax_jacobian, "log_softmax": fsm.log_softmax_jacobian}


def exact_jacobian(row: np.ndarray, log: bool) -> np.ndarray:
    """The Jacobian of one row from mpmath at 40 digits."""
    with mpmath.workdps(40):
        values = [mpmath.mpf(float(v)) for v in row]
        top = max(values)
        exps = [mpmath.exp(v - top) for v in values]
        total = mpmath.fsum(exps)
        s = [e / total for e in exps]
        n = len(s)
        return np.array(
            [
                [
                    float((i == j) - s[j]) if log else float(s[i] * ((i == j) - s[j]))
                    for j in range(n)
                ]
                for i in range(n)
            ]
        )


@pytest.mark.parametrize("op", JACOBIANS)
@pytest.mark.parametrize(
    "row",
    [[1.0, 2.0, 3.0], [0.0, -30.0, -31.0], [5.0, 5.0, 5.0, 5.0], [0.0, -1e-9, 2.5, -40.0, 7.0]],
    ids=["small", "one-near-1", "equal", "mixed"],
)
def test_against_mpmath(op, row, plain_backend, dtype):
    x = np.array(row, dtype)
    got = JACOBIANS[op](x, backend=plain_backend)
    assert got.dtype == dtype
    assert got.shape == (x.size, x.size)
    want = exact_jacobian(x, op == "log_softmax")
    # Each entry is a product of probabilities within softmax's bound (16 + gap) u, or 1 minus
    # one: relative to the entry, with an absolute floor of a few units for the log's entries.
    gaps = x.max() - x.astype(np.float64)
    u = unit_roundoff(dtype)
    scale = np.abs(want) if op == "softmax" else np.maximum(np.abs(want), 1.0)
    tol = (40 + 2 * gaps[:, None] + 2 * gaps[None, :]) * u * scale
    err = np.abs(got.astype(np.float64) - want)
    assert np.all(err <= tol), (err / tol).max()


@pytest.mark.parametrize("op", JACOBIANS)
def test_central_differences(op, plain_backend, rng):
    x = rng.normal(0, 2, (3, 7))
    forward = fsm.softmax if op == "softmax" else fsm.log_softmax
    got = JACOBIANS[op](x, backend=plain_backend)
    h = 1e-6
    for j in range(7):
        step = np.zeros_like(x)
        step[:, j] = h
        column = (forward(x + step) - forward(x - step)) / (2 * h)
        np.testing.assert_allclose(got[:, :, j], column, rtol=1e-6, atol=1e-8)


def test_products_match_the_o_n_functions(plain_backend, rng):
    x, v = rng.normal(0, 3, (2, 4, 9)), rng.normal(0, 1, (2, 4, 9))
    jac = fsm.softmax_jacobian(x, backend=plain_backend)
    log_jac = fsm.log_softmax_jacobian(x, backend=plain_backend)
    s, logs = fsm.softmax(x), fsm.log_softmax(x)
    jvp = np.einsum("...ij,...j->...i", jac, v)
    vjp = np.einsum("...i,...ij->...j", v, jac)
    log_vjp = np.einsum("...i,...ij->...j", v, log_jac)
    np.testing.assert_allclose(jvp, fsm.softmax_jvp(x, v), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(vjp, fsm.softmax_backward(s, v), rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(log_vjp, fsm.log_softmax_backward(logs, v), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(
    ("shape", "axis", "want"),
    [
        ((4, 3), -1, (4, 3, 3)),
        ((4, 3), 0, (3, 4, 4)),
        ((2, 3, 4), 1, (2, 4, 3, 3)),
        ((2, 3, 4), (0, 2), (3, 8, 8)),
        ((2, 3, 4), (2, 0), (3, 8, 8)),
        ((2, 3), None, (6, 6)),
        ((2, 3), (), (2, 3, 1, 1)),
        ((), None, (1, 1)),
        ((0, 3), -1, (0, 3, 3)),
        ((3, 0), -1, (3, 0, 0)),
    ],
)
@pytest.mark.parametrize("op", JACOBIANS)
def test_shapes_and_rows(op, shape, axis, want, rng):
    x = rng.normal(0, 1, shape)
    got = JACOBIANS[op](x, axis=axis)
    assert got.shape == want
    if x.size == 0 or want[-1] == 0:
        return
    # Each matrix is the Jacobian of its row: the reduced axes moved last, in C order.
    axes = tuple(range(x.ndim)) if axis is None else (axis,) if isinstance(axis, int) else axis
    reduced = sorted(a % x.ndim for a in axes)
    others = [a for a in range(x.ndim) if a not in reduced]
    rows = np.transpose(x, others + reduced).reshape(want[:-1])
    s = ref_softmax(rows, axis=-1)
    eye = np.eye(want[-1])
    formula = (
        eye - s[..., None, :] if op == "log_softmax" else s[..., :, None] * (eye - s[..., None, :])
    )
    np.testing.assert_allclose(got, formula, rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("op", JACOBIANS)
@pytest.mark.parametrize(
    ("dtype", "want"),
    [
        (np.float16, np.float16),
        (np.float32, np.float32),
        (np.int64, np.float64),
        (bool, np.float64),
    ],
)
def test_result_dtypes(op, dtype, want):
    got = JACOBIANS[op](np.array([[0, 1, 1]], dtype))
    assert got.dtype == want
    np.testing.assert_allclose(got, JACOBIANS[op](np.array([[0.0, 1.0, 1.0]])), rtol=2e-3)


@pytest.mark.parametrize("op", JACOBIANS)
def test_special_rows(op):
    x = np.array([[0.0, np.nan, 1.0], [np.inf, 0.0, np.inf], [-np.inf, 0.0, 0.0]])
    got = JACOBIANS[op](x)
    assert np.isnan(got[0]).all()
    s = np.array([0.5, 0.0, 0.5])  # the +inf row's limit
    eye = np.eye(3)
    want_inf = eye - s if op == "log_softmax" else s[:, None] * (eye - s)
    np.testing.assert_array_equal(got[1], want_inf)
    assert np.isfinite(got[2]).all()
    assert got[2][0, 0] == (1.0 if op == "log_softmax" else 0.0)


@pytest.mark.parametrize("op", JACOBIANS)
def test_input_unchanged(op, rng):
    x = rng.normal(0, 1, (3, 5))
    before = x.copy()
    JACOBIANS[op](x)
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("op", JACOBIANS)
def test_size_limit_is_checked_before_allocating(op):
    # 10**6 rows of 10**4: 800 TB, from a broadcast input that takes no memory.
    x = np.broadcast_to(np.float64(0.0), (10**6, 10**4))
    with pytest.raises(ValueError, match=r"\(1000000, 10000, 10000\).*800,000,000,000,000 bytes"):
        JACOBIANS[op](x)
    with pytest.raises(ValueError, match="max_bytes=1,000"):
        JACOBIANS[op](np.zeros((2, 20)), max_bytes=1000)
    exact = 2 * 20 * 20 * 8
    assert JACOBIANS[op](np.zeros((2, 20)), max_bytes=exact).shape == (2, 20, 20)
    assert JACOBIANS[op](np.zeros((2, 20)), max_bytes=None).shape == (2, 20, 20)


@pytest.mark.parametrize("op", JACOBIANS)
@pytest.mark.parametrize(
    ("max_bytes", "error"),
    [(1.5, TypeError), (True, TypeError), ("1", TypeError), (-1, ValueError)],
)
def test_bad_max_bytes(op, max_bytes, error):
    with pytest.raises(error, match="max_bytes"):
        JACOBIANS[op](np.zeros(3), max_bytes=max_bytes)
