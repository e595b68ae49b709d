"""Adaptive timing: warm up, then repeat a call until the time budget is spent; keep every sample.

Short calls are timed in loops of many calls so the clock's own cost vanishes; long calls are
timed one by one. The result reports the median and the spread of the per-call samples.
"""

from __future__ import annotations

import gc
import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

# One sample lasts at least this long, so perf_counter's ~0.1 µs is noise even for a 1 µs call.
MIN_SAMPLE_S = 2e-3
MAX_SAMPLES = 500
# A call this long after its warm-up is measured once: it alone exceeds any sensible budget.
LONG_CALL_S = 3.0


@dataclass
class Timing:
    """Seconds per call, one entry per sample (each sample averages ``inner`` calls)."""

    samples: list[float]
    inner: int
    first_call: float  # the warm-up call, JIT compilation and page faults included

    @property
    def median(self) -> float:
        return float(np.median(self.samples))

    @property
    def q1(self) -> float:
        return float(np.percentile(self.samples, 25))

    @property
    def q3(self) -> float:
        return float(np.percentile(self.samples, 75))

    @property
    def spread(self) -> float:
        """Interquartile range relative to the median."""
        return (self.q3 - self.q1) / self.median if self.median > 0 else float("nan")

    def as_dict(self) -> dict[str, object]:
        return {
            "median_s": self.median,
            "q1_s": self.q1,
            "q3_s": self.q3,
            "min_s": min(self.samples),
            "max_s": max(self.samples),
            "samples": len(self.samples),
            "calls_per_sample": self.inner,
            "first_call_s": self.first_call,
        }


def _time_calls(call: Callable[[], object], count: int) -> float:
    """Seconds per call over ``count`` back-to-back calls, without the garbage collector."""
    gc_was_enabled = gc.isenabled()
    gc.disable()  # as timeit does: a collection in mid-sample is not the kernel's cost
    try:
        start = time.perf_counter()
        for _ in range(count):
            call()
        return (time.perf_counter() - start) / count
    finally:
        if gc_was_enabled:
            gc.enable()


def measure(
    call: Callable[[], np.ndarray], budget_s: float, min_samples: int, jit: bool = False
) -> tuple[Timing, np.ndarray]:
    """Time ``call``; also return its result (from the warm-up call) for the accuracy check.

    ``jit``: the first call compiles, so it can never count as a sample.
    """
    start = time.perf_counter()
    result = call()  # JIT compilation, page faults of a new out=, lazy imports
    first = time.perf_counter() - start
    if first > LONG_CALL_S and not jit:
        # A second warm-up would double a measurement lasting tens of seconds (the explicit
        # Jacobian); page faults and lazy imports are a small fraction of such a call.
        return Timing([first], 1, first), result
    estimate = _time_calls(call, 1)
    if estimate > LONG_CALL_S:
        return Timing([estimate], 1, first), result
    inner = max(1, math.ceil(MIN_SAMPLE_S / max(estimate, 1e-9)))
    count = int(budget_s / (estimate * inner))
    count = min(max(count, min_samples), MAX_SAMPLES)
    # The count is planned from one call; a call slowed by other load must not stretch the
    # measurement past twice its budget (beyond the fewest samples).
    deadline = time.perf_counter() + 2 * budget_s
    samples = []
    while len(samples) < count and (len(samples) < min_samples or time.perf_counter() < deadline):
        samples.append(_time_calls(call, inner))
    return Timing(samples, inner, first), result
