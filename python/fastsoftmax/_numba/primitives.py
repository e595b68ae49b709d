"""What cpp/src/simd.hpp is to the C++ kernels: the compile options, LLVM intrinsics for row
views that hold no reference, non-temporal stores and their fence, and the finiteness test.

[Note: no compiled-code cache]
The walks are closures over an operation's pieces, compiled once per operation in each process;
nothing is cached on disk. Numba links the functions a compiled one calls by name (a qualified
name, the argument types and a count of the functions the process compiled before it), and a
walk loaded from a disk cache carries the callees it was compiled with: in a process that also
compiles closures of its own, two different closures could meet under one name and one run in
place of the other. Stress runs that mixed cached and fresh code saw wrong results and crashed
(the column walks on two threads, masked and not); the same runs compiled in-process, with
bounds checking on, were clean. So the cost is a first call of each operation and walk that
compiles (about 6 s for a (64, 1000) softmax here), in every process. The qualified names
still carry the operation a closure was made for (`compiled` and `inner`), so that a profile
names it.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic
from numba.np.arrayobj import make_array, populate_array

LINE_BYTES = 64


# [Note: inlined helpers]
# Each function Numba compiles on its own has its own typing and LLVM passes, 0.05-0.2 s, in
# every process (the Note above): a first (64, 1000) softmax compiled 35 of them. So a function
# without a loop is compiled into its callers instead (``inline="always"``: Numba inlines its
# IR). That first call went from 3.4 to 2.5 s on one thread, 4.2 to 3.3 s on two (Intel Xeon,
# medians of 3 processes), its run time unchanged. A function holding a loop stays on its own,
# to keep the flags its loop is vectorised with (fastmath, 512-bit vectors: the Notes on them),
# which a caller's IR would not carry: with every function inlined, that softmax ran in 62 us
# instead of 34. The overloads (operands.py) stay compiled on their own: Numba compiles an
# overload to type it whether or not it is then inlined, and inlining them measured slower.


def _nogil(function, inline: bool, **options):
    """``function`` compiled with ``nogil``, into its callers where ``inline``."""
    return njit(nogil=True, inline="always" if inline else "never", **options)(function)


def compiled(function=None, *, parallel=False, key="", inline=False):
    """``function`` compiled with ``nogil``; ``key`` names the operation a closure was made for
    (the name a profiler shows); ``inline`` for a function without a loop (the Note on inlined
    helpers). As a decorator, with or without arguments."""
    if function is None:
        return lambda f: compiled(f, parallel=parallel, key=key, inline=inline)
    if key:
        function.__qualname__ = f"{key}.{function.__name__}"
    return _nogil(function, inline, parallel=parallel)


@compiled
def copy_into(dst, src):
    """``dst[:] = src`` for 1-d arrays of one length. Numba compiles an array's slice assignment
    with the formatting of its shape-mismatch message: 2.0 s of the 5.3 a first softmax took to
    compile (Xeon), and in every process (the Note on the compiled-code cache)."""
    for i in range(src.shape[0]):
        dst[i] = src[i]


def inner(key: str, *, inline=False, **options):
    """A decorator: the function compiled with ``nogil`` (and ``options``) for compiled callers,
    ``key`` (what a closure was made for) before its qualified name (the Note above); ``inline``
    for a function without a loop (the Note on inlined helpers)."""

    def decorate(function):
        function.__qualname__ = f"{key}.{function.__qualname__}"
        return _nogil(function, inline, **options)

    return decorate


# [Note: 512-bit vectors]
# On AVX-512 machines LLVM vectorises for 256-bit registers unless a function asks for more
# (its tuning for Intel cores since Skylake-SP, against their clock drop), and Numba gives no
# option for it; the C++ backend uses the 512-bit ones on the same machines. So each function
# holding a hot loop starts with `prefer_wide_vectors()`, which gives that function LLVM's
# "prefer-vector-width"="512" attribute: the loops are vectorised in the function that holds
# them, before callers inline it. Measured on an Intel Xeon (Rocket Lake), a fold of 256
# exps' sum: float32 0.35 -> 0.27 ns an element, float64 0.93 -> 0.60. Without AVX-512 the
# attribute changes nothing. llvmlite's attribute set admits only the attributes it names, so
# this one goes into the set directly; test_numba_backend.py checks that the kernels use
# 512-bit registers where the machine has them. Loops too short for them go without it.


@intrinsic
def prefer_wide_vectors(typingctx):
    """Asks LLVM to vectorise the calling function's loops with 512-bit vectors."""

    def codegen(context, builder, signature, args):
        set.add(builder.function.attributes, '"prefer-vector-width"="512"')
        return context.get_dummy_value()

    return types.none(), codegen


@compiled(inline=True)
def is_finite(v):
    return -np.inf < v < np.inf


# [Note: borrowed rows]
# A view such as ``x[r]`` takes a reference to its array's memory and drops it when done, each
# with an atomic instruction, which also waits for the stores in flight. Taken per row, the
# views cost a (64, 1000) softmax_backward a fifth of its time and a (256, 256) one a third
# (Zen 4 VM, one thread: 15.6 -> 12.7 and 33 -> 21 us with `row`). The walks take their rows
# with `row`, a view that holds no reference (its views and slices hold none either): the
# arrays it is taken from outlive every call that uses it. Only functions compiled without
# ``parallel=True`` use it: Numba's parallel passes take an array a call returns for a new one,
# and dropped ``row(out, r)[:] = own`` as a write to an array nothing read afterwards.


@intrinsic
def row(typingctx, a, r):
    """``a[r]`` of an array of two or more dimensions, holding no reference; C-contiguous when
    ``a`` is, else strided (a mask, read through its own strides: operands.py)."""
    if not (isinstance(a, types.Array) and a.ndim >= 2):
        return None
    if not isinstance(r, types.Integer):
        return None
    view_type = a.copy(ndim=a.ndim - 1, layout="C" if a.layout == "C" else "A")

    def codegen(context, builder, signature, args):
        array = make_array(a)(context, builder, args[0])
        index = context.cast(builder, args[1], r, types.intp)
        shape = cgutils.unpack_tuple(builder, array.shape, a.ndim)
        strides = cgutils.unpack_tuple(builder, array.strides, a.ndim)
        view = make_array(view_type)(context, builder)
        populate_array(
            view,
            data=cgutils.pointer_add(builder, array.data, builder.mul(index, strides[0])),
            shape=shape[1:],
            strides=strides[1:],
            itemsize=array.itemsize,
            meminfo=None,
        )
        return view._getvalue()

    return view_type(a, r), codegen


@compiled(inline=True)
def tile_row(a, i, j, k0, k1):
    """``a[i, j, k0:k1]`` of a C-contiguous block, holding no reference (see `row`)."""
    return row(row(a, i), j)[k0:k1]


# [Note: streaming stores]
# As in cpp/src/kernels.cpp (its Note of that name), an output larger than the cache can keep
# is better written with non-temporal stores, which do not first read the lines they write. LLVM
# vectorises no loop with such a store in it, so a row's outputs are computed a chunk at a time
# into a scratch in L1 by an ordinary loop, and `stream_copy` moves whole cache lines of it out.
# Here only softmax_backward streams (its operation's ``streams``), in the rows walk
# (kernels.py), for rows of 4 KiB or more, when its output is not an input. Measured on the Zen 4
# VM, one thread, against the same walk storing normally: (8192, 8192) 38.5 -> 29.5 ms,
# (1024, 4096) 2.00 -> 1.68 ms. Streaming log_softmax gained 3-6% there, log_softmax_backward
# lost 24-28%, and rows of 512 lost 15-50%;
# and a streaming branch inside the row kernel cost every row that did not stream 3-17%.


@intrinsic
def stream_copy(typingctx, dst, src, count):
    """``dst[:count] = src[:count]`` with non-temporal stores of whole cache lines: ``dst`` must
    start on a line and ``count`` fill whole lines. ``dst`` and ``src`` are contiguous, 1-d."""
    if not (isinstance(dst, types.Array) and isinstance(src, types.Array)):
        return None
    if dst.dtype != src.dtype or dst.ndim != 1 or src.ndim != 1:
        return None

    def codegen(context, builder, signature, args):
        target = make_array(dst)(context, builder, args[0])
        source = make_array(src)(context, builder, args[1])
        stop = context.cast(builder, args[2], signature.args[2], types.intp)
        element = context.get_data_type(dst.dtype)
        element_bytes = context.get_abi_sizeof(element)
        line = ir.VectorType(element, LINE_BYTES // element_bytes)
        non_temporal = builder.module.add_metadata([ir.Constant(ir.IntType(32), 1)])
        step = ir.Constant(stop.type, line.count)
        with cgutils.for_range_slice(builder, stop.type(0), stop, step) as (i, _):
            from_ = builder.bitcast(builder.gep(source.data, [i]), line.as_pointer())
            to = builder.bitcast(builder.gep(target.data, [i]), line.as_pointer())
            store = builder.store(builder.load(from_, align=element_bytes), to, align=LINE_BYTES)
            store.set_metadata("nontemporal", non_temporal)
        return context.get_dummy_value()

    return types.none(dst, src, count), codegen


@intrinsic
def stream_fence(typingctx):
    """Orders this thread's non-temporal stores before its later stores, as stream_fence does in
    kernels.cpp (a full fence: LLVM's lighter ones do not cover non-temporal stores on x86)."""

    def codegen(context, builder, signature, args):
        builder.fence("seq_cst")
        return context.get_dummy_value()

    return types.none(), codegen
