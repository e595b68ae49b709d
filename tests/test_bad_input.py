"""Misuse: every row of the README's "Bad input" table raises what the table says.

``TABLE`` below is that table. ``test_table_row`` runs each row's example as written (in a fresh
interpreter for the environment variables and a missing backend) and checks the exception type,
the start of its message, and that no array was modified. The rows' breadth over every function,
argument position and backend lives where it was first tested, named in the last column:

- test_errors.py: shapes, axes, ``out`` (shape, dtype, read-only, not an array, jvp pairs),
  unknown and unavailable backends; test_dtypes.py: refused dtypes (type only);
  test_edge_cases.py: 0-d input; test_axes.py: axis tuples (repeated axes, their entries);
  test_config.py / test_simd.py: environment variables, thread counts below 1 or not integers.

The tests after the table add what those do not check: the message and untouched arrays for
refused dtypes, non-array inputs (a dict or a string is not array data, whereas a list is),
ragged lists, and thread counts too large for OpenMP.
"""

from __future__ import annotations

import contextlib
import platform
from collections.abc import Iterator
from dataclasses import dataclass

import fastsoftmax as fsm
import numpy as np
import pytest
from support.backends import ALL_SIMD_LEVELS, CORE
from support.operations import FUNCTIONS, OPERATIONS, call, make_inputs, unchanged
from support.processes import run_python

# The levels compiled into the extension: three on x86-64, "baseline" alone elsewhere.
SIMD_BUILT = ALL_SIMD_LEVELS if platform.machine().lower() in ("x86_64", "amd64") else ("baseline",)
DTYPE_MESSAGE = "{name} must hold real numbers (float16/32/64, integer or bool); got dtype {dtype}"


@dataclass(frozen=True)
class Misuse:
    """One row: ``example`` runs with the names of `namespace`, in a fresh interpreter with
    ``env`` set (and ``hidden`` made unimportable) when either is given."""

    misuse: str
    example: str
    exception: type[BaseException]
    message: str  # what the message starts with
    tested_in: str  # where the breadth of this row is tested
    env: tuple[str, str] | None = None
    hidden: str | None = None

    def __str__(self) -> str:
        return self.misuse


TABLE = [
    Misuse(
        "wrong dtype (string, bytes, datetime, …)",
        "fsm.softmax(x.astype(str), out=out)",
        TypeError,
        DTYPE_MESSAGE.format(name="x", dtype="<U32"),
        "test_dtypes, test_bad_input",
    ),
    Misuse(
        "longdouble",
        "fsm.softmax(x.astype(np.longdouble))",
        TypeError,
        DTYPE_MESSAGE.format(name="x", dtype=np.dtype(np.longdouble))
        + (" (longdouble is not supported" if np.dtype(np.longdouble).itemsize > 8 else ""),
        "test_dtypes, test_bad_input",
    ),
    Misuse(
        "complex",
        "fsm.softmax_backward(x, g.astype(complex), out=out)",
        TypeError,
        DTYPE_MESSAGE.format(name="grad", dtype="complex128"),
        "test_dtypes, test_bad_input",
    ),
    Misuse(
        "object",
        "fsm.log_softmax(x.astype(object), out=out)",
        TypeError,
        DTYPE_MESSAGE.format(name="x", dtype="object"),
        "test_dtypes, test_bad_input",
    ),
    Misuse(
        "non-array input",
        'fsm.softmax({"logits": [1.0, 2.0]})',
        TypeError,
        DTYPE_MESSAGE.format(name="x", dtype="object"),
        "test_bad_input",
    ),
    Misuse(
        "ragged list",
        "fsm.softmax([[1.0, 2.0], [3.0]])",
        ValueError,
        "setting an array element with a sequence",  # NumPy's own, from np.asarray
        "test_bad_input",
    ),
    Misuse(
        "0-d input (no axis)",
        "fsm.softmax(3.0)",
        np.exceptions.AxisError,
        "axis -1 is out of bounds for array of dimension 0",
        "test_edge_cases",
    ),
    Misuse(
        "shape mismatch",
        "fsm.softmax_backward(x, g.T, out=out)",
        ValueError,
        "y and grad must have the same shape; got (3, 4) and (4, 3)",
        "test_errors",
    ),
    Misuse(
        "axis out of range",
        "fsm.softmax(x, axis=2, out=out)",
        np.exceptions.AxisError,
        "axis 2 is out of bounds for array of dimension 2",
        "test_errors",
    ),
    Misuse(
        "axis not an integer",
        "fsm.softmax(x, axis=1.0, out=out)",
        TypeError,
        "axis must be an integer, a tuple of integers or None; got 1.0",
        "test_errors",
    ),
    Misuse(
        "axis tuple entry not an integer",
        "fsm.softmax(x, axis=(0, True), out=out)",
        TypeError,
        "axis entries must be integers (in (0, True)); got True",
        "test_axes",
    ),
    Misuse(
        "axis repeated",
        "fsm.softmax(x, axis=(0, -2), out=out)",
        ValueError,
        "axis 0 appears twice in axis=(0, -2)",
        "test_axes",
    ),
    Misuse(
        "wrong out shape",
        "fsm.softmax(x, out=out.T)",
        ValueError,
        "out must have the result's shape (3, 4); got (4, 3)",
        "test_errors",
    ),
    Misuse(
        "wrong out dtype",
        "fsm.softmax(x, out=out32)",
        TypeError,
        "out must have the result's dtype float64; got float32",
        "test_errors, test_dtypes",
    ),
    Misuse(
        "read-only out",
        "fsm.softmax(x, out=read_only)",
        ValueError,
        "out is read-only",
        "test_errors",
    ),
    Misuse(
        "out not an ndarray",
        "fsm.softmax(x, out=[0.0] * 4)",
        TypeError,
        "out must be a numpy.ndarray; got list",
        "test_errors",
    ),
    Misuse(
        "softmax_jvp out not a pair",
        "fsm.softmax_jvp(x, g, return_softmax=True, out=out)",
        TypeError,
        "with return_softmax=True, out must be a tuple (s_out, jvp_out); got ndarray",
        "test_errors",
    ),
    Misuse(
        "softmax_jvp outputs sharing memory",
        "fsm.softmax_jvp(x, g, return_softmax=True, out=(out, out))",
        ValueError,
        "the two outputs of softmax_jvp must not share memory",
        "test_errors",
    ),
    Misuse(
        "softmax_cross_entropy class index out of range",
        "fsm.softmax_cross_entropy(x, np.array([0, 4, 1]))",
        IndexError,
        "target 4 at position (1,) is not a class index in [0, 4) nor ignore_index=-100",
        "test_cross_entropy",
    ),
    Misuse(
        "softmax_cross_entropy probability target of the wrong shape",
        "fsm.softmax_cross_entropy(x, np.ones((3, 3)) / 3)",
        ValueError,
        "a probability target must have the logits' shape (3, 4); got (3, 3)",
        "test_cross_entropy",
    ),
    Misuse(
        "unknown backend",
        'fsm.softmax(x, backend="torch")',
        ValueError,
        "backend must be one of 'cpp', 'numba', 'numpy'; got 'torch'",
        "test_errors",
    ),
    Misuse(
        "out whose elements share memory",
        "fsm.softmax(x, out=np.lib.stride_tricks.as_strided(out, (3, 4), (8, 8)))",
        ValueError,
        "out has elements that share memory",
        "test_out",
    ),
    Misuse(
        "backend not available here (Numba not installed)",
        'fsm.softmax(x, backend="numba")',
        RuntimeError,
        "backend 'numba' is not available: Numba is not installed",
        "test_errors",
        hidden="numba",
    ),
    Misuse(
        "bad FASTSOFTMAX_SIMD",
        "import fastsoftmax",
        ValueError,
        f"FASTSOFTMAX_SIMD must be one of {', '.join(SIMD_BUILT)}; got 'sse9'",
        "test_simd",
        env=("FASTSOFTMAX_SIMD", "sse9"),
    ),
    Misuse(
        "bad FASTSOFTMAX_BACKEND",
        "import fastsoftmax",
        ValueError,
        "the environment variable FASTSOFTMAX_BACKEND must be one of 'cpp', 'numba', 'numpy'; "
        "got 'tensorflow'",
        "test_config",
        env=("FASTSOFTMAX_BACKEND", "tensorflow"),
    ),
    Misuse(
        "thread count below 1",
        "fsm.set_num_threads(-1)",
        ValueError,
        "set_num_threads() needs a thread count from 1 to 2147483647; got -1",
        "test_config",
    ),
    Misuse(
        "thread count not an integer",
        "fsm.set_num_threads(2.5)",
        TypeError,
        "set_num_threads() takes an integer; got 2.5",
        "test_config",
    ),
]


def namespace() -> dict[str, object]:
    """The names the examples use: float64 (3, 4) arrays and some outs."""
    read_only = np.full((3, 4), 7.0)
    read_only.flags.writeable = False
    return {
        "fsm": fsm,
        "np": np,
        "x": np.arange(12.0).reshape(3, 4),
        "g": np.ones((3, 4)),
        "out": np.full((3, 4), 7.0),
        "out32": np.full((3, 4), 7.0, np.float32),
        "read_only": read_only,
    }


SETUP = "import numpy as np, fastsoftmax as fsm\nx = np.arange(12.0).reshape(3, 4)\n"


def _raises_in_subprocess(row: Misuse) -> None:
    """Run the row in a fresh interpreter; its traceback must end with the exception."""
    if row.env is not None:
        proc = run_python(row.example, **dict([row.env]))
    else:
        hide = f"import sys\nsys.modules[{row.hidden!r}] = None  # as if not installed\n"
        proc = run_python(hide + SETUP + row.example)
    assert proc.returncode != 0, proc.stdout
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"{row.exception.__name__}: {row.message}"), proc.stderr


@pytest.mark.parametrize("row", TABLE, ids=str)
def test_table_row(row):
    if row.env is not None and row.env[0] == "FASTSOFTMAX_SIMD" and CORE is None:
        pytest.skip("no compiled extension to read FASTSOFTMAX_SIMD (test_config requires it)")
    if row.env is not None or row.hidden is not None:
        _raises_in_subprocess(row)
        return
    names = namespace()
    arrays = [v for v in names.values() if isinstance(v, np.ndarray)]
    threads = fsm.get_num_threads()
    with unchanged(*arrays), pytest.raises(row.exception) as info:
        exec(row.example, names)
    assert str(info.value).startswith(row.message), str(info.value)
    assert fsm.get_num_threads() == threads


def test_table_covers_every_listed_misuse():
    """Every misuse issue 4 lists has a row (the README's table lists the rows of TABLE)."""
    misuses = " | ".join(row.misuse for row in TABLE)
    for needed in (
        "wrong dtype",
        "complex",
        "object",
        "shape mismatch",
        "axis",
        "out shape",
        "out dtype",
        "read-only out",
        "non-array input",
        "unknown backend",
        "FASTSOFTMAX_SIMD",
        "FASTSOFTMAX_BACKEND",
        "thread count below 1",
    ):
        assert needed in misuses, needed


# --------------------------------------------------------------------------------------------
# Refused dtypes: the message names the argument and its dtype; nothing is written.


@contextlib.contextmanager
def same_bytes(*arrays: np.ndarray) -> Iterator[None]:
    """``unchanged`` for any dtype (strings and objects have no NaN to compare)."""
    before = [a.tobytes() for a in arrays]
    yield
    assert [a.tobytes() for a in arrays] == before


REFUSED = {
    "str": np.array(["1", "2", "3", "4"]),
    "complex64": np.ones(4, np.complex64),
    "complex128": np.ones(4, np.complex128),
    "object": np.array([1.0, 2.0, 3.0, 4.0], dtype=object),
    "datetime": np.array(["2020-01-01"] * 4, dtype="datetime64[D]"),
}


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("bad", list(REFUSED))
def test_refused_dtype_message_and_nothing_written(name, bad, plain_backend, rng):
    for position, argument in enumerate(operand.name for operand in OPERATIONS[name].operands):
        inputs = list(make_inputs(name, (4,), np.dtype(np.float64), rng))
        inputs[position] = REFUSED[bad].copy()
        out = np.full(OPERATIONS[name].result_shape((4,), -1), 7.0)
        with same_bytes(*inputs, out), pytest.raises(TypeError) as info:
            call(name, *inputs, out=out, backend=plain_backend)
        message = str(info.value)
        assert message.startswith(f"{argument} must hold real numbers"), message
        assert str(REFUSED[bad].dtype) in message


# --------------------------------------------------------------------------------------------
# Non-array input: array_like means numbers in (nested) sequences; anything else is refused as
# having no real dtype, before the axis or the shapes are looked at.

NOT_ARRAYS = {
    "dict": {"logits": [1.0, 2.0]},
    "str": "1.0 2.0",
    "bytes": b"12",
    "None": None,
    "set": {1.0, 2.0},
    "object": object(),
}


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("bad", list(NOT_ARRAYS))
def test_non_array_input_is_a_type_error(name, bad, plain_backend, rng):
    for position, argument in enumerate(operand.name for operand in OPERATIONS[name].operands):
        inputs = list(make_inputs(name, (4,), np.dtype(np.float64), rng))
        inputs[position] = NOT_ARRAYS[bad]
        arrays = [a for a in inputs if isinstance(a, np.ndarray)]
        out = np.full(OPERATIONS[name].result_shape((4,), -1), 7.0)
        with unchanged(*arrays, out), pytest.raises(TypeError) as info:
            call(name, *inputs, out=out, backend=plain_backend)
        assert str(info.value).startswith(f"{argument} must hold real numbers"), str(info.value)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_lists_are_array_like(name, plain_backend):
    """The other side of the line: nested lists of numbers are input like arrays."""
    values = [[0.0, 1.0, 2.0], [3.0, -1.0, 0.5]]
    inputs = [values] * len(OPERATIONS[name].operands)
    result = call(name, *inputs, backend=plain_backend)
    expected = call(name, *(np.array(v) for v in inputs), backend=plain_backend)
    np.testing.assert_array_equal(result, expected)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_ragged_list(name, plain_backend, rng):
    inputs = list(make_inputs(name, (2, 2), np.dtype(np.float64), rng))
    out = np.full(OPERATIONS[name].result_shape((2, 2), -1), 7.0)
    with unchanged(*inputs, out), pytest.raises(ValueError, match="inhomogeneous"):
        call(name, [[1.0, 2.0], [3.0]], *inputs[1:], out=out, backend=plain_backend)


# --------------------------------------------------------------------------------------------
# Thread counts OpenMP cannot take (an int beyond 32 bits): refused, or accepted and usable;
# never a setting that breaks every later call.


@pytest.mark.parametrize("count", [2**31, 10**12])
def test_thread_count_too_large(count, rng):
    before = fsm.get_num_threads()
    x = rng.standard_normal((3, 5))
    want = fsm.softmax(x, backend="numpy")
    try:
        fsm.set_num_threads(count)
    except ValueError:
        assert fsm.get_num_threads() == before  # refused: the setting is unchanged
    try:
        for backend in fsm.available_backends():
            np.testing.assert_allclose(fsm.softmax(x, backend=backend), want, rtol=1e-14)
    finally:
        fsm.set_num_threads(before)


def test_huge_omp_num_threads_still_computes():
    """OMP_NUM_THREADS beyond 32 bits is the default thread count; it must not break calls."""
    code = (
        "import numpy as np, fastsoftmax as fsm\n"
        "x = np.arange(6.0).reshape(2, 3)\n"
        "for b in fsm.available_backends():\n"
        "    np.testing.assert_allclose(fsm.softmax(x, backend=b), "
        "fsm.softmax(x, backend='numpy'), rtol=1e-14)\n"
        "print('ok')\n"
    )
    proc = run_python(code, OMP_NUM_THREADS="99999999999")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().endswith("ok")


@pytest.mark.parametrize("bad", [["cpp"], {"cpp": 1}, 3])
def test_backend_that_is_not_a_name(bad):
    """An unhashable backend= raised TypeError from a dict lookup instead of this error."""
    with pytest.raises(ValueError, match="backend must be one of 'cpp', 'numba', 'numpy'"):
        fsm.softmax(np.ones(3), backend=bad)
