"""The thread count the C++ and Numba backends use.

[Note: how the limits combine]
The default is ``OMP_NUM_THREADS`` when it is set, else the cores this process may run on
(its CPU affinity, which containers and ``taskset`` restrict). ``set_num_threads`` replaces it
for every Python thread. The C++ backend also obeys OpenMP's limit in the calling thread where
something lowered it after import, which is what ``threadpoolctl.threadpool_limits`` does (see
the Note in cpp/src/dispatch.cpp).
"""

from __future__ import annotations

import operator
import os

# The kernels take a C int; no machine has more threads than this.
MAX_THREADS = 2**31 - 1


def _default_threads() -> int:
    env = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if env.isdigit() and int(env) > 0:
        return min(int(env), MAX_THREADS)
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not every platform has affinity
        return os.cpu_count() or 1


_num_threads = _default_threads()

# [Note: threads after fork]
# An OpenMP pool does not survive fork() (cpp/src/dispatch.cpp's Note on fork), and the Numba
# backend's parallel walks may start the same GNU OpenMP pool as the extension. So a child forked
# after either ran threads, in it or in an ancestor, computes on one thread in both backends: a
# child that started a parallel region would wait forever. A child of a process that never ran
# threads (a forkserver that only imported fastsoftmax) keeps its count.
_numba_parallel_ran = False
_threads_lost = False


def note_numba_parallel() -> None:
    """Called by the Numba backend before a parallel walk."""
    global _numba_parallel_ran
    _numba_parallel_ran = True


def _after_fork_in_child() -> None:
    global _threads_lost
    from . import _backends  # imported by now: this runs only after import

    core = _backends.core()
    cpp_ran = core is not None and core.threads_lost_to_fork()
    _threads_lost = _threads_lost or _numba_parallel_ran or cpp_ran


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def get_num_threads() -> int:
    """The number of threads the C++ and Numba backends use for one call.

    Small calls run on one thread whatever this says: waking threads costs more than they save.
    In a process forked after threads ran (in it or in an ancestor) it is 1, whatever
    `set_num_threads` asks: their thread pool did not survive the fork.

    Examples
    --------
    >>> import fastsoftmax as fsm
    >>> fsm.get_num_threads() >= 1
    True
    """
    return 1 if _threads_lost else _num_threads


def set_num_threads(n: int) -> None:
    """Use ``n`` threads (``n >= 1``) in the C++ and Numba backends from now on.

    Raises
    ------
    TypeError
        If ``n`` is not an integer.
    ValueError
        If ``n`` is less than 1 or more than 2**31 - 1.

    Examples
    --------
    >>> import fastsoftmax as fsm
    >>> previous = fsm.get_num_threads()
    >>> fsm.set_num_threads(1)
    >>> fsm.get_num_threads()
    1
    >>> fsm.set_num_threads(previous)
    """
    global _num_threads
    if isinstance(n, bool):
        raise TypeError(f"set_num_threads() takes an integer; got {n!r}")
    try:
        count = operator.index(n)
    except TypeError:
        raise TypeError(f"set_num_threads() takes an integer; got {n!r}") from None
    if not 1 <= count <= MAX_THREADS:
        raise ValueError(
            f"set_num_threads() needs a thread count from 1 to {MAX_THREADS}; got {count}"
        )
    _num_threads = count
