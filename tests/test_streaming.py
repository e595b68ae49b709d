"""Arrays past the streaming threshold, where the C++ kernels write with non-temporal stores.

There the rows walk also prefetches the next row and places its scratch row against 4K
aliasing (cpp/src/kernels.cpp's Note on streaming stores, rows.hpp's Notes on prefetching the
next row and on 4K aliasing). None of it may change a value: rows too short to stream, odd
lengths that stream, rows too long for a scratch row, outputs off the inputs' alignment or in
place, and the columns walk, each against the reference, on every backend and SIMD level.
"""

from __future__ import annotations

import functools

import fastsoftmax as fsm
import numpy as np
import pytest
from support.backends import CORE, backend_variants, simd_level, variant_id
from support.operations import FUNCTIONS, call, expect, make_inputs, unchanged
from support.tolerances import assert_matches

# The C++ backend's threshold (from the machine's cache size); the Numba backend's streams
# softmax_backward past the same one (see its Note on streaming stores), and the NumPy one is
# checked on the same arrays.
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


@pytest.mark.skipif("numba" not in fsm.available_backends(), reason="Numba is not installed")
@pytest.mark.parametrize("out_offset", [0, 1])
def test_numba_streams_the_same_bits(out_offset, dtype, num_threads, monkeypatch):
    """The Numba backend's streamed softmax_backward (rows of at least 4 KiB past the
    threshold) against the same calls with streaming switched off: the same bits, on one
    thread and two, with ``out`` on its own cache-line offset or off it by one element."""
    from fastsoftmax._numba import kernels
    from fastsoftmax._numba.operations import SOFTMAX_BACKWARD

    if CORE is not None:  # the same rule, from the same L3 size
        assert CORE.streaming_threshold_bytes() == kernels.STREAM_BYTES
    shape = _past_threshold(4099, dtype)
    y, grad = _case("softmax_backward", shape, np.dtype(dtype), -1)[0]

    def backward() -> np.ndarray:
        out = np.zeros(y.size + out_offset, dtype)[out_offset:].reshape(shape)
        return fsm.softmax_backward(y, grad, out=out, backend="numba")

    assert kernels.streams(SOFTMAX_BACKWARD, y)
    streamed = backward()
    monkeypatch.setattr(kernels, "STREAM_BYTES", y.nbytes)
    assert not kernels.streams(SOFTMAX_BACKWARD, y)
    np.testing.assert_array_equal(streamed, backward())
