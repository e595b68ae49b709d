"""The columns kernels (cpp/src/columns.hpp) of one operation: the axis is not the contiguous
dimension, so a tile of N rows by W contiguous columns is processed with the loops running
across the columns; each column is a softmax row. A tile ``t = (i, k0, k1)`` is rows 0..N of
columns k0..k1 at index i of M. Here no output is an input (rows.py's Note on aliasing).
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from .operands import (
    columns_at,
    kept,
    mask_of,
    scatter_columns,
    store_at,
    tile_rows_at,
    values_at,
)
from .primitives import inner, is_finite, prefer_wide_vectors
from .vector_loops import make_column_sums


def _make_column_items(count: int):
    """``(a[0, c], ..., a[count - 1, c])``: one column's constants as the tuple `element`
    takes."""
    if count == 1:
        return inner("1")(lambda a, c: (a[0, c],))
    rest = _make_column_items(count - 1)
    return inner(str(count))(lambda a, c: (*rest(a, c), a[count - 1, c]))


def make_tile_kernels(op, row_op) -> SimpleNamespace:
    """The tile kernels of operation ``op`` (``row_op``, its row kernel, for the columns whose
    maximum is not finite): ``first_pass``, ``constants``, ``output``, ``tile_op`` and
    ``gathered_row``."""
    column_max, combine = op.reduction.column_max, op.reduction.combine
    derive, element, masked = op.derive, op.element, op.masked
    count = len(op.terms)
    # How many constants the operation derives (its `derive` run once in Python).
    constant_count = len(derive.py_func(np.ones(count), 1.0, np.ones(1)))
    column_sums = op.reduction.column_sums or make_column_sums(op.terms, op.keeps_exp)
    column_items = _make_column_items(constant_count)
    jit, helper = inner(op.name), inner(op.name, inline=True)
    if op.per_row:  # its terms see no outputs: they have one element a row
        all_columns = column_sums
        column_sums = helper(lambda ins, outs, m, t: all_columns(ins, (), m, t))

    @jit
    def first_pass(ins, outs, t):
        """``(finite, m, sums)`` of tile ``t``, per column: the maxima and ``sums[s, c]``;
        ``finite`` is False when a maximum is not finite (redo the tile column by column)."""
        m = column_max(ins, t)
        for c in range(m.shape[0]):
            if not is_finite(m[c]):
                return False, m, np.zeros((count, m.shape[0]))
        return True, m, column_sums(ins, outs, m, t)

    @jit
    def constants(totals, rescale, like):
        """``constants[n, c]``: the operation's constants of each column, for a slice whose
        ``e`` the factors ``rescale[c]`` bring to the combined maxima."""
        result = np.empty((constant_count, totals.shape[1]), like.dtype)
        for c in range(totals.shape[1]):
            column = derive(totals[:, c], rescale[c], like)
            for n in range(constant_count):
                result[n, c] = column[n]
        return result

    def elementwise_output(ins, outs, t, m, constants):
        """The outputs of tile ``t``: the element step, loaded and stored, across each row (the
        masked outputs where the mask leaves an entry out)."""
        prefer_wide_vectors()
        i, k0, k1 = t
        for j in range(ins[0].shape[1]):
            in_rows, out_rows = tile_rows_at(ins, i, j, k0, k1), tile_rows_at(outs, i, j, k0, k1)
            where = mask_of(in_rows)
            for c in range(k1 - k0):
                values = element(
                    values_at(in_rows, c), values_at(out_rows, c), m[c], column_items(constants, c)
                )
                store_at(out_rows, c, kept(where, c, values, masked))

    def per_row_output(ins, outs, t, m, constants):
        """The per-row outputs of tile ``t``'s columns, by the slice of rows that starts it."""
        i, k0, k1 = t
        if outs[0].shape[1]:
            out_rows = tile_rows_at(outs, i, 0, k0, k1)
            for c in range(k1 - k0):
                store_at(out_rows, c, element((), (), m[c], column_items(constants, c)))

    output = jit(per_row_output if op.per_row else elementwise_output)

    @helper
    def tile_op(ins, outs, t):
        """The operation on tile ``t``; False when a column's max is not finite."""
        finite, m, sums = first_pass(ins, outs, t)
        if not finite:
            return False
        m, totals, rescale = combine(m.reshape(1, -1), sums.reshape(1, count, -1))
        output(ins, outs, t, m, constants(totals, rescale[0], m))
        return True

    @helper
    def gathered_row(ins, outs, i, k):
        """Column k of block i through contiguous copies, for a column whose max is not
        finite."""
        row_outs = columns_at(outs, i, k)
        row_op(columns_at(ins, i, k), row_outs)
        scatter_columns(outs, i, k, row_outs)

    return SimpleNamespace(
        first_pass=first_pass,
        constants=constants,
        output=output,
        tile_op=tile_op,
        gathered_row=gathered_row,
    )
