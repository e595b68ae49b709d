"""The thread count the C++ and Numba backends use.

[Note: how the limits combine]
The default is ``OMP_NUM_THREADS`` when it is set, else the cores this process may run on
(its CPU affinity, which containers and ``taskset`` restrict). ``set_num_threads`` replaces it
for every Python thread. The C++ backend also obeys OpenMP's limit in the calling thread where
something lowered it after import, which is what ``threadpoolctl.threadpool_limits`` does (see
the Note in cpp/src/dispatch.cpp).

[Note: a build without OpenMP]
A C++ extension built without OpenMP (``-C cmake.define.FASTSOFTMAX_OPENMP=OFF``, or a compiler
with no OpenMP runtime, as Apple clang without libomp) computes on one thread. One thread count
governs both threaded backends, so such an installation is single-threaded as a whole:
`get_num_threads` says 1, and `set_num_threads` warns when asked for more rather than store a
count no call would use. An installation with no extension at all keeps the Numba backend's
threads.
"""

from __future__ import annotations

import operator
import os
import warnings

from . import _backends

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

_core = _backends.core()
SINGLE_THREADED = _core is not None and not _core.openmp_enabled()
SINGLE_THREADED_WARNING = (
    "this fastsoftmax was built without OpenMP, so it computes on one thread; "
    "set_num_threads({}) has no effect (rebuild with a compiler that has OpenMP for threads)"
)

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
    cpp_ran = _core is not None and _core.threads_lost_to_fork()
    _threads_lost = _threads_lost or _numba_parallel_ran or cpp_ran


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def get_num_threads() -> int:
    """The number of threads the C++ and Numba backends use for one call.

    Small calls run on one thread whatever this says: waking threads costs more than they save.
    It is 1, whatever `set_num_threads` asks, in two cases: in a process forked after threads
    ran (in it or in an ancestor), since their thread pool did not survive the fork; and where
    the C++ extension was built without OpenMP (``show_config()`` says ``openmp: False``),
    which makes the whole installation single-threaded.

    Returns
    -------
    int
        The thread count a large enough call uses, ``>= 1``.

    Examples
    --------
    >>> import fastsoftmax as fsm
    >>> fsm.get_num_threads() >= 1
    True
    """
    return 1 if _threads_lost or SINGLE_THREADED else _num_threads


def set_num_threads(n: int) -> None:
    """Use ``n`` threads (``n >= 1``) in the C++ and Numba backends from now on.

    The setting holds for every Python thread, and above ``OMP_NUM_THREADS`` too. Where the
    C++ extension was built without OpenMP, every call runs on one thread: asking for more
    warns (once per calling line, as Python's warnings do) and changes nothing, and
    `get_num_threads` stays 1.

    Parameters
    ----------
    n : int
        The thread count, from 1 to 2**31 - 1.

    Warns
    -----
    RuntimeWarning
        If ``n > 1`` and this installation is single-threaded (built without OpenMP).

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
    if SINGLE_THREADED and count > 1:
        warnings.warn(SINGLE_THREADED_WARNING.format(count), RuntimeWarning, stacklevel=2)
        return
    _num_threads = count
