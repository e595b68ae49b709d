"""Arrays past the streaming threshold, where the C++ kernels write with non-temporal stores.

There the rows walk also prefetches the next row and places its scratch row against 4K
aliasing (cpp/src/kernels.cpp's Note on streaming stores, rows.hpp's Notes on prefetching the
next row and on 4K aliasing). None of it may change a value: rows too short to stream, odd
lengths that stream, rows too long for a scratch row, outputs off the inputs' alignment or in
place, and the columns walk, each against the reference, on every backend and SIMD level.
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import (
    CORE,
    FUNCTIONS,
    assert_matches,
    call,
    each_backend,
    expect,
    make_inputs,
    unchanged,
)

# The C++ backend's threshold (from the machine's cache size); the Numba and NumPy backends
# have none of their own, but are checked on the same arrays.
THRESHOLD = CORE.streaming_threshold_bytes() if CORE is not None else 4 << 20
# Float32 rows under 1 KiB never stream; 70001 is longer than the 256 KiB a scratch row holds.
ROW_LENGTHS = (200, 301, 4099, 70001)


def _past_threshold(n: int, dtype: np.dtype) -> tuple[int, int]:
    """The fewest rows of ``n`` that make an array larger than the threshold."""
    return THRESHOLD // (n * np.dtype(dtype).itemsize) + 2, n


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("n", ROW_LENGTHS)
def test_rows(name, n, dtype, rng):
    inputs = make_inputs(name, _past_threshold(n, dtype), dtype, rng)
    wanted = expect(name, inputs, -1, dtype)
    for backend in each_backend():
        with unchanged(*inputs):
            result = call(name, *inputs, backend=backend)
        assert_matches(result, wanted, f"{name} n={n} {backend}")


@pytest.mark.parametrize("name", FUNCTIONS)
def test_outputs_misaligned_and_in_place(name, dtype, rng):
    shape = _past_threshold(4099, dtype)
    inputs = make_inputs(name, shape, dtype, rng)
    wanted = expect(name, inputs, -1, dtype)
    for backend in each_backend():
        # One element past the start of its buffer: a different offset within a page and a
        # cache line from the inputs', which NumPy allocates alike.
        out = np.zeros(inputs[0].size + 1, dtype)[1:].reshape(shape)
        assert call(name, *inputs, out=out, backend=backend) is out
        assert_matches(out, wanted, f"{name} misaligned out {backend}")
        own = tuple(a.copy() for a in inputs)
        assert call(name, *own, out=own[0], backend=backend) is own[0]
        assert_matches(own[0], wanted, f"{name} in place {backend}")


@pytest.mark.parametrize("name", FUNCTIONS)
def test_columns(name, dtype, rng):
    columns = 1000
    shape = (_past_threshold(columns, dtype)[0], columns)
    inputs = make_inputs(name, shape, dtype, rng, axis=0)
    wanted = expect(name, inputs, 0, dtype)
    for backend in each_backend():
        assert_matches(call(name, *inputs, axis=0, backend=backend), wanted, f"{name} {backend}")
