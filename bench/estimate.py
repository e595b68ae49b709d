"""How long a bench run will take, guessed before it starts so the user can decide to wait.

The guess models each measurement as the timer spends it (`timer.measure`): a warm-up call and
a one-call estimate, then samples of at least 2 ms until the budget is spent or the fewest
samples are taken. A call's own time is guessed from the bytes it moves at a modest bandwidth
(the explicit Jacobian from its N×N products), a JIT's first call from a typical compile, and
each case's float64 reference from its size. On the project's 2-core machine the default run
was guessed at 70 s and took 79-103 s, as other load moved it; elsewhere the guess is a guide,
and the run prints the real figure beside it at the end.
"""

from __future__ import annotations

import numpy as np
import suite
import timer

# Bytes a call moves per second, and its fixed cost.
_BYTES_PER_S = 8e9
_CALL_OVERHEAD_S = 3e-6
# The NumPy formula makes temporaries: about three times the arrays a fused kernel moves.
_FORMULA_TRAFFIC = 3.0
# The explicit Jacobian: seconds per element of the N×N products (12.6 s for (98304, 512)).
_JACOBIAN_S_PER_ELEMENT = 0.5e-9
# A JIT's compile on its first call for a shape, and the float64 reference per element.
_JIT_S = 0.4
_REFERENCE_S_PER_ELEMENT = 30e-9
# What a run does around its measurements (the first Numba compile of the triad, the summary).
_FIXED_S = 5.0


def call_seconds(case: suite.Case, op: str, impl_key: str) -> float:
    elements = case.array_bytes // np.dtype(case.dtype).itemsize
    if impl_key == "jacobian":
        return elements * case.length * _JACOBIAN_S_PER_ELEMENT
    moved = suite.arrays_moved(op) * case.array_bytes
    if impl_key == "formula" or impl_key == "numpy":
        moved *= _FORMULA_TRAFFIC
    return _CALL_OVERHEAD_S + moved / _BYTES_PER_S


def measurement_seconds(call: float, budget: tuple[float, int], jit: bool) -> float:
    """What `timer.measure` spends on a call of ``call`` seconds."""
    if call > timer.LONG_CALL_S:
        return call + (_JIT_S if jit else 0.0)
    sample = max(call, timer.MIN_SAMPLE_S)
    samples = min(max(budget[0] / sample, budget[1]), timer.MAX_SAMPLES)
    return 2 * call + samples * sample + (_JIT_S if jit else 0.0)


def run_seconds(plan, budget: tuple[float, int], triads: int, triad_s: float) -> float:
    """The whole run: every measurement, each op's reference, and the bandwidth measurements."""
    total = _FIXED_S + triads * triad_s
    references = {(task.case, task.op) for task in plan}
    for case, _ in references:
        total += case.array_bytes // np.dtype(case.dtype).itemsize * _REFERENCE_S_PER_ELEMENT
    for task in plan:
        call = call_seconds(task.case, task.op, task.impl.key)
        total += measurement_seconds(call, budget, task.impl.jit)
    return total


def describe(seconds: float) -> str:
    if seconds < 90:
        return f"about {seconds:.0f} s"
    return f"about {seconds / 60:.0f} minutes"
