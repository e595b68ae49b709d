"""Property-based fuzzing (hypothesis) of every public function on every backend and SIMD level.

One example is one call: a function, a backend (the C++ one at each SIMD level), a thread count,
an input dtype (float16/32/64, integers, bool), a shape (0-length axes, length 1, primes, sizes
around the SIMD widths and their tails, a few long rows), an axis, a memory layout per operand
(C, Fortran, every-other-element views with positive and negative steps, reversed, transposed,
misaligned) and an ``out=`` (none, fresh, the input itself, or partly overlapping the input).

Logits come from the whole float range: normal values of any scale, magnitudes from subnormal to
the maximum, ties, and sprinkled or whole-row ±inf and NaN. The backward functions get the saved
output of such logits, as they would in training. Gradients and tangents are finite (or NaN),
at most ``max / (4 n)`` in magnitude for rows of n: then no exact intermediate of the formulas
overflows, and an infinite gradient has no meaning the documentation gives.

Every result must match the independent reference within its documented tolerance, with
NaN and ±inf exactly where the reference has them; the inputs and the parts of a strided ``out``
buffer between its elements are left untouched; in-place and overlapping ``out=`` give exactly
the ``out=None`` result.

Examples per function scale with the hypothesis profile: ``EXAMPLES_PER_FUNCTION`` is 25 times
the profile's ``max_examples`` (40 by default: 5000 calls in all, ~75 s on 2 cores;
``HYPOTHESIS_PROFILE=thorough`` runs 62 500). ``--hypothesis-show-statistics`` prints the counts.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.backends import backend_variants, simd_level, threads, variant_id
from support.layouts import LAYOUTS, in_layout
from support.operations import FUNCTIONS, OPERATIONS, call, expect, unchanged
from support.tolerances import Expected, assert_matches

EXAMPLES_PER_FUNCTION = 25 * settings().max_examples
# .ci/sanitize fuzzes the C++ backend alone: FASTSOFTMAX_FUZZ_BACKENDS=cpp (comma-separated).
_ONLY = os.environ.get("FASTSOFTMAX_FUZZ_BACKENDS", "")
VARIANTS = [v for v in backend_variants() if not _ONLY or v[0] in _ONLY.split(",")]

# Sides around the SIMD widths (float32: 4/8/16 lanes, float64: 2/4/8) and their tails, primes,
# and the column walk's 256-wide tiles.
SIDES = (0, 1, 2, 3, 5, 7, 8, 9, 13, 15, 16, 17, 31, 32, 33, 63, 64, 65, 97, 255, 256, 257)
MAX_ELEMENTS = 40_000  # keeps the wide reference fast
# Long rows and many short rows or columns: past the threads' grain size, so 2 threads split them.
LONG_SHAPES = ((100_003,), (2, 65_537), (70_001, 3), (3, 40_009, 2))
INPUT_DTYPES = (
    np.float16,
    np.float32,
    np.float64,
    np.int8,
    np.uint8,
    np.int32,
    np.int64,
    np.uint64,
    np.bool_,
)
OUT_MODES = ("none", "fresh", "alias-first", "alias-second", "overlap")
ALIASED = {"alias-first": 0, "alias-second": 1}  # the input out= is in these modes


@dataclass
class Case:
    """One drawn call (its repr is what hypothesis prints for a failing example)."""

    variant: tuple[str, str | None]
    num_threads: int
    dtype: np.dtype
    shape: tuple[int, ...]
    axis: int
    layouts: tuple[str, ...]  # per input, then out
    out_mode: str
    return_softmax: bool
    seed: int
    regime: str
    special_rate: float
    special_rows: tuple[str, ...]


# --------------------------------------------------------------------------------------------
# Values


def _full_range(rng: np.random.Generator, shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """Random signs and binary exponents uniform from the smallest subnormal to the maximum."""
    info = np.finfo(dtype)
    low = math.log2(float(info.smallest_subnormal))
    high = math.log2(float(info.max))
    with np.errstate(over="ignore"):
        magnitude = np.exp2(rng.uniform(low, high, shape))
    magnitude = np.minimum(magnitude, float(info.max))
    return (rng.choice([-1.0, 1.0], shape) * magnitude).astype(dtype)


def _palette(dtype: np.dtype) -> np.ndarray:
    info = np.finfo(dtype)
    tiny, normal, big = info.smallest_subnormal, info.smallest_normal, info.max
    values = [0.0, -0.0, tiny, -tiny, normal, -normal, big, -big, np.inf, -np.inf, np.nan]
    return np.array(values, dtype=dtype)


def _special_row(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """A whole row of ±inf, or the limit cases a row maximum detects (+inf with NaN, etc.)."""
    if kind == "all-neg-inf":
        return np.full(n, -np.inf)
    if kind == "all-pos-inf":
        return np.full(n, np.inf)
    row = rng.standard_normal(n)
    row[rng.integers(0, n)] = np.inf if kind == "one-pos-inf" else np.nan
    return row


def logits(case: Case, rng: np.random.Generator) -> np.ndarray:
    """Float logits of the drawn regime, with specials sprinkled and whole special rows."""
    shape, dtype = case.shape, case.dtype
    if case.regime == "normal":
        x = rng.standard_normal(shape) * 10 ** rng.uniform(-3, 4)
    elif case.regime == "ties":
        x = rng.integers(-2, 3, shape).astype(np.float64)
    elif case.regime == "spread":
        x = rng.uniform(-1, 1, shape) * 10 ** rng.uniform(4, 30)
    else:  # full
        x = _full_range(rng, shape, dtype)
    big = float(np.finfo(dtype).max)
    x = np.clip(x, -big, big).astype(dtype)  # float16 overflows at 65504
    if x.size and case.special_rate:
        hit = rng.random(shape) < case.special_rate
        x[hit] = rng.choice(_palette(dtype), int(hit.sum()))
    n = shape[case.axis]
    rows = np.moveaxis(x, case.axis, -1)  # a view: writing one of its rows writes x
    count = rows.size // n if n else 0
    if count and case.special_rows:
        picks = rng.choice(count, size=len(case.special_rows))
        for kind, r in zip(case.special_rows, picks, strict=True):
            index = np.unravel_index(r, rows.shape[:-1])
            rows[index] = _special_row(kind, n, rng).astype(dtype)
    return x


def tangent(case: Case, rng: np.random.Generator) -> np.ndarray:
    """Finite gradients, subnormal to ``max / (4 n)``, and NaN at the special rate."""
    shape, dtype = case.shape, case.dtype
    n = max(shape[case.axis], 1)
    bound = float(np.finfo(dtype).max) / (4 * n)
    if case.regime in ("full", "spread"):
        g = _full_range(rng, shape, dtype).astype(np.float64)
    else:
        g = rng.standard_normal(shape) * 10 ** rng.uniform(-3, 3)
    g = np.clip(g, -bound, bound).astype(dtype)
    if g.size and case.special_rate:
        g[rng.random(shape) < case.special_rate / 4] = np.nan
    return g


def integers(
    case: Case, rng: np.random.Generator, saved: tuple[int, int] | None = None
) -> np.ndarray:
    """Integer or bool inputs: the whole range for logits and gradients; for a saved output,
    the integers its forward can give (``saved``, inclusive: one-hot probabilities, non-positive
    log-probabilities)."""
    shape, dtype = case.shape, case.dtype
    if dtype == np.bool_:
        return rng.random(shape) < 0.5
    info = np.iinfo(dtype)
    if saved is not None:
        low, high = saved
        return rng.integers(max(low, int(info.min)), high, shape, endpoint=True).astype(dtype)
    return rng.integers(int(info.min), int(info.max), shape, endpoint=True, dtype=dtype)


def make_values(name: str, case: Case) -> tuple[np.ndarray, ...]:
    """The inputs of ``name`` for this case, C-ordered (the layouts come later): logits and
    gradients or tangents as drawn, saved outputs from the forward's reference on such logits."""
    rng = np.random.default_rng(case.seed)
    op = OPERATIONS[name]
    forward = op.operands[0].saved_from
    if case.dtype.kind in "biu":
        saved = None if forward is None else OPERATIONS[forward].integer_results
        return (integers(case, rng, saved), *(integers(case, rng) for _ in op.operands[1:]))
    x = logits(case, rng)
    second = tuple(tangent(case, rng) for _ in op.operands[1:])
    if forward is not None and x.size:
        with np.errstate(over="ignore"):
            x = OPERATIONS[forward].reference(x, case.axis).astype(case.dtype)
    return (x, *second)


# --------------------------------------------------------------------------------------------
# Expected values


def compute_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype the spec computes in: float16 in float32, integers and bools in float64."""
    if dtype == np.float16:
        return np.dtype(np.float32)
    if dtype.kind in "biu":
        return np.dtype(np.float64)
    return dtype


def result_dtype(dtype: np.dtype) -> np.dtype:
    return np.dtype(np.float64) if dtype.kind in "biu" else dtype


def rounded_to(wanted: Expected, dtype: np.dtype) -> Expected:
    """``wanted`` (for the compute dtype) once the result is rounded to float16."""
    if dtype != np.float16:
        return wanted
    with np.errstate(over="ignore"):
        half = wanted.value.astype(np.float16)
    overflowed = np.isinf(half) & np.isfinite(wanted.value)  # e.g. log_softmax below -65504
    value = np.where(overflowed, half.astype(np.float64), wanted.value)
    with np.errstate(over="ignore"):  # the spacing of 65504 is inf in float16
        half_ulp = np.spacing(np.abs(np.where(np.isfinite(half), half, 0))).astype(np.float64) / 2
    return Expected(value, wanted.tol + half_ulp)


def expected(name: str, inputs: tuple[np.ndarray, ...], axis: int, dtype: np.dtype) -> Expected:
    """The reference for the values the backend computes with (ints rounded to float64 first)."""
    compute = compute_dtype(dtype)
    converted = tuple(np.asarray(a).astype(compute) for a in inputs)
    # The tolerance rule overflows for huge spreads times huge tangents (softmax_jvp): the
    # bound is then unbounded there (inf, or NaN from 0 * inf); NaN and inf are still exact.
    with np.errstate(over="ignore", invalid="ignore"):
        want = expect(name, converted, axis, compute)
    tol = np.where(np.isnan(want.tol), np.inf, want.tol)
    # Intermediates that underflow, which the rules leave out (support.tolerances explains).
    underflow = OPERATIONS[name].underflow
    if underflow is not None:
        tol = tol + underflow(converted, axis, compute)
    want = Expected(want.value, tol)
    return rounded_to(want, dtype)


# --------------------------------------------------------------------------------------------
# Strategies


@st.composite
def shapes(draw) -> tuple[int, ...]:
    if draw(st.integers(0, 19)) == 0:
        return draw(st.sampled_from(LONG_SHAPES))
    ndim = draw(st.integers(1, 3))
    side = st.one_of(st.sampled_from(SIDES), st.integers(0, 40))
    shape = tuple(draw(st.lists(side, min_size=ndim, max_size=ndim)))
    while math.prod(shape) > MAX_ELEMENTS:  # shrink the largest side, deterministically
        largest = shape.index(max(shape))
        shape = (*shape[:largest], shape[largest] // 4, *shape[largest + 1 :])
    return shape


def layouts_for(dtype: np.dtype, size: int) -> list[str]:
    """The layouts that fit: NaN-padded buffers need floats, misaligned needs elements."""
    usable = list(LAYOUTS)
    if dtype.kind != "f":
        usable = [x for x in usable if "strided" not in x]
    if size == 0 or dtype.itemsize == 1:
        usable.remove("unaligned")
    return usable


@st.composite
def cases(draw, name: str) -> Case:
    shape = draw(shapes())
    dtype = np.dtype(draw(st.sampled_from(INPUT_DTYPES)))
    op = OPERATIONS[name]
    operands = len(op.operands)
    layouts = st.sampled_from(layouts_for(dtype, math.prod(shape)))
    modes = tuple(m for m in OUT_MODES if m not in ALIASED or ALIASED[m] in op.alias_positions)
    out_layout = st.sampled_from(layouts_for(result_dtype(dtype), math.prod(shape)))
    return Case(
        variant=draw(st.sampled_from(VARIANTS)),
        num_threads=draw(st.sampled_from([1, 2])),
        dtype=dtype,
        shape=shape,
        axis=draw(st.integers(-len(shape), len(shape) - 1)),
        layouts=(*draw(st.lists(layouts, min_size=operands, max_size=operands)), draw(out_layout)),
        out_mode=draw(st.sampled_from(modes)),
        return_softmax=op.returns_softmax and draw(st.booleans()),
        seed=draw(st.integers(0, 2**32 - 1)),
        regime=draw(st.sampled_from(["normal", "ties", "spread", "full"])),
        special_rate=draw(st.sampled_from([0.0, 0.0, 0.01, 0.2])),
        special_rows=tuple(
            draw(
                st.lists(
                    st.sampled_from(["all-neg-inf", "all-pos-inf", "one-pos-inf", "one-nan"]),
                    max_size=3,
                )
            )
        ),
    )


# --------------------------------------------------------------------------------------------
# The out= argument


@dataclass
class Out:
    """What to pass as ``out=`` and what to check afterwards."""

    array: np.ndarray | None
    buffer: np.ndarray | None = None  # a NaN-filled buffer around a strided out
    aliased: int | None = None  # the index of the input out is, or overlaps


def make_out(name: str, case: Case, inputs: list[np.ndarray]) -> Out:
    """Build ``out`` for the case's mode; may replace ``inputs[0]`` by an overlapping view."""
    dtype = result_dtype(case.dtype)
    mode = case.out_mode
    aliasable = case.dtype == dtype  # out must have the result dtype
    if mode.startswith("alias") and aliasable:
        which = ALIASED[mode]
        return Out(inputs[which], aliased=which)
    if mode == "overlap" and aliasable and inputs[0].size:
        # out starts 3 elements past the input in one flat buffer: partial overlap.
        size = inputs[0].size
        flat = np.empty(size + 3, dtype)
        flat[:size] = inputs[0].ravel()
        inputs[0] = flat[:size].reshape(case.shape)
        return Out(flat[3:].reshape(case.shape), aliased=0)
    if mode == "none":
        return Out(None)
    shape = OPERATIONS[name].result_shape(case.shape, case.axis)
    array, buffer = in_layout(np.full(shape, 7, dtype), case.layouts[-1])
    return Out(array, buffer)


def _nan_outside(out: Out) -> int | None:
    """How many NaN the buffer around a strided ``out`` holds outside ``out`` (all of it)."""
    if out.buffer is None:
        return None
    return int(np.isnan(out.buffer).sum() - np.isnan(out.array).sum())


def run_case(name: str, case: Case, inputs: tuple[np.ndarray, ...], out: object) -> object:
    kwargs = {"axis": case.axis, "backend": case.variant[0]}
    if case.return_softmax:
        return call(name, *inputs, return_softmax=True, out=(None, out), **kwargs)
    return call(name, *inputs, out=out, **kwargs)


def check_result(name: str, case: Case, inputs: tuple[np.ndarray, ...], result: object) -> None:
    """Values against the reference; with return_softmax, the softmax too."""
    dtype = result_dtype(case.dtype)
    if case.return_softmax:
        s, result = result
        assert s.dtype == dtype
        assert s.shape == case.shape
        compute = compute_dtype(case.dtype)
        if s.size:
            want_s = expect("softmax", (inputs[0].astype(compute),), case.axis, compute)
            assert_matches(s, rounded_to(want_s, dtype), f"softmax of {name}")
    assert isinstance(result, np.ndarray)
    assert result.dtype == dtype, result.dtype
    assert result.shape == OPERATIONS[name].result_shape(case.shape, case.axis)
    if result.size == 0:  # nothing to compare (the reference has no maximum of nothing)
        return
    assert_matches(result, expected(name, inputs, case.axis, case.dtype), name)


# --------------------------------------------------------------------------------------------
# The test


@pytest.mark.parametrize("name", FUNCTIONS)
@settings(max_examples=EXAMPLES_PER_FUNCTION)
@given(data=st.data())
def test_fuzz(name, data):
    case = data.draw(cases(name), label="case")
    values = make_values(name, case)
    # Copies: in_layout may return a view of its argument (a 1-d "transposed" array).
    inputs = [in_layout(v.copy(), lay)[0] for v, lay in zip(values, case.layouts, strict=False)]
    out = make_out(name, case, inputs)
    inputs = tuple(inputs)

    with simd_level(case.variant[1]), threads(case.num_threads):
        with unchanged(*inputs):
            fresh = run_case(name, case, inputs, None)
        result = fresh
        if out.array is not None:
            untouched = [a for i, a in enumerate(inputs) if i != out.aliased]
            outside = _nan_outside(out)
            with unchanged(*untouched):
                result = run_case(name, case, inputs, out.array)

    check_result(name, case, values, result)
    if out.array is None:
        return
    product, fresh_product = (result[1], fresh[1]) if case.return_softmax else (result, fresh)
    assert product is out.array
    if out.aliased is not None:  # in place or overlapping: exactly the out=None result
        np.testing.assert_array_equal(product, fresh_product, err_msg=variant_id(case.variant))
    if out.buffer is not None:  # nothing written between the elements of a strided out
        assert _nan_outside(out) == outside
