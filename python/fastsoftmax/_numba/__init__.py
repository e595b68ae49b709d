"""Numba backend: the C++ kernels of ``cpp/src/`` as JIT-compiled loops, file for file.

The functions take the arguments ``_api.py`` (``_partials.py`` for the row partials) passes
every backend and compute what ``_reference.py`` computes, to rounding; that module states the
contract (one shape and one dtype, float32 or float64; a valid non-negative axis; outputs
disjoint from the inputs or exactly one of them; ``where``, None or a boolean mask of x's
shape). The fast paths (``try_*``) take no mask. ``_backends.py`` imports this package, and so
Numba, only for the numba backend.

========================  =======================================================================
``primitives.py``         simd.hpp: compile options, row views, streaming stores, fence
``vec_exp.py``            vec_exp.hpp: exp and the row max
``vector_loops.py``       vector_loops.hpp: the compensated, folded row and column sums
``operands.py``           block.hpp: the load/store layer over a call's operands, its mask and
                          per-row inputs too
``operations.py``         the operations, each defined once
``rows.py``               rows.hpp: the row kernels of one operation
``columns.py``            columns.hpp: the column-tile kernels of one operation
``kernels.py``            kernels.cpp: the walks of one operation, which walk runs a block
``threads.py``            thread planning, Numba's thread count for a walk
``fast_path.py``          the fast path (the Note in _backends.py)
========================  =======================================================================

[Note: operations and walks]
An operation (operations.py) is data: its inputs and outputs, its reduction (shifted sums of
terms of ``exp(x - max)``, plain sums, or a given pair) and how partials of that kind combine,
the per-row constants it derives, its output step at one element and its rule for rows whose
maximum is not finite. ``kernels.make_kernels(operation)`` builds the walks (rows, rows shared
by threads, streamed rows, tiles, tiles shared by threads, gathered columns) as closures over
those pieces, so each walk is compiled once per operation and none tests which operation it
runs; the walks and the pieces see the operands only as tuples, through operands.py. A new
operation is its entry in operations.py, its line in ``kernels.KERNELS`` and its backend
function in kernels.py.

A mask is one more input, the last, read through its own strides (operands.py's Note on the
mask): the loads and stores choose by it, so the walks are the same. A masked call compiles its
own specialisation of each walk it uses, on its first call; an unmasked one is compiled as if
masks did not exist (None, not an all-True mask).

The passes, the exp, the limits at +-inf and NaN and the float64 sums are those of the C++
kernels, whose Notes give the reasons. The differences come from LLVM vectorising these loops
instead of hand-written intrinsics:

- The row max works on integer keys (vec_exp.py's Note): LLVM vectorises no float max reduction.
- Partial sums stay in the row's dtype for 256 elements (8 rows of a tile), but for the sums of
  stored exps, which are float64 throughout (vector_loops.py's Notes).
- Each function holding a hot loop asks LLVM for 512-bit vectors (primitives.py's Note).
- Tiles are as wide as K allows up to 16384 columns (kernels.py's Note on tile width). With
  fewer tiles than threads, the threads share each tile's rows, as in kernels.cpp ((4096, 1024)
  along axis 0 on 2 threads: softmax 3.1-3.4 -> 1.4 ms, backward 2.9-3.3 -> 1.6 against
  half-width tiles), but without its rule for an unbalanced last tile.
- softmax and softmax_jvp along a non-contiguous axis keep exp(x - max) in ``out`` between the
  passes; columns.hpp computes it again (one more exp, one less write and read).
- No loop writes an array it also reads under another name (rows.py's Note on aliasing), and
  softmax_jvp keeps exp(x - max) in ``out`` rather than in a scratch buffer.
- A layout that is neither C- nor Fortran-contiguous is copied into a C-contiguous scratch
  (kernels.cpp gathers it row by row).
- Fewer long rows than threads share each row between the threads, as kernels.cpp does, but
  a row where some thread's slice has a max that is not finite is redone by one thread. Rows
  are not summed in blocks against a running max (rows.hpp does for rows longer than L2), and
  no next row is prefetched.
- Only softmax_backward streams its output past the cache, in the rows walk, for rows of 4 KiB
  or more (kernels.cpp: every op and walk, rows of 1 KiB; primitives.py's Note on streaming).

[Note: fastmath]
We promise IEEE results at inf and NaN, so no function assumes them away (no ``nnan``/``ninf``).
The row sums (`vector_loops.make_fold_sum`) have ``reassoc``, which lets LLVM split them into
vector lanes, as vector_loops.hpp does by hand: the order of a sum changes its rounding, not
whether it is inf or NaN. `vec_exp.exp` has ``contract`` (FMA), which only removes roundings.
Nothing else has flags: ``reassoc`` on ``(x - max) - lse`` would be free to round ``max + lse``
first.
"""

from __future__ import annotations

from .fast_path import (
    try_log_softmax,
    try_log_softmax_backward,
    try_softmax,
    try_softmax_backward,
    try_softmax_jvp,
)
from .kernels import (
    log_softmax,
    log_softmax_backward,
    log_softmax_given,
    logsumexp,
    row_partials,
    softmax,
    softmax_backward,
    softmax_given,
    softmax_jvp,
)

__all__ = [
    "log_softmax",
    "log_softmax_backward",
    "log_softmax_given",
    "logsumexp",
    "row_partials",
    "softmax",
    "softmax_backward",
    "softmax_given",
    "softmax_jvp",
    "try_log_softmax",
    "try_log_softmax_backward",
    "try_softmax",
    "try_softmax_backward",
    "try_softmax_jvp",
]
