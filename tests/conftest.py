"""Fixtures of the fastsoftmax tests, the hypothesis profiles and the report header.

Everything else the tests share (the operation table, the reference, the tolerances, the
layouts) is in the ``support`` package next to this file.

Fixtures
--------
``backend``        every available backend; the C++ one once per SIMD level this CPU supports
                   (set with ``_core.set_simd_level`` and restored after): ids ``cpp-avx2``, ...
``plain_backend``  every available backend once, at its default SIMD level.
``dtype``          float32 and float64, the two natively computed dtypes.
``num_threads``    1 and 2 threads (``fsm.set_num_threads``, restored after).
``rng``            a generator seeded from the test's id.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import fastsoftmax as fsm
import numpy as np
import pytest
from fastsoftmax import _backends
from hypothesis import HealthCheck, settings
from support.backends import (
    CORE,
    FLOAT_DTYPES,
    SIMD_LEVELS,
    backend_variants,
    simd_level,
    threads,
    variant_id,
)

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
