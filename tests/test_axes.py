"""Several axes at once: ``axis`` as a tuple of ints, ``None`` (all axes) or ``()``.

Every operation on every backend against the independent reference (``support.reference``
sums over the axis tuple with NumPy's own reductions), in every layout of the inputs and of
``out``, in place, for axis tuples of every length in any order; the rows the axes merge into
as views and those gathered in batches; 0-d input; the errors; SciPy's softmax for comparison.
"""

from __future__ import annotations

import itertools

import fastsoftmax as fsm
import numpy as np
import pytest
from fastsoftmax import _axes, _backends
from hypothesis import assume, given
from hypothesis import strategies as st
from numpy.exceptions import AxisError
from support.layouts import LAYOUTS, in_layout
from support.operations import (
    FUNCTIONS,
    OPERATIONS,
    call,
    check,
    expect,
    make_inputs,
    unchanged,
)
from support.tolerances import assert_matches

SHAPE = (4, 5, 6)
# Every set of 1..3 axes of SHAPE, some in a shuffled order or negative, None and ().
AXES = [
    *((d,) for d in range(3)),
    (0, 1),
    (1, 2),
    (0, 2),
    (2, 0),
    (-1, -3),
    (-2, 0),
    (0, 1, 2),
    (2, 0, 1),
    (-1, 1, -3),
    None,
    (),
]
SHAPE_4D = (3, 4, 2, 5)
AXES_4D = [(0, 2), (1, 3), (3, 1), (0, 1, 3), (0, 2, 3), (1, 2), None, ()]


def _rows(axis: object, ndim: int) -> tuple[int, ...]:
    """The axes ``axis`` selects, non-negative (for the tests' own sums)."""
    if axis is None:
        return tuple(range(ndim))
    return tuple(d % ndim for d in axis)  # type: ignore[union-attr]


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_values_in_every_input_layout(name, layout, backend, dtype, rng):
    for shape, axes in ((SHAPE, AXES), (SHAPE_4D, AXES_4D)):
        for axis in axes:
            values = make_inputs(name, shape, dtype, rng, axis)
            inputs = tuple(in_layout(v, layout)[0] for v in values)
            check(name, inputs, axis, backend, dtype, f"{layout} axis={axis}")


@st.composite
def _shapes_and_axes(draw: st.DrawFn) -> tuple[tuple[int, ...], object]:
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=0, max_size=4)))
    ndim = len(shape)
    if draw(st.booleans()) and ndim:
        axes = draw(st.permutations(range(ndim)))[: draw(st.integers(0, ndim))]
        return shape, tuple(d - ndim if draw(st.booleans()) else d for d in axes)
    return shape, draw(st.sampled_from([None, ()]))


@pytest.mark.parametrize("name", FUNCTIONS)
@given(case=_shapes_and_axes(), layout=st.sampled_from(LAYOUTS), seed=st.integers(0, 2**32 - 1))
def test_any_shape_axes_and_layout(name, case, layout, seed, plain_backend):
    """Hypothesis: 0-d to 4-d, any subset of the axes in any order, any layout."""
    shape, axis = case
    assume(shape or layout == "C")  # a 0-d array has one layout, which in_layout does not make
    dtype = np.dtype(np.float64)
    values = make_inputs(name, shape, dtype, np.random.default_rng(seed), axis)
    inputs = tuple(in_layout(v, layout)[0] for v in values) if shape else values
    check(name, inputs, axis, plain_backend, dtype, f"{shape} {layout} axis={axis}")


@pytest.mark.parametrize("name", FUNCTIONS)
def test_mixed_input_layouts(name, backend, dtype, rng):
    """The first input in one layout, the second in another: each merges (or not) on its own."""
    for axis in AXES:
        values = make_inputs(name, SHAPE, dtype, rng, axis)
        for layouts in (("C", "F"), ("F", "negative-strided"), ("transposed", "C")):
            inputs = tuple(in_layout(v, lay)[0] for v, lay in zip(values, layouts, strict=False))
            check(name, inputs, axis, backend, dtype, f"{layouts} axis={axis}")


@pytest.mark.parametrize("name", FUNCTIONS)
def test_broadcast_inputs(name, backend, dtype, rng):
    """Zero strides along a reduced axis and along a batch axis."""
    for axis in [(0, 1), (1, 2), (0, 2), None, ()]:
        for stretched in range(3):
            small = tuple(1 if d == stretched else n for d, n in enumerate(SHAPE))
            values = make_inputs(name, small, dtype, rng, axis)
            inputs = tuple(np.broadcast_to(v, SHAPE) for v in values)
            assert all(a.strides[stretched] == 0 for a in inputs)
            check(name, inputs, axis, backend, dtype, f"stride 0 on {stretched} axis={axis}")


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("layout", ["C", "F", "strided", "negative", "transposed"])
def test_out_layouts(name, layout, backend, dtype, rng):
    for axis in AXES:
        inputs = make_inputs(name, SHAPE, dtype, rng, axis)
        out, buffer = in_layout(np.zeros(SHAPE, dtype), layout)
        before = None if buffer is None else buffer.copy()
        with unchanged(*inputs):
            result = call(name, *inputs, axis=axis, out=out, backend=backend)
        assert result is out
        assert_matches(out, expect(name, inputs, axis, dtype), f"out {layout} axis={axis}")
        if buffer is not None:  # the NaN gaps of a strided out are left as they were
            np.testing.assert_array_equal(np.isnan(buffer), np.isnan(before))


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("layout", ["C", "F", "negative-strided"])
def test_in_place_is_bitwise_out_none(name, layout, backend, dtype, rng):
    op = OPERATIONS[name]
    for axis in AXES:
        values = make_inputs(name, SHAPE, dtype, rng, axis)
        wanted = call(name, *(in_layout(v, layout)[0] for v in values), axis=axis, backend=backend)
        for position in op.alias_positions:
            inputs = [in_layout(v, layout)[0] for v in values]
            result = call(name, *inputs, axis=axis, out=inputs[position], backend=backend)
            assert result is inputs[position]
            np.testing.assert_array_equal(result, wanted, f"{name} axis={axis} out={position}")


@pytest.mark.parametrize("s_layout", ["C", "F", "strided"])
@pytest.mark.parametrize("jvp_layout", ["C", "transposed"])
def test_softmax_jvp_two_outputs(s_layout, jvp_layout, backend, dtype, rng):
    for axis in AXES:
        x, v = make_inputs("softmax_jvp", SHAPE, dtype, rng, axis)
        s_out, _ = in_layout(np.zeros(SHAPE, dtype), s_layout)
        jvp_out, _ = in_layout(np.zeros(SHAPE, dtype), jvp_layout)
        with unchanged(x, v):
            s, jvp = fsm.softmax_jvp(
                x, v, axis, return_softmax=True, out=(s_out, jvp_out), backend=backend
            )
        assert s is s_out
        assert jvp is jvp_out
        assert_matches(s, expect("softmax", (x,), axis, dtype), f"s axis={axis}")
        assert_matches(jvp, expect("softmax_jvp", (x, v), axis, dtype), f"jvp axis={axis}")
        # In place: the softmax into x, the product into v.
        s, jvp = fsm.softmax_jvp(x, v, axis, return_softmax=True, out=(x, v), backend=backend)
        assert s is x
        assert jvp is v


@pytest.mark.parametrize("name", FUNCTIONS)
def test_out_overlapping_an_input_in_part(name, backend, dtype, rng):
    """An out that overlaps an input without being it goes through `_api`'s scratch."""
    for axis in [(0, 1), (0, 2), None]:
        values = make_inputs(name, SHAPE, dtype, rng, axis)
        buffer = np.zeros((SHAPE[0] + 1, *SHAPE[1:]), dtype)
        buffer[1:] = values[0]
        inputs = (buffer[1:], *values[1:])
        wanted = expect(name, tuple(np.array(a) for a in inputs), axis, dtype)
        result = call(name, *inputs, axis=axis, out=buffer[:-1], backend=backend)
        assert_matches(result, wanted, f"axis={axis}")


def test_rows_in_batches(monkeypatch, plain_backend, dtype, rng):
    """Rows that do not merge, in many batches of a few rows with a shorter last one."""
    # 1 or 2 rows of axis=(1, 3) a batch: a shorter last batch of 1 row.
    monkeypatch.setattr(_axes, "BATCH_BYTES", 7 * 6 * 5 * np.dtype(dtype).itemsize)
    shape = (5, 7, 3, 6)
    for name in FUNCTIONS:
        for axis in [(0, 2), (1, 3), (0, 3), (3, 1, 0)]:
            values = make_inputs(name, shape, dtype, rng, axis)
            check(name, values, axis, plain_backend, dtype, f"axis={axis}")
            inputs = tuple(np.array(v) for v in values)
            position = OPERATIONS[name].alias_positions[-1]
            call(name, *inputs, axis=axis, out=inputs[position], backend=plain_backend)
            assert_matches(inputs[position], expect(name, values, axis, dtype), f"in place {axis}")


def test_row_larger_than_a_batch(monkeypatch, plain_backend, rng):
    """A row beyond BATCH_BYTES is its own batch."""
    monkeypatch.setattr(_axes, "BATCH_BYTES", 16)
    x = rng.standard_normal((3, 4, 5))
    check("softmax", (x,), (0, 2), plain_backend, np.dtype(np.float64))


def test_merged_axes_are_views_of_the_operands():
    """The backend gets one axis, and views of x and out (no copy) wherever the axes merge."""
    seen: list[tuple] = []

    def kernel(x, out, axis, threads):
        seen.append((x, out, axis))
        out[...] = 0

    cases = [
        (np.zeros((64, 32, 32)), (1, 2), (64, 1024)),
        (np.zeros((64, 32, 32)), (0, 1), (32, 2048)),
        (np.zeros((64, 32, 32)), (0, 1, 2), (65536,)),
        (np.asfortranarray(np.zeros((8, 6, 4))), (0, 1), (4, 48)),
        (np.asfortranarray(np.zeros((8, 6, 4))), (2, 1), (8, 24)),
        (np.zeros((8, 6, 4)).transpose(2, 0, 1), (1, 2), (4, 48)),
        (np.zeros((8, 6, 8))[:, :, ::2], (1, 2), (8, 24)),
        (np.zeros((8, 6, 8))[::-1, ::-1], (0, 1), (8, 48)),
        (np.zeros((8, 1, 6, 4)), (1, 2, 3), (8, 24)),
        (np.zeros((8, 6)), (), (8, 6, 1)),
    ]
    for x, axes, shape in cases:
        out = np.empty_like(x)
        seen.clear()
        _axes.run(kernel, (x,), (out,), tuple(sorted(axes)), 1)
        assert len(seen) == 1, axes
        x_view, out_view, axis = seen[0]
        assert x_view.shape == out_view.shape == shape, (axes, x_view.shape)
        assert axis == len(shape) - 1
        assert np.shares_memory(x_view, x)
        assert np.shares_memory(out_view, out)


def test_merging_never_copies(monkeypatch, rng):
    """Random slices, steps and transposes: whenever `run` merges, it passes views."""
    batched: list[bool] = []
    monkeypatch.setattr(_axes, "_run_in_batches", lambda *args: batched.append(True))
    seen: list[np.ndarray] = []
    merged = 0
    for _ in range(400):
        ndim = int(rng.integers(2, 5))
        base = np.zeros(tuple(int(n) for n in rng.integers(1, 4, ndim) * 2))
        steps = tuple(slice(None, None, int(s)) for s in rng.choice([-2, -1, 1, 2], ndim))
        x = base[steps].transpose(rng.permutation(ndim))
        axes = tuple(
            sorted(int(d) for d in rng.choice(ndim, int(rng.integers(0, ndim + 1)), False))
        )
        seen.clear()
        batched.clear()
        _axes.run(lambda x, out, axis, threads: seen.append(x), (x,), (x,), axes, 1)
        if not batched:
            merged += 1
            assert np.shares_memory(seen[0], base), (x.shape, x.strides, axes)
    assert merged > 100  # the draws exercise the merging, not only the batches


def test_unmerged_axes_go_in_bounded_batches(monkeypatch):
    """axis=(0, 2) of a C-contiguous array: scratch rows, at most BATCH_BYTES a batch."""
    budget = 4096
    monkeypatch.setattr(_axes, "BATCH_BYTES", budget)
    sizes: list[int] = []

    def kernel(x, out, axis, threads):
        assert x.flags.c_contiguous
        assert axis == x.ndim - 1
        sizes.append(x.nbytes + out.nbytes)
        out[...] = x

    x = np.arange(6 * 50 * 7, dtype=np.float64).reshape(6, 50, 7)
    out = np.empty_like(x)
    _axes.run(kernel, (x,), (out,), (0, 2), 1)
    assert max(sizes) <= budget
    assert sum(sizes) == x.nbytes + out.nbytes
    np.testing.assert_array_equal(out, x)  # every entry went back where it came from


def test_per_row_outputs(rng):
    """An output of x's shape without the axes (logsumexp's) is passed with the batch's shape."""

    def logsumexp(x, out, axis, threads):
        out[...] = np.log(np.exp(x).sum(axis=axis))

    for shape, axes in ((SHAPE, AXES), (SHAPE_4D, AXES_4D)):
        for axis in axes:
            rows = tuple(sorted(_rows(axis, len(shape))))
            for layout in ("C", "F", "negative-strided"):
                x = in_layout(rng.standard_normal(shape), layout)[0]
                wanted = np.log(np.exp(x).sum(axis=rows))
                out = np.zeros(wanted.shape)
                _axes.run(logsumexp, (x,), (out,), rows, 1, reduced=(0,))
                np.testing.assert_allclose(out, wanted, rtol=1e-13, err_msg=str(axis))


def test_probabilities_sum_to_one_over_the_axes(backend, dtype, rng):
    for axis in AXES:
        x = in_layout((3 * rng.standard_normal(SHAPE)).astype(dtype), "F")[0]
        s, _ = fsm.softmax_jvp(x, x, axis, return_softmax=True, backend=backend)
        log = fsm.log_softmax(x, axis, backend=backend)
        for p in (fsm.softmax(x, axis, backend=backend), np.exp(log.astype(np.float64)), s):
            total = np.sum(p, axis=_rows(axis, x.ndim), dtype=np.float64)
            np.testing.assert_allclose(total, 1, rtol=64 * np.finfo(dtype).eps, err_msg=str(axis))


@pytest.mark.parametrize("name", FUNCTIONS)
def test_backends_agree(name, dtype, rng):
    results = {}
    for axis in [(0, 2), (2, 1), None]:
        inputs = make_inputs(name, SHAPE_4D, dtype, rng, axis)
        wanted = expect(name, inputs, axis, dtype)
        for backend in fsm.available_backends():
            results[backend] = call(name, *inputs, axis=axis, backend=backend)
        for backend, result in results.items():
            assert_matches(result, wanted, f"{backend} axis={axis}")
        first = next(iter(results.values()))
        for result in results.values():  # two backends differ by at most both tolerances
            assert_matches(result, type(wanted)(first.astype(np.float64), 2 * wanted.tol))


def test_equal_to_the_single_axis_call(backend, dtype, rng):
    """axis=(1, 2) of (64, 32, 32) is axis 1 of the (64, 1024) view: the same bits."""
    x = rng.standard_normal((64, 32, 32)).astype(dtype)
    g = rng.standard_normal(x.shape).astype(dtype)
    for name in FUNCTIONS:
        inputs = (x,) if len(OPERATIONS[name].operands) == 1 else (x, g)
        merged = call(name, *inputs, axis=(1, 2), backend=backend)
        flat = call(name, *(a.reshape(64, 1024) for a in inputs), axis=1, backend=backend)
        np.testing.assert_array_equal(merged.reshape(64, 1024), flat, name)
        assert merged.flags.c_contiguous


@pytest.mark.parametrize("layout", ["C", "F"])
def test_result_keeps_the_input_layout(layout, plain_backend, rng):
    x = in_layout(rng.standard_normal(SHAPE), layout)[0]
    for axis in [(0, 2), (0, 1), None, ()]:
        result = fsm.softmax(x, axis=axis, backend=plain_backend)
        assert result.flags.c_contiguous == (layout == "C"), axis
        assert result.flags.f_contiguous == (layout == "F"), axis


# --------------------------------------------------------------------------------------------
# 0-d input and axis=(): every entry its own row


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("axis", [None, ()], ids=repr)
def test_zero_dimensional_input(name, axis, plain_backend, dtype):
    """The softmax of a scalar is 1 (log 0), its gradients 0, as scipy.special.softmax has it."""
    op = OPERATIONS[name]
    x = np.array(1.5, dtype)
    inputs = (np.array(1.0 if op.operands[0].saved_from == "softmax" else 0.0, dtype),)
    inputs = (x,) if op.takes_logits else inputs
    inputs += (np.array(0.25, dtype),) * (len(op.operands) - 1)
    result = call(name, *inputs, axis=axis, backend=plain_backend)
    assert isinstance(result, np.generic)  # a scalar, as NumPy's ufuncs and SciPy give
    assert result.dtype == dtype
    assert result == {"softmax": 1.0, "log_softmax": 0.0}.get(name, 0.0)
    out = np.full((), 7.0, dtype)
    assert call(name, *inputs, axis=axis, out=out, backend=plain_backend) is out
    assert out == result


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("axis", [0, -1, (0,), (-1,)], ids=repr)
def test_zero_dimensional_input_has_no_axis(name, axis, plain_backend):
    inputs = (np.array(1.5),) * len(OPERATIONS[name].operands)
    with pytest.raises(AxisError):
        call(name, *inputs, axis=axis, backend=plain_backend)


def test_empty_axis_tuple_special_values(backend, dtype):
    """Rows of one entry: +inf is the limit 1 (SciPy: NaN); a lone -inf or NaN is NaN."""
    inf, nan = np.inf, np.nan
    x = np.array([[inf, -inf], [nan, 2.0]], dtype)
    np.testing.assert_array_equal(fsm.softmax(x, axis=(), backend=backend), [[1, nan], [nan, 1]])
    log = fsm.log_softmax(x, axis=(), backend=backend)
    np.testing.assert_array_equal(log, [[0, nan], [nan, 0]])
    s, jvp = fsm.softmax_jvp(x, np.ones_like(x), axis=(), return_softmax=True, backend=backend)
    np.testing.assert_array_equal(s, [[1, nan], [nan, 1]])
    np.testing.assert_array_equal(jvp, [[0, nan], [nan, 0]])


def test_empty_arrays(plain_backend):
    for shape, axis in [((0, 3), (0, 1)), ((2, 0, 3), (0, 2)), ((0,), None), ((3, 0), ())]:
        result = fsm.softmax(np.empty(shape), axis=axis, backend=plain_backend)
        assert result.shape == shape


# --------------------------------------------------------------------------------------------
# SciPy: the same results for axis tuples and None, where rows hold no +inf


@pytest.mark.parametrize("name", ["softmax", "log_softmax"])
def test_matches_scipy(name, plain_backend, rng):
    special = pytest.importorskip("scipy.special", reason="SciPy is only compared against")
    for shape, axes in ((SHAPE, AXES), (SHAPE_4D, AXES_4D)):
        for axis in axes:
            x = 3 * rng.standard_normal(shape)
            if axis != ():  # a row of one -inf is NaN, and SciPy warns of it
                x[(0,) * len(shape)] = -np.inf
            result = getattr(fsm, name)(x, axis=axis, backend=plain_backend)
            wanted = getattr(special, name)(x, axis=axis)
            np.testing.assert_allclose(result, wanted, rtol=1e-13, atol=1e-15, err_msg=str(axis))


# --------------------------------------------------------------------------------------------
# Errors


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("axis", [(0, 3), (-4,), (1, 5, 0)], ids=repr)
def test_axis_out_of_range(name, axis, plain_backend, rng):
    inputs = make_inputs(name, SHAPE, np.dtype(np.float64), rng)
    out = np.full(SHAPE, 7.0)
    with unchanged(*inputs, out), pytest.raises(AxisError, match="out of bounds"):
        call(name, *inputs, axis=axis, out=out, backend=plain_backend)


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize(("axis", "repeated"), [((0, 0), 0), ((1, -2), 1), ((2, 0, -1), 2)])
def test_repeated_axis(name, axis, repeated, plain_backend, rng):
    inputs = make_inputs(name, SHAPE, np.dtype(np.float64), rng)
    with pytest.raises(ValueError, match=f"axis {repeated} appears twice"):
        call(name, *inputs, axis=axis, backend=plain_backend)


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize(
    "axis", [(0, 1.0), ("1",), (True,), (0, False), [0, 1], ((0, 1),), {0, 1}], ids=repr
)
def test_axis_entries_not_integers(name, axis, plain_backend, rng):
    inputs = make_inputs(name, SHAPE, np.dtype(np.float64), rng)
    out = np.full(SHAPE, 7.0)
    with unchanged(*inputs, out), pytest.raises(TypeError, match="axis"):
        call(name, *inputs, axis=axis, out=out, backend=plain_backend)


def test_numpy_integers_are_axes(plain_backend, rng):
    x = rng.standard_normal(SHAPE)
    wanted = fsm.softmax(x, axis=(0, 2), backend=plain_backend)
    result = fsm.softmax(x, axis=(np.int64(0), np.uint8(2)), backend=plain_backend)
    np.testing.assert_array_equal(result, wanted)


# --------------------------------------------------------------------------------------------
# Of the axes that are not an int, the C++ fast path takes a run of adjacent ones (which merge
# in a C-contiguous array); Numba's leaves them all to the Python layer (_axes.try_fast)


@pytest.mark.parametrize("backend", [b for b in ("cpp", "numba") if b in fsm.available_backends()])
@pytest.mark.parametrize("axis", [(0, 1), (1,), None, (), (0, 2), (2, 0, 1)], ids=repr)
def test_fast_paths_take_runs_of_adjacent_axes(backend, axis):
    _backends.resolve(backend)  # loads it, and so its fast paths
    fast = _backends.fast_paths(backend)
    x = np.random.default_rng(0).standard_normal((3, 4, 5))
    merged = {(0, 1): ((12, 5), 0), (1,): ((3, 4, 5), 1), None: ((60,), 0), (2, 0, 1): ((60,), 0)}
    takes = backend == "cpp" and axis in merged
    result = fast["softmax"](x, None, axis, 1)
    assert (result is not None) == takes
    if takes:  # the call on the merged view, with an int axis
        shape, one_axis = merged[axis]
        wanted = fast["softmax"](x.reshape(shape), None, one_axis, 1).reshape(x.shape)
        np.testing.assert_array_equal(result, wanted)
    assert (fast["softmax_backward"](x, x, None, axis, 1) is not None) == takes


def test_all_axis_subsets_of_a_4d_array(plain_backend, rng):
    """Every non-empty subset of the axes of a 4-D C array, in both orders of its axes."""
    x = rng.standard_normal(SHAPE_4D)
    for k in range(1, 5):
        for axes in itertools.combinations(range(4), k):
            for axis in (axes, axes[::-1]):
                check("softmax", (x,), axis, plain_backend, np.dtype(np.float64), str(axis))
