"""The machine's memory bandwidth, measured in the same run as the kernels it is compared with.

A STREAM-like triad ``a = b + s * c`` over three arrays far larger than the cache, counting the
three arrays' bytes (STREAM's convention: no write-allocate traffic). NumPy cannot do a triad in
one pass (``np.add(b, s * c, out=a)`` makes a temporary and moves five arrays), so the triad is a
Numba ``prange`` loop; without Numba we fall back to ``np.copyto`` split across Python threads
(NumPy releases the GIL while copying), counting two arrays, and say so.

The bench measures it at the start, just before each out-of-cache case (so a kernel is compared
with the bandwidth the machine gave at that moment: it is shared, and other load moves it), and
at the end.
"""

from __future__ import annotations

import functools
import importlib.util
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

# Per array: 4x what stays cached on the project machine (--full), and 2x (the default run, so
# its peak memory stays small; the triad is within a few % of the larger one's there).
ARRAY_BYTES = 256 << 20
SMALL_ARRAY_BYTES = 128 << 20


@functools.cache
def _numba_triad():
    """The triad kernel, compiled once per process."""
    import numba

    @numba.njit(parallel=True)
    def triad(a, b, c, s):
        for i in numba.prange(a.size):
            a[i] = b[i] + s * c[i]

    def run(arrays, threads):
        numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
        a, b, c = arrays
        triad(a, b, c, np.float32(3.0))

    return run


def _threaded_copy(arrays, threads):
    destination, source = arrays[0], arrays[1]
    step = -(-destination.size // threads)
    chunks = [slice(start, start + step) for start in range(0, destination.size, step)]
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda chunk: np.copyto(destination[chunk], source[chunk]), chunks))


def _kernel():
    """``(run, arrays counted, description)`` of the best bandwidth kernel available."""
    if importlib.util.find_spec("numba") is not None:
        return _numba_triad(), 3, "triad a = b + s*c (Numba prange), 3 arrays counted"
    return (
        _threaded_copy,
        2,
        "copy (np.copyto over Python threads; Numba not installed), 2 arrays counted",
    )


def _median_rate(run, arrays, threads: int, bytes_moved: int, repeats: int) -> dict[str, float]:
    run(arrays, threads)  # warm-up: JIT compilation, page faults, thread start-up
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(arrays, threads)
        seconds.append(time.perf_counter() - start)
    return {
        "gbps_median": bytes_moved / float(np.median(seconds)) / 1e9,
        "gbps_best": bytes_moved / min(seconds) / 1e9,
        "repeats": repeats,
    }


def describe(array_bytes: int = ARRAY_BYTES) -> dict[str, object]:
    return {"method": _kernel()[2], "array_mib": array_bytes >> 20}


def measure_bandwidth(
    thread_counts: list[int], repeats: int, array_bytes: int = ARRAY_BYTES
) -> dict[int, dict[str, float]]:
    """GB/s at each thread count. The arrays live only during the measurement."""
    run, n_arrays, _ = _kernel()
    arrays = [np.full(array_bytes // 4, 1.0, dtype=np.float32) for _ in range(n_arrays)]
    rates = {
        threads: _median_rate(run, arrays, threads, n_arrays * array_bytes, repeats)
        for threads in sorted(set(thread_counts))
    }
    if importlib.util.find_spec("numba") is not None:
        import numba

        # The triad changed Numba's thread count: give the backends their default back.
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    return rates


class BandwidthLog:
    """Every bandwidth measurement of one bench run, by when it was taken."""

    def __init__(self, thread_counts: list[int], repeats: int, array_bytes: int) -> None:
        self.thread_counts = sorted(set(thread_counts))
        self.repeats = repeats
        self.array_bytes = array_bytes
        self.taken: dict[str, dict[int, dict[str, float]]] = {}

    def measure(self, when: str) -> dict[int, dict[str, float]]:
        self.taken[when] = measure_bandwidth(self.thread_counts, self.repeats, self.array_bytes)
        return self.taken[when]

    def seconds_estimate(self) -> float:
        """What one measurement takes, guessed at 10 GB/s (the project machine gives 15-40)."""
        moved = 3 * self.array_bytes * (1 + self.repeats) * len(self.thread_counts)
        return moved / 10e9 + 0.5  # and the arrays' first touch

    def rates_for(self, case_key: str) -> dict[int, dict[str, float]]:
        """The measurement taken just before the case, else the one at the start."""
        return self.taken.get(f"before {case_key}", self.taken["start"])

    def gbps(self, case_key: str, threads: int) -> float | None:
        return self.rates_for(case_key).get(threads, {}).get("gbps_median")

    def ranges(self) -> dict[int, tuple[float, float]]:
        """Lowest and highest median GB/s over the run, per thread count."""
        ranges = {}
        for threads in self.thread_counts:
            values = [rates[threads]["gbps_median"] for rates in self.taken.values()]
            ranges[threads] = (min(values), max(values))
        return ranges

    def as_dict(self) -> dict[str, object]:
        return {**describe(self.array_bytes), "measurements": self.taken}
