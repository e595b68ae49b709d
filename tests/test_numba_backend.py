"""The Numba backend's own paths, called directly and compared with ``_reference.py``.

The shared tests reach these through the public API; here each walk of ``_numba`` is aimed
at on purpose: contiguous rows, rows of length 1, column tiles (several per row of M, with a
partial last one, and more rows than one float32 fold), the column-by-column path a tile takes
when a column's max is not finite, and the private buffers and scratch arrays that keep a
kernel loop from writing an array it reads under another name.
"""

from __future__ import annotations

from pathlib import Path

# Numba is part of the test extra: its absence must fail here, not skip.
import numba
import numpy as np
import pytest
from fastsoftmax import _numba as numba_backend
from fastsoftmax import _reference
from fastsoftmax._numba.vec_exp import exp as numba_exp
from fastsoftmax._numba.vec_exp import exp_nonpositive, exp_summand
from support.backends import threads
from support.processes import run_python
from support.tolerances import EXP_MAX_ULP, EXP_SUBNORMAL_QUANTA

UNARY = ("softmax", "log_softmax")
BINARY = ("softmax_backward", "log_softmax_backward")

# (shape, axis): rows; length-1 axis; tiles wider than K; several tiles and a partial one per
# row of M; more rows than one fold (256) of the column sums; rows longer than one fold.
SHAPES = [
    ((5, 37), 1),
    ((6, 1, 4), 1),
    ((3, 9, 5), 1),
    ((2, 7, 1300), 1),
    ((300, 6), 0),
    ((2, 700), 1),
]


def _call(module, name, arrays, out, s_out, axis, threads):
    if name == "softmax_jvp":
        module.softmax_jvp(*arrays, None, out, s_out, axis, threads)
    else:
        getattr(module, name)(*arrays, None, out, axis, threads)


def _logits(shape, dtype, rng, special=False):
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    if special:  # one special value per row along the axis, in a few rows
        flat = np.moveaxis(x, -1, 0).reshape(shape[-1], -1)
        for row, value in zip(range(0, flat.shape[1], 3), [np.inf, -np.inf, np.nan], strict=False):
            flat[row % flat.shape[0], row] = value
    return x


def _inputs(name, shape, axis, dtype, rng, special=False):
    x = _logits(shape, dtype, rng, special)
    grad = rng.standard_normal(shape).astype(dtype)
    if name in UNARY:
        return [x]
    if name in BINARY:
        y = np.empty_like(x)
        forward = _reference.softmax if name == "softmax_backward" else _reference.log_softmax
        forward(_logits(shape, dtype, rng), None, y, axis, 1)
        return [y, grad]
    return [x, grad]


def _assert_close(actual, expected, dtype):
    eps = np.finfo(dtype).eps
    scale = np.max(np.abs(expected[np.isfinite(expected)]), initial=1.0)
    np.testing.assert_allclose(actual, expected, rtol=64 * eps, atol=64 * eps * scale)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("special", [False, True], ids=["finite", "special"])
@pytest.mark.parametrize(("shape", "axis"), SHAPES, ids=str)
@pytest.mark.parametrize("name", [*UNARY, *BINARY, "softmax_jvp"])
def test_walks_match_reference(name, shape, axis, special, threads, dtype, rng):
    arrays = _inputs(name, shape, axis, dtype.type, rng, special and name not in BINARY)
    expected, expected_s = np.empty(shape, dtype), np.empty(shape, dtype)
    _call(_reference, name, [a.copy() for a in arrays], expected, expected_s, axis, 1)
    out, s_out = np.empty(shape, dtype), np.empty(shape, dtype)
    _call(numba_backend, name, arrays, out, s_out, axis, threads)
    _assert_close(out, expected, dtype)
    if name == "softmax_jvp":
        _assert_close(s_out, expected_s, dtype)


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize(("shape", "axis"), SHAPES, ids=str)
@pytest.mark.parametrize("name", [*UNARY, *BINARY, "softmax_jvp"])
def test_every_output_may_be_an_input(name, shape, axis, order, dtype, rng):
    arrays = [np.asarray(a, order=order) for a in _inputs(name, shape, axis, dtype.type, rng)]
    expected = np.empty(shape, dtype)
    _call(_reference, name, [a.copy() for a in arrays], expected, None, axis, 1)
    for index in range(len(arrays)):
        aliased = [a.copy(order=order) for a in arrays]
        _call(numba_backend, name, aliased, aliased[index], None, axis, 2)
        _assert_close(aliased[index], expected, dtype)


@pytest.mark.parametrize(("shape", "axis"), SHAPES, ids=str)
def test_jvp_softmax_may_be_x_while_out_is_v(shape, axis, dtype, rng):
    x, v = _inputs("softmax_jvp", shape, axis, dtype.type, rng, special=True)
    expected, expected_s = np.empty(shape, dtype), np.empty(shape, dtype)
    _reference.softmax_jvp(x.copy(), v.copy(), None, expected, expected_s, axis, 1)
    numba_backend.softmax_jvp(x, v, None, v, x, axis, 2)
    _assert_close(v, expected, dtype)
    _assert_close(x, expected_s, dtype)


@numba.njit
def _exp_array(x, out):
    for i in range(x.shape[0]):
        out[i] = numba_exp(x[i])


def test_exp_over_the_whole_range(dtype):
    info = np.finfo(dtype)
    low, high = np.log(info.smallest_subnormal) - 1, np.log(info.max) + 1
    x = np.concatenate([np.linspace(low, high, 200_001), [-np.inf, np.inf, np.nan]]).astype(dtype)
    out = np.empty_like(x)
    _exp_array(x, out)
    with np.errstate(over="ignore"):
        expected = np.exp(x.astype(np.longdouble))
    normal = (expected >= info.tiny) & (expected <= info.max)
    ulps = np.abs(out[normal] - expected[normal]) / np.spacing(expected[normal].astype(dtype))
    assert ulps.max() <= EXP_MAX_ULP[np.dtype(dtype)]  # the C++ exp's bounds: the same operations
    below = expected < info.tiny
    quanta = np.abs(out[below] - expected[below]) / info.smallest_subnormal
    assert np.all(quanta <= EXP_SUBNORMAL_QUANTA)
    assert np.all(out[expected > info.max] == np.inf)
    assert np.isnan(out[-1])


@numba.njit
def _shifted_exps(x, nonpositive, summand):
    for i in range(x.shape[0]):
        nonpositive[i] = exp_nonpositive(x[i])
        summand[i] = exp_summand(x[i])


def test_the_exps_of_x_minus_max(dtype):
    """exp_nonpositive is exp on x <= 0; exp_summand too where exp is above 2**-124, and below
    that a normal number under 2**-124 (never a subnormal or 0)."""
    info = np.finfo(dtype)
    x = np.concatenate([np.linspace(np.log(info.smallest_subnormal) - 1, 0, 200_001), [-np.inf]])
    x = x.astype(dtype)
    want, nonpositive, summand = np.empty_like(x), np.empty_like(x), np.empty_like(x)
    _exp_array(x, want)
    _shifted_exps(x, nonpositive, summand)
    np.testing.assert_array_equal(nonpositive, want)
    limit = 2.0 ** (info.minexp + 2)
    large = want >= limit
    np.testing.assert_array_equal(summand[large], want[large])
    assert np.all((summand[~large] >= info.tiny) & (summand[~large] < limit))
    nan = np.array([np.nan], dtype)
    _shifted_exps(nan, nonpositive[:1], summand[:1])
    assert np.isnan(nonpositive[0])
    assert np.isnan(summand[0])


@pytest.mark.parametrize("user_count", [1, 2])
@pytest.mark.parametrize("axis", [-1, 0])
def test_the_callers_numba_thread_count_is_kept(user_count, axis):
    """A parallel walk sets Numba's thread count for itself and restores the caller's."""
    import fastsoftmax as fsm

    previous = numba.get_num_threads()
    numba.set_num_threads(min(user_count, numba.config.NUMBA_NUM_THREADS))
    try:
        with threads(2):
            fsm.softmax(np.ones((512, 512)), axis=axis, backend="numba")
        assert numba.get_num_threads() == min(user_count, numba.config.NUMBA_NUM_THREADS)
    finally:
        numba.set_num_threads(previous)


NO_CACHE = """
import numpy as np, fastsoftmax as fsm
print(fsm.softmax(np.array([0.0, np.log(3.0)]), backend="numba"))
"""


def test_computes_without_a_writable_cache(tmp_path):
    """No cache location Numba can write (the package's __pycache__ a file, NUMBA_CACHE_DIR and
    HOME under a file): it compiles in each process instead of raising 'no locator available'.
    As root, read-only permissions would not stop a write; paths under a file do."""
    import shutil

    import fastsoftmax as fsm

    site = tmp_path / "site"
    shutil.copytree(
        Path(fsm.__file__).parent,
        site / "fastsoftmax",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    (site / "fastsoftmax" / "__pycache__").write_text("not a directory")
    blocked = str(tmp_path / "site" / "fastsoftmax" / "__pycache__" / "x")
    proc = run_python(
        NO_CACHE,
        PYTHONPATH=str(site),
        NUMBA_CACHE_DIR=blocked,
        HOME=blocked,
        XDG_CACHE_HOME=blocked,
        PYTHONDONTWRITEBYTECODE="1",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["[0.25", "0.75]"], proc.stdout


BROKEN_NUMBA = """
import sys, types
broken = types.ModuleType("numba")
broken.__path__ = []
def fail(name):
    raise ImportError("Numba needs NumPy 1.99 or less")
broken.__getattr__ = fail
sys.modules["numba"] = broken  # installed, found, but failing as soon as it is used
import numpy as np, fastsoftmax as fsm
print(fsm.available_backends())
try:
    fsm.softmax(np.ones(2), backend="numba")
except RuntimeError as err:
    print("RuntimeError", "failed to import" in str(err))
"""


def test_a_numba_that_fails_to_import_is_not_available():
    proc = run_python(BROKEN_NUMBA)
    assert proc.returncode == 0, proc.stderr[-2000:]
    backends, error = proc.stdout.splitlines()
    assert "numba" not in backends
    assert error == "RuntimeError True"


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_hot_loops_use_512_bit_vectors_where_the_machine_has_them(dtype):
    # primitives.py's Note on 512-bit vectors: without the attribute LLVM keeps to 256 bits.
    from fastsoftmax._numba.vector_loops import store_exp
    from llvmlite import binding

    x, e = np.zeros(64, dtype), np.empty(64, dtype)
    store_exp(x, dtype(0), e)
    np.testing.assert_array_equal(e, 1)
    signature = store_exp.signatures[-1]
    assembly = store_exp.inspect_asm(signature)
    has_avx512 = binding.get_host_cpu_features().get("avx512f", False)
    assert ("zmm" in assembly) == has_avx512
