"""Threads and processes: the GIL is released, concurrent calls are exact, thread limits are
obeyed, and a process that used OpenMP threads can fork.

[Note: observing the GIL and the threads without timing races]
- GIL: a second Python thread records the longest gap between two of its loop iterations while
  one long call runs in the main thread. Each iteration needs the GIL (and makes a small call of
  its own), so a call that held the GIL would show a gap as long as itself; one that releases it
  shows gaps of the interpreter's switch interval (set to 1 ms). A C function holding the GIL
  (``sorted``) is measured the same way as a control. The ratio is 100x either way, so a loaded
  machine does not flip it.
- Threads used: the CPU time each OS thread of the process accrued while the library computed,
  from ``/proc/self/task/*/stat``. A thread counts as working if it accrued at least a quarter
  of the busiest thread's time; OpenMP's idle pool threads sleep and accrue nothing. This counts
  threads, not speed, so it is as good on a loaded 2-core machine as on an idle 64-core one.
  (Linux only, as ``/proc`` is.) A count of n is only observable with n cores; the tests ask for
  at most the cores this process may use.
"""

from __future__ import annotations

import inspect
import os
import sys
import threading
import time
from collections.abc import Callable

import fastsoftmax as fsm
import numpy as np
import pytest
from support.backends import CORE, needs_threads, threads
from support.operations import FUNCTIONS, OPERATIONS, call, make_inputs
from support.processes import run_python
from threadpoolctl import threadpool_limits

CORES = len(os.sched_getaffinity(0))
BOTH = min(CORES, 2)  # the thread count the limit tests expect to see at work
needs_two_cores = pytest.mark.skipif(CORES < 2, reason="seeing 2 threads at work needs 2 cores")
needs_cpp = pytest.mark.skipif(CORE is None, reason="the C++ extension is not built here")
needs_proc = pytest.mark.skipif(
    not os.path.isdir("/proc/self/task"), reason="threads are counted from Linux's /proc"
)
THREADED_BACKENDS = [b for b in ("cpp", "numba") if b in fsm.available_backends()]


# --------------------------------------------------------------------------------------------
# Helpers (also sent to subprocesses as source: keep them self-contained)


def cpu_by_thread() -> dict[int, float]:
    """CPU seconds (user + system) of each OS thread of this process."""
    tick = os.sysconf("SC_CLK_TCK")
    times = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()  # the name may hold spaces
        except FileNotFoundError:  # the thread ended meanwhile
            continue
        times[int(tid)] = (int(fields[11]) + int(fields[12])) / tick  # utime, stime
    return times


def working_threads(work, seconds=0.5, attempts=6, want=None):
    """How many OS threads did a share of the CPU work while ``work()`` ran repeatedly.

    Counted over ``seconds`` of calls; retried up to ``attempts`` times until the count is
    ``want``, each retry's window twice as long (a busy neighbour on a 2-core machine can starve
    a thread for a window, or leave the process too little CPU to judge one; a wrong thread
    count is wrong in every window, however long). Returns the last count.
    """
    work()  # starts OpenMP's pool outside the window
    count, busiest = 0, 0.0
    for _ in range(attempts):
        before = cpu_by_thread()
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            work()
        after = cpu_by_thread()
        used = [after[t] - before.get(t, 0.0) for t in after]
        busiest = max(used)
        seconds *= 2
        if busiest < 0.05:  # too little CPU time to judge this window
            continue
        count = sum(u >= busiest / 4 for u in used)
        if count == want:
            break
    assert busiest >= 0.05, f"too little CPU time to judge in any window: {used}"
    return count


def longest_gap(
    during: Callable[[], object], iteration: Callable[[], object]
) -> tuple[float, float]:
    """``(longest gap between iterations of a second thread, duration)`` of ``during()``."""
    started, stop = threading.Event(), threading.Event()
    gaps: list[float] = []

    def ticker():
        last = time.perf_counter()
        worst = 0.0
        while not stop.is_set():
            iteration()
            now = time.perf_counter()
            worst = max(worst, now - last)
            last = now
            started.set()
        gaps.append(worst)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.001)  # GIL hand-overs every 1 ms instead of 5: shorter gaps
    thread = threading.Thread(target=ticker)
    try:
        thread.start()
        started.wait()
        time.sleep(0.01)
        begin = time.perf_counter()
        during()
        duration = time.perf_counter() - begin
    finally:
        stop.set()
        thread.join()
        sys.setswitchinterval(interval)
    return gaps[0], duration


# --------------------------------------------------------------------------------------------
# The GIL


@pytest.fixture(scope="module")
def long_softmax() -> Callable[[], float]:
    """A C++ call on one thread that takes ~0.1 s where the machine allows it: rows of a
    broadcast float64 row (no input memory) into a preallocated output (no page faults in the
    timing), as many rows as that takes, up to 16384 (512 MB of output). Returns the call,
    which returns its own duration: on a fast core the largest call is still only ~25 ms."""
    row = np.random.default_rng(0).standard_normal(4096)
    rows = 512
    with threads(1):
        while True:
            x = np.broadcast_to(row, (rows, row.size))
            out = np.empty(x.shape)
            durations = []
            for _ in range(3):
                begin = time.perf_counter()
                fsm.softmax(x, backend="cpp", out=out)
                durations.append(time.perf_counter() - begin)
            if sorted(durations)[1] > 0.1 or rows >= 16384:
                break
            rows *= 2

    def run() -> float:
        with threads(1):
            begin = time.perf_counter()
            fsm.softmax(x, backend="cpp", out=out)
            return time.perf_counter() - begin

    return run


SMALL = np.linspace(-3.0, 3.0, 64 * 33).reshape(64, 33)


def _small_call() -> None:
    fsm.softmax(SMALL, backend="cpp")


@needs_cpp
def test_gil_is_held_by_the_control():
    """The measurement sees a C function that keeps the GIL: the gap is its whole duration."""
    values = np.random.default_rng(1).random(1_500_000).tolist()
    gap, duration = longest_gap(lambda: sorted(values), _small_call)
    assert duration > 0.05, "the control ran too briefly to judge"
    assert gap > 0.8 * duration, (gap, duration)


@needs_cpp
def test_gil_released_and_calls_overlap(long_softmax):
    """While long calls run back to back for 0.3 s, another Python thread keeps running and
    making calls. A call holding the GIL would leave the ticker a gap of at least one call's
    duration; one releasing it, gaps of the 1 ms switch interval. The gap is judged against the
    shortest call, which is at least 10 ms on any machine (~25 ms on a fast one). Up to three
    tries: a busy neighbour may deschedule the ticker for a while, but a call holding the GIL
    shows its gap in every try (the control above)."""
    for _ in range(3):
        calls: list[float] = []

        def repeated_calls(calls: list[float] = calls) -> None:
            begin = time.perf_counter()
            while time.perf_counter() - begin < 0.3:
                calls.append(long_softmax())

        gap, _ = longest_gap(repeated_calls, _small_call)
        call = min(calls)
        assert call > 0.01, f"the long call ran too briefly to judge: {call:.4f} s"
        if gap < call / 4:
            break
    assert gap < call / 4, f"a thread waited {gap:.4f} s while calls took {call:.4f} s each"


# --------------------------------------------------------------------------------------------
# Concurrent calls are exactly serial calls

# (shape, axis, order): rows, columns (axis 0 of C order), long rows, 3-d, F order, one long row.
SHAPES = [
    ((256, 1000), -1, "C"),
    ((1000, 37), 0, "C"),
    ((64, 4099), -1, "C"),
    ((3, 70_001), -1, "C"),
    ((17, 33, 65), 1, "C"),
    ((4096, 16), 0, "C"),
    ((513, 257), -1, "F"),
    ((1, 200_003), -1, "C"),
]
PYTHON_THREADS = 8
REPEATS = 4  # calls of each function per thread: 8 threads x 5 functions x 4 = 160 calls


def _jobs(dtype: np.dtype, rng: np.random.Generator) -> list[list[tuple]]:
    """For each Python thread, its own shape and every function on it."""
    jobs = []
    for shape, axis, order in SHAPES[:PYTHON_THREADS]:
        mine = []
        for name in FUNCTIONS:
            inputs = tuple(np.asarray(a, order=order) for a in make_inputs(name, shape, dtype, rng))
            mine.append((name, inputs, axis))
        jobs.append(mine)
    return jobs


def _run(job: tuple) -> np.ndarray:
    name, inputs, axis, backend = job
    if OPERATIONS[name].returns_softmax:  # both outputs
        return np.stack(call(name, *inputs, axis=axis, return_softmax=True, backend=backend))
    return call(name, *inputs, axis=axis, backend=backend)


# Each backend with both dtypes, but the Numba backend with float32 alone: its walks are one
# code for both, and compiling them for these 8 layouts costs a process 30 s a dtype on one
# thread, 60 on two.
@pytest.mark.parametrize(
    ("backend", "dtype"),
    [
        pytest.param(backend, dtype, id=f"{backend}-{np.dtype(dtype).name}")
        for backend in fsm.available_backends()
        for dtype in (np.float32, np.float64)
        if backend != "numba" or dtype == np.float32
    ],
)
def test_eight_threads_equal_serial(backend, dtype, num_threads, rng):
    """8 Python threads, released together, each calling every function on its own shape 4
    times: every result bitwise equal to the serial call's at the same thread count."""
    jobs = [
        [(name, inputs, axis, backend) for name, inputs, axis in mine]
        for mine in _jobs(np.dtype(dtype), rng)
    ]
    serial = [[_run(job) for job in mine] for mine in jobs]
    results: list[list[np.ndarray] | BaseException] = [[] for _ in jobs]
    barrier = threading.Barrier(len(jobs))

    def worker(i: int) -> None:
        try:
            barrier.wait()
            for _ in range(REPEATS):
                results[i].extend(_run(job) for job in jobs[i])
        except BaseException as err:  # re-raised below, in the test's thread
            results[i] = err

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(len(jobs))]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    for i, (mine, alone, together) in enumerate(zip(jobs, serial, results, strict=True)):
        if isinstance(together, BaseException):
            raise together
        assert len(together) == REPEATS * len(FUNCTIONS)
        for k, result in enumerate(together):
            name = mine[k % len(mine)][0]
            np.testing.assert_array_equal(result, alone[k % len(mine)], err_msg=f"{i} {name}")


# --------------------------------------------------------------------------------------------
# Thread limits


def _busy_work(backend: str) -> Callable[[], object]:
    """A call big enough for every thread to get rows (4M float32 elements)."""
    x = np.random.default_rng(2).standard_normal((1024, 4096)).astype(np.float32)
    return lambda: fsm.softmax(x, backend=backend)


@needs_proc
@needs_threads
@pytest.mark.parametrize("backend", THREADED_BACKENDS)
@pytest.mark.parametrize("count", sorted({1, BOTH}))
def test_set_num_threads_is_obeyed(backend, count):
    with threads(count):
        assert working_threads(_busy_work(backend), want=count) == count


@needs_cpp
@needs_proc
@needs_two_cores
@needs_threads
def test_threadpool_limits_is_obeyed():
    work = _busy_work("cpp")
    with threads(2):
        with threadpool_limits(limits=1, user_api="openmp"):
            assert working_threads(work, want=1) == 1
        assert working_threads(work, want=2) == 2  # and lifted afterwards


PROBE = (
    "import os, sys, threading, time\n"
    "import numpy as np, fastsoftmax as fsm\n"
    + inspect.getsource(cpu_by_thread)
    + inspect.getsource(working_threads)
    + "x = np.random.default_rng(2).standard_normal((1024, 4096)).astype(np.float32)\n"
    "work = lambda: fsm.softmax(x, backend='cpp')\n"
)


@needs_cpp
@needs_proc
@needs_threads
@pytest.mark.parametrize("value", sorted({"1", str(BOTH)}))
def test_omp_num_threads_is_obeyed(value):
    code = PROBE + f"print(fsm.get_num_threads(), working_threads(work, want={value}))\n"
    proc = run_python(code, OMP_NUM_THREADS=value)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == [value, value]


@needs_cpp
@needs_proc
@needs_two_cores
@needs_threads
def test_set_num_threads_applies_to_every_python_thread():
    """Above OMP_NUM_THREADS too: the setting is the library's, not one thread's OpenMP limit."""
    code = PROBE + (
        "fsm.set_num_threads(2)\n"
        "counts = [working_threads(work, want=2)]\n"
        "t = threading.Thread(target=lambda: counts.append(working_threads(work, want=2)))\n"
        "t.start(); t.join()\n"
        "print(*counts)\n"
    )
    proc = run_python(code, OMP_NUM_THREADS="1")
    assert proc.returncode == 0, proc.stderr
    main_thread, other_thread = proc.stdout.split()
    assert main_thread == "2"
    assert other_thread == "2", "a call from another Python thread ignored set_num_threads(2)"


# --------------------------------------------------------------------------------------------
# fork

FORK = """
import multiprocessing, sys
import numpy as np, fastsoftmax as fsm
fsm.set_num_threads(2)
x = np.random.default_rng(3).standard_normal((512, 1024)).astype(np.float32)
parent = fsm.softmax(x, backend={parent!r})  # 512K elements: threads start

def child(queue):
    fsm.set_num_threads(2)  # asked for, not granted: the pool did not survive the fork
    result = fsm.softmax(x, backend={child!r})
    reference = fsm.softmax(x.astype(np.float64), backend="numpy")
    close = np.allclose(result, reference, rtol=4e-6, atol=0)  # backends agree to rounding
    queue.put((bool(close), fsm.get_num_threads()))

context = multiprocessing.get_context("fork")
queue = context.Queue()
process = context.Process(target=child, args=(queue,))
process.start()
process.join(60)
if process.is_alive():
    process.kill()
    sys.exit("the forked child hung")
equal, count = queue.get(timeout=5) if process.exitcode == 0 else (None, None)
print("exit", process.exitcode, "equal", equal, "threads", count)
"""


# Every pair: a child computing with the Numba backend after the C++ one started GNU OpenMP's
# pool in the parent hung; both now compute on one thread there (the Note on threads after fork
# in _threads.py).
@pytest.mark.parametrize("child", THREADED_BACKENDS)
@pytest.mark.parametrize("parent", THREADED_BACKENDS)
@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_fork_after_threads(parent, child):
    proc = run_python(FORK.format(parent=parent, child=child))
    assert proc.returncode == 0, proc.stderr[-2000:]
    exit_code, close, threads_ = proc.stdout.split()[1::2]
    assert exit_code == "0", proc.stderr[-2000:]
    assert close == "True"
    assert threads_ == "1"


FORKSERVER = """
import multiprocessing
import numpy as np, fastsoftmax as fsm

def worker(queue):
    queue.put((fsm.get_num_threads(), fsm._backends.core().threads_lost_to_fork()))

if __name__ == "__main__":
    context = multiprocessing.get_context({method!r})
    if {method!r} == "forkserver":
        context.set_forkserver_preload(["numpy", "fastsoftmax"])
    fsm.set_num_threads(2)
    queue = context.Queue()
    process = context.Process(target=worker, args=(queue,))
    process.start()
    print(*queue.get(timeout=60))
    process.join(60)
"""


@needs_cpp
@needs_threads
@pytest.mark.parametrize("method", ["forkserver", "fork"])
@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork on this platform")
def test_fork_before_threads_keeps_them(method, tmp_path):
    """A child of a process that never ran threads (a forkserver that only imported us, or a
    parent that forked before computing) keeps them: it used to run on one OS thread while
    get_num_threads() said 2."""
    script = tmp_path / "workers.py"  # forkserver needs a main module it can import
    script.write_text(FORKSERVER.format(method=method))
    proc = run_python(f"import runpy; runpy.run_path({str(script)!r}, run_name='__main__')")
    assert proc.returncode == 0, proc.stderr[-2000:]
    count, lost = proc.stdout.split()
    assert lost == "False"
    # fork: the parent's setting; forkserver: a fresh process's default, the usable cores.
    assert int(count) == (2 if method == "fork" else CORES)
