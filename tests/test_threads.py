"""Threads: results with 1 and 2 threads agree, the C++ backend can be called from several
Python threads at once, and OpenMP limits (threadpoolctl) are respected.

The arrays hold >= 64K elements so the C++ kernel really splits them: many rows, a few long
rows (split within a row), one very long row, and the softmax axis first (inner-dimension path).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import fastsoftmax as fsm
import numpy as np
import pytest
from conftest import (
    FUNCTIONS,
    Expected,
    assert_matches,
    call,
    check,
    expect,
    make_inputs,
    threads,
    unchanged,
)
from threadpoolctl import threadpool_limits

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


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "softmax_jvp"])
def test_columns_shared_with_limits(name, backend, dtype, rng):
    """Threads sharing a tile's rows (kernels.cpp split_tiles) meet columns whose maximum is not
    finite in only one thread's rows: -inf or +inf in one half, NaN in one half, all -inf."""
    inputs = make_inputs(name, (4096, 40), dtype, rng, 0)
    x = inputs[0]
    half = x.shape[0] // 2
    x[:half, 3] = -np.inf
    x[half:, 5] = -np.inf
    x[half + 7, 7] = np.nan
    x[11, 9] = np.inf
    x[:, 11] = -np.inf
    x[:-1, 13] = -np.inf
    with threads(2):
        check(name, inputs, 0, backend, dtype, "2 threads")


ROW_LIMITS = {
    "-inf-first-half": lambda x: x.__setitem__(slice(None, x.size // 2), -np.inf),
    "-inf-second-half": lambda x: x.__setitem__(slice(x.size // 2, None), -np.inf),
    "+inf-in-second-half": lambda x: x.__setitem__(x.size - 5, np.inf),
    "nan-in-first-half": lambda x: x.__setitem__(7, np.nan),
    "all-but-last-inf": lambda x: x.__setitem__(slice(None, -1), -np.inf),
    "all-inf": lambda x: x.__setitem__(slice(None), -np.inf),
}


@pytest.mark.parametrize("name", ["softmax", "log_softmax", "softmax_jvp"])
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
