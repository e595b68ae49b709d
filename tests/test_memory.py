"""Memory: no leaks, no full-size temporaries, 64-bit offsets, and no access past a row's ends.

- Leaks: 10**5 calls of each function (and of each error path) on small (4, 9) arrays, in a
  fresh interpreter, RSS from ``/proc/self/statm`` before and after (after 10**4 warm-up
  calls): flat within ``LEAK_BOUND``, 1 MiB, i.e. 10 bytes per call (a leaked Python object is
  >= 16). The Numba and NumPy backends, 10-20 us a call, get 10**4 calls and a tenth of the
  bound. Measured: 0 KiB in every case; the control, one object kept per call, 2.5 MiB.
- Peak memory of one call, in a fresh interpreter: ``VmHWM`` (reset through
  ``/proc/self/clear_refs`` where the kernel allows) minus the RSS before the call, on 200 MB
  float32 inputs, C and Fortran order, along every axis. It must be the output(s) plus at most
  ``PEAK_SLACK``: a full-size temporary would add another 200 MB.
- 64-bit offsets: rows more than 2**31 elements apart in huge, mostly untouched buffers (fast);
  and an array of more than 2**31 elements (marked slow: 8.6 GB of float32 output, 45 s here;
  `pytest -m slow tests/test_memory.py` runs it).
- Bounds: every operand placed flush against an inaccessible guard page (after its last byte,
  or before its first), rows whose length is not a multiple of any vector width; a read or write
  past either end is a segfault. The sanitizer build (.ci/sanitize) runs this file too.
"""

from __future__ import annotations

import ctypes
import functools
import gc
import inspect
import json
import mmap
import os
import signal
import time

import fastsoftmax as fsm
import numpy as np
import pytest
from support.backends import CORE, threads
from support.operations import FUNCTIONS, OPERATIONS, call, expect, make_inputs
from support.processes import run_python
from support.tolerances import assert_matches

needs_cpp = pytest.mark.skipif(CORE is None, reason="the C++ extension is not built here")
needs_proc = pytest.mark.skipif(
    not os.path.exists("/proc/self/statm"), reason="memory is read from Linux's /proc"
)

# --------------------------------------------------------------------------------------------
# Leaks

LEAK_CALLS = 100_000
LEAK_BOUND = 1 << 20  # bytes over LEAK_CALLS calls: 10 bytes per call
PAGE = mmap.PAGESIZE


def rss() -> int:
    """Resident set size of this process, in bytes."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def growth(work, calls: int = LEAK_CALLS) -> int:
    """How much RSS grew over ``calls`` calls of ``work``, after a tenth as many to warm up."""
    for _ in range(calls // 10):
        work()
    gc.collect()
    before = rss()
    for _ in range(calls):
        work()
    gc.collect()
    return rss() - before


def _raises(work, error: type[BaseException]):
    def run():
        try:
            work()
        except error:
            return
        raise AssertionError("no error")

    return run


def _leak_cases(backend: str) -> dict[str, object]:
    """Each function (with and without out=) and each error path, on (4, 9) float64."""
    rng = np.random.default_rng(0)
    x, g = rng.standard_normal((4, 9)), rng.standard_normal((4, 9))
    out, out32 = np.empty((4, 9)), np.empty((4, 9), np.float32)

    def fn(name, *args, **kwargs):
        method = getattr(fsm, name)
        return lambda: method(*args, backend=backend, **kwargs)

    return {
        "softmax": fn("softmax", x),
        "softmax-out": fn("softmax", x, out=out),
        "log_softmax-axis0": fn("log_softmax", x, axis=0),
        "softmax_backward": fn("softmax_backward", x, g),
        "log_softmax_backward-out": fn("log_softmax_backward", x, g, out=out),
        "softmax_jvp-both": fn("softmax_jvp", x, g, return_softmax=True),
        "softmax-float32-in-place": fn("softmax", out32, out=out32),
        "error-out-dtype": _raises(fn("softmax", x, out=out32), TypeError),
        "error-out-shape": _raises(fn("softmax_backward", x, g, out=out.T), ValueError),
        "error-axis": _raises(fn("log_softmax", x, axis=5), ValueError),
        "error-input-dtype": _raises(fn("softmax_jvp", x, g.astype(complex)), TypeError),
        "error-shapes": _raises(fn("log_softmax_backward", x, g.T), ValueError),
    }


def _core_error_cases() -> dict[str, object]:
    """Errors raised inside the extension (after its arguments were converted)."""
    x = np.random.default_rng(0).standard_normal((4, 9))
    read_only = np.empty((4, 9))
    read_only.flags.writeable = False
    unaligned = np.zeros(4 * 9 * 8 + 1, np.uint8)[1:].view(np.float64).reshape(4, 9)
    return {
        "core-read-only-out": _raises(lambda: CORE.softmax(x, None, read_only, 1, 1), ValueError),
        "core-unaligned-out": _raises(lambda: CORE.softmax(x, None, unaligned, 1, 1), ValueError),
        "core-dtypes-differ": _raises(
            lambda: CORE.softmax(x.astype(np.float16), None, x.astype(np.float32), 1, 1), TypeError
        ),
        "core-shapes": _raises(lambda: CORE.softmax_backward(x, x.T, None, x, 1, 1), ValueError),
        "core-mask-dtype": _raises(lambda: CORE.softmax(x, x, x.copy(), 1, 1), TypeError),
    }


LEAK = """
import gc, json, mmap
import numpy as np, fastsoftmax as fsm
from fastsoftmax import _backends
CORE = _backends.core()
PAGE = mmap.PAGESIZE
LEAK_CALLS = {calls}
{helpers}
kind, calls = {kind!r}, {calls}
if kind == "control":
    kept = []
    cases = {{"object per call": lambda: kept.append(object())}}
elif kind == "extension":
    cases = _core_error_cases()
else:
    cases = _leak_cases(kind)
print(json.dumps({{name: growth(work, calls) for name, work in cases.items()}}))
"""
# The pure-Python backends take 10-20 us a call: a tenth of the calls, the same bound per call.
LEAK_KINDS = {
    **{b: LEAK_CALLS if b == "cpp" else LEAK_CALLS // 10 for b in fsm.available_backends()},
    **({"extension": LEAK_CALLS} if CORE is not None else {}),
}


@functools.cache
def leak_growth(kind: str) -> dict[str, int]:
    """RSS growth of every case of ``kind``, measured in one fresh interpreter: a heap that
    earlier tests left full of free memory would absorb a leak without growing."""
    helpers = "".join(inspect.getsource(f) for f in (rss, growth, _raises))
    helpers += inspect.getsource(_leak_cases) + inspect.getsource(_core_error_cases)
    proc = run_python(
        LEAK.format(helpers=helpers, kind=kind, calls=LEAK_KINDS.get(kind, LEAK_CALLS))
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout)


LEAK_CASES = [(b, case) for b in fsm.available_backends() for case in _leak_cases("numpy")]
if CORE is not None:
    LEAK_CASES += [("extension", case) for case in _core_error_cases()]


@needs_proc
@pytest.mark.parametrize(("kind", "case"), LEAK_CASES, ids=[f"{k}-{c}" for k, c in LEAK_CASES])
def test_no_leak(kind, case):
    """Each function and error path; "extension": errors raised inside the compiled module."""
    calls = LEAK_KINDS[kind]
    grown = leak_growth(kind)[case]
    assert grown <= LEAK_BOUND * calls // LEAK_CALLS, f"RSS grew {grown} bytes over {calls} calls"


@needs_proc
def test_leak_check_sees_a_leak():
    """The control: a 16-byte object kept per call (24 bytes with its list slot) shows."""
    assert leak_growth("control")["object per call"] > LEAK_BOUND


# --------------------------------------------------------------------------------------------
# Peak memory of one call

PEAK_SHAPE = (200, 500, 500)  # 50M float32 elements: 200 MB per array
PEAK_SLACK = 32 << 20  # bytes over the outputs: per-thread rows, the interpreter's own noise

PEAK = """
import gc, json, re
import numpy as np, fastsoftmax as fsm

def status(key):
    with open("/proc/self/status") as f:
        return int(re.search(key + r":\\s+(\\d+) kB", f.read()).group(1)) * 1024

def filled(shape, seed):
    a = np.empty(shape, np.float32, order={order!r})
    flat = (a if a.flags.c_contiguous else a.T).reshape(-1)  # a view: no temporary
    flat.fill(0.25)
    flat[seed::7] = -3.0
    return a

def run(inputs, axis):
    kwargs = dict(axis=axis, backend={backend!r})
    if {returns_softmax!r}:
        return getattr(fsm, {name!r})(*inputs, return_softmax=True, **kwargs)
    return (getattr(fsm, {name!r})(*inputs, **kwargs),)

def reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # sets VmHWM to the current RSS
        return True
    except OSError:
        return False

fsm.set_num_threads(2)
inputs = [filled({shape}, i) for i in range({arity})]
# Imports, threads, and each walk once: the Numba backend compiles a walk at its first call in
# a process, and the compiler's memory is not the call's.
for axis in {axes}:
    run(inputs, axis)
for axis in {axes}:
    gc.collect()
    reset = reset_peak()
    before = status("VmRSS")
    stale = status("VmHWM") - before  # without a reset: what the high-water mark hides
    if not reset and stale > 16 << 20:
        break  # measure the rest in fresh processes
    outputs = run(inputs, axis)
    print(json.dumps(dict(
        axis=axis, extra=status("VmHWM") - before, outputs=sum(o.nbytes for o in outputs),
    )))
    del outputs
"""


def peak_memory(name: str, order: str, backend: str = "cpp") -> list[dict]:
    """``{axis, extra, outputs}`` for axes 0, 1, -1, as many per fresh interpreter as it can
    measure (all of them where ``/proc/self/clear_refs`` resets the high-water mark)."""
    pending, measured = [0, 1, -1], []
    while pending:
        code = PEAK.format(
            name=name,
            order=order,
            backend=backend,
            returns_softmax=OPERATIONS[name].returns_softmax,
            arity=len(OPERATIONS[name].operands),
            shape=PEAK_SHAPE,
            axes=pending,
        )
        proc = run_python(code)
        assert proc.returncode == 0, proc.stderr[-2000:]
        lines = [json.loads(line) for line in proc.stdout.splitlines()]
        assert lines, "no measurement: the high-water mark was stale in a fresh interpreter"
        measured += lines
        pending = pending[len(lines) :]
    return measured


@needs_proc
@pytest.mark.parametrize("backend", [b for b in ("cpp", "numba") if b in fsm.available_backends()])
@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("order", ["C", "F"])
def test_peak_memory_is_the_output(name, order, backend):
    """Measured: cpp 0.0-0.5 MiB over the outputs, numba 0-4.2 MiB."""
    for m in peak_memory(name, order, backend):
        over = m["extra"] - m["outputs"]
        assert over <= PEAK_SLACK, f"axis {m['axis']}: {over / 2**20:.0f} MiB over the outputs"


@needs_proc
def test_peak_memory_sees_a_copy():
    """The control: the NumPy reference backend makes full-size temporaries (measured: 572 MiB
    over the output, three of them), and the measurement shows them."""
    for m in peak_memory("softmax", "C", "numpy"):
        assert m["extra"] - m["outputs"] > 2 * m["outputs"], m


# --------------------------------------------------------------------------------------------
# 64-bit indexing

ROWS_APART = 32_768  # rows of 65 537 float32 this far apart: 2**31 + 32 768 elements
WIDE_ROW = 65_537


def _two_far_rows(dtype, fill=None) -> np.ndarray:
    """Rows 0 and 32 768 of a (32 769, 65 537) buffer: 8.6 GB of address space, of which only
    the two rows are ever touched (np.zeros maps untouched pages lazily)."""
    buffer = np.zeros((ROWS_APART + 1, WIDE_ROW), dtype)
    rows = buffer[::ROWS_APART]
    if fill is not None:
        rows[...] = fill
    return rows


@needs_cpp
@pytest.mark.parametrize("name", FUNCTIONS)
def test_offsets_beyond_2_31_elements(name, rng):
    """Inputs and output whose second row starts 2**31 + 32 768 elements after the first."""
    dtype = np.dtype(np.float32)
    values = make_inputs(name, (2, WIDE_ROW), dtype, rng)
    inputs = tuple(_two_far_rows(dtype, v) for v in values)
    out = _two_far_rows(dtype)
    assert out.strides[0] // dtype.itemsize > 2**31
    with threads(2):
        result = call(name, *inputs, out=out, backend="cpp")
    assert result is out
    assert_matches(out, expect(name, values, -1, dtype), name)
    # and along axis 0: a (2, 65537) block read down its columns
    out = _two_far_rows(dtype)
    with threads(2):
        call(name, *inputs, axis=0, out=out, backend="cpp")
    assert_matches(out, expect(name, values, 0, dtype), f"{name} axis=0")


@pytest.mark.slow
@needs_cpp
def test_more_than_2_31_elements():
    """A (32 769, 65 537) float32 softmax: 2**31 + 98 305 elements, 8.6 GB of output.

    The input is one row broadcast (no memory). Every row must equal the row computed alone.
    Took 44 s here (2 cores), most of it in the call; needs 9 GB of free memory.
    """
    row = np.random.default_rng(4).standard_normal(WIDE_ROW).astype(np.float32)
    x = np.broadcast_to(row, (ROWS_APART + 1, WIDE_ROW))
    assert x.size > 2**31
    begin = time.perf_counter()
    result = fsm.softmax(x, backend="cpp")
    elapsed = time.perf_counter() - begin
    alone = fsm.softmax(row, backend="cpp")
    assert_matches(alone, expect("softmax", (row,), -1, np.dtype(np.float32)), "one row")
    for start in range(0, result.shape[0], 2048):  # a chunk at a time: no 8.6 GB temporary
        chunk = result[start : start + 2048]
        assert (chunk == alone).all(), f"rows from {start} differ ({elapsed:.0f} s call)"


# --------------------------------------------------------------------------------------------
# Bounds: guard pages

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_PROT_NONE = 0


def guarded(values: np.ndarray, flush: str) -> np.ndarray:
    """A copy of ``values`` (C order) whose last byte (flush="end") or first byte
    (flush="start") touches an inaccessible page."""
    nbytes = values.nbytes
    pages = -(-max(nbytes, 1) // PAGE)
    memory = mmap.mmap(-1, (pages + 2) * PAGE)
    raw = np.frombuffer(memory, np.uint8)
    base = raw.ctypes.data
    for page in (0, pages + 1):
        if _libc.mprotect(base + page * PAGE, PAGE, _PROT_NONE):
            raise OSError(ctypes.get_errno(), "mprotect failed")
    start = PAGE if flush == "start" else (pages + 1) * PAGE - nbytes
    array = raw[start : start + nbytes].view(values.dtype).reshape(values.shape)
    array[...] = values
    return array


# Row lengths around every level's vector widths (4/8/16 float32 lanes, 2/4/8 float64), and
# the columns walk's tile width across K.
BOUNDS_SIDES = [1, 2, 3, 5, 7, 9, 15, 17, 23, 31, 33, 47, 63, 65, 127, 129, 255, 257]


def placed(values: np.ndarray, placement: str) -> np.ndarray:
    """``values`` against a guard page: C order ending at it ("end") or starting right after
    it ("start"); or "reversed", a reversed view whose walk ends at the guard before it."""
    if placement == "reversed":
        return guarded(np.ascontiguousarray(values[::-1, ::-1]), "start")[::-1, ::-1]
    return guarded(values, placement)


@pytest.mark.parametrize("name", FUNCTIONS)
@pytest.mark.parametrize("placement", ["end", "start", "reversed"])
def test_row_ends_against_guard_pages(name, placement, backend, dtype, rng):
    """Rows (axis -1) and columns (axis 0 of C order) of lengths that leave vector tails, every
    operand (inputs, out, the softmax out of softmax_jvp) flush against a guard page."""
    for n in BOUNDS_SIDES:
        for shape, axis in (((3, n), -1), ((1, n), -1), ((n, 3), 0), ((5, n), 0)):
            values = make_inputs(name, shape, dtype, rng, axis)
            operands = [placed(v, placement) for v in values]
            op = OPERATIONS[name]
            out = placed(np.zeros(op.result_shape(shape, axis), dtype), placement)
            what = f"{name} {shape} axis={axis}"
            if op.returns_softmax:
                s_out = placed(np.zeros(shape, dtype), placement)
                call(
                    name,
                    *operands,
                    axis=axis,
                    return_softmax=True,
                    out=(s_out, out),
                    backend=backend,
                )
                assert_matches(s_out, expect("softmax", values[:1], axis, dtype), what)
            else:
                call(name, *operands, axis=axis, out=out, backend=backend)
            assert_matches(out, expect(name, values, axis, dtype), what)


GUARD_CONTROL = """
import ctypes, mmap
import numpy as np
PAGE = mmap.PAGESIZE
_PROT_NONE = 0
_libc = ctypes.CDLL(None, use_errno=True)
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
{source}
a = guarded(np.ones(5), {flush!r})
print(a.sum(), flush=True)
beyond = ((6,), (8,)) if {flush!r} == "end" else ((6,), (-8,))
print(np.lib.stride_tricks.as_strided(a if {flush!r} == "end" else a[::-1], *beyond).sum())
"""


@pytest.mark.parametrize("flush", ["end", "start"])
def test_guard_pages_guard(flush):
    """The control: one element past a flush-end array, or before a flush-start one, kills the
    process (checked in a subprocess)."""
    code = GUARD_CONTROL.format(source=inspect.getsource(guarded), flush=flush)
    proc = run_python(code)
    assert proc.stdout.splitlines() == ["5.0"], (proc.stdout, proc.stderr[-2000:])
    assert proc.returncode == -signal.SIGSEGV, proc.stderr[-2000:]


SCRATCH = """
import resource
import numpy as np, fastsoftmax as fsm
x = np.zeros((20_000_000, 2), np.float32)
x[5, 1] = np.inf  # a column through the scalar limit path too
out = np.empty_like(x)
fsm.softmax(x, axis=0, out=out)  # threads and pages touched before the limit
soft, hard = resource.getrlimit(resource.RLIMIT_AS)
with open("/proc/self/statm") as f:
    mapped = int(f.read().split()[0]) * resource.getpagesize()
resource.setrlimit(resource.RLIMIT_AS, (mapped + (1 << 30), hard))
fsm.set_num_threads(16)
for name in ("log_softmax", "softmax_jvp", "softmax"):  # softmax last: its result is checked
    args = (x,) if name != "softmax_jvp" else (x, x)
    getattr(fsm, name)(*args, axis=0, out=out)
print(out[5, 1], out[5, 0] * 20_000_000)
"""


@needs_cpp
@needs_proc
def test_columns_scratch_is_what_the_walk_uses():
    """Along axis 0 of a tall array, the columns walk reserved 5 N elements per thread that it
    never used (16 threads here: 6.4 GB, std::bad_alloc under a 1 GiB address-space margin;
    with 8 threads a (2 * 10**8, 2) call failed on 32 GB). It now allocates nothing per thread."""
    proc = run_python(SCRATCH)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["1.0", "1.0"], proc.stdout  # the limit, and 1 / N * N
