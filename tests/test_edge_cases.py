"""Stability and special values: huge finite inputs, ±inf, NaN, empty arrays, length-1 axes.

Each special row is tested at its own length (scalar tails), tiled to 37 and 1000 (SIMD body,
tail, several blocks), next to an ordinary row that must come out unaffected, and both as rows
(axis=-1) and as columns of a C-ordered array (axis=0, the inner-dimension path). Values are
checked against the reference with 4 times the usual tolerance: accuracy is test_accuracy's
concern, these tests are about what happens at the edges.
"""

from __future__ import annotations

import fastsoftmax as fsm
import numpy as np
import pytest
from numpy.exceptions import AxisError
from support.operations import FUNCTIONS, OPERATIONS, call, check, expect, names
from support.tolerances import assert_matches

INF, NAN = np.inf, np.nan


def _extremes(dtype: np.dtype) -> dict[str, list[float]]:
    info = np.finfo(dtype)
    big, tiny = float(info.max), float(info.smallest_subnormal)
    return {
        "1e30-0": [1e30, 0.0],
        "-1e30-1": [-1e30, 1.0],
        "max-0": [big, 0.0],
        "min-0": [-big, 0.0],
        "max-min": [big, -big],
        "max-max": [big, big],
        "min-min": [-big, -big],
        "max-min-0": [big, 0.0, -big, 1.0],
        "subnormals": [tiny, 0.0, -tiny],
        "spread-1e4": [0.0, 1e4],
        "ramp-1e4": list(np.linspace(-1e4, 0.0, 37)),
        "big-equal": [1e30, 1e30, 1e30],
    }


SPECIAL_ROWS = {
    "some-neg-inf": [0.0, -INF, 1.0, -INF],
    "all-neg-inf": [-INF, -INF, -INF],
    "one-nan": [0.0, NAN, 1.0],
    "nan-and-pos-inf": [INF, NAN],
    "nan-and-neg-inf": [-INF, NAN],
    "all-nan": [NAN, NAN],
    "one-pos-inf": [INF, 0.0, 1.0],
    "two-pos-inf": [INF, 5.0, INF, -INF],
    "all-pos-inf": [INF, INF, INF],
    "pos-inf-and-max": [INF, 3.0e38],
    "pos-and-neg-inf": [INF, -INF],
}
LENGTHS = [None, 37, 1000]  # None: the row as written
WIDEN = 4


def _layouts(row: np.ndarray, rng: np.random.Generator):
    """(x, axis) pairs: the row among ordinary rows, as rows and as columns."""
    ordinary = rng.standard_normal((2, row.size)).astype(row.dtype)
    rows = np.stack([ordinary[0], row, ordinary[1]])
    yield rows, -1
    yield np.ascontiguousarray(rows.T), 0


def _check_row(values, length, backend, dtype, rng):
    """Every function on the row among ordinary ones, against the reference: yields ``(x, axis,
    results by name)``. A backward gets its forward's result, as in training; a second input
    (gradient or tangent) is N(0, 1)."""
    row = np.array(values, dtype=dtype) if length is None else np.resize(values, length)
    row = row.astype(dtype)
    for x, axis in _layouts(row, rng):
        what = f"axis={axis} length={row.size}"
        v = rng.standard_normal(x.shape).astype(dtype)
        results = {}
        for name, op in OPERATIONS.items():  # forwards first: their results are saved inputs
            saved_from = op.operands[0].saved_from
            inputs = (
                x if saved_from is None else results[saved_from],
                *(v for _ in op.operands[1:]),
            )
            if op.returns_softmax:
                s, result = call(name, *inputs, axis=axis, return_softmax=True, backend=backend)
                wanted_s = expect("softmax", inputs[:1], axis, dtype).widened(WIDEN)
                assert_matches(s, wanted_s, f"{name}'s softmax {what}")
                wanted = expect(name, inputs, axis, dtype).widened(WIDEN)
                assert_matches(result, wanted, f"{name} {what}")
            else:
                result = check(name, inputs, axis, backend, dtype, what, WIDEN)
            results[name] = result
        yield x, axis, results


@pytest.mark.parametrize("length", LENGTHS, ids=lambda n: f"len{n or 'row'}")
@pytest.mark.parametrize("case", list(_extremes(np.float32)))
def test_finite_extremes_stay_finite(case, length, backend, dtype, rng):
    values = _extremes(dtype)[case]
    for _x, _axis, results in _check_row(values, length, backend, dtype, rng):
        soft, log, jvp = (results[name] for name in ("softmax", "log_softmax", "softmax_jvp"))
        assert np.isfinite(soft).all()
        assert np.isfinite(jvp).all()
        assert not np.isnan(log).any()  # -inf is the right answer for max - (-max) in float


@pytest.mark.parametrize("length", LENGTHS, ids=lambda n: f"len{n or 'row'}")
@pytest.mark.parametrize("case", list(SPECIAL_ROWS))
def test_special_values(case, length, backend, dtype, rng):
    values = SPECIAL_ROWS[case]
    for x, axis, results in _check_row(values, length, backend, dtype, rng):
        soft, log, jvp = (results[name] for name in ("softmax", "log_softmax", "softmax_jvp"))
        # The special row is row 1 of x (axis=-1) or column 1 (axis=0); 0 and 2 are ordinary.
        rows_axis = 0 if axis == -1 else 1
        special = np.take(soft, 1, axis=rows_axis)
        assert np.isfinite(np.take(soft, [0, 2], axis=rows_axis)).all()
        assert np.isfinite(np.take(jvp, [0, 2], axis=rows_axis)).all()
        if np.isnan(values).any() or np.isneginf(values).all():
            assert np.isnan(special).all()
            assert np.isnan(np.take(log, 1, axis=rows_axis)).all()
            assert np.isnan(np.take(jvp, 1, axis=rows_axis)).all()
        elif np.isposinf(values).any():
            infinite = np.isposinf(np.take(x, 1, axis=rows_axis))
            limit = np.where(infinite, dtype.type(1 / infinite.sum()), 0)
            np.testing.assert_array_equal(special, limit)  # 1/k, correctly rounded
            np.testing.assert_array_equal(np.take(jvp, 1, axis=rows_axis), 0)
        else:
            assert np.isfinite(special).all()


@pytest.mark.parametrize("position", [0, 1, 15, 16, 17, 31, 32])
@pytest.mark.parametrize("value", [INF, -INF, NAN], ids=["pos-inf", "neg-inf", "nan"])
def test_special_value_at_every_vector_position(value, position, backend, dtype, rng):
    """One special entry in a row of 33, at the start, inside a vector, at the tail."""
    row = rng.standard_normal(33).astype(dtype)
    row[position] = value
    list(_check_row(row, None, backend, dtype, rng))


def test_pos_inf_limits_exactly(backend, dtype):
    x = np.array(
        [[INF, 0.0, 1.0, 2.0], [INF, INF, -INF, 7.0], [INF, INF, INF, INF], [1.0, INF, INF, INF]],
        dtype,
    )
    want = np.array(
        [[1, 0, 0, 0], [0.5, 0.5, 0, 0], [0.25] * 4, [0, 1 / 3, 1 / 3, 1 / 3]], dtype=dtype
    )
    np.testing.assert_array_equal(fsm.softmax(x, backend=backend), want)
    log = fsm.log_softmax(x, backend=backend)
    k = np.array([[1], [2], [4], [3]])
    log_want = np.where(np.isposinf(x), -np.log(k), -INF).astype(dtype)
    np.testing.assert_allclose(log, log_want, rtol=2 * np.finfo(dtype).eps)
    assert log[0, 0] == 0
    v = np.arange(16, dtype=dtype).reshape(4, 4)
    np.testing.assert_array_equal(fsm.softmax_jvp(x, v, backend=backend), 0)


def test_neg_inf_entries_are_zero(backend, dtype):
    x = np.array([[0.0, -INF, 1.0, -INF, 2.0]], dtype)
    s = fsm.softmax(x, backend=backend)
    assert s[0, 1] == 0
    assert s[0, 3] == 0
    log = fsm.log_softmax(x, backend=backend)
    assert np.isneginf(log[0, [1, 3]]).all()
    assert_matches(s[:, [0, 2, 4]], expect("softmax", (x[:, [0, 2, 4]],), -1, dtype))
    jvp = fsm.softmax_jvp(x, np.ones_like(x), backend=backend)
    np.testing.assert_array_equal(jvp[0, [1, 3]], 0)


def test_nan_in_gradient_rows(backend, dtype, rng):
    """A NaN in the gradient or tangent makes that row NaN, the others are unaffected."""
    x = rng.standard_normal((3, 20)).astype(dtype)
    g = rng.standard_normal((3, 20)).astype(dtype)
    g[1, 7] = NAN
    for name in names(lambda op: len(op.operands) == 2):
        saved_from = OPERATIONS[name].operands[0].saved_from
        first = x if saved_from is None else call(saved_from, x, backend=backend)
        result = check(name, (first, g), -1, backend, dtype, name)
        assert np.isnan(result[1]).all(), name
        assert np.isfinite(result[[0, 2]]).all(), name


# --------------------------------------------------------------------------------------------
# Sizes: empty arrays, length-1 axes, 0-d input


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("shape", [(0,), (0, 4), (4, 0), (2, 0, 3)], ids=str)
def test_zero_size(name, shape, backend, dtype):
    op = OPERATIONS[name]
    for axis in range(-len(shape), len(shape)):
        inputs = tuple(np.empty(shape, dtype) for _ in op.operands)
        result = call(name, *inputs, axis=axis, backend=backend)
        assert result.shape == op.result_shape(shape, axis)
        assert result.dtype == dtype
    if op.returns_softmax:
        s, product = call(name, *inputs, return_softmax=True, backend=backend)
        assert s.shape == product.shape == shape


def test_zero_size_integers_give_float64(backend):
    assert fsm.softmax(np.empty((0, 3), np.int32), backend=backend).dtype == np.float64


@pytest.mark.parametrize(("shape", "axis"), [((1,), 0), ((5, 1), -1), ((1, 5), 0), ((3, 1, 4), 1)])
def test_length_one_axis(shape, axis, backend, dtype, rng):
    x = (1e30 * rng.standard_normal(shape)).astype(dtype)
    g = rng.standard_normal(shape).astype(dtype)
    np.testing.assert_array_equal(fsm.softmax(x, axis=axis, backend=backend), 1)
    np.testing.assert_array_equal(fsm.log_softmax(x, axis=axis, backend=backend), 0)
    ones, zeros = np.ones(shape, dtype), np.zeros(shape, dtype)
    np.testing.assert_array_equal(fsm.softmax_backward(ones, g, axis=axis, backend=backend), 0)
    np.testing.assert_array_equal(fsm.log_softmax_backward(zeros, g, axis=axis, backend=backend), 0)
    s, jvp = fsm.softmax_jvp(x, g, axis=axis, return_softmax=True, backend=backend)
    np.testing.assert_array_equal(s, 1)
    np.testing.assert_array_equal(jvp, 0)


def test_length_one_axis_special_values(backend, dtype):
    x = np.array([[INF], [-INF], [NAN], [2.0]], dtype)
    s = fsm.softmax(x, backend=backend)
    np.testing.assert_array_equal(s, np.array([[1], [NAN], [NAN], [1]], dtype))
    log = fsm.log_softmax(x, backend=backend)
    np.testing.assert_array_equal(log, np.array([[0], [NAN], [NAN], [0]], dtype))


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize(
    "scalar",
    [np.float64(1.5), np.array(1.5), 1.5, np.float32(2.0)],
    ids=["np64", "0d", "py", "np32"],
)
def test_zero_dimensional_input_has_no_axis(name, scalar, plain_backend):
    inputs = (scalar,) * len(OPERATIONS[name].operands)
    for kwargs in ({}, {"axis": 0}, {"axis": -1}):
        with pytest.raises(AxisError):
            call(name, *inputs, backend=plain_backend, **kwargs)


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_translation_by_huge_offsets(name, backend, dtype, rng):
    """Quarter-integer logits moved by ±1e4 (exactly, even in float32): the same result."""
    x = (rng.integers(-50, 50, (4, 40)) / 4).astype(dtype)
    for offset in (1e4, -1e4):
        moved = x + dtype.type(offset)
        np.testing.assert_array_equal(moved - dtype.type(offset), x)
        result = check(name, (moved,), -1, backend, dtype)
        assert_matches(result, expect(name, (x,), -1, dtype).widened(2))


def _formula(name: str, a: np.ndarray, g: np.ndarray) -> np.ndarray:
    """The backward formulas of the README in float64 NumPy, row sums along the last axis."""
    with np.errstate(all="ignore"):
        if name == "softmax_backward":
            return a * (g - (a * g).sum(-1, keepdims=True))
        if name == "log_softmax_backward":
            return g - np.exp(a) * g.sum(-1, keepdims=True)
        s = np.exp(a - a.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        return s * (g - (s * g).sum(-1, keepdims=True))


# softmax_jvp's sum(s v) is at most max |v| (s sums to 1): only an infinite v makes it infinite.
INFINITE_SUMS = [
    ("softmax_backward", "inf_grad"),
    ("log_softmax_backward", "inf_grad"),
    ("softmax_jvp", "inf_grad"),
    ("softmax_backward", "overflowing_sum"),
    ("log_softmax_backward", "overflowing_sum"),
]


@pytest.mark.parametrize(("name", "case"), INFINITE_SUMS)
@pytest.mark.parametrize("axis", [-1, 0])
def test_infinite_row_sums_are_the_formula(name, case, axis, backend, dtype):
    """A row sum that is +-inf (a +inf in grad, or 256 terms of 1e308) gives the formula's
    -inf and NaN, not a whole row of NaN: a float64 compensated sum once turned its carry into
    inf - inf. Along axis 0 the columns walk's per-column sums are checked the same way."""
    if case == "inf_grad":
        a = np.array([[0.0320586, 0.08714432, 0.23688282, 0.64391426]] * 3)
        g = np.array([[np.inf, 1.0, 2.0, 3.0]] * 3)
        if name == "log_softmax_backward":
            a = np.log(a)
    else:
        big = np.finfo(dtype).max / 2
        a = np.full((3, 256), 1.0)
        g = np.full((3, 256), big)
        if name == "log_softmax_backward":
            a = np.zeros((3, 256))
    a, g = a.astype(dtype), g.astype(dtype)
    with np.errstate(over="ignore"):  # float32 results past its range are +-inf, as computed
        wanted = _formula(name, a.astype(np.float64), g.astype(np.float64)).astype(dtype)
    if axis == 0:
        a, g, wanted = a.T.copy(), g.T.copy(), wanted.T
    got = getattr(fsm, name)(a, g, axis=axis, backend=backend)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(wanted))
    np.testing.assert_array_equal(np.isinf(got) & (got > 0), np.isinf(wanted) & (wanted > 0))
    np.testing.assert_array_equal(np.isinf(got) & (got < 0), np.isinf(wanted) & (wanted < 0))
    finite = np.isfinite(wanted)
    np.testing.assert_allclose(got[finite], wanted[finite], rtol=1e-5)


def test_a_lone_inf_has_log_probability_plus_zero(backend, dtype):
    """``x - lse`` at the +inf entry of a row holding one: +0, in every backend (-log 1 is -0)."""
    out = fsm.log_softmax(np.array([np.inf, 1.0, 2.0], dtype), backend=backend)
    assert out[0] == 0
    assert not np.signbit(out[0])
    assert out[1] == out[2] == -np.inf
