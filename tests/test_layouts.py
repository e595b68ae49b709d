"""Memory layouts of the inputs and of ``out``: the user never has to copy.

Inputs come C or Fortran ordered, as every-other-element views (positive and negative steps)
of a NaN-filled buffer (so a kernel reading outside the view shows up as NaN), reversed,
transposed in memory, misaligned, byte-swapped and broadcast (stride 0), along every axis.
"""

from __future__ import annotations

import fastsoftmax as fsm
import numpy as np
import pytest
from support.layouts import LAYOUTS, in_layout
from support.operations import FUNCTIONS, OPERATIONS, call, check, expect, make_inputs
from support.tolerances import assert_matches

SHAPE = (6, 35, 9)


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_input_layouts(name, layout, backend, dtype, rng):
    for axis in range(len(SHAPE)):
        values = make_inputs(name, SHAPE, dtype, rng, axis)
        # The first input in the layout under test, the second (if any) in the C order, then
        # the other way round: kernels must not assume both inputs share a layout.
        for which in range(len(values)):
            inputs = tuple(
                in_layout(v, layout)[0] if i == which else v.copy() for i, v in enumerate(values)
            )
            check(name, inputs, axis, backend, dtype, f"{layout} input {which} axis={axis}")


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("layout", LAYOUTS)
def test_out_layouts(name, layout, backend, dtype, rng):
    for axis in range(len(SHAPE)):
        inputs = make_inputs(name, SHAPE, dtype, rng, axis)
        out, buffer = in_layout(np.zeros(OPERATIONS[name].result_shape(SHAPE, axis), dtype), layout)
        before = None if buffer is None else buffer.copy()
        result = call(name, *inputs, axis=axis, out=out, backend=backend)
        assert result is out
        assert_matches(out, expect(name, inputs, axis, dtype), f"out {layout} axis={axis}")
        if buffer is not None:  # the gaps between the elements of out are untouched
            outside = np.ones(buffer.shape, bool)
            outside[
                np.isin(np.arange(buffer.size), _element_offsets(buffer, out)).reshape(buffer.shape)
            ] = False
            np.testing.assert_array_equal(buffer[outside], before[outside])


def _element_offsets(buffer: np.ndarray, view: np.ndarray) -> np.ndarray:
    """Flat indices into ``buffer`` (C-contiguous) of the elements of ``view``."""
    base = buffer.__array_interface__["data"][0]
    start = view.__array_interface__["data"][0] - base
    grids = np.meshgrid(*(np.arange(n) for n in view.shape), indexing="ij")
    byte_offsets = start + sum(g * s for g, s in zip(grids, view.strides, strict=True))
    return (byte_offsets // buffer.itemsize).ravel()


@pytest.mark.parametrize("name", FUNCTIONS)
def test_inputs_and_out_all_in_odd_layouts(name, backend, dtype, rng):
    """Every array in a different non-contiguous layout at once."""
    axis = 1
    values = make_inputs(name, SHAPE, dtype, rng, axis)
    layouts = ("negative-strided", "transposed")
    inputs = tuple(in_layout(v, lay)[0] for v, lay in zip(values, layouts, strict=False))
    out, _ = in_layout(np.zeros(OPERATIONS[name].result_shape(SHAPE, axis), dtype), "F")
    with_out = call(name, *inputs, axis=axis, out=out, backend=backend)
    assert with_out is out
    assert_matches(out, expect(name, values, axis, dtype), name)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_byte_swapped_inputs(name, backend, dtype, rng):
    values = make_inputs(name, (5, 33), dtype, rng)
    swapped = tuple(v.astype(v.dtype.newbyteorder()) for v in values)
    result = check(name, swapped, -1, backend, dtype, "byte-swapped")
    assert result.dtype.isnative


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("axis", [0, 1])
def test_broadcast_inputs(name, axis, backend, dtype, rng):
    """Zero strides (np.broadcast_to gives read-only views): a valid input layout."""
    values = make_inputs(name, (1, 37), dtype, rng)
    if axis == 0:
        values = tuple(v.T.copy() for v in values)
    inputs = tuple(np.broadcast_to(v, (37, 37)) for v in values)
    assert all(0 in a.strides for a in inputs)
    check(name, inputs, axis, backend, dtype, f"broadcast axis={axis}")


def test_noncontiguous_long_rows(backend, dtype, rng):
    """A long row read with a step: the strided path of every pass, well beyond one block."""
    base = (3 * rng.standard_normal((2, 2 * 70_001))).astype(dtype)
    x = base[:, ::-2]
    check("softmax", (x,), -1, backend, dtype, "step -2")
    check("log_softmax", (x,), -1, backend, dtype, "step -2")
    column = np.asfortranarray(x).T  # the long axis first and not contiguous in memory
    check("softmax", (column,), 0, backend, dtype, "long column")


def test_f_order_result_for_f_order_input(backend, dtype, rng):
    x = np.asfortranarray(rng.standard_normal((40, 30)).astype(dtype))
    result = fsm.softmax(x, axis=0, backend=backend)
    assert_matches(result, expect("softmax", (x,), 0, dtype))


@pytest.mark.parametrize("name", FUNCTIONS)
def test_record_fields_with_odd_strides_on_length_1_axes(name, backend):
    """A record field: shape (1, 4), strides (33, 8), which NumPy calls aligned (a length-1
    axis's stride never moves). The C++ backend refused it ("x is not aligned"), as an out=."""
    record = np.dtype([("logits", "f8", (4,)), ("tag", "i1")])
    inputs = np.zeros(1, record), np.zeros(1, record)
    values = make_inputs(name, (1, 4), np.float64, np.random.default_rng(4), -1)
    for array, value in zip(inputs, values, strict=False):
        array["logits"] = value
    fields = [array["logits"] for array in inputs[: len(values)]]
    assert fields[0].strides == (33, 8)
    assert fields[0].flags.aligned
    out = np.zeros(1, record)["logits"]
    wanted = expect(name, values, -1, np.float64)
    assert_matches(call(name, *fields, backend=backend), wanted)
    call(name, *fields, backend=backend, out=out)
    assert_matches(out, wanted)
