"""The C++ module's fast path (cpp/src/module.cpp, Note "the fast path") against the full path.

``backend=None`` with the C++ default goes through ``_core.try_<op>``, which computes only plain
calls and returns None for every other; ``backend="cpp"`` always takes the Python layer. Each
case below is built fresh for each run, runs both ways and must give the same bits, or the same
exception; and the fast path must take exactly the calls it claims.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import pytest
from conftest import CORE, make_inputs
from fastsoftmax import _api

pytestmark = pytest.mark.skipif(not _api._FAST, reason="the C++ backend is not the default")

Build = Callable[[], tuple[tuple, dict]]


class Sub(np.ndarray):
    pass


def _read_only(a: np.ndarray) -> np.ndarray:
    a.flags.writeable = False
    return a


def _misaligned(like: np.ndarray) -> np.ndarray:
    raw = np.empty(like.nbytes + 1, np.uint8)
    return raw[1:].view(like.dtype).reshape(like.shape)


def _overlapping(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(a copy of ``a``, an array of its shape one element further along the same buffer)."""
    base = np.empty(a.size + 1, a.dtype)
    base[1:] = a.reshape(-1)
    return base[1:].reshape(a.shape), base[:-1].reshape(a.shape)


def _cases(name: str) -> Iterator[tuple[str, Build, bool]]:
    """(label, a builder of fresh (inputs, kwargs), whether the fast path takes the call)."""
    rng = np.random.default_rng(3)
    inputs = make_inputs(name, (4, 37), np.dtype(np.float32), rng)
    wide = make_inputs(name, (4, 37), np.dtype(np.float64), rng)
    cube = make_inputs(name, (2, 3, 5), np.dtype(np.float32), rng)
    binary = len(inputs) == 2

    def with_inputs(arrays: tuple, kwargs: Callable[[tuple], dict] = lambda a: {}) -> Build:
        def build() -> tuple[tuple, dict]:
            fresh = tuple(np.array(a, copy=True, subok=True) for a in arrays)
            return fresh, kwargs(fresh)

        return build

    def overlapping_out(which: int) -> Build:
        def build() -> tuple[tuple, dict]:
            fresh = [np.array(a, copy=True) for a in inputs]
            fresh[which], out = _overlapping(fresh[which])
            return tuple(fresh), {"out": out}

        return build

    yield "plain", with_inputs(inputs), True
    yield "float64", with_inputs(wide), True
    yield "axis 0", with_inputs(inputs, lambda a: {"axis": 0}), True
    yield "axis -2", with_inputs(inputs, lambda a: {"axis": -2}), True
    yield "3-d", with_inputs(cube, lambda a: {"axis": 1}), True
    yield "out separate", with_inputs(inputs, lambda a: {"out": np.empty_like(a[0])}), True
    yield "out is the first input", with_inputs(inputs, lambda a: {"out": a[0]}), True
    yield "out is the last input", with_inputs(inputs, lambda a: {"out": a[-1]}), True
    f_out = with_inputs(inputs, lambda a: {"out": np.asfortranarray(np.empty_like(a[0]))})
    yield "out F-ordered", f_out, True
    yield "F-ordered input, no out", with_inputs(tuple(map(np.asfortranarray, inputs))), False
    yield "float16", with_inputs(tuple(a.astype(np.float16) for a in inputs)), False
    yield "int", with_inputs(tuple((10 * a).astype(np.int64) for a in inputs)), False
    yield "byte-swapped", with_inputs(tuple(a.astype(">f4") for a in inputs)), False
    yield "subclass", with_inputs(tuple(a.view(Sub) for a in inputs)), False
    yield "empty", with_inputs(tuple(a[:0] for a in inputs)), False
    yield "0-d", with_inputs(tuple(a[0, 0].reshape(()) for a in inputs)), False
    yield "axis bool", with_inputs(inputs, lambda a: {"axis": True}), False
    yield "axis numpy int", with_inputs(inputs, lambda a: {"axis": np.int64(-1)}), False
    yield "axis out of range", with_inputs(inputs, lambda a: {"axis": 2}), False
    yield "axis huge", with_inputs(inputs, lambda a: {"axis": 2**80}), False
    read_only = with_inputs(inputs, lambda a: {"out": _read_only(np.empty_like(a[0]))})
    yield "out read-only", read_only, False
    yield "out float64", with_inputs(inputs, lambda a: {"out": np.empty(a[0].shape)}), False
    yield (
        "out wrong shape",
        with_inputs(inputs, lambda a: {"out": np.empty_like(a[0][:, 1:])}),
        False,
    )
    yield (
        "out subclass",
        with_inputs(inputs, lambda a: {"out": np.empty_like(a[0]).view(Sub)}),
        False,
    )
    yield "out misaligned", with_inputs(inputs, lambda a: {"out": _misaligned(a[0])}), False
    yield "out overlaps the first input", overlapping_out(0), False
    if binary:
        yield "out overlaps the second input", overlapping_out(1), False
        yield "mixed dtypes", with_inputs((inputs[0], wide[1])), False
        yield "shapes differ", with_inputs((inputs[0], inputs[1][:, :5])), False


def _run(name: str, build: Build, backend: str | None) -> tuple:
    inputs, kwargs = build()
    try:
        result = getattr(_api, name)(*inputs, backend=backend, **kwargs)
    except Exception as error:  # the exception itself is what is compared
        return type(error), str(error)
    returned_out = "out" in kwargs and result is kwargs["out"]
    return np.array(result, copy=True), returned_out


@pytest.mark.parametrize(
    "name", ["softmax", "log_softmax", "softmax_backward", "log_softmax_backward"]
)
def test_fast_path_matches_the_python_layer(name):
    for label, build, fast in _cases(name):
        fast_result = _run(name, build, None)
        full_result = _run(name, build, "cpp")
        if isinstance(full_result[0], type):
            assert fast_result == full_result, label
        else:
            np.testing.assert_array_equal(fast_result[0], full_result[0], err_msg=label)
            assert fast_result[0].dtype == full_result[0].dtype, label
            assert fast_result[1] == full_result[1], label  # out= returned as itself
        inputs, kwargs = build()
        taken = getattr(CORE, "try_" + name)(*inputs, kwargs.get("out"), kwargs.get("axis", -1), 1)
        assert (taken is not None) == fast, label
