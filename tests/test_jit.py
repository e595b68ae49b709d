"""fastsoftmax.jit: the Numba row kernels called from a user's own @njit code give the numba
backend's bits for the row, contiguous or strided, in place or not, and raise on misuse."""

from __future__ import annotations

import fastsoftmax as fsm
import numpy as np
import pytest
from support.processes import run_python

numba = pytest.importorskip("numba")
fsj = pytest.importorskip("fastsoftmax.jit")

DTYPES = [np.float32, np.float64]


@numba.njit
def _call_unary(f, x, out):
    f(x, out)


@numba.njit
def _call_binary(f, x, g, out):
    f(x, g, out)


def _backend(name, *arrays):
    """The numba backend's result for one row, on one thread."""
    with_threads = fsm.get_num_threads()
    fsm.set_num_threads(1)
    try:
        return getattr(fsm, name)(*arrays, backend="numba")
    finally:
        fsm.set_num_threads(with_threads)


def _row(rng, n, dtype, layout):
    """A row of n: contiguous, or a strided view (every other element of a longer one)."""
    data = (3 * rng.standard_normal(2 * n)).astype(dtype)
    return data[:n].copy() if layout == "contiguous" else data[::2]


@pytest.mark.parametrize("layout", ["contiguous", "strided"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
@pytest.mark.parametrize("n", [1, 7, 1000, 70000])
def test_row_functions_give_the_backends_bits(n, dtype, layout, rng):
    x, g = _row(rng, n, dtype, layout), _row(rng, n, dtype, layout)
    s = _backend("softmax", x)
    for function, name in ((fsj.softmax_row, "softmax"), (fsj.log_softmax_row, "log_softmax")):
        out = np.full_like(x, np.nan)
        _call_unary(function, x, out)
        np.testing.assert_array_equal(out, _backend(name, x))
    for function, name, first in (
        (fsj.softmax_backward_row, "softmax_backward", s),
        (fsj.log_softmax_backward_row, "log_softmax_backward", np.log(s)),
        (fsj.softmax_jvp_row, "softmax_jvp", x),
    ):
        out = np.full_like(x, np.nan)
        _call_binary(function, first, g, out)
        np.testing.assert_array_equal(out, _backend(name, first, g))
    # In the row's dtype inside compiled code; Numba returns it to Python as a float.
    assert fsj.logsumexp_row(x) == _backend("logsumexp", x)


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_in_place(dtype, rng):
    x = (3 * rng.standard_normal(300)).astype(dtype)
    want = _backend("softmax", x)
    fsj.softmax_row(x, x)
    np.testing.assert_array_equal(x, want)
    g = rng.standard_normal(300).astype(dtype)
    want = _backend("softmax_backward", want, g)
    fsj.softmax_backward_row(x, g, g)
    np.testing.assert_array_equal(g, want)


@pytest.mark.parametrize("layout", ["contiguous", "strided"])
@pytest.mark.parametrize("dtype", DTYPES, ids=lambda d: np.dtype(d).name)
def test_cross_entropy_row_gives_the_backends_bits(dtype, layout, rng):
    for n, label in ((5, 0), (1000, 321), (50257, 50256)):
        x = _row(rng, n, dtype, layout)
        grad = np.full_like(x, np.nan)
        loss = fsj.cross_entropy_row(x, label, grad)
        want_loss, want_grad = fsm.softmax_cross_entropy(
            x, np.array(label), reduction="sum", backend="numba"
        )
        assert loss == want_loss
        np.testing.assert_array_equal(grad, want_grad)
        # In place, and at the limits.
        fsj.cross_entropy_row(x, label, x)
        np.testing.assert_array_equal(x, want_grad)
    x = np.array([np.inf, 0.0, 1.0], dtype)
    assert fsj.cross_entropy_row(x, 0, np.empty_like(x)) == 0
    x = np.array([3.4e38, -3.4e38, 0.0], dtype)
    assert fsj.cross_entropy_row(x, 2, np.empty_like(x)) == np.float32(3.4e38)


def test_the_docstrings_example_in_prange(rng):
    namespace = {}
    example = fsj.__doc__.split("Example (`tests/test_jit.py` runs it)::")[1]
    exec(example.replace("\n    ", "\n"), namespace)
    logits = (3 * rng.standard_normal((64, 1000))).astype(np.float32)
    labels = rng.integers(0, 1000, 64)
    grad = np.empty_like(logits)
    loss = namespace["batch_loss"](logits, labels, grad)
    want_loss = fsm.softmax_cross_entropy(logits, labels, reduction="none", return_grad=False)
    np.testing.assert_allclose(loss, want_loss.mean(dtype=np.float64), rtol=1e-6)
    want_grad = fsm.softmax_cross_entropy(logits, labels, reduction="sum", backend="numba")[1]
    np.testing.assert_array_equal(grad, want_grad)


def test_misuse_raises():
    x = np.zeros(4)
    with pytest.raises(ValueError, match="one length"):
        fsj.softmax_row(x, np.zeros(3))
    with pytest.raises(IndexError, match="label out of range"):
        fsj.cross_entropy_row(x, 4, np.zeros(4))
    with pytest.raises((TypeError, numba.core.errors.TypingError), match="one dtype"):
        fsj.softmax_row(x, np.zeros(4, np.float32))


def test_importing_fastsoftmax_does_not_import_numba():
    proc = run_python("import sys, fastsoftmax\nassert 'numba' not in sys.modules")
    assert proc.returncode == 0, proc.stderr
