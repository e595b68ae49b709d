"""The operation table: what the generic tests know about each public function.

The generic tests are parametrised over ``FUNCTIONS`` (the table's keys) and never name an
operation: they ask its entry how to make its inputs, how to call it, what to expect and what
``out=`` may be. An entry, with its reference in ``support.reference`` and its tolerance rule in
``support.tolerances``, puts a new public function through the values, layouts, ``out=`` and
aliasing, dtypes, threads, fuzz, SIMD-level, streaming and memory tests and the generic
edge-case and bad-input tests. What is particular to one function stays in its own tests.

An `Operation` holds:

- the public function's name;
- its operands in the order the function takes them (a backward takes the saved output, then
  the gradient), each an `Operand`: its parameter name (the one error messages use), its
  `Role` and its `Kind`;
- its float64 reference, called with the operands in that order and the axis;
- its tolerance rule: (reference value, operands, axis, compute dtype) to an `Expected`;
- the operands ``out=`` may be (in place);
- the `Kind` of its result, and whether ``return_softmax=True`` adds the softmax;
- for test_fuzz: the integers a forward's result can hold (a backward's saved input given as
  integers), and the allowance for intermediates that underflow.

[Note: the kinds to come]
Every operand and result is ``Kind.FULL`` today. A ``where=`` mask is an operand of a new role
and kind (a boolean array broadcast to x's shape, passed by keyword, never aliased by out=); a
per-row result (logsumexp's) is a result of a new kind whose shape is x's without the axis, so
that `Operation.result_shape` gives the shape every generic test makes its ``out`` with.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import fastsoftmax as fsm
import numpy as np

from . import reference, tolerances
from .tolerances import Expected, assert_matches


class Role(enum.Enum):
    """What an input is to the operation."""

    X = "x"  # the rows it reduces: logits, or the saved output of a forward (``saved_from``)
    G = "g"  # a second input of x's shape: the gradient (a backward) or the tangent (jvp)


class Kind(enum.Enum):
    """The shape of an operand or a result, relative to x's (see the Note on kinds to come)."""

    FULL = "full"  # x's shape, any layout, float (or integer or bool, computed in float64)


@dataclass(frozen=True)
class Operand:
    name: str  # the function's parameter: its error messages name the operand by it
    role: Role
    kind: Kind = Kind.FULL
    saved_from: str | None = None  # the forward whose output this input is (a backward's y)


@dataclass(frozen=True)
class Operation:
    name: str  # the public function, ``fsm.<name>``
    operands: tuple[Operand, ...]  # in the order the function takes them
    reference: Callable[..., np.ndarray]  # (*operands, axis) -> float64
    rule: Callable[[np.ndarray, tuple, int, np.dtype], Expected]  # (value, operands, axis, dtype)
    out_may_alias: tuple[str, ...]  # operands ``out=`` may be, computing in place
    result: Kind = Kind.FULL
    returns_softmax: bool = False  # return_softmax=True: (softmax, result), out=(s_out, out)
    # A forward: the integers its result can hold (inclusive), given as a backward's saved input.
    integer_results: tuple[int, int] | None = None
    # test_fuzz's allowance for intermediates that underflow: (operands, axis, dtype) -> tol.
    underflow: Callable[[tuple, int, np.dtype], np.ndarray] | None = None

    @property
    def function(self) -> Callable[..., object]:
        return getattr(fsm, self.name)

    @property
    def takes_logits(self) -> bool:
        """Its rows are logits (a forward or the jvp), not a saved output."""
        first = self.operands[0]
        return first.role is Role.X and first.saved_from is None

    @property
    def alias_positions(self) -> tuple[int, ...]:
        """The positions of the operands ``out=`` may be."""
        names = [operand.name for operand in self.operands]
        return tuple(names.index(name) for name in self.out_may_alias)

    def result_shape(self, shape: tuple[int, ...], axis: int) -> tuple[int, ...]:
        """The shape of the result (and of ``out``) for inputs of ``shape``."""
        assert self.result is Kind.FULL, self.result
        return shape


X = Operand("x", Role.X)
SAVED_SOFTMAX = Operand("y", Role.X, saved_from="softmax")
SAVED_LOG_SOFTMAX = Operand("y", Role.X, saved_from="log_softmax")
GRAD = Operand("grad", Role.G)
TANGENT = Operand("v", Role.G)

OPERATIONS: dict[str, Operation] = {
    op.name: op
    for op in (
        Operation(
            "softmax",
            (X,),
            reference.ref_softmax,
            tolerances.softmax_rule,
            out_may_alias=("x",),
            integer_results=(0, 1),  # one-hot
        ),
        Operation(
            "log_softmax",
            (X,),
            reference.ref_log_softmax,
            tolerances.log_softmax_rule,
            out_may_alias=("x",),
            integer_results=(-50, 0),
        ),
        Operation(
            "softmax_backward",
            (SAVED_SOFTMAX, GRAD),
            reference.ref_softmax_backward,
            tolerances.softmax_backward_rule,
            out_may_alias=("y", "grad"),
            underflow=tolerances.underflow_softmax_backward,
        ),
        Operation(
            "log_softmax_backward",
            (SAVED_LOG_SOFTMAX, GRAD),
            reference.ref_log_softmax_backward,
            tolerances.log_softmax_backward_rule,
            out_may_alias=("y", "grad"),
            underflow=tolerances.underflow_log_softmax_backward,
        ),
        Operation(
            "softmax_jvp",
            (X, TANGENT),
            reference.ref_softmax_jvp,
            tolerances.softmax_jvp_rule,
            out_may_alias=("x", "v"),
            returns_softmax=True,
            underflow=tolerances.underflow_softmax_jvp,
        ),
    )
}
FUNCTIONS = tuple(OPERATIONS)


def names(wanted: Callable[[Operation], bool]) -> tuple[str, ...]:
    """The functions whose entry has the property: ``names(lambda op: op.takes_logits)``."""
    return tuple(name for name, op in OPERATIONS.items() if wanted(op))


# --------------------------------------------------------------------------------------------
# Inputs, expected values, calls


def make_inputs(
    name: str, shape: tuple[int, ...], dtype: np.dtype, rng: np.random.Generator, axis: int = -1
) -> tuple[np.ndarray, ...]:
    """Realistic inputs of ``name``: logits ~ N(0, 3²), gradients and tangents ~ N(0, 1), and
    saved outputs from the reference of their forward applied to such logits."""
    op = OPERATIONS[name]
    x = (3 * rng.standard_normal(shape)).astype(dtype)
    inputs = [x]
    for operand in op.operands[1:]:
        assert operand.role is Role.G, operand
        inputs.append(rng.standard_normal(shape).astype(dtype))
    saved_from = op.operands[0].saved_from
    if saved_from is not None and x.size:
        inputs[0] = OPERATIONS[saved_from].reference(x, axis).astype(dtype)
    return tuple(inputs)


def expect(name: str, inputs: tuple[np.ndarray, ...], axis: int, dtype: np.dtype) -> Expected:
    """The reference value of ``name`` on ``inputs`` and its tolerance in ``dtype``."""
    op = OPERATIONS[name]
    return op.rule(op.reference(*inputs, axis), tuple(inputs), axis, dtype)


def call(name: str, *inputs: object, **kwargs: object) -> np.ndarray:
    return OPERATIONS[name].function(*inputs, **kwargs)


@contextlib.contextmanager
def unchanged(*arrays: np.ndarray, what: str = "input") -> Iterator[None]:
    """Assert the block leaves every array's contents exactly as they were (NaN included)."""
    copies = [np.array(a, copy=True) for a in arrays]
    yield
    for i, (a, c) in enumerate(zip(arrays, copies, strict=True)):
        assert a.dtype == c.dtype
        assert np.array_equal(a, c, equal_nan=True), f"{what} {i} was modified"


def check(
    name: str,
    inputs: tuple[np.ndarray, ...],
    axis: int,
    backend: str | None,
    dtype: np.dtype,
    what: str = "",
    widen: float = 1.0,
) -> np.ndarray:
    """Call ``name`` and check inputs untouched, result dtype/shape and values; return it."""
    with unchanged(*inputs):
        result = call(name, *inputs, axis=axis, backend=backend)
    # A 0-d input gives a NumPy scalar, as NumPy's ufuncs do; anything else an array.
    assert isinstance(result, np.generic if np.ndim(inputs[0]) == 0 else np.ndarray)
    assert result.dtype == dtype, (what, result.dtype)
    wanted = expect(name, inputs, axis, dtype).widened(widen)
    assert_matches(result, wanted, f"{name} {what}")
    return result
