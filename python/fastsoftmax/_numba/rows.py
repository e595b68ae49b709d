"""The row kernels (cpp/src/rows.hpp) of one operation: one contiguous row, or a slice of one
when threads share a long row, in two passes (the max and the sums, then the outputs), and the
operation's limit for rows whose maximum is not finite.

A row is the tuple of its inputs' and outputs' rows (operands.py); `make_row_kernels` makes
the kernels of one operation (operations.py), which they know only through its pieces.
"""

from __future__ import annotations

from types import SimpleNamespace

from .operands import kept, mask_of, slices_of, store_at, values_at
from .primitives import LINE_BYTES, inner, is_finite, prefer_wide_vectors, stream_copy
from .vector_loops import make_row_sums, store_exp

# [Note: aliasing]
# LLVM vectorises a loop that reads one array and writes another only after a run-time check
# that they do not overlap; an output that *is* its input fails the check and the loop runs
# scalar, 4x slower. So no kernel loop writes an array it also reads through a second name:
# the rows walk gives a row whose output is an input a private buffer, the columns walk gets
# such outputs as scratch arrays from `run`. ``s`` of softmax_jvp is written only after ``x``
# was last read, so it may be ``x``; exp(x - max) is kept in ``out``.
#
# [Note: deterministic sums]
# The check can also fail for arrays that merely lie close together: LLVM compares the
# distance between the pointers with the loop's vector step, not their extents. A loop that
# stored exp(x - m) and summed it in one went scalar then, and its reassociated sum came out
# in another order: the same call rounded its last bit differently from one allocation of
# the arrays to the next (softmax_jvp in place against out=None, once in a few runs). So no
# loop that sums also stores: exps are stored, then summed by a loop that only reads.


def make_row_kernels(op) -> SimpleNamespace:
    """The row kernels of operation ``op``: ``first_pass``, ``output``, ``row_op`` and
    ``streamed_output``."""
    row_max, derive, element, limit = op.reduction.row_max, op.derive, op.element, op.limit
    keeps_exp, masked = op.keeps_exp, op.masked
    jit, helper = inner(op.name), inner(op.name, inline=True)
    row_sums = op.reduction.row_sums or make_row_sums(op.terms)
    if op.per_row:  # its terms see no outputs: they have one element a row
        all_sums = row_sums
        row_sums = helper(lambda ins, outs, m: all_sums(ins, (), m))
    no_sums = (0.0,) * len(op.terms)

    @helper
    def first_pass(ins, outs):
        """``(m, sums)`` of a row or a slice of one: its maximum (0 for a plain reduction) and
        the float64 sums; nothing past the max when it is not finite."""
        x = ins[0]
        m = row_max(ins)
        if not is_finite(m):
            return m, no_sums
        if keeps_exp:
            store_exp(x, m, outs[0])
        return m, row_sums(ins, outs, m)

    def elementwise_output(ins, outs, m, constants):
        """The outputs of a row or a slice of one: the element step, loaded and stored (the
        masked outputs where the mask leaves an entry out)."""
        prefer_wide_vectors()
        where = mask_of(ins)
        for i in range(ins[0].shape[0]):
            values = element(values_at(ins, i), values_at(outs, i), m, constants)
            store_at(outs, i, kept(where, i, values, masked))

    def per_row_output(ins, outs, m, constants):
        """The per-row outputs of a row, by the slice that starts it (the others' are empty)."""
        if outs[0].shape[0]:
            store_at(outs, 0, element((), (), m, constants))

    output = helper(per_row_output) if op.per_row else jit(elementwise_output)

    @helper
    def row_op(ins, outs):
        m, sums = first_pass(ins, outs)
        if not is_finite(m):
            limit(ins, outs)
            return
        output(ins, outs, m, derive(sums, 1.0, ins[0]))

    @jit
    def streamed_output(ins, outs, m, constants, chunk):
        """`output` of a one-output row, its whole cache lines through ``chunk`` and
        `stream_copy`, the part before the first line and after the last stored normally."""
        out = outs[0]
        n, line = out.shape[0], LINE_BYTES // out.itemsize
        done = min(n, (LINE_BYTES - out.ctypes.data % LINE_BYTES) % LINE_BYTES // out.itemsize)
        output(slices_of(ins, 0, done), slices_of(outs, 0, done), m, constants)
        while n - done >= line:
            count = min(chunk.shape[0], (n - done) // line * line)
            end = done + count
            output(slices_of(ins, done, end), (chunk[:count],), m, constants)
            stream_copy(out[done:end], chunk, count)
            done = end
        output(slices_of(ins, done, n), slices_of(outs, done, n), m, constants)

    return SimpleNamespace(
        first_pass=first_pass, output=output, row_op=row_op, streamed_output=streamed_output
    )
