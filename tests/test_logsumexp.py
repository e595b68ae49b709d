"""logsumexp: values against the independent reference and SciPy, every backend, layouts, axes,
keepdims, return_sign, out=, where=, the special values, dtypes and bad input.

Its own file rather than rows of the operation table (support/operations.py): the generic tests
make their ``out`` with x's shape, alias it with the inputs and compare whole arrays of x's
shape, so a per-row result needs the table's ``Kind`` of result taught to every one of them
(the table's Note on the kinds to come) — a change to fourteen files.
"""

from __future__ import annotations

import fastsoftmax as fsm
import numpy as np
import pytest
from numpy.exceptions import AxisError
from support.layouts import LAYOUTS, in_layout
from support.operations import unchanged
from support.reference import ref_logsumexp
from support.tolerances import assert_matches, logsumexp_tolerance

scipy_special = pytest.importorskip("scipy.special")

inf, nan = np.inf, np.nan


def check(x, axis=-1, b=None, dtype=None, backend=None, widen=1.0, **kwargs):
    """Call logsumexp with ``return_sign=True``, inputs untouched; check both results against
    the reference (the sign exactly) and return them."""
    dtype = np.dtype(dtype or np.result_type(x, *([] if b is None else [b])))
    inputs = [a for a in (x, b, kwargs.get("where")) if isinstance(a, np.ndarray)]
    with unchanged(*inputs):
        lse, sign = fsm.logsumexp(x, axis, b=b, return_sign=True, backend=backend, **kwargs)
    weights = b
    if "where" in kwargs:
        mask = np.asarray(kwargs["where"], np.float64)
        weights = mask if b is None else np.asarray(b, np.float64) * mask
    value, want_sign = ref_logsumexp(x, weights, axis)
    if kwargs.get("keepdims"):
        lse, sign = np.squeeze(lse, axis), np.squeeze(sign, axis)
    assert np.asarray(lse).dtype == dtype
    assert np.asarray(sign).dtype == dtype
    assert_matches(lse, logsumexp_tolerance(value, x, weights, axis, dtype).widened(widen))
    np.testing.assert_array_equal(sign, want_sign)
    return lse, sign


def as_scipy(got, want):
    """Equal to SciPy's (result, sign): inf and NaN exactly, numbers to rounding."""
    np.testing.assert_allclose(got, want, rtol=1e-14, atol=1e-15)


SHAPES_AXES = [
    ((7,), 0),
    ((5, 33), -1),
    ((5, 33), 0),
    ((3, 4, 5), 0),
    ((3, 4, 5), 1),
    ((3, 4, 5), 2),
    ((2, 9000), 1),  # long rows: blocks of the rows walk, rows shared by threads
    ((9000, 3), 0),  # a long axis of few columns: tiles shared by threads
    ((40, 1500), 0),  # two tiles, the last narrower
    ((1, 70000), 1),  # one row past the split size: shared by two threads
    ((30000, 3), 0),  # one tile with work enough for two threads: its rows shared
    ((3, 1, 4), 1),
]


@pytest.mark.parametrize(("shape", "axis"), SHAPES_AXES, ids=str)
@pytest.mark.parametrize("weights", ["none", "full", "negative", "row", "column"])
def test_values(backend, dtype, num_threads, rng, shape, axis, weights):
    x = (3 * rng.standard_normal(shape)).astype(dtype)
    b = {
        "none": None,
        "full": rng.uniform(0.1, 2, shape),
        "negative": rng.standard_normal(shape),
        "row": rng.uniform(0.1, 2, shape[-1:]),  # broadcast: zero strides
        "column": rng.uniform(0.1, 2, shape[:1] + (1,) * (len(shape) - 1)),
    }[weights]
    check(x, axis, None if b is None else b.astype(dtype), backend=backend)


@pytest.mark.parametrize(("shape", "axis"), SHAPES_AXES[:6], ids=str)
@pytest.mark.parametrize("weighted", [False, True], ids=["plain", "weighted"])
def test_against_scipy(plain_backend, rng, shape, axis, weighted):
    x = 3 * rng.standard_normal(shape)
    b = rng.standard_normal(shape) if weighted else None
    lse, sign = fsm.logsumexp(x, axis, b=b, return_sign=True, backend=plain_backend)
    want, want_sign = scipy_special.logsumexp(x, axis=axis, b=b, return_sign=True)
    np.testing.assert_allclose(lse, want, rtol=1e-13, atol=1e-13)
    np.testing.assert_array_equal(sign, want_sign)
    plain = fsm.logsumexp(x, axis, b=b, keepdims=True, backend=plain_backend)
    want = scipy_special.logsumexp(x, axis=axis, b=b, keepdims=True)
    np.testing.assert_allclose(plain, want, rtol=1e-13, atol=1e-13)  # NaN where negative


@pytest.mark.parametrize("axis", [None, (), (0, 2), (2, 0), (1, 2), (-1, -3), (0, 1, 2)], ids=str)
@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("keepdims", [False, True])
def test_axis_tuples_against_scipy(backend, rng, axis, order, keepdims):
    """Several axes summed jointly, merged as a view (C or F order) or gathered in batches."""
    x = np.asarray(3 * rng.standard_normal((4, 5, 6)), order=order)
    b = rng.standard_normal((5, 1))  # broadcast, negative entries
    before = x.copy()
    lse, sign = fsm.logsumexp(x, axis, b=b, keepdims=keepdims, return_sign=True, backend=backend)
    want, want_sign = scipy_special.logsumexp(
        x, axis=axis, b=b, keepdims=keepdims, return_sign=True
    )
    assert np.shape(lse) == np.shape(want)
    np.testing.assert_allclose(lse, want, rtol=1e-13, atol=1e-13)
    np.testing.assert_array_equal(sign, want_sign)
    np.testing.assert_array_equal(x, before)


def test_b_enlarges_x_as_in_scipy(plain_backend, rng):
    x = rng.standard_normal((4, 1, 3))
    b = rng.uniform(0.5, 2, (2, 1))
    got = fsm.logsumexp(x, b=b, backend=plain_backend)
    want = scipy_special.logsumexp(x, axis=-1, b=b)
    assert got.shape == want.shape == (4, 2)
    np.testing.assert_allclose(got, want, rtol=1e-13)


@pytest.mark.parametrize("layout", LAYOUTS)
def test_layouts(backend, dtype, rng, layout):
    values = (3 * rng.standard_normal((6, 5, 40))).astype(dtype)
    x, _ = in_layout(values, layout)
    b, _ = in_layout(rng.uniform(-1, 2, (6, 5, 40)).astype(dtype), layout)
    for axis in range(3):
        check(x, axis, backend=backend)
        check(x, axis, b=b, backend=backend)


def test_float32_ulps_against_mpmath(backend):
    """Tiny rows exactly: mpmath at 50 digits against the float32 result, within 2 ulp where
    the sum is well conditioned (positive weights, lse away from 0)."""
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 50
    rng = np.random.default_rng(7)
    x = (20 * rng.standard_normal((64, 9))).astype(np.float32)
    b = rng.uniform(0.5, 2, (64, 9)).astype(np.float32)
    lse = fsm.logsumexp(x, b=b, backend=backend)
    for row, got in zip(range(x.shape[0]), lse, strict=True):
        exact = mpmath.log(
            mpmath.fsum(
                mpmath.mpf(float(w)) * mpmath.exp(float(v))
                for v, w in zip(x[row], b[row], strict=True)
            )
        )
        want = np.float32(float(exact))
        ulps = abs(float(got) - float(exact)) / float(np.spacing(abs(want)))
        assert ulps <= 2, (row, got, float(exact), ulps)


@pytest.mark.parametrize(
    ("x", "b"),
    [
        ([inf, 1.0], None),
        ([inf, -inf], None),
        ([-inf, -inf], None),
        ([inf, nan], None),
        ([-inf, nan], None),
        ([nan, 1.0], None),
        ([inf, inf], [1.0, -1.0]),  # inf - inf
        ([inf, 1.0], [-1.0, 1.0]),  # +inf, sign -1
        ([inf, inf], [-1.0, -1.0]),
        ([1000.0, 0.0], [0.0, 1.0]),  # an excluded maximum does not shift the row
        ([inf, 0.0], [0.0, 1.0]),  # nor does an excluded +inf
        ([nan, 1.0], [0.0, 1.0]),  # nor an excluded NaN
        ([1.0, 2.0], [1.0, -1.0]),  # negative sum
        ([1.0, 1.0], [1.0, -1.0]),  # a sum of 0
        ([-inf, 1.0], [nan, 1.0]),
        ([1.0, 1.0], [inf, 1.0]),
        ([-inf, 1.0], [inf, 1.0]),  # 0 * inf
        ([inf, 1.0], [1.0, inf]),
        ([1.0, 2.0], [0.0, 0.0]),  # nothing counts
        ([1e308, 1e308], None),  # the sum of exps does not overflow
        ([-1e308, -1e308], None),
    ],
)
def test_special_values_as_scipy(backend, x, b):
    """Every special case as SciPy has it, alone and as one row among finite ones, along both
    walks (rows and columns) and in a long row (its blocks)."""
    x, b = np.array(x), None if b is None else np.array(b)
    want = scipy_special.logsumexp(x, b=b, return_sign=True)
    got = fsm.logsumexp(x, b=b, return_sign=True, backend=backend)
    as_scipy(got, want)
    as_scipy(fsm.logsumexp(x, b=b, backend=backend), scipy_special.logsumexp(x, b=b))
    # Among other rows, down columns, and spread over a row longer than a block.
    rows = np.stack([x, [0.5, -0.25], x])
    weights = None if b is None else np.stack([b, [1.0, 1.0], b])
    for axis, xs, bs in ((1, rows, weights), (0, rows.T.copy(), None if b is None else weights.T)):
        got = fsm.logsumexp(xs, axis, b=bs, return_sign=True, backend=backend)
        want = scipy_special.logsumexp(xs, axis=axis, b=bs, return_sign=True)
        as_scipy(got, want)
    long = np.full(10000, -inf)
    long[[3, 9000]] = x
    long_b = None if b is None else np.ones(10000)
    if b is not None:
        long_b[[3, 9000]] = b
    got = fsm.logsumexp(long, b=long_b, return_sign=True, backend=backend)
    want = scipy_special.logsumexp(long, b=long_b, return_sign=True)
    as_scipy(got, want)


@pytest.mark.parametrize(("shape", "axis"), [((1, 70000), 1), ((30000, 3), 0)], ids=str)
@pytest.mark.parametrize("special", [inf, -inf, nan])
def test_special_values_where_threads_share_rows(backend, num_threads, rng, shape, axis, special):
    """A special value in the second thread's slice of a shared row or tile, and a slice all
    -inf: the partials meet through the limit rule."""
    x = rng.standard_normal(shape)
    b = rng.uniform(0.5, 1, shape)
    index = [0] * len(shape)
    index[axis] = shape[axis] - 5
    x[tuple(index)] = special
    check(x, axis, backend=backend)
    check(x, axis, b=b, backend=backend)
    half = [slice(None)] * len(shape)
    half[axis] = slice(0, shape[axis] // 2)
    x[tuple(half)] = -inf  # the first thread's slice holds no mass
    check(x, axis, backend=backend)
    check(x, axis, b=-b, backend=backend)


def test_negative_sum_is_nan_without_sign(plain_backend):
    x = np.array([[1.0, 2.0], [2.0, 1.0]])
    b = np.array([1.0, -1.0])
    as_scipy(fsm.logsumexp(x, b=b, backend=plain_backend), [nan, np.log(np.e**2 - np.e)])


@pytest.mark.parametrize("keepdims", [False, True])
def test_where(backend, rng, keepdims):
    x = 3 * rng.standard_normal((6, 10))
    x[0, 0], x[1, 1] = inf, nan  # masked out: they do not count
    mask = rng.random((6, 10)) < 0.6
    mask[0, 0] = mask[1, 1] = False
    mask[2] = False  # a row with nothing: -inf, sign 0
    lse, sign = check(x, -1, where=mask, backend=backend, keepdims=keepdims)
    assert lse[2] == -inf
    assert sign[2] == 0
    # A mask of the row's shape only, broadcast; with weights.
    row_mask = rng.random(10) < 0.5
    b = rng.uniform(-1, 2, (6, 10))
    check(x[2:], -1, b=b[2:], where=row_mask, backend=backend)
    want = scipy_special.logsumexp(x[2:], axis=-1, b=b[2:] * row_mask, return_sign=True)
    got = fsm.logsumexp(x[2:], b=b[2:], where=row_mask, return_sign=True, backend=backend)
    np.testing.assert_allclose(got, want, rtol=1e-13)


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -2])
def test_keepdims_and_shapes(plain_backend, rng, axis):
    x = rng.standard_normal((3, 4, 5))
    plain = fsm.logsumexp(x, axis, backend=plain_backend)
    kept = fsm.logsumexp(x, axis, keepdims=True, backend=plain_backend)
    assert plain.shape == np.sum(x, axis=axis).shape
    assert kept.shape == np.sum(x, axis=axis, keepdims=True).shape
    np.testing.assert_array_equal(kept, np.expand_dims(plain, axis))


def test_one_row_gives_a_scalar(plain_backend):
    got = fsm.logsumexp(np.zeros(4), backend=plain_backend)
    assert isinstance(got, np.float64)
    assert got == np.log(4)
    lse, sign = fsm.logsumexp(np.zeros(4), return_sign=True, backend=plain_backend)
    assert isinstance(lse, np.float64)
    assert isinstance(sign, np.float64)
    assert sign == 1
    assert fsm.logsumexp(np.zeros(4), keepdims=True, backend=plain_backend).shape == (1,)


@pytest.mark.parametrize("keepdims", [False, True])
def test_out(backend, dtype, rng, keepdims):
    x = rng.standard_normal((4, 6)).astype(dtype)
    b = rng.standard_normal((4, 6)).astype(dtype)
    shape = (4, 1) if keepdims else (4,)
    want, want_sign = fsm.logsumexp(x, b=b, keepdims=keepdims, return_sign=True, backend="numpy")
    out = np.full(shape, 7, dtype)
    assert fsm.logsumexp(x, b=b, keepdims=keepdims, out=out, backend=backend) is out
    np.testing.assert_array_equal(np.isnan(out), want_sign < 0)
    pair = (np.empty(shape, dtype), np.empty(shape, dtype))
    lse, sign = fsm.logsumexp(
        x, b=b, keepdims=keepdims, return_sign=True, out=pair, backend=backend
    )
    assert lse is pair[0]
    assert sign is pair[1]
    value = want.reshape(4).astype(np.float64)
    assert_matches(lse.reshape(4), logsumexp_tolerance(value, x, b, -1, dtype).widened(2))
    np.testing.assert_array_equal(sign, want_sign)
    for given in ((None, pair[1]), (pair[0], None)):
        got = fsm.logsumexp(x, b=b, keepdims=keepdims, return_sign=True, out=given, backend=backend)
        for result, wanted in zip(got, given, strict=True):
            assert wanted is None or result is wanted
    # Strided and unaligned outputs, and an output inside x's own memory.
    strided = np.full((8, *shape[1:]), nan, dtype)[::2]
    fsm.logsumexp(x, b=b, keepdims=keepdims, return_sign=True, out=(strided, None), backend=backend)
    np.testing.assert_array_equal(strided, lse)
    unaligned, _ = in_layout(np.zeros(shape, dtype), "unaligned")
    fsm.logsumexp(
        x, b=b, keepdims=keepdims, out=(unaligned, None), return_sign=True, backend=backend
    )
    np.testing.assert_array_equal(unaligned, lse)
    y = np.array(x)
    inside = y[:, 0:1] if keepdims else y[:, 0]
    fsm.logsumexp(y, b=b, keepdims=keepdims, out=(inside, None), return_sign=True, backend=backend)
    np.testing.assert_array_equal(inside, lse)


def test_float16_out_and_result(plain_backend):
    x = np.array([[0.0, 1.0, 2.0]], np.float16)
    got = fsm.logsumexp(x, backend=plain_backend)
    assert got.dtype == np.float16
    assert got[0] == np.float16(scipy_special.logsumexp(x.astype(np.float64), axis=-1)[0])
    out = np.empty(1, np.float16)
    assert fsm.logsumexp(x, out=out, backend=plain_backend) is out
    assert out[0] == got[0]


@pytest.mark.parametrize(
    ("x", "b", "want"),
    [
        (np.array([1, 2], np.int32), None, np.float64),
        (np.array([True, False]), None, np.float64),
        (np.array([1, 2], np.float32), None, np.float32),
        (np.array([1, 2], np.float16), None, np.float16),
        (np.array([1, 2], np.float32), np.array([1.0, 2.0]), np.float64),
        (np.array([1, 2], np.float32), np.array([1, 2], np.int8), np.float32),
        (np.array([1, 2], np.float16), np.array([1, 2], np.float32), np.float32),
    ],
)
def test_dtypes(plain_backend, x, b, want):
    got = fsm.logsumexp(x, b=b, backend=plain_backend)
    assert got.dtype == want
    expected = scipy_special.logsumexp(x.astype(np.float64), b=b)
    np.testing.assert_allclose(float(got), expected, rtol=2e-3 if want == np.float16 else 1e-6)


def test_empty(plain_backend):
    lse, sign = fsm.logsumexp(np.zeros((3, 0)), return_sign=True, backend=plain_backend)
    np.testing.assert_array_equal(lse, [-inf] * 3)
    np.testing.assert_array_equal(sign, [0] * 3)  # SciPy says -1 for an empty sum
    assert scipy_special.logsumexp(np.zeros((3, 0)), axis=-1)[0] == -inf
    assert fsm.logsumexp(np.zeros((0, 3)), backend=plain_backend).shape == (0,)
    assert fsm.logsumexp(np.zeros((0, 3)), 0, backend=plain_backend).shape == (3,)
    assert fsm.logsumexp(np.zeros(0), backend=plain_backend) == -inf


def test_bad_input(plain_backend):
    def call(*args, **kwargs):
        return fsm.logsumexp(*args, backend=plain_backend, **kwargs)

    x = np.zeros((3, 4))
    with pytest.raises(AxisError):
        call(np.float64(1.0))
    with pytest.raises(AxisError):
        call(x, 2)
    with pytest.raises(TypeError, match="real numbers"):
        call(x.astype(complex))
    with pytest.raises(TypeError, match="real numbers"):
        call(x, b=np.ones(4, complex))
    with pytest.raises(ValueError, match="broadcast together with x"):
        call(x, b=np.ones(3))
    with pytest.raises(TypeError, match="boolean"):
        call(x, where=np.ones(4))
    with pytest.raises(ValueError, match="broadcast to x's shape"):
        call(x, where=np.ones(3, bool))
    with pytest.raises(ValueError, match="shape"):
        call(x, out=np.empty(4))
    with pytest.raises(ValueError, match="shape"):
        call(x, out=np.empty((3, 1)))  # keepdims' shape without keepdims
    with pytest.raises(TypeError, match="dtype"):
        call(x, out=np.empty(3, np.float32))
    read_only = np.empty(3)
    read_only.flags.writeable = False
    with pytest.raises(ValueError, match="read-only"):
        call(x, out=read_only)
    with pytest.raises(TypeError, match="tuple"):
        call(x, return_sign=True, out=np.empty(3))
    shared = np.empty(3)
    with pytest.raises(ValueError, match="share memory"):
        call(x, return_sign=True, out=(shared, shared))
    with pytest.raises(ValueError, match="backend"):
        fsm.logsumexp(x, backend="fortran")


def test_docstring_example_matches_scipy():
    x = np.array([[0.0, 0.0], [1.0, 2.0]])
    b = np.array([1.0, -1.0])
    got = fsm.logsumexp(x, b=b, return_sign=True)
    want = scipy_special.logsumexp(x, axis=-1, b=b, return_sign=True)
    np.testing.assert_allclose(got, want, rtol=1e-15)
