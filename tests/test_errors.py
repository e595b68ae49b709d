"""Every error the API promises, with the right type and message, leaving all arrays untouched."""

from __future__ import annotations

import re

import fastsoftmax as fsm
import numpy as np
import pytest
from numpy.exceptions import AxisError
from support.operations import FUNCTIONS, OPERATIONS, call, make_inputs, names, unchanged
from support.processes import run_python

TWO_INPUTS = names(lambda op: len(op.operands) == 2)


@pytest.fixture
def arrays(request, rng):
    """Inputs of shape (3, 4) for the function under test and a sentinel-filled out."""
    name = request.node.callspec.params["name"]
    out = np.full(OPERATIONS[name].result_shape((3, 4), -1), 7.0)
    return make_inputs(name, (3, 4), np.dtype(np.float64), rng), out


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("axis", [2, -3, 100, -100])
def test_axis_out_of_range(name, axis, arrays, plain_backend):
    inputs, out = arrays
    with unchanged(*inputs, out), pytest.raises(AxisError):
        call(name, *inputs, axis=axis, out=out, backend=plain_backend)
    # AxisError is both a ValueError and an IndexError, as NumPy's own
    with pytest.raises(ValueError, match="axis"):
        call(name, *inputs, axis=axis, backend=plain_backend)


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("axis", [1.0, 1.5, "1", [0], (0, 1.0), True], ids=repr)
def test_axis_not_an_integer(name, axis, arrays, plain_backend):
    inputs, out = arrays
    with unchanged(*inputs, out), pytest.raises(TypeError, match="axis"):
        call(name, *inputs, axis=axis, out=out, backend=plain_backend)


@pytest.mark.parametrize("name", TWO_INPUTS)
@pytest.mark.parametrize(
    ("first", "second"),
    [((3, 4), (4, 3)), ((3, 4), (3, 1)), ((3, 4), (4,)), ((5,), (6,)), ((2, 3), ())],
    ids=str,
)
def test_shape_mismatch_names_both_shapes(name, first, second, plain_backend, rng):
    """Equal shapes are required: no broadcasting, even where NumPy would broadcast."""
    a, b = rng.random(first), rng.random(second)
    out = np.full(first, 7.0)
    with unchanged(a, b, out), pytest.raises(ValueError, match=re.escape(str(first))) as info:
        call(name, a, b, out=out, backend=plain_backend)
    assert str(second) in str(info.value)


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("shape", [(4, 3), (3, 4, 1), (12,), (1, 4), (3, 5)], ids=str)
def test_out_wrong_shape(name, shape, arrays, plain_backend):
    inputs, _ = arrays
    out = np.full(shape, 7.0)
    with unchanged(*inputs, out), pytest.raises(ValueError, match="shape"):
        call(name, *inputs, out=out, backend=plain_backend)


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float16, np.int64, np.complex128])
def test_out_wrong_dtype(name, dtype, arrays, plain_backend):
    inputs, right = arrays
    out = np.zeros(right.shape, dtype)
    with unchanged(*inputs, out), pytest.raises(TypeError, match="dtype"):
        call(name, *inputs, out=out, backend=plain_backend)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_out_read_only(name, arrays, plain_backend):
    inputs, out = arrays
    out.flags.writeable = False
    with unchanged(*inputs, out), pytest.raises(ValueError, match="read-only"):
        call(name, *inputs, out=out, backend=plain_backend)
    broadcast = np.broadcast_to(np.zeros(out.shape[-1:]), out.shape)
    with unchanged(*inputs), pytest.raises(ValueError, match="read-only"):
        call(name, *inputs, out=broadcast, backend=plain_backend)


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize(
    "out", [[[0.0] * 4] * 3, 0.0, (np.zeros((3, 4)),), "out"], ids=["list", "float", "tuple", "str"]
)
def test_out_not_an_ndarray(name, out, arrays, plain_backend):
    inputs, _ = arrays
    with unchanged(*inputs), pytest.raises(TypeError, match="ndarray"):
        call(name, *inputs, out=out, backend=plain_backend)


@pytest.mark.parametrize(
    "out",
    [
        np.zeros((3, 4)),
        [np.zeros((3, 4)), np.zeros((3, 4))],
        (np.zeros((3, 4)),),
        (np.zeros((3, 4)),) * 3,
    ],
    ids=["array", "list", "1-tuple", "3-tuple"],
)
def test_jvp_with_softmax_needs_a_pair(out, rng, plain_backend):
    x, v = make_inputs("softmax_jvp", (3, 4), np.dtype(np.float64), rng)
    with unchanged(x, v), pytest.raises(TypeError, match="tuple"):
        fsm.softmax_jvp(x, v, return_softmax=True, out=out, backend=plain_backend)


def test_jvp_pair_checked_before_anything_is_written(rng, plain_backend):
    x, v = make_inputs("softmax_jvp", (3, 4), np.dtype(np.float64), rng)
    good = np.full((3, 4), 7.0)
    for bad, error in [
        (np.zeros((4, 3)), ValueError),
        (np.zeros((3, 4), np.float32), TypeError),
        ([0.0] * 4, TypeError),
    ]:
        for pair in ((bad, good), (good, bad)):
            with unchanged(x, v, good), pytest.raises(error):
                fsm.softmax_jvp(x, v, return_softmax=True, out=pair, backend=plain_backend)


@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16], ids=str)
def test_jvp_outputs_must_not_share_memory(dtype, rng, plain_backend):
    """Also for float16, computed in float32 scratch arrays that share nothing."""
    x, v = make_inputs("softmax_jvp", (3, 4), np.dtype(dtype), rng)
    buffer = np.full((4, 4), 7.0, dtype)
    for first, second in [(buffer[:3], buffer[:3]), (buffer[:3], buffer[1:])]:
        with unchanged(x, v, buffer), pytest.raises(ValueError, match="share memory"):
            fsm.softmax_jvp(x, v, return_softmax=True, out=(first, second), backend=plain_backend)


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("backend_name", ["torch", "CPP", "", "numpy ", 1, "jax"], ids=repr)
def test_unknown_backend(name, backend_name, arrays):
    inputs, out = arrays
    with unchanged(*inputs, out), pytest.raises(ValueError, match="backend") as info:
        call(name, *inputs, out=out, backend=backend_name)
    for known in ("cpp", "numba", "numpy"):
        assert known in str(info.value)


UNAVAILABLE = """
import sys
sys.modules[{module!r}] = None  # as if it were missing: its import fails
import numpy as np
import fastsoftmax as fsm
assert {name!r} not in fsm.available_backends(), fsm.available_backends()
x = np.array([1.0, 2.0]); out = np.full(2, 7.0)
for call in (
    lambda: fsm.softmax(x, out=out, backend={name!r}),
    lambda: fsm.softmax_jvp(x, x, return_softmax=True, backend={name!r}),
):
    try:
        call()
    except RuntimeError as err:
        print("RuntimeError:", err)
    else:
        raise SystemExit("no error")
assert (out == 7.0).all() and (x == [1.0, 2.0]).all()
print("fallback", fsm.softmax(x).round(4).tolist())
"""


@pytest.mark.parametrize(
    ("name", "module"), [("cpp", "fastsoftmax._core"), ("numba", "numba")], ids=["cpp", "numba"]
)
def test_unavailable_backend_is_a_runtime_error(name, module):
    proc = run_python(UNAVAILABLE.format(name=name, module=module))
    assert proc.returncode == 0, proc.stderr
    assert f"backend {name!r}" in proc.stdout or name in proc.stdout
    assert "not available" in proc.stdout
    assert "fallback [0.2689, 0.7311]" in proc.stdout  # the next backend takes over
