"""The C++ kernel's SIMD levels: detection, switching, the FASTSOFTMAX_SIMD override.

The value tests already run every function at every level this CPU supports (the ``backend``
fixture); here: the level API itself, and that all levels agree with each other.
"""

from __future__ import annotations

import platform
from pathlib import Path

import fastsoftmax as fsm
import numpy as np
import pytest
from support.backends import ALL_SIMD_LEVELS, CORE, SIMD_LEVELS, simd_level
from support.operations import FUNCTIONS, call, expect, make_inputs
from support.processes import run_python
from support.tolerances import Expected, assert_matches

pytestmark = pytest.mark.skipif(
    CORE is None, reason="the C++ extension is not built here (test_config checks it should be)"
)


def test_supported_levels():
    levels = CORE.supported_simd_levels()
    assert isinstance(levels, list)
    assert levels, "no level at all"
    assert set(levels) <= set(ALL_SIMD_LEVELS)
    assert levels == [lv for lv in ALL_SIMD_LEVELS if lv in levels]  # best first
    assert levels[-1] == "baseline"  # the portable build runs everywhere
    assert CORE.simd_level() in levels
    assert isinstance(CORE.openmp_enabled(), bool)


def _cpu_flags() -> set[str]:
    cpuinfo = Path("/proc/cpuinfo")
    if platform.system() != "Linux" or not cpuinfo.exists():
        return set()
    for line in cpuinfo.read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def test_levels_match_the_cpu():
    """Cross-check the extension's own detection with what the kernel reports (Linux x86-64)."""
    flags = _cpu_flags()
    if platform.machine().lower() not in ("x86_64", "amd64") or not flags:
        assert CORE.supported_simd_levels() == ["baseline"] or platform.machine() != "x86_64"
        return
    levels = CORE.supported_simd_levels()
    if {"avx2", "fma"} <= flags:
        assert "avx2" in levels
    else:
        assert "avx2" not in levels
    if {"avx512f", "avx512bw", "avx512dq", "avx512vl"} <= flags:
        assert "avx512" in levels
    elif "avx512f" not in flags:
        assert "avx512" not in levels


def test_default_level_is_the_best():
    proc = run_python(
        "from fastsoftmax import _backends as b; c = b.core();"
        "print(c.simd_level(), c.supported_simd_levels()[0])"
    )
    assert proc.returncode == 0, proc.stderr
    chosen, best = proc.stdout.split()
    assert chosen == best


@pytest.mark.parametrize("level", SIMD_LEVELS)
def test_set_simd_level(level):
    with simd_level(level):
        assert CORE.simd_level() == level
        x = np.array([0.0, np.log(3.0)])
        np.testing.assert_allclose(fsm.softmax(x, backend="cpp"), [0.25, 0.75], rtol=1e-15)


@pytest.mark.parametrize("bad", ["sse2", "AVX2", "", "avx1024", "native"])
def test_set_simd_level_rejects_unknown_names(bad):
    before = CORE.simd_level()
    with pytest.raises(ValueError, match="must be one of"):
        CORE.set_simd_level(bad)
    assert CORE.simd_level() == before


def test_set_simd_level_rejects_unsupported_levels():
    before = CORE.simd_level()
    for level in sorted(set(ALL_SIMD_LEVELS) - set(SIMD_LEVELS)):  # none on a recent CPU
        with pytest.raises(ValueError, match=level):
            CORE.set_simd_level(level)
        assert CORE.simd_level() == before


ENV_LEVEL = """
import numpy as np, fastsoftmax as fsm
from fastsoftmax import _backends
print(_backends.core().simd_level())
fsm.show_config()
x = np.array([0.0, np.log(3.0)], np.float32)
np.testing.assert_allclose(fsm.softmax(x, backend="cpp"), [0.25, 0.75], rtol=1e-6)
"""


@pytest.mark.parametrize("level", SIMD_LEVELS)
def test_environment_forces_a_level(level):
    proc = run_python(ENV_LEVEL, FASTSOFTMAX_SIMD=level)
    assert proc.returncode == 0, proc.stderr
    first, *rest = proc.stdout.splitlines()
    assert first == level
    assert any(level in line and "simd" in line.lower() for line in rest), proc.stdout


@pytest.mark.parametrize("bad", ["bogus", "AVX-512", "sse4"])
def test_environment_rejects_a_bad_level(bad):
    proc = run_python("import fastsoftmax", FASTSOFTMAX_SIMD=bad)
    assert proc.returncode != 0
    assert "ValueError" in proc.stderr
    assert bad in proc.stderr


def test_environment_rejects_an_unsupported_level():
    for level in sorted(set(ALL_SIMD_LEVELS) - set(SIMD_LEVELS)):  # none on a recent CPU
        proc = run_python("import fastsoftmax", FASTSOFTMAX_SIMD=level)
        assert proc.returncode != 0
        assert "ValueError" in proc.stderr


@pytest.mark.parametrize("name", FUNCTIONS)
def test_levels_agree(name, dtype, rng):
    """Every level against the reference and against the others, on shapes with long tails."""
    for shape, axis in (((64, 1003), -1), ((1003, 21), 0), ((1, 200_001), -1)):
        inputs = make_inputs(name, shape, dtype, rng, axis)
        want = expect(name, inputs, axis, dtype)
        results = {}
        for level in SIMD_LEVELS:
            with simd_level(level):
                results[level] = call(name, *inputs, axis=axis, backend="cpp")
            assert_matches(results[level], want, f"{level} {shape}")
        baseline = results["baseline"].astype(np.float64)
        for level, result in results.items():
            assert_matches(result, Expected(baseline, 2 * want.tol), f"{level} vs baseline")
