"""The private row partials: each chunk's ``(max, sum(exp(x - max)))`` per row, and the softmax
of a chunk given the pair of its whole row (what a softmax split across chunks is built from).

The pairs are checked against float64 NumPy; the whole scheme (rows cut into chunks, their pairs
combined, each chunk's softmax written from the combined pair) against the whole-row reference
(`support.masked.expect_masked`), over every walk, masks and the special values. The Numba
backend has no kernels for them yet (it raises NotImplementedError, checked below), so the
backends here are the C++ one at each SIMD level and NumPy's.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import numpy as np
import pytest
from fastsoftmax import _partials
from hypothesis import given
from hypothesis import strategies as st
from support.backends import backend_variants, simd_level, variant_id
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


@pytest.fixture(params=[v for v in backend_variants() if v[0] != "numba"], ids=variant_id)
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    """The C++ backend at each SIMD level, and NumPy's (no Numba kernels: module docstring)."""
    name, level = request.param
    with simd_level(level):
        yield name


def test_numba_has_no_partials_yet():
    with pytest.raises(NotImplementedError, match="no Numba kernels yet"):
        _partials.row_partials(np.zeros((2, 3)), backend="numba")


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


@pytest.mark.parametrize("case", list(CASES))
def test_row_partials(case, backend, dtype, num_threads, rng):
    shape, axis, mask_shape = CASES[case]
    x = (3 * rng.standard_normal(shape)).astype(dtype)
    where = None if mask_shape is None else rng.random(mask_shape) < 0.7
    row_max, row_sum = _partials.row_partials(x, axis, where=where, backend=backend)
    want_max, want_sum, units = expected_pair(x, where, axis)
    assert row_max.dtype == dtype
    assert row_sum.dtype == dtype
    np.testing.assert_array_equal(row_max, want_max.astype(dtype))
    tol = (units + np.abs(want_sum)) * unit_roundoff(dtype)  # the bound, and rounding to dtype
    assert np.all(np.abs(row_sum - want_sum) <= tol), np.max(np.abs(row_sum - want_sum) / tol)


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
