"""Every function × backend × SIMD level × dtype against the float64 reference.

Shapes cover the SIMD edges (15/16/17, 31/32/33, 63/64/65), primes, N = 1, a long row of
~10⁵ and several dimensions, each along every axis (negative too) so both the "reduce along the
last axis" and the "SIMD across the inner dimension" paths of the kernels run.
"""

from __future__ import annotations

import os

import fastsoftmax as fsm
import numpy as np
import pytest
from support.operations import FUNCTIONS, check, expect, make_inputs
from support.tolerances import Expected, assert_matches

ROW_LENGTHS = (1, 2, 3, 5, 7, 8, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 1000, 1009, 100_003)
ARRAYS = (
    (3, 17),
    (17, 3),
    (4, 33),
    (7, 1),
    (1, 7),
    (64, 1000),
    (1000, 17),
    (33, 40),
    (2, 3, 31),
    (5, 17, 16),
    (3, 1, 4),
    (3, 257, 5),
    (2, 3, 4, 5),
)
CASES = [pytest.param((n,), -1, id=f"{n}") for n in ROW_LENGTHS] + [
    pytest.param(shape, axis, id=f"{'x'.join(map(str, shape))}-axis{axis}")
    for shape in ARRAYS
    for axis in range(len(shape))
]


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize(("shape", "axis"), CASES)
def test_against_reference(name, shape, axis, backend, dtype, rng):
    inputs = make_inputs(name, shape, dtype, rng, axis)
    check(name, inputs, axis, backend, dtype, f"{shape} axis={axis}")


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("shape", [(6, 35), (3, 4, 17)])
def test_negative_axis_is_the_same_axis(name, shape, backend, dtype, rng):
    for axis in range(len(shape)):
        inputs = make_inputs(name, shape, dtype, rng, axis)
        positive = check(name, inputs, axis, backend, dtype, f"axis={axis}")
        negative = check(name, inputs, axis - len(shape), backend, dtype, f"axis={axis}")
        np.testing.assert_array_equal(negative, positive)


def test_default_axis_is_last(backend, dtype, rng):
    x = rng.standard_normal((5, 6, 7)).astype(dtype)
    np.testing.assert_array_equal(
        fsm.softmax(x, backend=backend), fsm.softmax(x, -1, backend=backend)
    )
    assert_matches(fsm.softmax(x, backend=backend), expect("softmax", (x,), -1, dtype))


@pytest.mark.parametrize("name", FUNCTIONS)
def test_axis_as_numpy_integer(name, backend, rng):
    inputs = make_inputs(name, (4, 9), np.float64, rng, 0)
    result = check(name, inputs, np.int64(0), backend, np.dtype(np.float64))
    np.testing.assert_array_equal(result, check(name, inputs, 0, backend, np.dtype(np.float64)))


@pytest.mark.parametrize("shape", [(10,), (8, 33), (3, 100)])
def test_return_softmax(shape, backend, dtype, rng):
    x, v = make_inputs("softmax_jvp", shape, dtype, rng)
    with_s = fsm.softmax_jvp(x, v, return_softmax=True, backend=backend)
    assert isinstance(with_s, tuple)
    assert len(with_s) == 2
    s, jvp = with_s
    assert s.dtype == jvp.dtype == dtype
    assert_matches(s, expect("softmax", (x,), -1, dtype), "s")
    assert_matches(jvp, expect("softmax_jvp", (x, v), -1, dtype), "jvp")
    alone = fsm.softmax_jvp(x, v, backend=backend)
    tol = expect("softmax_jvp", (x, v), -1, dtype).tol
    assert_matches(jvp, Expected(alone.astype(np.float64), 2 * tol), "jvp with and without s")


def test_python_sequences(backend):
    result = fsm.softmax([1.0, 2.0, 3.0], backend=backend)
    e = np.exp([1.0, 2.0, 3.0])
    np.testing.assert_allclose(result, e / e.sum(), rtol=1e-15)
    grad = fsm.softmax_backward([[0.25, 0.75]], [[1.0, -1.0]], backend=backend)
    np.testing.assert_allclose(grad, [[0.375, -0.375]], rtol=1e-15)


def test_docstring_examples(backend):
    np.testing.assert_allclose(
        fsm.softmax(np.array([1.0, 2.0, 3.0]), backend=backend).round(4), [0.09, 0.2447, 0.6652]
    )
    np.testing.assert_allclose(
        fsm.log_softmax(np.array([0.0, 0.0]), backend=backend), [-np.log(2)] * 2, rtol=1e-15
    )
    y = fsm.log_softmax(np.array([0.0, 0.0]), backend=backend)
    np.testing.assert_allclose(
        fsm.log_softmax_backward(y, np.array([1.0, 0.0]), backend=backend), [0.5, -0.5], atol=1e-15
    )
    jvp = fsm.softmax_jvp(np.array([1.0, 2.0, 3.0]), np.array([1.0, 0.0, 0.0]), backend=backend)
    np.testing.assert_allclose(jvp.round(4), [0.0819, -0.022, -0.0599])


def test_default_backend_matches_explicit(rng):
    x = rng.standard_normal((4, 50))
    default = os.environ.get("FASTSOFTMAX_BACKEND") or fsm.available_backends()[0]
    np.testing.assert_array_equal(fsm.softmax(x), fsm.softmax(x, backend=default))
