"""The operation table (tests/support/operations.py) against the public API it describes."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import fastsoftmax as fsm
from support import reference
from support.operations import OPERATIONS


def _computing_functions() -> set[str]:
    """The public functions that compute along an axis."""
    functions = {name: getattr(fsm, name) for name in fsm.__all__}
    return {
        name
        for name, function in functions.items()
        if callable(function) and "axis" in inspect.signature(function).parameters
    }


# Functions with a result of another shape than x's, which the table's generic tests cannot
# take yet (its Note on the kinds to come), and the file that tests each instead.
OWN_TEST_FILES = {
    "logsumexp": "test_logsumexp.py",
    "softmax_jacobian": "test_jacobian.py",
    "log_softmax_jacobian": "test_jacobian.py",
    "softmax_cross_entropy": "test_cross_entropy.py",
}


def test_every_public_function_has_an_entry():
    assert set(OPERATIONS) | set(OWN_TEST_FILES) == _computing_functions()
    assert not set(OPERATIONS) & set(OWN_TEST_FILES)
    for file in OWN_TEST_FILES.values():
        assert (Path(__file__).parent / file).is_file(), file


def test_operands_are_the_parameters_in_order():
    """The table calls with the operands positionally, so they must be the leading parameters."""
    for name, op in OPERATIONS.items():
        parameters = list(inspect.signature(op.function).parameters)
        assert parameters[: len(op.operands)] == [operand.name for operand in op.operands], name
        assert parameters[len(op.operands)] == "axis", name
        assert set(op.out_may_alias) <= set(parameters[: len(op.operands)]), name
        if op.returns_softmax:
            assert "return_softmax" in parameters, name


def test_saved_inputs_come_from_forwards_in_the_table():
    """A backward's saved input names an earlier entry with one operand (tests that make the
    saved input from the forward's result walk the table in order)."""
    order = list(OPERATIONS)
    for name, op in OPERATIONS.items():
        for operand in op.operands:
            if operand.saved_from is not None:
                forward = OPERATIONS[operand.saved_from]
                assert len(forward.operands) == 1, name
                assert order.index(operand.saved_from) < order.index(name), name


def test_the_reference_is_independent_of_the_package():
    """It states the formulas again: it imports nothing of the package it checks."""
    tree = ast.parse(Path(reference.__file__).read_text())
    imported = {
        alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for alias in node.names
    }
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not any(module.split(".")[0] == "fastsoftmax" for module in imported), imported
