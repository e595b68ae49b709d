"""The load/store layer: the same view, load or store of every operand a call has.

A kernel holds its operands as two tuples, the inputs (``x``, or ``x`` and ``g``) and the
outputs (``out``, or ``out`` and ``s``), as the operation declares them (operations.py); an
operand the operation does not have is not there. The functions here map one view or one
element access over such a tuple, whatever its length, so that the walks and the operations'
loops name no operand: a new kind of operand is a new view here. Each is generated for the
tuple's length when a caller is compiled.

[Note: the mask]
A call with ``where`` has it as its last input, a boolean array read through its own strides:
never copied, a broadcast mask keeps its zero strides. Its block has the walk's trailing
dimensions (N, or N and K) after as many leading ones as its strides need to stay a view
(`kernels.kernel_mask`): a (512, 512) causal mask broadcast to (8, 12, 512, 512) gives the
rows walk a (96, 512, 512) block of strides (0, 512, 1) for x's (49152, 512) rows. Its views
unravel a row or block index over those leading dimensions. Loads leave it out (`values_at`);
`mask_of` gives it, and `kept` chooses by it between a value and its fill. Without a mask
`mask_of` is None and `kept` the value itself, so the unmasked loops compile as before.

[Note: per-row inputs]
An input with one value per row (softmax_given's row_max and row_sum) is held with x's block
shape and a zero stride along the axis (`kernels.row_input`), as cpp/src's per-row roles are:
every view here takes its rows, slices and tiles as it takes x's, and every element of a row
loads the row's value, a row's first element as well as any slice's. So nothing here or in
the walks names it; only a block of rows (`_block_rows`) cannot reshape its strided view and
slices it instead. Per-row outputs are not viewed so: each row's one element is stored once,
``(rows, 1)`` or ``(M, 1, K)`` (operations.py's ``per_row``).
"""

from __future__ import annotations

import numpy as np
from numba import types
from numba.extending import overload
from numba.np.numpy_support import as_dtype

from .primitives import copy_into, row, tile_row


def _block_rows(a, i, j0, j1):
    """Rows [j0, j1) of block i of ``a`` as a (1, rows, K) block: C-contiguous for a
    C-contiguous ``a`` (``a[i : i + 1, j0:j1]`` would lose the contiguous layout, and LLVM's
    vectorising with it: 4x slower), that slice for a per-row input's zero-stride block (the
    Note on them). Of a per-row output's (M, 1, K) block, the slice that starts the rows holds
    its one row, others none."""
    raise NotImplementedError


@overload(_block_rows)
def _overload_block_rows(a, i, j0, j1):
    if not isinstance(a, types.Array):
        return None
    if a.layout != "C":
        return lambda a, i, j0, j1: a[i : i + 1, j0:j1]

    def contiguous(a, i, j0, j1):
        rows = a[i, j0:j1]
        return rows.reshape((1, rows.shape[0], a.shape[2]))

    return contiguous


def _is_mask(t) -> bool:
    return isinstance(t, types.Array) and isinstance(t.dtype, types.Boolean)


def _mapped(name: str, parameters: str, each: str, doc: str):
    """A function of ``(operands, <parameters>)`` returning the tuple of ``each`` (an expression
    of ``{a}``, one operand) over the operands, callable from compiled code; a mask's item is
    its own view, from _MASK_VIEWS (``""``: none), when the view is not ``each``'s."""
    namespace = {
        "np": np,
        "row": row,
        "tile_row": tile_row,
        "block_rows": _block_rows,
        "mask_row": _mask_row,
        "mask_item": _mask_item,
        "mask_tile": _mask_tile,
        "mask_block": _mask_block,
    }
    mask = _MASK_VIEWS.get(name, each)

    def implementation(operands):
        if not isinstance(operands, types.BaseTuple):
            return None
        items = ""
        for n, t in enumerate(operands):
            expression = mask if _is_mask(t) else each
            items += expression.format(a=f"operands[{n}]") + ", " if expression else ""
        source = f"def {name}_of(operands, {parameters}):\n    return ({items})"
        return _define(source, namespace)

    stub = _define(f"def {name}(operands, {parameters}):\n    raise NotImplementedError", {})
    stub.__doc__ = doc
    typer = f"def typer(operands, {parameters}):\n    return implementation(operands)"
    overload(stub)(_define(typer, {"implementation": implementation}))
    return stub


def _outer_view(name: str, trailing: int, borrowed: bool):
    """``a[i0, ..., ip]`` of a mask: its ``trailing`` last dimensions at index i unravelled over
    the leading ones (the last fastest); ``borrowed`` views hold no reference (primitives.py's
    Note on borrowed rows), for functions compiled without ``parallel=True``."""
    stub = _define(f"def {name}(a, i):\n    raise NotImplementedError", {})

    def implementation(a, i):
        leading = a.ndim - trailing
        lines = "".join(
            f"    i{d} = i % a.shape[{d}]\n    i = i // a.shape[{d}]\n"
            for d in range(leading - 1, 0, -1)
        )
        names = ["i", *(f"i{d}" for d in range(1, leading))]
        view = f"a[{', '.join(names)}]"
        if borrowed:
            view = "a"
            for index in names:
                view = f"row({view}, {index})"
        return _define(f"def {name}_of(a, i):\n{lines}    return {view}", {"row": row})

    overload(stub)(implementation)
    return stub


def _define(source: str, namespace: dict):
    """The one function ``source`` defines, its globals ``namespace``."""
    scope = dict(namespace)
    exec(source, scope)
    (function,) = (v for k, v in scope.items() if k not in namespace and k != "__builtins__")
    return function


_mask_row = _outer_view("mask_row", 1, True)
_mask_item = _outer_view("mask_item", 1, False)
_mask_tile = _outer_view("mask_tile", 2, True)
_mask_block = _outer_view("mask_block", 2, False)
# A mask's views, by the name of the function that maps them: its rows, tiles and blocks are
# found by unravelling, and loads leave it out.
_MASK_VIEWS = {
    "rows_at": "mask_row({a}, r)",
    "items_at": "mask_item({a}, r)",
    "values_at": "",
    "tile_rows_at": "row(mask_tile({a}, i), j)[k0:k1]",
    "block_rows_at": "mask_block({a}, i)[j0:j1][np.newaxis]",
    "columns_at": "mask_tile({a}, i)[:, k].copy()",
}

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


def mask_of(inputs):
    """The mask of the inputs (operands.py's Note on the mask), or None."""
    raise NotImplementedError


@overload(mask_of)
def _mask_of(inputs):
    if not isinstance(inputs, types.BaseTuple):
        return None
    if len(inputs) and _is_mask(inputs[len(inputs) - 1]):
        return _define(f"def mask_of_last(inputs):\n    return inputs[{len(inputs) - 1}]", {})
    return lambda inputs: None


def kept(where, i, value, fill):
    """``value`` where the mask row ``where`` keeps entry i, always without a mask (None), else
    ``fill`` in value's types; ``value`` and ``fill`` are scalars or tuples of one length."""
    raise NotImplementedError


@overload(kept)
def _kept(where, i, value, fill):
    if isinstance(where, types.NoneType):
        return lambda where, i, value, fill: value
    if not _is_mask(where):
        return None
    if not isinstance(value, types.BaseTuple):
        cast = as_dtype(value).type
        return lambda where, i, value, fill: value if where[i] else cast(fill)
    casts = {f"cast{n}": as_dtype(t).type for n, t in enumerate(value)}
    items = "".join(f"value[{n}] if keep else cast{n}(fill[{n}]), " for n in range(len(value)))
    source = f"def kept_items(where, i, value, fill):\n    keep = where[i]\n    return ({items})"
    return _define(source, casts)


def store_at(outputs, i, values):
    """``outputs[n][i] = values[n]`` for each output: the stores."""
    raise NotImplementedError


@overload(store_at)
def _store_at(outputs, i, values):
    if not isinstance(outputs, types.BaseTuple):
        return None
    lines = "".join(f"    outputs[{n}][i] = values[{n}]\n" for n in range(len(outputs)))
    return _define(f"def store_each(outputs, i, values):\n{lines}", {})


def with_first(operands, first):
    """The operands with ``first`` in place of the first (a private buffer for an output)."""
    raise NotImplementedError


@overload(with_first)
def _with_first(operands, first):
    if not isinstance(operands, types.BaseTuple):
        return None
    items = "".join(f"operands[{n}], " for n in range(1, len(operands)))
    return _define(f"def with_first_of(operands, first):\n    return (first, {items})", {})


def scatter_columns(outputs, i, k, rows):
    """``outputs[n][i, :, k] = rows[n]`` for each output: `columns_at` written back."""
    raise NotImplementedError


@overload(scatter_columns)
def _scatter_columns(outputs, i, k, rows):
    if not isinstance(outputs, types.BaseTuple):
        return None
    lines = "".join(
        f"    copy_into(outputs[{n}][i, :, k], rows[{n}])\n" for n in range(len(outputs))
    )
    return _define(f"def scatter_each(outputs, i, k, rows):\n{lines}", {"copy_into": copy_into})
