"""The private row partials: each chunk's ``(max, sum(exp(x - max)))`` per row, and the softmax
of a chunk given the pair of its whole row (what a softmax split across chunks is built from).

The pairs are checked against float64 NumPy; the whole scheme (rows cut into chunks, their pairs
combined, each chunk's softmax written from the combined pair) against the whole-row reference
(`support.masked.expect_masked`), over every walk, masks and the special values, on every
backend.
"""

from __future__ import annotations

import itertools

import fastsoftmax as fsm
import numpy as np
import pytest
from fastsoftmax import _partials
from hypothesis import given
from hypothesis import strategies as st
from support.backends import threads
from support.masked import expect_masked
from support.reference import WIDE, narrow
from support.tolerances import assert_matches, unit_roundoff

# (x's shape, axis, the mask's shape or None): each a walk or a mask layout.
CASES = {
    "rows": ((8, 1000), -1, None),
    "rows-masked": ((6, 300), -1, (6, 300)),
    "long-row-split": ((1, 70_001), -1, (70_001,)),
    "columns": ((1000, 37), 0, None),
    "columns-split": ((4096, 16), 0, (4096, 1)),
    "gathered": ((17, 33, 65), 1, (33, 1)),
}


def expected_pair(x: np.ndarray, where: np.ndarray | None, axis: int):
    """The pair in wide precision: max over the kept entries (NaN ignored), and the sum of
    exp(x - max) over them; at a +inf maximum the count of +inf entries, at -inf 0 (NaN with a
    kept NaN). Also the sum's error bound in units of rounding: ``8 sum(e) + sum(e |x - max|)``,
    the exp's few ulp and the rounding of ``x - max`` (as the logsumexp bound has it)."""
    x = np.asarray(x).astype(WIDE)
    if where is not None:
        x = np.where(np.broadcast_to(where, x.shape), x, -np.inf)
    with np.errstate(invalid="ignore"):
        m = np.fmax.reduce(x, axis=axis, keepdims=True, initial=-np.inf)
    finite = np.isfinite(m)
    with np.errstate(invalid="ignore", over="ignore"):
        terms = np.where(finite, np.exp(x - np.where(finite, m, 0)), x == np.inf)
    nan = np.isnan(x).any(axis=axis, keepdims=True)
    total = np.where(nan, np.nan, terms.sum(axis=axis, keepdims=True))
    with np.errstate(invalid="ignore"):
        spread = np.where(finite & (terms > 0), np.abs(x - np.where(finite, m, 0)), 0)
    units = (terms * (8 + spread)).sum(axis=axis)
    return narrow(np.squeeze(m, axis)), narrow(np.squeeze(total, axis)), narrow(units)


def chunked(x, where, axis, cuts, log, backend):
    """The softmax of x along axis from the pairs of the chunks between ``cuts``."""
    n = x.shape[axis]
    bounds = [0, *sorted(set(cuts)), n]
    parts = [(a, b) for a, b in itertools.pairwise(bounds) if b > a]
    full = None if where is None else np.broadcast_to(where, x.shape)
    take = lambda a, lo, hi: None if a is None else np.take(a, range(lo, hi), axis=axis)  # noqa: E731
    pairs = [
        _partials.row_partials(take(x, a, b), axis, where=take(full, a, b), backend=backend)
        for a, b in parts
    ]
    row_max, row_sum = _partials.combine(*zip(*pairs, strict=True))
    pieces = [
        _partials.softmax_given(
            take(x, a, b), row_max, row_sum, axis, log=log, where=take(full, a, b), backend=backend
        )
        for a, b in parts
    ]
    return np.concatenate(pieces, axis=axis)


def assert_pair(pair, x, where, axis, dtype):
    """``pair`` is `expected_pair`'s in ``dtype``: the maximum exact, the sum within its bound."""
    row_max, row_sum = pair
    want_max, want_sum, units = expected_pair(x, where, axis)
    assert row_max.dtype == dtype
    assert row_sum.dtype == dtype
    np.testing.assert_array_equal(row_max, want_max.astype(dtype))
    tol = (units + np.abs(want_sum)) * unit_roundoff(dtype)  # the bound, and rounding to dtype
    assert np.all(np.abs(row_sum - want_sum) <= tol), np.max(np.abs(row_sum - want_sum) / tol)


@pytest.mark.parametrize("case", list(CASES))
def test_row_partials(case, backend, dtype, num_threads, rng):
    shape, axis, mask_shape = CASES[case]
    x = (3 * rng.standard_normal(shape)).astype(dtype)
    where = None if mask_shape is None else rng.random(mask_shape) < 0.7
    pair = _partials.row_partials(x, axis, where=where, backend=backend)
    assert_pair(pair, x, where, axis, dtype)


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("case", list(CASES))
def test_chunks_give_the_whole_row(case, log, backend, dtype, num_threads, rng):
    shape, axis, mask_shape = CASES[case]
    x = (3 * rng.standard_normal(shape)).astype(dtype)
    where = None if mask_shape is None else rng.random(mask_shape) < 0.7
    n = shape[axis]
    cuts = [1, n // 3, n // 3 + 1, n - 1]  # chunks of length 1 among them
    got = chunked(x, where, axis, cuts, log, backend)
    name = "log_softmax" if log else "softmax"
    mask = np.ones(shape, bool) if where is None else where
    # Twice the whole-row bound: the combined sum is rounded once more, to the dtype.
    assert_matches(got, expect_masked(name, (x,), mask, axis, dtype).widened(2), name)


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
def test_special_rows_across_chunks(log, backend, dtype):
    """+inf in one chunk or in two, -inf rows, a NaN in one chunk, a row with nothing kept."""
    inf, nan = np.inf, np.nan
    x = np.array(
        [
            [1.0, 2.0, inf, 3.0, 4.0, 5.0],
            [inf, 2.0, 3.0, 4.0, 5.0, inf],
            [-inf, -inf, -inf, -inf, -inf, -inf],
            [1.0, 2.0, 3.0, nan, 4.0, 5.0],
            [1.0, 2.0, 3.0, 4.0, 5.0, 6.0],
            [-inf, -inf, -inf, 0.0, 1.0, 2.0],
        ],
        dtype,
    )
    where = np.ones(x.shape, bool)
    where[4] = False
    name = "log_softmax" if log else "softmax"
    got = chunked(x, where, -1, [2, 3], log, backend)
    assert_matches(got, expect_masked(name, (x,), where, -1, dtype), name)


@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize("axis", [0, 1])
def test_fortran_order(axis, log, backend, dtype, num_threads, rng):
    """x, its mask and its pair in Fortran order: the kernels walk their C-ordered transposes
    (axis 0: as rows, axis 1: as column tiles)."""
    x = np.asfortranarray((3 * rng.standard_normal((6, 50, 7))).astype(dtype))
    where = np.asfortranarray(rng.random(x.shape) < 0.7)
    pair = _partials.row_partials(x, axis, where=where, backend=backend)
    assert_pair(pair, x, where, axis, dtype)
    row_max, row_sum = (np.asfortranarray(a) for a in pair)
    got = _partials.softmax_given(x, row_max, row_sum, axis, log=log, where=where, backend=backend)
    name = "log_softmax" if log else "softmax"
    # Twice the whole-row bound: the pair's sum is rounded to the dtype.
    assert_matches(got, expect_masked(name, (x,), where, axis, dtype).widened(2), name)


@pytest.mark.parametrize("masked", [False, True], ids=["unmasked", "masked"])
@pytest.mark.parametrize("log", [False, True], ids=["softmax", "log_softmax"])
@pytest.mark.parametrize(("shape", "axis"), [((64, 1000), -1), ((1000, 37), 0)], ids=str)
def test_numba_given_the_rows_own_pair_is_its_softmax(shape, axis, log, masked, rng):
    """Numba's softmax_given at the pair Numba's row_partials gives for the whole row is Numba's
    softmax, bit for bit: the same maximum, derive and output step, and the same float64 sum
    (softmax sums its stored exps, row_partials the same exps as it computes them: LLVM
    vectorises the two loops alike). float64 only: in float32 the pair's sum is returned
    rounded to float32, and log_softmax sums in float32 partials where row_partials' sum is
    float64 (a softmax's denominator). One thread: softmax split between threads scales each
    slice's exps by its own factor, which a given pair does not need."""
    x = 3 * rng.standard_normal(shape)
    where = rng.random(shape) < 0.7 if masked else None
    forward = fsm.log_softmax if log else fsm.softmax
    with threads(1):
        pair = _partials.row_partials(x, axis, where=where, backend="numba")
        got = _partials.softmax_given(x, *pair, axis, log=log, where=where, backend="numba")
        want = forward(x, axis=axis, where=where, backend="numba")
    np.testing.assert_array_equal(got, want)


def test_pairs_row_partials_does_not_give(backend, dtype):
    """A sum of 0 at a +inf or finite maximum, a NaN maximum: computed as the formula has them
    (NumPy's result, inf and NaN included), not raised."""
    inf, nan = np.inf, np.nan
    x = np.array([[1.0, 2.0, inf], [1.0, 2.0, 3.0], [inf, 2.0, inf], [1.0, 2.0, 3.0]], dtype)
    row_max = np.array([inf, 3.0, inf, nan], dtype)
    row_sum = np.array([0.0, 0.0, 2.0, 1.0], dtype)
    for log in (False, True):
        got = _partials.softmax_given(x, row_max, row_sum, log=log, backend=backend)
        want = _partials.softmax_given(x, row_max, row_sum, log=log, backend="numpy")
        np.testing.assert_array_equal(got, want)


def test_bad_pairs():
    x = np.zeros((3, 4))
    with pytest.raises(ValueError, match=r"row_max must have x's shape without the axis \(3,\)"):
        _partials.softmax_given(x, np.zeros(4), np.ones(3))
    with pytest.raises(TypeError, match="one integer axis"):
        _partials.row_partials(x, axis=(0, 1))


@given(
    shape=st.lists(st.integers(1, 9), min_size=1, max_size=3).map(tuple),
    data=st.data(),
)
def test_fuzz(shape, data, backend):
    """Any shape, axis, chunking and mask: the chunks give the whole row."""
    axis = data.draw(st.integers(0, len(shape) - 1))
    cuts = data.draw(st.lists(st.integers(0, shape[axis]), max_size=4))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    dtype = np.dtype(data.draw(st.sampled_from([np.float32, np.float64])))
    x = (3 * rng.standard_normal(shape)).astype(dtype)
    where = rng.random(shape) < 0.7
    log = data.draw(st.booleans())
    name = "log_softmax" if log else "softmax"
    got = chunked(x, where, axis, cuts, log, backend)
    assert_matches(got, expect_masked(name, (x,), where, axis, dtype).widened(2), name)
