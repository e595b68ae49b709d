"""Input dtypes: float16 via float32, integers and bools via float64, the rest refused.

Two-input functions take NumPy's result type of their inputs, then apply the same rules.
"""

from __future__ import annotations

import fastsoftmax as fsm
import numpy as np
import pytest
from support.operations import FUNCTIONS, OPERATIONS, call, expect, make_inputs, names, unchanged
from support.tolerances import assert_matches

TWO_INPUTS = names(lambda op: len(op.operands) == 2)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_float16_is_computed_in_float32(name, backend, rng):
    inputs = make_inputs(name, (6, 45), np.float16, rng)
    result = call(name, *inputs, backend=backend)
    assert result.dtype == np.float16
    wide = call(name, *(a.astype(np.float32) for a in inputs), backend=backend)
    np.testing.assert_array_equal(result, wide.astype(np.float16))
    # and so within float16 rounding of the exact value
    want = expect(name, inputs, -1, np.dtype(np.float32))
    half_ulp = np.spacing(np.abs(want.value).astype(np.float16)).astype(np.float64) / 2
    assert_matches(result, type(want)(want.value, want.tol + half_ulp), name)


def test_float16_jvp_returns_two_float16(backend, rng):
    x, v = make_inputs("softmax_jvp", (4, 20), np.float16, rng)
    s, jvp = fsm.softmax_jvp(x, v, return_softmax=True, backend=backend)
    assert s.dtype == jvp.dtype == np.float16
    s32, jvp32 = fsm.softmax_jvp(
        x.astype(np.float32), v.astype(np.float32), return_softmax=True, backend=backend
    )
    np.testing.assert_array_equal(s, s32.astype(np.float16))
    np.testing.assert_array_equal(jvp, jvp32.astype(np.float16))


def test_float16_does_not_overflow_in_sum(backend):
    """65504 is float16's max: a float16 sum of 70000 ones would be inf; float32 is fine."""
    x = np.zeros(70_000, np.float16)
    s = fsm.softmax(x, backend=backend)
    assert s.dtype == np.float16
    np.testing.assert_array_equal(s, np.float16(1 / 70_000))


INTEGER_DTYPES = [np.bool_, np.int8, np.uint8, np.int16, np.uint16, np.int32, np.int64, np.uint64]


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("int_dtype", INTEGER_DTYPES, ids=lambda d: np.dtype(d).name)
def test_integers_and_bools_compute_in_float64(name, int_dtype, backend, rng):
    inputs = tuple(
        rng.integers(0, 2, (5, 13)).astype(int_dtype)
        if np.dtype(int_dtype) == np.bool_
        else rng.integers(0, 6, (5, 13)).astype(int_dtype)
        for _ in OPERATIONS[name].operands
    )
    with unchanged(*inputs):
        result = call(name, *inputs, backend=backend)
    assert result.dtype == np.float64
    as_float = call(name, *(a.astype(np.float64) for a in inputs), backend=backend)
    np.testing.assert_array_equal(result, as_float)
    assert_matches(result, expect(name, inputs, -1, np.dtype(np.float64)), name)


def test_python_lists_and_large_ints(backend):
    result = fsm.softmax([[1, 2], [3, 1000]], backend=backend)
    assert result.dtype == np.float64
    np.testing.assert_allclose(result, [[1 / (1 + np.e), np.e / (1 + np.e)], [0, 1]], rtol=1e-15)
    big = np.array([2**62, 2**62 - 2**40], dtype=np.int64)
    np.testing.assert_allclose(fsm.softmax(big, backend=backend), [1, 0], rtol=1e-15, atol=0)


BAD_INPUTS = {
    "complex64": np.ones(3, np.complex64),
    "complex128": np.ones(3, np.complex128),
    "object": np.array([1.0, 2.0, 3.0], dtype=object),
    "str": np.array(["1", "2", "3"]),
    "bytes": np.array([b"1", b"2", b"3"]),
    "datetime": np.array(["2020-01-01"] * 3, dtype="datetime64[D]"),
    "timedelta": np.array([1, 2, 3], dtype="timedelta64[s]"),
    "void": np.zeros(3, dtype="V8"),
    "list-of-str": ["a", "b", "c"],
}
if np.dtype(np.longdouble).itemsize > 8:  # where longdouble is a different type from float64
    BAD_INPUTS["longdouble"] = np.ones(3, np.longdouble)


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("bad", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_unsupported_dtypes_raise_type_error(name, bad, plain_backend):
    good = np.ones(3)
    operands = OPERATIONS[name].operands
    for position in range(len(operands)):
        inputs = [good.copy() for _ in operands]
        inputs[position] = BAD_INPUTS[bad]
        with pytest.raises(TypeError):
            call(name, *inputs, backend=plain_backend)


def _rule(dtype: np.dtype) -> np.dtype:
    """The result dtype the spec gives for a (single) input dtype."""
    if dtype.kind == "f":
        return dtype
    return np.dtype(np.float64)


PAIRS = [
    (np.float32, np.float64),
    (np.float64, np.float32),
    (np.float16, np.float32),
    (np.float16, np.float16),
    (np.float16, np.int8),  # result_type float16: computed in float32, returned float16
    (np.float16, np.int16),  # result_type float32
    (np.float32, np.int64),  # result_type float64
    (np.float32, np.int8),  # result_type float32
    (np.float32, np.bool_),
    (np.int32, np.int32),
    (np.int8, np.uint8),
    (np.bool_, np.bool_),
    (np.uint64, np.int64),  # result_type float64
]


@pytest.mark.parametrize("name", TWO_INPUTS)
@pytest.mark.parametrize(
    ("first", "second"),
    PAIRS,
    ids=[f"{np.dtype(a).name}-{np.dtype(b).name}" for a, b in PAIRS],
)
def test_two_inputs_take_the_result_type(name, first, second, backend, rng):
    op = OPERATIONS[name]
    a = rng.integers(0, 2, (3, 11)).astype(first)
    b = rng.integers(0, 2, (3, 11)).astype(second)
    saved_from = op.operands[0].saved_from
    if saved_from is not None and a.dtype.kind == "f":  # a saved forward output
        a = call(saved_from, a).astype(first)
    want = _rule(np.result_type(a, b))
    result = call(name, a, b, backend=backend)
    assert result.dtype == want
    compute = np.float32 if want == np.float16 else want
    direct = call(name, a.astype(compute), b.astype(compute), backend=backend)
    np.testing.assert_array_equal(result, direct.astype(want))
    if op.returns_softmax:
        s, product = call(name, a, b, return_softmax=True, backend=backend)
        assert s.dtype == product.dtype == want


@pytest.mark.parametrize("name", FUNCTIONS)
def test_out_dtype_must_be_the_result_dtype(name, plain_backend, rng):
    inputs = make_inputs(name, (3, 5), np.float16, rng)
    shape = OPERATIONS[name].result_shape((3, 5), -1)
    ok = np.empty(shape, np.float16)
    assert call(name, *inputs, out=ok, backend=plain_backend) is ok
    for wrong in (np.float32, np.float64):
        out = np.zeros(shape, wrong)
        with unchanged(out, *inputs), pytest.raises(TypeError):
            call(name, *inputs, out=out, backend=plain_backend)
