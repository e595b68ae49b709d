"""``where=``: masked rows in every function of the operation table, and in logsumexp.

Values are checked against `support.masked.expect_masked`, the unmasked reference applied to
each row's kept entries alone. The entries a mask leaves out are filled with NaN and inf in
every input, so a kernel that read them for a maximum, a sum or an output would show it.
Cases cover every walk: contiguous rows, rows shared by two threads, column tiles (shared or
not), gathered rows, axis tuples; masks of x's shape, broadcast across the batch (a causal
mask), along the axis (whole rows masked) and across the columns.
"""

from __future__ import annotations

import tracemalloc

import fastsoftmax as fsm
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from support.backends import CORE
from support.masked import MASKED_VALUE, expect_masked, masked_saved_input
from support.operations import FUNCTIONS, OPERATIONS, call, make_inputs, unchanged
from support.tolerances import assert_matches

# (x's shape, axis, the mask's shape): each a walk or a mask layout.
CASES = {
    "rows": ((8, 1000), -1, (8, 1000)),
    "causal": ((2, 3, 40, 40), -1, (40, 40)),
    "whole-rows": ((9, 300), -1, (9, 1)),
    "long-row-split": ((1, 70_001), -1, (1, 70_001)),
    "columns": ((1000, 37), 0, (1000, 37)),
    "columns-split": ((4096, 16), 0, (4096, 16)),
    "columns-row-mask": ((300, 40), 0, (300, 1)),
    "gathered": ((17, 33, 65), 1, (33, 1)),
    "axis-tuple": ((4, 8, 16), (1, 2), (8, 16)),
}


def masked_inputs(
    name: str, shape: tuple, axis, where: np.ndarray, dtype: np.dtype, rng: np.random.Generator
) -> tuple[np.ndarray, ...]:
    """The function's inputs under ``where``: a backward's saved input from the masked forward;
    every entry the mask leaves out holds NaN or inf, in every input."""
    inputs = list(make_inputs(name, shape, dtype, rng))
    saved_from = OPERATIONS[name].operands[0].saved_from
    if saved_from is not None:
        inputs[0] = masked_saved_input(saved_from, inputs[0], where, axis, dtype)
    full = np.broadcast_to(where, shape)
    junk = np.where(rng.random(shape) < 0.5, np.nan, np.inf).astype(dtype)
    return tuple(np.where(full, a, junk) for a in inputs)


def check_masked(name, inputs, where, axis, backend, dtype, **kwargs) -> np.ndarray:
    with unchanged(*inputs, where):
        result = call(name, *inputs, axis=axis, where=where, backend=backend, **kwargs)
    assert result.dtype == dtype
    assert_matches(result, expect_masked(name, inputs, where, axis, dtype), f"{name} masked")
    return result


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("name", FUNCTIONS)
def test_values(name, case, backend, dtype, num_threads, rng):
    shape, axis, mask_shape = CASES[case]
    where = rng.random(mask_shape) < 0.7
    where.flat[: where.shape[-1]] = False  # a row (or column) with no True entry
    inputs = masked_inputs(name, shape, axis, where, dtype, rng)
    check_masked(name, inputs, where, axis, backend, dtype)


@pytest.mark.parametrize("name", FUNCTIONS)
def test_out_and_in_place(name, plain_backend, rng):
    shape, axis, mask_shape = CASES["causal"]
    where = np.tril(np.ones(mask_shape, bool))
    inputs = masked_inputs(name, shape, axis, where, np.dtype(np.float64), rng)
    expected = expect_masked(name, inputs, where, axis, np.dtype(np.float64))
    out = np.full(shape, 7.0)
    result = call(name, *inputs, axis=axis, where=where, out=out, backend=plain_backend)
    assert result is out
    assert_matches(out, expected, f"{name} out=")
    alias = OPERATIONS[name].alias_positions[0]
    copies = [a.copy() for a in inputs]
    result = call(name, *copies, axis=axis, where=where, out=copies[alias], backend=plain_backend)
    assert result is copies[alias]
    assert_matches(result, expected, f"{name} in place")


def test_jvp_returns_the_masked_softmax(plain_backend, rng):
    x, v = make_inputs("softmax_jvp", (6, 50), np.dtype(np.float64), rng)
    where = rng.random((6, 50)) < 0.5
    s, jvp = fsm.softmax_jvp(x, v, where=where, return_softmax=True, backend=plain_backend)
    assert_matches(s, expect_masked("softmax", (x,), where, -1, np.dtype(np.float64)))
    assert_matches(jvp, expect_masked("softmax_jvp", (x, v), where, -1, np.dtype(np.float64)))


@pytest.mark.parametrize("name", FUNCTIONS)
def test_rows_with_no_true_entry(name, backend, dtype, rng):
    """The masked value throughout, never NaN, no warning (warnings are errors here), whatever
    the inputs hold; along the rows and along the columns walk."""
    for shape, axis in (((5, 70), -1), ((70, 5), 0)):
        inputs = masked_inputs(name, shape, axis, np.zeros(shape, bool), dtype, rng)
        result = call(name, *inputs, axis=axis, where=False, backend=backend)
        assert np.array_equal(result, np.full(shape, MASKED_VALUE[name], dtype))


def test_logsumexp_rows_with_no_true_entry(backend, dtype):
    x = np.full((4, 9), np.nan, dtype)
    lse, sign = fsm.logsumexp(x, where=np.zeros(9, bool), return_sign=True, backend=backend)
    assert np.array_equal(lse, np.full(4, -np.inf, dtype))
    assert np.array_equal(sign, np.zeros(4))


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
def test_special_values_among_kept_entries(log, backend, dtype):
    """The rules for +inf, -inf and NaN rows hold over the kept entries alone."""
    x = np.array(
        [
            [1.0, np.inf, np.nan, 2.0],  # +inf kept, NaN masked: the limit
            [np.inf, 0.0, np.inf, 1.0],  # two +inf, one masked: that one is out
            [-np.inf, -np.inf, 3.0, 4.0],  # kept entries all -inf: NaN, as unmasked
            [np.nan, 1.0, 2.0, 3.0],  # a kept NaN: NaN
        ],
        dtype,
    )
    where = np.array([[1, 1, 0, 1], [1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 0, 1]], bool)
    name = "log_softmax" if log else "softmax"
    for axis, (a, w) in ((-1, (x, where)), (0, (x.T.copy(), where.T.copy()))):
        result = call(name, a, axis=axis, where=w, backend=backend)
        assert_matches(result, expect_masked(name, (a,), w, axis, dtype))


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
def test_backward_is_the_gradient_of_the_masked_forward(log, plain_backend, rng):
    """Central differences of ``sum(c * forward(x, where))`` against the backward given the
    forward's output and the same mask: log_softmax_backward's sum of ``c`` must leave the
    masked entries out."""
    forward = "log_softmax" if log else "softmax"
    x = rng.standard_normal((3, 12))
    c = rng.standard_normal((3, 12))
    where = rng.random((3, 12)) < 0.6
    where[0] = False
    y = call(forward, x, where=where, backend=plain_backend)
    grad = call(f"{forward}_backward", y, c, where=where, backend=plain_backend)

    def loss(values: np.ndarray) -> float:
        out = call(forward, values, where=where, backend=plain_backend)
        return float(np.sum(np.where(where, c * out, 0.0)))

    step = 1e-6
    numeric = np.zeros_like(x)
    for index in np.ndindex(x.shape):
        up, down = x.copy(), x.copy()
        up[index] += step
        down[index] -= step
        numeric[index] = (loss(up) - loss(down)) / (2 * step)
    np.testing.assert_allclose(grad, numeric, rtol=1e-6, atol=1e-8)


@pytest.mark.skipif(CORE is None, reason="the C++ extension is not built here")
@pytest.mark.parametrize("name", FUNCTIONS)
def test_broadcast_mask_is_not_expanded(name, rng):
    """A (256, 256) mask for (8, 8, 256, 256) logits is read through its zero strides: the call
    allocates nothing near the 4 MiB its expansion to bool would take (NumPy reports its
    allocations to tracemalloc)."""
    shape = (8, 8, 256, 256)
    inputs = make_inputs(name, shape, np.dtype(np.float32), rng)
    where = np.tril(np.ones(shape[-2:], bool))
    out = np.empty(shape, np.float32)
    tracemalloc.start()
    try:
        call(name, *inputs, where=where, out=out, backend="cpp")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2**20, peak


def test_bad_masks():
    x = np.zeros((3, 4))
    with pytest.raises(TypeError, match="where must be a boolean array; got dtype float64"):
        fsm.softmax(x, where=np.ones((3, 4)))
    with pytest.raises(ValueError, match=r"where must broadcast to x's shape \(3, 4\)"):
        fsm.softmax(x, where=np.ones(3, bool))
    with pytest.raises(ValueError, match="where must broadcast"):
        fsm.softmax_backward(x, x, where=np.ones((2, 3, 4), bool))
    # A list of bools is a mask, as NumPy's where= takes it.
    assert fsm.softmax(x, where=[True, False, True, False])[0, 1] == 0.0


@given(
    shape=st.lists(st.integers(1, 7), min_size=1, max_size=3).map(tuple),
    data=st.data(),
)
def test_fuzz(shape, data, backend):
    """Any shape, axis and broadcast mask, against the reference on the kept entries."""
    name = data.draw(st.sampled_from(FUNCTIONS))
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    mask_shape = tuple(data.draw(st.sampled_from([1, n])) for n in shape)
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    where = rng.random(mask_shape) < 0.6
    dtype = np.dtype(data.draw(st.sampled_from([np.float32, np.float64])))
    inputs = masked_inputs(name, shape, axis, where, dtype, rng)
    check_masked(name, inputs, where, axis, backend, dtype)
