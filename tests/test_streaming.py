"""Arrays past the streaming threshold, where the C++ kernels write with non-temporal stores.

There the rows walk also prefetches the next row and places its scratch row against 4K
aliasing (cpp/src/kernels.cpp's Note on streaming stores, rows.hpp's Notes on prefetching the
next row and on 4K aliasing). None of it may change a value: rows too short to stream, odd
lengths that stream, rows too long for a scratch row, outputs off the inputs' alignment or in
place, and the columns walk, each against the reference, on every backend and SIMD level.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from conftest import (
    CORE,
    FUNCTIONS,
    assert_matches,
    backend_variants,
    call,
    expect,
    make_inputs,
    simd_level,
    unchanged,
    variant_id,
)

# The C++ backend's threshold (from the machine's cache size); the Numba and NumPy backends
# have none of their own, but are checked on the same arrays.
THRESHOLD = CORE.streaming_threshold_bytes() if CORE is not None else 4 << 20
# Float32 rows under 1 KiB never stream; 70001 is longer than the 256 KiB a scratch row holds.
ROW_LENGTHS = (200, 301, 4099, 70001)


def _past_threshold(n: int, dtype: np.dtype) -> tuple[int, int]:
    """The fewest rows of ``n`` that make an array larger than the threshold."""
    return THRESHOLD // (n * np.dtype(dtype).itemsize) + 2, n


# Applied last, so it varies fastest: the backends of one case run one after another and share
# its inputs and reference (`_case`).
each_variant = pytest.mark.parametrize("variant", backend_variants(), ids=variant_id)


@functools.lru_cache(maxsize=1)
def _case(name: str, shape: tuple[int, int], dtype: np.dtype, axis: int) -> tuple:
    """The inputs of ``name`` and the values expected of them (both take a while to make)."""
    inputs = make_inputs(name, shape, dtype, np.random.default_rng(sum(shape)), axis)
    return inputs, expect(name, inputs, axis, dtype)


@each_variant
@pytest.mark.parametrize("n", ROW_LENGTHS)
@pytest.mark.parametrize("name", FUNCTIONS)
def test_rows(name, n, dtype, variant):
    inputs, wanted = _case(name, _past_threshold(n, dtype), np.dtype(dtype), -1)
    backend, level = variant
    with unchanged(*inputs), simd_level(level):
        result = call(name, *inputs, backend=backend)
    assert_matches(result, wanted, f"{name} n={n}")


@each_variant
@pytest.mark.parametrize("name", FUNCTIONS)
def test_outputs_misaligned_and_in_place(name, dtype, variant):
    shape = _past_threshold(4099, dtype)
    inputs, wanted = _case(name, shape, np.dtype(dtype), -1)
    backend, level = variant
    # One element past the start of its buffer: a different offset within a page and a cache
    # line from the inputs', which NumPy allocates alike.
    out = np.zeros(inputs[0].size + 1, dtype)[1:].reshape(shape)
    own = tuple(a.copy() for a in inputs)
    with simd_level(level):
        assert call(name, *inputs, out=out, backend=backend) is out
        assert call(name, *own, out=own[0], backend=backend) is own[0]
    assert_matches(out, wanted, f"{name} misaligned out")
    assert_matches(own[0], wanted, f"{name} in place")


@each_variant
@pytest.mark.parametrize("name", FUNCTIONS)
def test_columns(name, dtype, variant):
    columns = 1000
    shape = (_past_threshold(columns, dtype)[0], columns)
    inputs, wanted = _case(name, shape, np.dtype(dtype), 0)
    backend, level = variant
    with simd_level(level):
        result = call(name, *inputs, axis=0, backend=backend)
    assert_matches(result, wanted, name)
