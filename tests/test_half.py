"""float16 arrays: converted to float32 and back by the C++ core (cpp/src/half.hpp), bit for bit
as NumPy's casts convert them, at every SIMD level, whole (for the other backends) and a row
at a time in the C++ kernels; and used for float16 inputs and outputs."""

from __future__ import annotations

import functools

import fastsoftmax as fsm
import numpy as np
import pytest
from support.backends import CORE, SIMD_LEVELS, simd_level, threads
from support.layouts import LAYOUTS, in_layout
from support.operations import FUNCTIONS, call, make_inputs, unchanged

pytestmark = pytest.mark.skipif(CORE is None, reason="the conversion is the C++ core's")


def _float32_cases(rng) -> np.ndarray:
    """Every float16 value, the float32 midpoints between neighbouring ones and the float32
    values next to those (the rounding's ties and near-ties), overflow and random values over
    the whole float16 range and below it."""
    halves = np.arange(65536, dtype=np.uint16).view(np.float16).astype(np.float32)
    finite = np.unique(halves[np.isfinite(halves)])
    mid = ((finite[:-1].astype(np.float64) + finite[1:]) / 2).astype(np.float32)
    up, down = np.nextafter(mid, np.float32(np.inf)), np.nextafter(mid, np.float32(-np.inf))
    spread = rng.standard_normal(10**5) * 10.0 ** rng.integers(-12, 7, 10**5)
    edges = [65504, 65519.996, 65520, 1e9, np.inf, np.nan, 0.0, 1e-45, 2.0**-25, 2.0**-24]
    edges = np.array(edges + [-e for e in edges])
    with np.errstate(over="ignore", invalid="ignore"):  # NumPy warns at inf and NaN here
        return np.concatenate([halves, mid, up, down, spread, edges]).astype(np.float32)


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    nan = np.isnan(a) & np.isnan(b)
    return bool(np.all((a.view(f"u{a.itemsize}") == b.view(f"u{b.itemsize}")) | nan))


@pytest.mark.parametrize("level", SIMD_LEVELS)
def test_conversions_match_numpy_bit_for_bit(level, rng):
    cases = _float32_cases(rng)
    with simd_level(level), np.errstate(over="ignore", invalid="ignore"):
        half = np.empty(cases.shape, np.float16)
        CORE._convert_half(cases, half)
        assert _same_bits(half, cases.astype(np.float16))
        every = np.arange(65536, dtype=np.uint16).view(np.float16)
        back = np.empty(every.shape, np.float32)
        CORE._convert_half(every, back)
        assert _same_bits(back, every.astype(np.float32))


def test_conversion_refuses_other_arrays():
    with pytest.raises(ValueError, match="C-contiguous, aligned float32 and float16"):
        CORE._convert_half(np.zeros(4), np.zeros(4, np.float16))
    with pytest.raises(ValueError, match="C-contiguous, aligned float32 and float16"):
        CORE._convert_half(np.zeros(4, np.float32), np.zeros(3, np.float16))
    with pytest.raises(ValueError, match="C-contiguous, aligned float32 and float16"):
        CORE._convert_half(np.zeros((4, 4), np.float32).T[::2], np.zeros(8, np.float16))
    misaligned = np.zeros(9, np.uint8)[1:].view(np.float16)
    with pytest.raises(ValueError, match="C-contiguous, aligned float32 and float16"):
        CORE._convert_half(misaligned, np.zeros(4, np.float32))
    with pytest.raises(ValueError, match="C-contiguous, aligned float32 and float16"):
        CORE._convert_half(np.zeros(4, np.float32), np.zeros(4, ">f2"))


@pytest.mark.parametrize("dtype", ["<f2", ">f2"])
def test_misaligned_and_byte_swapped_float16_go_through_numpy(dtype, rng):
    buffer = np.zeros(4 * 300 + 1, np.uint8)
    x = buffer[1:].view(dtype).reshape(2, 300)  # misaligned
    x[...] = rng.standard_normal((2, 300))
    want = fsm.softmax(x.astype(np.float32)).astype(np.float16)
    assert _same_bits(fsm.softmax(x).astype(np.float16), want)


@pytest.mark.parametrize("order", ["C", "F"])
@pytest.mark.parametrize("with_out", [False, True], ids=["fresh", "out"])
def test_float16_softmax_is_the_float32_one_rounded(with_out, order, plain_backend, rng):
    x = np.asarray((4 * rng.standard_normal((37, 300))).astype(np.float16), order=order)
    want = fsm.softmax(x.astype(np.float32), backend=plain_backend).astype(np.float16)
    out = np.empty_like(x) if with_out else None
    got = fsm.softmax(x, out=out, backend=plain_backend)
    assert got.dtype == np.float16
    assert _same_bits(got, want)


def _rows_last(a: np.ndarray, axis: int) -> np.ndarray:
    return np.ascontiguousarray(np.moveaxis(a, axis, -1))


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("masked", [False, True], ids=["all", "where"])
@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("level", SIMD_LEVELS)
def test_float16_is_the_float32_result_rounded(level, name, masked, layout, rng):
    """The C++ kernels widen float16 to float32 a row (or a slab of columns) at a time, compute
    in float32 and round the result: in contiguous rows the same bits as the float32 function
    on the widened values, rounded by NumPy; in any layout along any axis within one float16
    step of it (the float32 walks of other layouts may sum in another order), row lengths
    around the vector widths and their tails included."""
    for shape, axis in (((5, 37), -1), ((3, 16), -1), ((2, 7), 1), ((33, 4), 0), ((3, 9, 5), 1)):
        values = make_inputs(name, shape, np.dtype(np.float16), rng, axis)
        inputs = tuple(in_layout(v, layout)[0] for v in values)
        mask = rng.random(shape) > 0.3 if masked else None
        wide = tuple(in_layout(v.astype(np.float32), layout)[0] for v in values)
        with simd_level(level), threads(1):
            with np.errstate(over="ignore"):
                want = call(name, *wide, axis=axis, where=mask).astype(np.float16)
            with unchanged(*inputs):
                got = call(name, *inputs, axis=axis, where=mask, backend="cpp")
        assert got.dtype == np.float16
        if layout == "C" and axis == -1:
            assert _same_bits(got, want), shape
        else:
            with np.errstate(invalid="ignore"):  # a masked log_softmax's -inf
                step = np.spacing(np.abs(want)).astype(np.float64)
                close = np.abs(got.astype(np.float64) - want) <= step
            assert np.all(close | (got == want) | (np.isnan(got) & np.isnan(want))), (shape, axis)


@pytest.mark.parametrize("level", SIMD_LEVELS)
def test_float16_in_place_and_into_out(level, rng):
    x = (4 * rng.standard_normal((6, 1000))).astype(np.float16)
    want = fsm.softmax(x.astype(np.float32)).astype(np.float16)
    with simd_level(level):
        out = np.full_like(x, np.nan)
        assert fsm.softmax(x, out=out) is out
        assert _same_bits(out, want)
        inplace = x.copy()
        assert fsm.softmax(inplace, out=inplace) is inplace
        assert _same_bits(inplace, want)
        column = np.full((1000, 12), np.nan, np.float16)[:, 3]  # a strided out
        assert _same_bits(fsm.softmax(x[0], out=column), want[0])


@pytest.mark.parametrize("level", SIMD_LEVELS)
def test_float16_logsumexp_is_the_float32_one_rounded(level, rng):
    x = (30 * rng.standard_normal((7, 300))).astype(np.float16)
    b = rng.standard_normal((7, 300)).astype(np.float16)
    with simd_level(level):
        for axis in (0, 1):
            lse, sign = fsm.logsumexp(x, axis=axis, b=b, return_sign=True)
            wide = (_rows_last(x.astype(np.float32), axis), _rows_last(b.astype(np.float32), axis))
            lse32, sign32 = fsm.logsumexp(wide[0], b=wide[1], return_sign=True)
            assert lse.dtype == sign.dtype == np.float16
            assert _same_bits(lse, lse32.astype(np.float16))
            assert _same_bits(sign, sign32.astype(np.float16))


@functools.lru_cache(maxsize=1)
def _past_the_cache(name: str) -> tuple[np.ndarray, ...]:
    """Float16 inputs of ``name`` larger than the streaming threshold, in rows of 600 (1200
    bytes: long enough to stream); made once for the SIMD levels that run one after another."""
    n = 600
    shape = (CORE.streaming_threshold_bytes() // (2 * n) + 2, n)
    return make_inputs(name, shape, np.dtype(np.float16), np.random.default_rng(n))


# The level varies fastest, so the levels of one function share its inputs.
@pytest.mark.parametrize("level", SIMD_LEVELS)
@pytest.mark.parametrize("name", FUNCTIONS)
def test_float16_rows_past_the_cache_are_the_same_bits(name, level):
    """Past the streaming threshold a float16 result is written with non-temporal stores (the
    AVX-512 level) and the next row is prefetched: the same bits, into an output off the
    vectors' alignment too."""
    values = _past_the_cache(name)
    shape = values[0].shape
    with simd_level(level), threads(1):
        want = call(name, *(v.astype(np.float32) for v in values)).astype(np.float16)
        got = call(name, *values, backend="cpp")
        assert _same_bits(got, want)
        buffer = np.empty(want.size + 1, np.float16)
        out = buffer[1:].reshape(shape)  # 2 bytes past a vector boundary
        assert call(name, *values, out=out, backend="cpp") is out
        assert _same_bits(out, want)
