"""A pytest plugin that runs SciPy's own tests of softmax, log_softmax and logsumexp on ours.

    PYTHONPATH=tests python -m pytest -p support.scipy_suite \
        --pyargs scipy.special.tests.test_logsumexp

It puts fastsoftmax's functions in place of ``scipy.special``'s for the run, with SciPy's
signatures and defaults (``axis=None``: ours default to the last axis), and gives them the array-API
capabilities SciPy's test decorators look up for the originals. Complex input is outside our
contract (a TypeError): the cases that pass complex values are deselected here, and so is
`KNOWN_DIFFERENCES`, each with its reason.
"""

from __future__ import annotations

import functools

import fastsoftmax as fsm
import numpy as np
import scipy.special
from scipy._lib import _array_api

# Tests whose expectation is not ours, with the reason.
KNOWN_DIFFERENCES = {
    # logsumexp([0, -40]) is 4.2e-18; ours gives 0. Our bound is absolute near 0,
    # (|lse| + 8) u (docs/accuracy.md), which 0 meets; SciPy keeps the relative accuracy there
    # by summing the terms other than the maximum apart (log1p).
    "test_gh18295",
}

# SciPy's positional parameters after ``axis``, which ours take by keyword.
_POSITIONAL = {
    "softmax": (),
    "log_softmax": (),
    "logsumexp": ("b", "keepdims", "return_sign"),
}


def _with_scipy_signature(name: str):
    ours = getattr(fsm, name)

    @functools.wraps(ours)
    def call(x, axis=None, *args, **kwargs):
        if len(args) > len(_POSITIONAL[name]):
            raise TypeError(
                f"{name}() takes at most {len(_POSITIONAL[name]) + 2} positional arguments"
            )
        kwargs.update(zip(_POSITIONAL[name], args, strict=False))
        return ours(x, axis=axis, **kwargs)

    return call


def pytest_configure(config) -> None:
    table = _array_api.xp_capabilities_table
    for name in _POSITIONAL:
        original = getattr(scipy.special, name)
        replacement = _with_scipy_signature(name)
        table[replacement] = table[original]
        setattr(scipy.special, name, replacement)


def _is_complex(value: object) -> bool:
    if isinstance(value, complex | np.complexfloating):
        return True
    if isinstance(value, str):
        return value.startswith("complex")
    if isinstance(value, np.dtype | type):
        try:
            return np.issubdtype(value, np.complexfloating)
        except TypeError:
            return False
    return isinstance(value, np.ndarray | list | tuple) and bool(np.iscomplexobj(value))


def pytest_collection_modifyitems(config, items) -> None:
    keep, drop = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        name = getattr(item, "originalname", item.name)
        complex_case = "complex" in name or "imaginary" in name
        complex_case = complex_case or any(_is_complex(v) for v in params.values())
        (drop if complex_case or name in KNOWN_DIFFERENCES else keep).append(item)
    config.hook.pytest_deselected(items=drop)
    items[:] = keep
