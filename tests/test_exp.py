"""The C++ kernels' vectorised exp alone (``_core._exp``), in ULPs against a wider libm.

As highway's math tests do: sample the whole range of the type (every 1021st float32 bit
pattern, 2^32 / 1021 = 4.2 million, both signs, subnormals and specials included; 10^6 float64
values over the whole range where exp is finite and nonzero, plus its edges) at every SIMD
level, and bound the error in units in the last place of the result. The documented bounds are
in cpp/src/vec_exp.hpp; the tests' are in tests/support/tolerances.py.
"""

from __future__ import annotations

import numpy as np
import pytest
from support.backends import CORE, SIMD_LEVELS, simd_level
from support.tolerances import EXP_MAX_ULP, EXP_SUBNORMAL_QUANTA

pytestmark = pytest.mark.skipif(CORE is None, reason="the C++ extension is not built")


def _ulp_errors(got: np.ndarray, exact: np.ndarray, dtype: type) -> tuple[float, float]:
    """(max error in ulps of normal results, max error in smallest subnormals below them)."""
    info = np.finfo(dtype)
    rounded = exact.astype(dtype)
    normal = np.isfinite(rounded) & (rounded >= info.tiny)
    ulp = np.spacing(rounded[normal]).astype(exact.dtype)
    ulps = np.abs(got[normal].astype(exact.dtype) - exact[normal]) / ulp
    small = (rounded < info.tiny) & (exact > 0)
    quanta = np.abs(got[small].astype(exact.dtype) - exact[small]) / exact.dtype.type(
        info.smallest_subnormal
    )
    return float(ulps.max(initial=0)), float(quanta.max(initial=0))


def _check_specials(exp, dtype: type) -> None:
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e30, -1e30], dtype=dtype)
    got = exp(x)
    assert np.isnan(got[0])
    np.testing.assert_array_equal(got[1:], np.array([np.inf, 0, 1, 1, np.inf, 0], dtype=dtype))


@pytest.mark.parametrize("level", SIMD_LEVELS)
def test_float32_over_every_1021st_float(level):
    bits = np.arange(0, 2**32, 1021, dtype=np.uint64).astype(np.uint32)
    x = bits.view(np.float32)
    x = x[np.isfinite(x)]
    with simd_level(level):
        got = CORE._exp(x)
        _check_specials(CORE._exp, np.float32)
    with np.errstate(over="ignore"):
        exact = np.exp(x.astype(np.float64))
    overflow = exact > np.finfo(np.float32).max
    assert np.all(got[overflow] == np.inf)
    ulps, quanta = _ulp_errors(got[~overflow], exact[~overflow], np.float32)
    assert ulps <= EXP_MAX_ULP[np.dtype(np.float32)], f"{level}: {ulps:.3f} ulp"
    assert quanta <= EXP_SUBNORMAL_QUANTA, f"{level}: {quanta:.3f} subnormal quanta"


@pytest.mark.parametrize("level", SIMD_LEVELS)
def test_float64_over_its_range(level):
    if np.finfo(np.longdouble).nmant < 60:
        pytest.skip("no extended precision to compare float64 against on this platform")
    rng = np.random.default_rng(7)
    x = np.concatenate(
        [rng.uniform(-745.2, 709.78, 10**6), np.linspace(-746, -707, 2000), [709.78, 0.5]]
    )
    with simd_level(level):
        got = CORE._exp(x)
        _check_specials(CORE._exp, np.float64)
    exact = np.exp(x.astype(np.longdouble))
    ulps, quanta = _ulp_errors(got, exact, np.float64)
    assert ulps <= EXP_MAX_ULP[np.dtype(np.float64)], f"{level}: {ulps:.3f} ulp"
    assert quanta <= EXP_SUBNORMAL_QUANTA, f"{level}: {quanta:.3f} subnormal quanta"
