"""The load/store layer: the same view, load or store of every operand a call has.

A kernel holds its operands as two tuples, the inputs (``x``, or ``x`` and ``g``) and the
outputs (``out``, or ``out`` and ``s``), as the operation declares them (operations.py); an
operand the operation does not have is not there. The functions here map one view or one
element access over such a tuple, whatever its length, so that the walks and the operations'
loops name no operand: a new kind of operand (a mask read through its own strides, a per-row
scalar) is a new view here. Each is generated for the tuple's length when a caller is compiled.
"""

from __future__ import annotations

from numba import njit, types
from numba.extending import overload

from .primitives import row, tile_row


@njit(nogil=True)
def _block_rows(a, i, j0, j1):
    """Rows [j0, j1) of block i of ``a`` as a C-contiguous (1, rows, K) block (``a[:, j0:j1]``
    would lose the contiguous layout, and LLVM's vectorising with it: 4x slower). Of a per-row
    output's (M, 1, K) block, the slice that starts the rows holds its one row, others none."""
    rows = a[i, j0:j1]
    return rows.reshape((1, rows.shape[0], a.shape[2]))


def _mapped(name: str, parameters: str, each: str, doc: str):
    """A function of ``(operands, <parameters>)`` returning the tuple of ``each`` (an expression
    of ``{a}``, one operand) over the operands, callable from compiled code."""
    namespace = {"row": row, "tile_row": tile_row, "block_rows": _block_rows}

    def implementation(operands):
        if not isinstance(operands, types.BaseTuple):
            return None
        items = "".join(each.format(a=f"operands[{n}]") + ", " for n in range(len(operands)))
        return _define(f"def impl(operands, {parameters}):\n    return ({items})", namespace)

    stub = _define(f"def {name}(operands, {parameters}):\n    raise NotImplementedError", {})
    stub.__doc__ = doc
    typer = f"def typer(operands, {parameters}):\n    return implementation(operands)"
    overload(stub)(_define(typer, {"implementation": implementation}))
    return stub


def _define(source: str, namespace: dict):
    """The one function ``source`` defines, its globals ``namespace``."""
    scope = dict(namespace)
    exec(source, scope)
    (function,) = (v for k, v in scope.items() if k not in namespace and k != "__builtins__")
    return function


rows_at = _mapped("rows_at", "r", "row({a}, r)", "Row r of each, holding no reference.")
items_at = _mapped("items_at", "r", "{a}[r]", "``a[r]`` of each (in functions run under prange).")
slices_of = _mapped("slices_of", "start, stop", "{a}[start:stop]", "Each contiguous row, sliced.")
values_at = _mapped("values_at", "i", "{a}[i]", "Element i of each contiguous row: the loads.")
tile_rows_at = _mapped(
    "tile_rows_at", "i, j, k0, k1", "tile_row({a}, i, j, k0, k1)", "Row j of tile (i, k0, k1)."
)
block_rows_at = _mapped(
    "block_rows_at", "i, j0, j1", "block_rows({a}, i, j0, j1)", "Rows [j0, j1) of block i."
)
reshaped = _mapped("reshaped", "shape", "{a}.reshape(shape)", "Each, reshaped.")
columns_at = _mapped(
    "columns_at", "i, k", "{a}[i, :, k].copy()", "Column k of block i, as contiguous copies."
)


def store_at(outputs, i, values):
    """``outputs[n][i] = values[n]`` for each output: the stores."""
    raise NotImplementedError


@overload(store_at)
def _store_at(outputs, i, values):
    if not isinstance(outputs, types.BaseTuple):
        return None
    lines = "".join(f"    outputs[{n}][i] = values[{n}]\n" for n in range(len(outputs)))
    return _define(f"def impl(outputs, i, values):\n{lines}", {})


def with_first(operands, first):
    """The operands with ``first`` in place of the first (a private buffer for an output)."""
    raise NotImplementedError


@overload(with_first)
def _with_first(operands, first):
    if not isinstance(operands, types.BaseTuple):
        return None
    items = "".join(f"operands[{n}], " for n in range(1, len(operands)))
    return _define(f"def impl(operands, first):\n    return (first, {items})", {})


def scatter_columns(outputs, i, k, rows):
    """``outputs[n][i, :, k] = rows[n]`` for each output: `columns_at` written back."""
    raise NotImplementedError


@overload(scatter_columns)
def _scatter_columns(outputs, i, k, rows):
    if not isinstance(outputs, types.BaseTuple):
        return None
    lines = "".join(f"    outputs[{n}][i, :, k] = rows[{n}]\n" for n in range(len(outputs)))
    return _define(f"def impl(outputs, i, k, rows):\n{lines}", {})
