"""Threads: results with 1 and 2 threads agree, the C++ backend can be called from several
Python threads at once, and OpenMP limits (threadpoolctl) are respected.

The arrays hold >= 64K elements so the C++ kernel really splits them: many rows, a few long
rows (split within a row), one very long row, and the softmax axis first (inner-dimension path).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import fastsoftmax as fsm
import numpy as np
import pytest
from support.backends import threads
from support.operations import FUNCTIONS, call, check, expect, make_inputs, names, unchanged
from support.tolerances import Expected, assert_matches
from threadpoolctl import threadpool_limits

# The functions of logits: a row's limit (a maximum that is ±inf or NaN) is decided there.
OF_LOGITS = names(lambda op: op.takes_logits)

BIG = [
    pytest.param((256, 512), -1, id="256x512"),
    pytest.param((2, 65_536), -1, id="2x65536"),
    pytest.param((1, 300_001), -1, id="1x300001"),
    pytest.param((65_536, 3), 0, id="65536x3-axis0"),
    pytest.param((1024, 200), 0, id="1024x200-axis0"),
    pytest.param((16, 2048, 4), 1, id="16x2048x4-axis1"),
]


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize(("shape", "axis"), BIG)
def test_thread_counts_agree(name, shape, axis, backend, dtype, rng):
    inputs = make_inputs(name, shape, dtype, rng, axis)
    want = expect(name, inputs, axis, dtype)
    results = {}
    for n in (1, 2):
        with threads(n), unchanged(*inputs):
            results[n] = call(name, *inputs, axis=axis, backend=backend)
            again = call(name, *inputs, axis=axis, backend=backend)
        assert results[n].dtype == dtype
        assert_matches(results[n], want, f"{name} with {n} threads")
        # Same thread count, same input: the very same bits (in place is promised to give
        # exactly the out=None result, which needs this).
        np.testing.assert_array_equal(again, results[n])
    assert_matches(results[2], Expected(results[1].astype(np.float64), 2 * want.tol), "1 vs 2")


def _set(index: tuple, value: float) -> Callable[[np.ndarray], None]:
    def apply(x: np.ndarray) -> None:
        x[index] = value

    return apply


# Column 3 of a (4096, 40) array; one case at a time, since any column whose maximum is not
# finite sends its whole tile to the column-by-column path.
HALF = 2048
COLUMN_LIMITS = {
    "-inf-first-half": [_set((slice(None, HALF), 3), -np.inf)],
    "-inf-second-half": [_set((slice(HALF, None), 3), -np.inf)],
    "nan-in-second-half": [_set((HALF + 7, 3), np.nan)],
    "+inf-in-first-half": [_set((11, 3), np.inf)],
    "all-inf": [_set((slice(None), 3), -np.inf)],
    "all-but-last-inf": [_set((slice(None, -1), 3), -np.inf)],
    # -inf filling the first blocks of rows columns.hpp sums at once, or starting the second
    # thread's share of the tile, with finite rows after it.
    "-inf-leading-blocks": [_set((slice(None, 1000), 3), -np.inf)],
    "-inf-leading-second-share": [_set((slice(HALF, HALF + 600), 3), -np.inf)],
    "nan-in-leading-inf": [_set((slice(None, 1000), 3), -np.inf), _set((500, 3), np.nan)],
}


@pytest.mark.parametrize("name", OF_LOGITS)
@pytest.mark.parametrize("limit", COLUMN_LIMITS.values(), ids=COLUMN_LIMITS.keys())
@pytest.mark.parametrize("count", [1, 2])
def test_columns_with_limits(name, limit, count, backend, dtype, rng):
    """Along axis 0, a column whose maximum is not finite in only some of its rows, alone or
    shared between threads (kernels.cpp split_tiles)."""
    inputs = make_inputs(name, (4096, 40), dtype, rng, 0)
    for apply in limit:
        apply(inputs[0])
    with threads(count):
        check(name, inputs, 0, backend, dtype, f"{count} threads")


ROW_LIMITS = {
    "-inf-first-half": lambda x: x.__setitem__(slice(None, x.size // 2), -np.inf),
    "-inf-second-half": lambda x: x.__setitem__(slice(x.size // 2, None), -np.inf),
    "+inf-in-second-half": lambda x: x.__setitem__(x.size - 5, np.inf),
    "nan-in-first-half": lambda x: x.__setitem__(7, np.nan),
    "all-but-last-inf": lambda x: x.__setitem__(slice(None, -1), -np.inf),
    "all-inf": lambda x: x.__setitem__(slice(None), -np.inf),
}


@pytest.mark.parametrize("name", OF_LOGITS)
@pytest.mark.parametrize("limit", ROW_LIMITS.values(), ids=ROW_LIMITS.keys())
def test_rows_shared_with_limits(name, limit, backend, dtype, rng):
    """Threads sharing one long row (kernels.cpp split_rows) where only one thread's slice holds
    the values that decide the row's limit, or a slice is all -inf."""
    inputs = make_inputs(name, (1, 200_003), dtype, rng)
    limit(inputs[0][0])
    with threads(2):
        check(name, inputs, -1, backend, dtype, "2 threads")


@pytest.mark.parametrize("name", FUNCTIONS)
def test_more_threads_than_cores(name, backend, rng):
    inputs = make_inputs(name, (64, 4096), np.dtype(np.float32), rng)
    with threads(8):
        check(name, inputs, -1, backend, np.dtype(np.float32), "8 threads")


def test_concurrent_python_threads(backend, dtype, num_threads, rng):
    """Eight calls in flight at once from four Python threads (the C++ kernel drops the GIL)."""
    jobs = []
    for i, name in enumerate(FUNCTIONS * 2):
        shape = (64 + i, 2048) if i % 2 else (4096, 17 + i)
        axis = -1 if i % 2 else 0
        inputs = make_inputs(name, shape, dtype, rng, axis)
        jobs.append((name, inputs, axis))
    serial = [call(name, *inputs, axis=axis, backend=backend) for name, inputs, axis in jobs]

    def run(job):
        name, inputs, axis = job
        return [call(name, *inputs, axis=axis, backend=backend) for _ in range(3)]

    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(pool.map(run, jobs))
    # Against the serial results (their accuracy is the other tests' business).
    for (name, inputs, axis), alone, repeats in zip(jobs, serial, parallel, strict=True):
        want = expect(name, inputs, axis, dtype)
        for result in repeats:
            assert_matches(result, Expected(alone.astype(np.float64), 2 * want.tol), name)


def test_threadpool_limits(backend, rng):
    """threadpoolctl lowers OpenMP's limit; results stay right and our setting is unchanged."""
    x = (3 * rng.standard_normal((512, 512))).astype(np.float32)
    before = fsm.get_num_threads()
    with threadpool_limits(limits=1, user_api="openmp"):
        limited = check("softmax", (x,), -1, backend, np.dtype(np.float32))
    assert fsm.get_num_threads() == before
    free = check("softmax", (x,), -1, backend, np.dtype(np.float32))
    want = expect("softmax", (x,), -1, np.float32)
    assert_matches(free, Expected(limited.astype(np.float64), 2 * want.tol))
