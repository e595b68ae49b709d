"""Fixtures and an independent reference shared by the fastsoftmax tests.

The reference below is written from the formulas in the spec (issue 2) in NumPy, in extended
precision where the platform has it (float64 with exact sums elsewhere), with the special-value
rules spelled out; it shares no code with ``fastsoftmax._reference``, which is one of the
backends under test. It returns float64.

Fixtures
--------
``backend``      every available backend; the C++ one once per SIMD level this CPU supports
                 (set with ``_core.set_simd_level`` and restored after): ids ``cpp-avx2``, ...
``dtype``        float32 and float64, the two natively computed dtypes.
``num_threads``  1 and 2 threads (``fsm.set_num_threads``, restored after).

Tolerances
----------
``expect_*`` return the float64 value together with an elementwise absolute tolerance derived
from the rounding analysis of each formula (``u`` is the unit roundoff of the compute dtype):

- softmax: ``(C + |x_i - max|) * u * s_i`` plus 4 subnormal quanta, with ``C = 8`` for float32
  (the spec's bound) and ``C = 16`` for float64 (the C++ kernel's own exp is "a few ulp").
- log_softmax: ``(8 + 2 |x_i - max| + 2 |log sum|) * u`` absolute: the two subtractions and
  the log of a sum that is itself off by a few ``u``.
- gradients: ``8 u`` of the result plus ``32 u`` of ``sum |terms|`` for the row reduction
  (pairwise or blocked sums meet this at N = 10**6; one long float32 running sum does not).
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
import os
import subprocess
import sys
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import fastsoftmax as fsm
import numpy as np
import pytest
from fastsoftmax import _backends, _threads
from hypothesis import HealthCheck, settings

CORE = _backends.core()
SIMD_LEVELS: list[str] = list(CORE.supported_simd_levels()) if CORE is not None else []
ALL_SIMD_LEVELS = ("avx512", "avx2", "baseline")
FUNCTIONS = ("softmax", "log_softmax", "softmax_backward", "log_softmax_backward", "softmax_jvp")
FLOAT_DTYPES = (np.float32, np.float64)
# A C++ extension built without OpenMP makes the installation single-threaded (the Note in
# _threads.py); tests that need a second thread at work, or a count above 1, skip only there.
needs_threads = pytest.mark.skipif(
    _threads.SINGLE_THREADED,
    reason="built without OpenMP (FASTSOFTMAX_OPENMP=OFF): this installation has one thread",
)

# Constants of the tolerances described in the module docstring.
SOFTMAX_C = {np.dtype(np.float32): 8.0, np.dtype(np.float64): 16.0}
LOG_C = 8.0
GRAD_C = 8.0
REDUCTION_C = 32.0
# The vectorised exp of both compiled backends (cpp/src/vec_exp.hpp), over its whole range, with
# the worst errors measured at every level: float32 2.03 ulp (2.26 at the C++ baseline level,
# which has no FMA), float64 0.87 (baseline 1.15); results below the normal range within 1.32
# smallest subnormals.
EXP_MAX_ULP = {np.dtype(np.float32): 2.5, np.dtype(np.float64): 1.5}
EXP_SUBNORMAL_QUANTA = 1.5

settings.register_profile(
    "default",
    max_examples=40,
    deadline=None,  # the first call of a Numba kernel compiles it
    # The backend fixtures set process state once per test, which is right for every example.
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.register_profile("ci", parent=settings.get_profile("default"), derandomize=True)
settings.register_profile("thorough", parent=settings.get_profile("default"), max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


# --------------------------------------------------------------------------------------------
# Backends, SIMD levels, dtypes, threads


def backend_variants() -> list[tuple[str, str | None]]:
    """``(backend, simd level or None)`` for every backend here, cpp once per supported level."""
    variants: list[tuple[str, str | None]] = []
    for name in fsm.available_backends():
        if name == "cpp":
            variants += [("cpp", level) for level in SIMD_LEVELS]
        else:
            variants.append((name, None))
    return variants


def variant_id(variant: tuple[str, str | None]) -> str:
    name, level = variant
    return name if level is None else f"{name}-{level}"


@contextlib.contextmanager
def simd_level(level: str | None) -> Iterator[None]:
    """Run the block with the C++ kernels at ``level`` (no-op for None), then restore."""
    if level is None:
        yield
        return
    assert CORE is not None
    previous = CORE.simd_level()
    CORE.set_simd_level(level)
    try:
        yield
    finally:
        CORE.set_simd_level(previous)


def each_backend() -> Iterator[str]:
    """Iterate over every backend variant, with its SIMD level active during the iteration."""
    for name, level in backend_variants():
        with simd_level(level):
            yield name


@pytest.fixture(params=backend_variants(), ids=variant_id)
def backend(request: pytest.FixtureRequest) -> Iterator[str]:
    name, level = request.param
    with simd_level(level):
        yield name


@pytest.fixture(params=[pytest.param(b, id=b) for b in fsm.available_backends()])
def plain_backend(request: pytest.FixtureRequest) -> str:
    """Each available backend once, at its default SIMD level (for API-level tests)."""
    return request.param


@pytest.fixture(params=FLOAT_DTYPES, ids=lambda d: np.dtype(d).name)
def dtype(request: pytest.FixtureRequest) -> np.dtype:
    return np.dtype(request.param)


def _set_threads(n: int) -> None:
    with warnings.catch_warnings():
        # A single-threaded build warns at n > 1 (test_config checks it) and computes on one
        # thread, which is what a test asking for more then checks.
        warnings.filterwarnings("ignore", "this fastsoftmax was built without OpenMP")
        fsm.set_num_threads(n)


@contextlib.contextmanager
def threads(n: int) -> Iterator[None]:
    previous = fsm.get_num_threads()
    _set_threads(n)
    try:
        yield
    finally:
        _set_threads(previous)


@pytest.fixture(params=[1, 2], ids=lambda n: f"threads{n}")
def num_threads(request: pytest.FixtureRequest) -> Iterator[int]:
    with threads(request.param):
        yield request.param


@pytest.fixture(autouse=True)
def _restore_global_state() -> Iterator[None]:
    """Safety net: no test leaks a thread count or SIMD level into the next one."""
    count = fsm.get_num_threads()
    level = CORE.simd_level() if CORE is not None else None
    yield
    if fsm.get_num_threads() != count:
        fsm.set_num_threads(count)
    if CORE is not None and CORE.simd_level() != level:
        CORE.set_simd_level(level)


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> np.random.Generator:
    """A generator seeded from the test's id, so every test is reproducible on its own."""
    return np.random.default_rng(list(request.node.nodeid.encode()))


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = [f"fastsoftmax {fsm.__version__}: backends {fsm.available_backends()}"]
    if CORE is None:
        lines.append(f"cpp unavailable: {_backends.unavailable_reason('cpp')}")
    else:
        lines.append(
            f"cpp: simd {CORE.simd_level()} (testing {SIMD_LEVELS}), "
            f"openmp {CORE.openmp_enabled()}, threads {fsm.get_num_threads()}"
        )
    return lines


# --------------------------------------------------------------------------------------------
# The independent reference
#
# Computed in WIDE precision: x87 extended (64-bit mantissa) where NumPy's longdouble is that,
# else float64 with exact row sums (math.fsum). Every sum goes along a contiguous copy of the
# rows, so the reference never shares the rounding pattern of a backend summing the same way.

WIDE = np.longdouble if np.finfo(np.longdouble).nmant >= 63 else np.float64


def _wide(a: object) -> np.ndarray:
    return np.asarray(a).astype(WIDE)


def _narrow(a: np.ndarray) -> np.ndarray:
    """WIDE to float64; beyond float64's range is ±inf, as the backends give."""
    with np.errstate(over="ignore"):
        return a.astype(np.float64)


def _sum(a: np.ndarray, axis: int) -> np.ndarray:
    """Row sums along ``axis`` (keepdims), pairwise in WIDE, or exact if WIDE is float64."""
    rows = np.ascontiguousarray(np.moveaxis(a, axis, -1))
    if WIDE is np.float64 and rows.size:
        total = np.apply_along_axis(math.fsum, -1, rows)
    else:
        total = rows.sum(axis=-1)
    return np.expand_dims(total, axis)


def _row_masks(x: np.ndarray, axis: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(nan rows, +inf rows, count of +inf)`` along ``axis``, keepdims."""
    nan_rows = np.isnan(x).any(axis=axis, keepdims=True) | np.isneginf(x).all(
        axis=axis, keepdims=True
    )
    count = np.isposinf(x).sum(axis=axis, keepdims=True)
    return nan_rows, (count > 0) & ~nan_rows, count


def _softmax_wide(x: np.ndarray, axis: int) -> np.ndarray:
    x = _wide(x)
    nan_rows, inf_rows, count = _row_masks(x, axis)
    with np.errstate(all="ignore"):
        safe = np.where(nan_rows | inf_rows, 0, x)
        e = np.exp(safe - safe.max(axis=axis, keepdims=True))
        s = e / _sum(e, axis)
        limit = np.where(np.isposinf(x), 1 / _wide(np.maximum(count, 1)), 0)
    return np.where(nan_rows, np.nan, np.where(inf_rows, limit, s))


def ref_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """softmax; NaN rows (a NaN, or all -inf); +inf rows share 1 among the +inf entries."""
    return _narrow(_softmax_wide(x, axis))


def ref_logsumexp_shift(x: np.ndarray, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """``(x - max, log(sum(exp(x - max))))`` in WIDE, for rows with a finite maximum."""
    x = _wide(x)
    with np.errstate(all="ignore"):
        m = x.max(axis=axis, keepdims=True)
        shifted = x - np.where(np.isfinite(m), m, 0)
        lse = np.log(_sum(np.exp(shifted), axis))
    return shifted, lse


def ref_log_softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
    x = _wide(x)
    nan_rows, inf_rows, count = _row_masks(x, axis)
    shifted, lse = ref_logsumexp_shift(np.where(nan_rows | inf_rows, 0, x), axis)
    with np.errstate(all="ignore"):
        y = shifted - lse
        limit = np.where(np.isposinf(x), -np.log(_wide(np.maximum(count, 1))), -np.inf)
    return _narrow(np.where(nan_rows, np.nan, np.where(inf_rows, limit, y)))


def ref_softmax_backward(y: np.ndarray, g: np.ndarray, axis: int = -1) -> np.ndarray:
    y, g = _wide(y), _wide(g)
    with np.errstate(all="ignore"):
        return _narrow(y * (g - _sum(y * g, axis)))


def ref_log_softmax_backward(y: np.ndarray, g: np.ndarray, axis: int = -1) -> np.ndarray:
    y, g = _wide(y), _wide(g)
    with np.errstate(all="ignore"):
        return _narrow(g - np.exp(y) * _sum(g, axis))


def ref_softmax_jvp(x: np.ndarray, v: np.ndarray, axis: int = -1) -> np.ndarray:
    """``s * (v - sum(s * v))``, and exactly 0 in a row whose maximum is +inf."""
    s, v = _softmax_wide(x, axis), _wide(v)
    _, inf_rows, _ = _row_masks(_wide(x), axis)
    with np.errstate(all="ignore"):
        jvp = s * (v - _sum(s * v, axis))
    return _narrow(np.where(inf_rows, 0, jvp))


# --------------------------------------------------------------------------------------------
# Expected values with tolerances


def unit_roundoff(dtype: np.dtype) -> float:
    return float(np.finfo(dtype).eps) / 2


@dataclass
class Expected:
    """A float64 expected value and the elementwise absolute tolerance around it."""

    value: np.ndarray
    tol: np.ndarray

    def widened(self, factor: float) -> Expected:
        return Expected(self.value, self.tol * factor)


def _distance_to_max(x: np.ndarray, axis: int) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    with np.errstate(all="ignore"):
        d = x.max(axis=axis, keepdims=True) - x
    return np.where(np.isfinite(d), d, 0.0)


def _floor(dtype: np.dtype) -> float:
    """Absolute slack for results in the subnormal range: 4 quanta."""
    return 4 * float(np.finfo(dtype).smallest_subnormal)


def _finite(a: np.ndarray) -> np.ndarray:
    return np.where(np.isfinite(a), a, 0.0)


def expect_softmax(x: np.ndarray, axis: int, dtype: np.dtype) -> Expected:
    dtype = np.dtype(dtype)
    value = ref_softmax(x, axis)
    dist = _distance_to_max(x, axis)
    tol = (SOFTMAX_C[dtype] + dist) * unit_roundoff(dtype) * _finite(value) + _floor(dtype)
    return Expected(value, tol)


def expect_log_softmax(x: np.ndarray, axis: int, dtype: np.dtype) -> Expected:
    dtype = np.dtype(dtype)
    value = ref_log_softmax(x, axis)
    with np.errstate(over="ignore"):  # max - (-max) overflows the dtype: -inf is then right
        value = np.where(np.isinf(value.astype(dtype)), value.astype(dtype), value)
    lse = _narrow(ref_logsumexp_shift(x, axis)[1])
    dist = _distance_to_max(x, axis)
    u = unit_roundoff(dtype)
    tol = LOG_C * u + 2 * u * dist + 2 * u * np.abs(_finite(lse))  # no overflow at float max
    return Expected(value, np.broadcast_to(tol, value.shape))


def _row_sum(a: np.ndarray, axis: int) -> np.ndarray:
    return _finite(a).sum(axis=axis, keepdims=True)


def expect_softmax_backward(y: np.ndarray, g: np.ndarray, axis: int, dtype: np.dtype) -> Expected:
    value = ref_softmax_backward(y, g, axis)
    y64, g64 = _finite(np.asarray(y, np.float64)), _finite(np.asarray(g, np.float64))
    u = unit_roundoff(dtype)
    tol = GRAD_C * u * np.abs(_finite(value)) + REDUCTION_C * u * np.abs(y64) * _row_sum(
        np.abs(y64 * g64), axis
    )
    return Expected(value, tol + _floor(dtype))


def expect_log_softmax_backward(
    y: np.ndarray, g: np.ndarray, axis: int, dtype: np.dtype
) -> Expected:
    value = ref_log_softmax_backward(y, g, axis)
    g64 = _finite(np.asarray(g, np.float64))
    with np.errstate(all="ignore"):
        p = _finite(np.exp(np.asarray(y, np.float64)))
    u = unit_roundoff(dtype)
    tol = GRAD_C * u * np.abs(_finite(value)) + (GRAD_C + REDUCTION_C) * u * p * _row_sum(
        np.abs(g64), axis
    )
    return Expected(value, tol + _floor(dtype))


def expect_softmax_jvp(x: np.ndarray, v: np.ndarray, axis: int, dtype: np.dtype) -> Expected:
    """The product; its tolerance carries the softmax's own error (``eps``) through the dot."""
    dtype = np.dtype(dtype)
    value = ref_softmax_jvp(x, v, axis)
    s = _finite(ref_softmax(x, axis))
    v64 = _finite(np.asarray(v, np.float64))
    u = unit_roundoff(dtype)
    eps = (SOFTMAX_C[dtype] + _distance_to_max(x, axis)) * u
    dot = _row_sum(s * v64, axis)
    spread = _row_sum((eps + REDUCTION_C * u) * np.abs(s * v64), axis)
    tol = s * (eps * np.abs(v64 - dot) + spread) + GRAD_C * u * np.abs(_finite(value))
    return Expected(value, tol + _floor(dtype))


def assert_matches(actual: object, expected: Expected, what: str = "") -> None:
    """Every element within its tolerance; NaN and ±inf exactly where expected."""
    actual = np.asarray(actual)
    assert actual.shape == expected.value.shape, (what, actual.shape, expected.value.shape)
    a = actual.astype(np.float64)
    e = expected.value
    special = ~np.isfinite(e)
    with np.errstate(all="ignore"):
        err = np.abs(a - e)
    bad = np.where(special, ~((np.isnan(e) & np.isnan(a)) | (a == e)), ~(err <= expected.tol))
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        with np.errstate(all="ignore"):
            ratio = np.where(special, 0.0, err / expected.tol)
        worst = np.max(np.where(np.isnan(ratio), np.inf, ratio))  # NaN where a number was due
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {bad.size} elements off; first at {where}: "
            f"got {a[where]!r}, expected {e[where]!r} ± {expected.tol[where]!r}; "
            f"worst error/tolerance {worst:.3g}"
        )


# --------------------------------------------------------------------------------------------
# Calling the functions uniformly


def make_inputs(
    name: str, shape: tuple[int, ...], dtype: np.dtype, rng: np.random.Generator, axis: int = -1
) -> tuple[np.ndarray, ...]:
    """Realistic inputs of ``name``: logits ~ N(0, 3²); saved outputs from the reference."""
    x = (3 * rng.standard_normal(shape)).astype(dtype)
    if name in ("softmax", "log_softmax"):
        return (x,)
    second = rng.standard_normal(shape).astype(dtype)
    if name == "softmax_jvp":
        return (x, second)
    if x.size == 0:
        return (x, second)
    forward = ref_softmax if name == "softmax_backward" else ref_log_softmax
    return (forward(x, axis).astype(dtype), second)


def expect(name: str, inputs: tuple[np.ndarray, ...], axis: int, dtype: np.dtype) -> Expected:
    builder = {
        "softmax": expect_softmax,
        "log_softmax": expect_log_softmax,
        "softmax_backward": expect_softmax_backward,
        "log_softmax_backward": expect_log_softmax_backward,
        "softmax_jvp": expect_softmax_jvp,
    }[name]
    return builder(*inputs, axis, dtype)


def call(name: str, *inputs: object, **kwargs: object) -> np.ndarray:
    return getattr(fsm, name)(*inputs, **kwargs)


@contextlib.contextmanager
def unchanged(*arrays: np.ndarray, what: str = "input") -> Iterator[None]:
    """Assert the block leaves every array's contents exactly as they were (NaN included)."""
    copies = [np.array(a, copy=True) for a in arrays]
    yield
    for i, (a, c) in enumerate(zip(arrays, copies, strict=True)):
        assert a.dtype == c.dtype
        assert np.array_equal(a, c, equal_nan=True), f"{what} {i} was modified"


def check(
    name: str,
    inputs: tuple[np.ndarray, ...],
    axis: int,
    backend: str | None,
    dtype: np.dtype,
    what: str = "",
    widen: float = 1.0,
) -> np.ndarray:
    """Call ``name`` and check inputs untouched, result dtype/shape and values; return it."""
    with unchanged(*inputs):
        result = call(name, *inputs, axis=axis, backend=backend)
    assert isinstance(result, np.ndarray)
    assert result.dtype == dtype, (what, result.dtype)
    wanted = expect(name, inputs, axis, dtype).widened(widen)
    assert_matches(result, wanted, f"{name} {what}")
    return result


# --------------------------------------------------------------------------------------------
# Memory layouts


LAYOUTS = (
    "C",
    "F",
    "strided",
    "negative",
    "negative-strided",
    "transposed",
    "unaligned",
)


def in_layout(values: np.ndarray, layout: str) -> tuple[np.ndarray, np.ndarray | None]:
    """``(array equal to values stored in layout, the whole buffer or None)``.

    Elements of the buffer outside the array hold NaN, so a kernel reading past the view shows.
    """
    shape = values.shape
    buffer: np.ndarray | None = None
    if layout == "C":
        array = np.ascontiguousarray(values).copy()
    elif layout == "F":
        array = np.asfortranarray(values).copy()
    elif layout in ("strided", "negative-strided"):
        # Every other element of a NaN-filled buffer: 1, 3, ... or 2n, 2n-2, ..., 2.
        buffer = np.full(tuple(2 * n + 1 for n in shape), np.nan, dtype=values.dtype)
        step = slice(None, None, -2) if layout == "negative-strided" else slice(1, None, 2)
        array = buffer[(step,) * len(shape)][tuple(slice(None, n) for n in shape)]
        array[...] = values
    elif layout == "negative":
        array = np.empty_like(values)[tuple(slice(None, None, -1) for _ in shape)]
        array[...] = values
    elif layout == "transposed":
        perm = tuple(reversed(range(values.ndim)))
        array = np.ascontiguousarray(values.transpose(perm)).transpose(perm)
    elif layout == "unaligned":
        raw = np.zeros(values.nbytes + values.itemsize + 1, dtype=np.uint8)
        array = raw[1 : 1 + values.nbytes].view(values.dtype).reshape(shape)
        array[...] = values
        assert not array.flags.aligned or values.itemsize == 1
    else:  # pragma: no cover
        raise ValueError(layout)
    assert np.array_equal(array, values, equal_nan=True)
    return array, buffer


# --------------------------------------------------------------------------------------------
# Subprocesses (environment variables read at import)


def run_python(code: str, **env: str | None) -> subprocess.CompletedProcess[str]:
    """Run ``code`` in a fresh interpreter; ``env`` entries override (None removes)."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("FASTSOFTMAX_")}
    environ.pop("OMP_NUM_THREADS", None)
    package_parent = str(Path(fsm.__file__).resolve().parent.parent)
    environ["PYTHONPATH"] = os.pathsep.join(
        [package_parent, *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    for key, value in env.items():
        if value is None:
            environ.pop(key, None)
        else:
            environ[key] = value
    return subprocess.run(
        [sys.executable, "-c", code],
        env=environ,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def expected_backends() -> set[str]:
    """Backends this environment should have: a failed import of one of them is a failure.

    numpy always; numba when Numba is installed; cpp when a compiled ``_core`` file sits in the
    package (the build happened) or ``FASTSOFTMAX_TEST_REQUIRE`` (comma-separated) names it.
    """
    required = {"numpy"}
    if importlib.util.find_spec("numba") is not None:
        required.add("numba")
    package_dir = Path(fsm.__file__).resolve().parent
    if any((package_dir / f"_core{suffix}").exists() for suffix in EXTENSION_SUFFIXES):
        required.add("cpp")
    required.update(
        name.strip() for name in os.environ.get("FASTSOFTMAX_TEST_REQUIRE", "").split(",") if name
    )
    return required
