"""Backends, SIMD levels and thread counts: what the fixtures iterate over, and context
managers that set one and restore the previous."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import fastsoftmax as fsm
import numpy as np
import pytest
from fastsoftmax import _backends, _threads

CORE = _backends.core()
SIMD_LEVELS: list[str] = list(CORE.supported_simd_levels()) if CORE is not None else []
ALL_SIMD_LEVELS = ("avx512", "avx2", "baseline")
FLOAT_DTYPES = (np.float32, np.float64)
# A C++ extension built without OpenMP makes the installation single-threaded (the Note in
# _threads.py); tests that need a second thread at work, or a count above 1, skip only there.
needs_threads = pytest.mark.skipif(
    _threads.SINGLE_THREADED,
    reason="built without OpenMP (FASTSOFTMAX_OPENMP=OFF): this installation has one thread",
)


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
