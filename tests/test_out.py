"""``out=``: a fresh array, the input itself (in place), partial overlap with an input.

In place must give exactly (bitwise) the ``out=None`` result; any other overlap must give the
result computed from the inputs as they were before the call.
"""

from __future__ import annotations

import fastsoftmax as fsm
import numpy as np
import pytest
from support.operations import FUNCTIONS, OPERATIONS, call, expect, make_inputs, names
from support.tolerances import assert_matches

# (function, which input out aliases): every input out= may be, of every function.
ORDINALS = ("first", "second", "third")
ALIASES = [
    pytest.param(n, i, id=f"{n}-{ORDINALS[i]}")
    for i in range(len(ORDINALS))
    for n in FUNCTIONS
    if i in OPERATIONS[n].alias_positions
]
IN_PLACE = names(lambda op: bool(op.out_may_alias))
SHAPES = [(37,), (5, 33), (4, 7, 9)]


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("shape", SHAPES, ids=str)
def test_fresh_out_is_returned_and_filled(name, shape, backend, dtype, rng):
    inputs = make_inputs(name, shape, dtype, rng)
    out = np.full(OPERATIONS[name].result_shape(shape, -1), np.nan, dtype)
    result = call(name, *inputs, out=out, backend=backend)
    assert result is out
    assert_matches(out, expect(name, inputs, -1, dtype), name)


@pytest.mark.parametrize(("name", "which"), ALIASES)
@pytest.mark.parametrize("shape", [(37,), (5, 33), (4, 7, 9), (300, 257)], ids=str)
def test_in_place_equals_out_of_place(name, which, shape, backend, dtype, num_threads, rng):
    for axis in range(len(shape)):
        inputs = make_inputs(name, shape, dtype, rng, axis)
        fresh = call(name, *inputs, axis=axis, backend=backend)  # its values: test_values
        aliased = [a.copy() for a in inputs]
        result = call(name, *aliased, axis=axis, out=aliased[which], backend=backend)
        assert result is aliased[which]
        np.testing.assert_array_equal(result, fresh, err_msg=f"axis={axis}")


@pytest.mark.parametrize("name", IN_PLACE)
def test_in_place_on_strided_views(name, backend, dtype, rng):
    """``out`` is the very same non-contiguous view as an input."""
    inputs = make_inputs(name, (9, 41), dtype, rng)
    fresh = call(name, *inputs, backend=backend)
    buffers = [np.zeros((18, 123), dtype) for _ in inputs]
    views = [b[::-2, 1::3] for b in buffers]
    for view, values in zip(views, inputs, strict=True):
        view[...] = values
    which = OPERATIONS[name].alias_positions[0]
    result = call(name, *views, out=views[which], backend=backend)
    assert result is views[which]
    np.testing.assert_array_equal(result, fresh)
    outside = np.ones(buffers[which].shape, bool)
    outside[::-2, 1::3] = False
    np.testing.assert_array_equal(buffers[which][outside], 0)  # the elements between untouched


def _overlapping(kind: str, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(input view holding values, out view)`` sharing memory in the given way."""
    rows, cols = values.shape
    if kind == "shift-row":  # out starts one row below the input
        buf = np.zeros((rows + 1, cols), values.dtype)
        x, out = buf[:-1], buf[1:]
    elif kind == "shift-element":  # out is the input moved by one element along the axis
        buf = np.zeros((rows, cols + 1), values.dtype)
        x, out = buf[:, :-1], buf[:, 1:]
    elif kind == "shift-back":
        buf = np.zeros((rows, cols + 1), values.dtype)
        x, out = buf[:, 1:], buf[:, :-1]
    elif kind == "reversed":  # same memory, opposite order
        buf = np.zeros((rows, cols), values.dtype)
        x, out = buf, buf[::-1, ::-1]
    elif kind == "transposed":  # same memory, transposed (square)
        buf = np.zeros((rows, cols), values.dtype)
        x, out = buf, buf.T
    elif kind == "flat-shift":  # one flat buffer, rows interleaved by a few elements
        buf = np.zeros(rows * cols + 3, values.dtype)
        x, out = buf[3:].reshape(rows, cols), buf[:-3].reshape(rows, cols)
    else:  # pragma: no cover
        raise ValueError(kind)
    x[...] = values
    assert np.may_share_memory(x, out)
    return x, out


OVERLAPS = ["shift-row", "shift-element", "shift-back", "reversed", "transposed", "flat-shift"]


@pytest.mark.parametrize(("name", "which"), ALIASES)
@pytest.mark.parametrize("kind", OVERLAPS)
def test_partial_overlap(name, which, kind, backend, dtype, rng):
    for axis in (0, 1):
        inputs = make_inputs(name, (33, 33), dtype, rng, axis)
        wanted = expect(name, inputs, axis, dtype)
        fresh = call(name, *inputs, axis=axis, backend=backend)
        arrays = list(inputs)
        arrays[which], out = _overlapping(kind, inputs[which])
        result = call(name, *arrays, axis=axis, out=out, backend=backend)
        assert result is out
        assert_matches(out, wanted, f"{kind} axis={axis}")
        np.testing.assert_allclose(out, fresh, rtol=16 * np.finfo(dtype).eps, atol=0)


# Rows of 70001 are longer than rows.hpp keeps in a scratch row (its two-pass path), one of
# them alone is shared between threads.
@pytest.mark.parametrize("shape", [(37,), (6, 33), (200, 400), (1, 70001), (3, 70001)], ids=str)
def test_jvp_two_outputs(shape, backend, dtype, rng):
    x, v = make_inputs("softmax_jvp", shape, dtype, rng)
    s_want, jvp_want = expect("softmax", (x,), -1, dtype), expect("softmax_jvp", (x, v), -1, dtype)
    fresh_s, fresh_jvp = fsm.softmax_jvp(x, v, return_softmax=True, backend=backend)

    s_out, jvp_out = np.empty_like(x), np.empty_like(x)
    s, jvp = fsm.softmax_jvp(x, v, return_softmax=True, out=(s_out, jvp_out), backend=backend)
    assert s is s_out
    assert jvp is jvp_out
    assert_matches(s, s_want, "s")
    assert_matches(jvp, jvp_want, "jvp")

    only_jvp = np.empty_like(x)
    s, jvp = fsm.softmax_jvp(x, v, return_softmax=True, out=(None, only_jvp), backend=backend)
    assert jvp is only_jvp
    assert_matches(s, s_want, "s")
    assert_matches(jvp, jvp_want, "jvp")

    only_s = np.empty_like(x)
    s, jvp = fsm.softmax_jvp(x, v, return_softmax=True, out=(only_s, None), backend=backend)
    assert s is only_s
    assert_matches(s, s_want, "s")
    assert_matches(jvp, jvp_want, "jvp")

    # Both outputs in place, in either assignment; the results must equal out=None exactly.
    for s_is_x in (True, False):
        xc, vc = x.copy(), v.copy()
        pair = (xc, vc) if s_is_x else (vc, xc)
        s, jvp = fsm.softmax_jvp(xc, vc, return_softmax=True, out=pair, backend=backend)
        assert s is pair[0]
        assert jvp is pair[1]
        assert_matches(s, s_want, f"s in place, s_is_x={s_is_x}")
        assert_matches(jvp, jvp_want, f"jvp in place, s_is_x={s_is_x}")
        if s_is_x:
            np.testing.assert_array_equal(s, fresh_s)
            np.testing.assert_array_equal(jvp, fresh_jvp)


def test_jvp_s_out_partially_overlapping_v(backend, dtype, rng):
    x, v = make_inputs("softmax_jvp", (16, 33), dtype, rng)
    buf = np.zeros((17, 33), dtype)
    vv, s_out = buf[1:], buf[:-1]
    vv[...] = v
    s, jvp = fsm.softmax_jvp(x, vv, return_softmax=True, out=(s_out, None), backend=backend)
    assert s is s_out
    assert_matches(s, expect("softmax", (x,), -1, dtype), "s")
    assert_matches(jvp, expect("softmax_jvp", (x, v), -1, dtype), "jvp")


@pytest.mark.parametrize("name", IN_PLACE)
def test_float16_in_place(name, backend, rng):
    """float16 in place goes through a float32 scratch; same result as out=None."""
    inputs = make_inputs(name, (7, 40), np.float16, rng)
    fresh = call(name, *inputs, backend=backend)
    aliased = [a.copy() for a in inputs]
    which = OPERATIONS[name].alias_positions[0]
    result = call(name, *aliased, out=aliased[which], backend=backend)
    assert result is aliased[which]
    assert result.dtype == np.float16
    np.testing.assert_array_equal(result, fresh)


def test_integer_input_with_float64_out(backend, rng):
    x = rng.integers(-5, 5, (4, 9))
    out = np.empty((4, 9))
    result = fsm.softmax(x, out=out, backend=backend)
    assert result is out
    assert_matches(out, expect("softmax", (x,), -1, np.dtype(np.float64)))


@pytest.mark.parametrize("name", FUNCTIONS)
def test_zero_size_out(name, backend, dtype):
    op = OPERATIONS[name]
    inputs = tuple(np.empty((0, 5), dtype) for _ in op.operands)
    out = np.empty(op.result_shape((0, 5), -1), dtype)
    assert call(name, *inputs, out=out, backend=backend) is out


@pytest.mark.parametrize("name", FUNCTIONS)
def test_out_with_internal_overlap_is_refused(name, backend):
    """An out whose elements share memory (as_strided((3, 4), (8, 8)), writeable) has no
    well-defined result: every backend refuses it, before anything is written (the C++ one
    used to compute such an x in place into itself, wrongly)."""
    buffer = np.arange(6.0)
    x = np.lib.stride_tricks.as_strided(buffer, (3, 4), (8, 8))
    inputs = (x, *(np.ones((3, 4)) for _ in OPERATIONS[name].operands[1:]))
    before = buffer.copy()
    with pytest.raises(ValueError, match="share memory"):
        call(name, *inputs, out=x, backend=backend)
    np.testing.assert_array_equal(buffer, before)


def test_internal_overlap_check_is_exact():
    """Interleaved strides that the quick test cannot clear are compared element by element."""
    from fastsoftmax._checks import _has_internal_overlap

    buffer = np.zeros(64)
    as_strided = np.lib.stride_tricks.as_strided
    assert not _has_internal_overlap(as_strided(buffer, (2, 3), (8, 16)))  # 0,16,32 / 8,24,40
    assert _has_internal_overlap(as_strided(buffer, (2, 3), (16, 8)))  # 0,8,16 / 16,24,32
    assert _has_internal_overlap(as_strided(buffer, (4,), (4,)))  # elements overlap by bytes
    assert not _has_internal_overlap(np.zeros((3, 4))[:, ::2].T)
    assert not _has_internal_overlap(np.zeros((5, 1, 3)))
