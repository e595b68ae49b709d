"""Threads (the thread part of cpp/src/kernels.cpp and dispatch.cpp): how many threads a call
wakes, and Numba's thread count set for a parallel walk and restored after.

[Note: the grain]
GRAIN_ELEMENTS, from ``_constants`` (the C++ kernels' too): with Numba's omp threading layer,
8 K elements per thread measured best on 2 threads ((64, 1000) softmax 38.6 -> 22.5 us, its
backward 17.5 -> 12.3 against 32 K).
"""

from __future__ import annotations

import numba

from .. import _threads
from .._constants import GRAIN_ELEMENTS

# Numba's thread pool size, fixed when Numba is imported (looked up once: each call's glue is a
# visible part of a small call).
NUMBA_THREADS = numba.config.NUMBA_NUM_THREADS


class NumbaThreads:
    """``with NumbaThreads(n):`` Numba's thread count in this thread is ``n`` inside, the
    caller's own setting again after (user code's ``prange`` must keep the count it set)."""

    __slots__ = ("count", "previous")

    def __init__(self, count: int) -> None:
        self.count = count

    def __enter__(self) -> None:
        _threads.note_numba_parallel()  # the pool may not survive a fork: see _threads.py
        self.previous = numba.get_num_threads()
        numba.set_num_threads(self.count)

    def __exit__(self, *exc: object) -> None:
        numba.set_num_threads(self.previous)


def threads_for(threads: int, elements: int) -> int:
    """Threads for a call of ``elements``: one per grain at most (kernels.cpp threads_for)."""
    return min(threads, max(1, elements // GRAIN_ELEMENTS), NUMBA_THREADS)
