"""Property tests (hypothesis): rows sum to 1, translation invariance, the explicit Jacobian,
central finite differences, and all backends agreeing with each other."""

from __future__ import annotations

import fastsoftmax as fsm
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from support.backends import backend_variants, simd_level, variant_id
from support.operations import FUNCTIONS, OPERATIONS, call, expect, make_inputs
from support.reference import ref_softmax
from support.tolerances import Expected, assert_matches, unit_roundoff


def finite_arrays(
    dtype: np.dtype, max_dims: int = 3, max_side: int = 12, bound: float | None = None
):
    """Arrays of finite values of ``dtype``: the whole range unless ``bound`` is given."""
    elements = st.floats(
        min_value=-bound if bound else None,
        max_value=bound,
        allow_nan=False,
        allow_infinity=False,
        width=np.dtype(dtype).itemsize * 8,
    )
    shapes = hnp.array_shapes(min_dims=1, max_dims=max_dims, min_side=1, max_side=max_side)
    return hnp.arrays(dtype, shapes, elements=elements)


@st.composite
def array_and_axis(draw, dtype, **kwargs):
    x = draw(finite_arrays(dtype, **kwargs))
    return x, draw(st.integers(-x.ndim, x.ndim - 1))


@given(data=st.data())
def test_rows_sum_to_one(data, backend, dtype):
    x, axis = data.draw(array_and_axis(dtype))
    s = fsm.softmax(x, axis=axis, backend=backend)
    assert s.dtype == dtype
    assert np.isfinite(s).all()
    assert ((s >= 0) & (s <= 1)).all()
    n = x.shape[axis]
    total = s.sum(axis=axis, dtype=np.float64)
    np.testing.assert_allclose(total, 1.0, rtol=0, atol=(16 + n) * unit_roundoff(dtype))
    log = fsm.log_softmax(x, axis=axis, backend=backend)
    assert not np.isnan(log).any()
    assert (log <= 0).all()
    assert_matches(s, expect("softmax", (x,), axis, dtype), "softmax")
    assert_matches(log, expect("log_softmax", (x,), axis, dtype), "log_softmax")


@given(
    x=hnp.arrays(
        np.int32,
        hnp.array_shapes(min_dims=1, max_dims=2, max_side=20),
        elements=st.integers(-8000, 8000),
    ),
    shift=st.integers(-20_000, 20_000),
)
def test_translation_invariance(x, shift, backend, dtype):
    """Eighth-integer logits moved by an integer: exact in float32, so the same probabilities."""
    x = (x / 8).astype(dtype)
    moved = x + dtype.type(shift)
    assert np.array_equal(moved - dtype.type(shift), x)  # the shift is exact
    for name in ("softmax", "log_softmax"):
        original = call(name, x, backend=backend)
        shifted = call(name, moved, backend=backend)
        tol = expect(name, (x,), -1, dtype).tol
        assert_matches(shifted, Expected(original.astype(np.float64), 2 * tol), name)


def _jacobian(s: np.ndarray) -> np.ndarray:
    """The softmax Jacobian ``diag(s) - s sᵀ`` of one row (float64)."""
    return np.diag(s) - np.outer(s, s)


@given(data=st.data())
def test_backward_equals_explicit_jacobian(data, backend, dtype):
    x, axis = data.draw(array_and_axis(dtype, max_dims=2, max_side=9, bound=30.0))
    g = data.draw(hnp.arrays(dtype, x.shape, elements=st.floats(-10, 10, width=8 * dtype.itemsize)))
    y = ref_softmax(x, axis).astype(dtype)
    ly = np.log(ref_softmax(x, axis)).astype(dtype)

    # Explicit N×N products, row by row, in float64.
    y_rows = np.moveaxis(y.astype(np.float64), axis, -1)
    ly_rows = np.moveaxis(ly.astype(np.float64), axis, -1)
    g_rows = np.moveaxis(g.astype(np.float64), axis, -1)
    s_rows = np.moveaxis(ref_softmax(x, axis), axis, -1)
    explicit = np.empty_like(y_rows)
    explicit_log = np.empty_like(y_rows)
    explicit_jvp = np.empty_like(y_rows)
    for index in np.ndindex(y_rows.shape[:-1]):
        explicit[index] = _jacobian(y_rows[index]) @ g_rows[index]
        p = np.exp(ly_rows[index])
        # log_softmax: J = I - 1 pᵀ, and the VJP is Jᵀ g
        explicit_log[index] = (np.eye(p.size) - np.outer(np.ones_like(p), p)).T @ g_rows[index]
        explicit_jvp[index] = _jacobian(s_rows[index]) @ g_rows[index]

    def check(name, inputs, want):
        result = call(name, *inputs, axis=axis, backend=backend)
        tol = expect(name, inputs, axis, dtype).tol
        assert_matches(result, Expected(np.moveaxis(want, -1, axis), 2 * tol), name)

    check("softmax_backward", (y, g), explicit)
    check("log_softmax_backward", (ly, g), explicit_log)
    check("softmax_jvp", (x, g), explicit_jvp)


def _central_difference(f, x: np.ndarray, direction: np.ndarray, h: float) -> float:
    return (f(x + h * direction) - f(x - h * direction)) / (2 * h)


@given(
    x=hnp.arrays(np.float64, st.integers(1, 8), elements=st.floats(-5, 5)),
    seed=st.integers(0, 2**32 - 1),
)
def test_gradients_match_finite_differences(x, seed, backend):
    """d/dx of ``sum(w * f(x))`` from the backward functions vs central differences (float64)."""
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(x.size)
    v = rng.standard_normal(x.size)
    h = 1e-5

    def softmax_loss(z):
        return float(w @ fsm.softmax(z, backend=backend))

    def log_loss(z):
        return float(w @ fsm.log_softmax(z, backend=backend))

    grad = fsm.softmax_backward(fsm.softmax(x, backend=backend), w, backend=backend)
    log_grad = fsm.log_softmax_backward(fsm.log_softmax(x, backend=backend), w, backend=backend)
    jvp = fsm.softmax_jvp(x, v, backend=backend)
    scale = 1 + np.abs(w).sum()
    for i in range(x.size):
        e = np.zeros(x.size)
        e[i] = 1.0
        assert grad[i] == pytest.approx(
            _central_difference(softmax_loss, x, e, h), abs=1e-8 * scale
        )
        assert log_grad[i] == pytest.approx(
            _central_difference(log_loss, x, e, h), abs=1e-8 * scale
        )
    # the JVP is a directional derivative: w · J v
    assert float(w @ jvp) == pytest.approx(
        _central_difference(softmax_loss, x, v, h), abs=1e-8 * scale * (1 + np.abs(v).sum())
    )
    # and, the Jacobian being symmetric, also the VJP of w
    np.testing.assert_allclose(
        fsm.softmax_jvp(x, w, backend=backend), grad, rtol=0, atol=1e-15 * scale
    )


@pytest.mark.parametrize("name", FUNCTIONS)
@given(data=st.data())
def test_backends_agree(name, data, dtype):
    """Every backend and SIMD level within rounding of every other, on the same inputs."""
    x, axis = data.draw(array_and_axis(dtype, max_side=40, bound=1e4))
    seed = data.draw(st.integers(0, 2**32 - 1))

    inputs = make_inputs(name, x.shape, dtype, np.random.default_rng(seed), axis)
    if OPERATIONS[name].takes_logits:  # the drawn logits; a backward keeps its saved output
        inputs = (x, *inputs[1:])
    want = expect(name, inputs, axis, dtype)
    results = {}
    for variant in backend_variants():
        with simd_level(variant[1]):
            results[variant_id(variant)] = call(name, *inputs, axis=axis, backend=variant[0])
    first_id, first = next(iter(results.items()))
    for variant, result in results.items():
        assert_matches(result, want, f"{variant}")
        assert_matches(
            result, Expected(first.astype(np.float64), 2 * want.tol), f"{variant} vs {first_id}"
        )
