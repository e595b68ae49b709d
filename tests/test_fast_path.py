"""The backends' fast paths (the Note in python/fastsoftmax/_backends.py) against the full path.

A call goes through ``try_<op>`` of its backend (the C++ module's, cpp/src/module.cpp, or the
Numba backend's), which computes only the calls it takes and returns None for every other. Each
case below is built fresh for each run, runs with the fast paths and without them, and must give
the same bits, or the same exception; and each fast path must take exactly the calls it claims.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import fastsoftmax as fsm
import numpy as np
import pytest
from fastsoftmax import _api, _backends
from support.operations import make_inputs

FAST_BACKENDS = [name for name in ("cpp", "numba") if name in fsm.available_backends()]
BOTH, CPP, NONE = frozenset(FAST_BACKENDS), frozenset({"cpp"}), frozenset()

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
    """(label, a builder of fresh (inputs, kwargs), the backends whose fast path takes it)."""
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

    yield "plain", with_inputs(inputs), BOTH
    yield "float64", with_inputs(wide), BOTH
    yield "axis 0", with_inputs(inputs, lambda a: {"axis": 0}), CPP
    yield "axis -2", with_inputs(inputs, lambda a: {"axis": -2}), CPP
    yield "3-d", with_inputs(cube, lambda a: {"axis": 1}), CPP
    # Axis tuples and None: the C++ fast path takes a run of adjacent axes that merge in every
    # operand (an F-ordered out's do not, but for one axis); for any other, _axes.try_fast
    # hands the fast paths merged views, or the Python layer takes the call.
    for axis, run in [((1, 2), CPP), ((0, 1), CPP), ((0, 2), NONE), ((2, 0, 1), CPP),
                      ((1,), CPP), (None, CPP), ((), NONE)]:  # fmt: skip
        yield f"3-d axis={axis}", with_inputs(cube, lambda a, axis=axis: {"axis": axis}), run
        yield (
            f"3-d axis={axis} out F-ordered",
            with_inputs(cube, lambda a, axis=axis: {"axis": axis, "out": np.asfortranarray(a[0])}),
            run if axis == (1,) else NONE,
        )
        yield (
            f"3-d axis={axis} in place",
            with_inputs(cube, lambda a, axis=axis: {"axis": axis, "out": a[-1]}),
            run,
        )

    def views(index: tuple) -> Build:
        def build() -> tuple[tuple, dict]:
            fresh = tuple(np.array(a, copy=True)[index] for a in cube)
            return fresh, {"axis": (1, 2), "out": np.empty(fresh[0].shape, fresh[0].dtype)}

        return build

    every_other = (slice(None), slice(None, None, -1), slice(None, None, 2))
    yield "3-d axis=(1, 2) of a view whose axes do not merge", views(every_other), NONE
    reversed_view = (slice(None), slice(None, None, -1), slice(None, None, -1))
    yield "3-d axis=(1, 2) of a reversed view (they merge)", views(reversed_view), CPP
    f_cube = tuple(np.asfortranarray(a) for a in cube)
    yield "F-ordered 3-d axis=(0, 1)", with_inputs(f_cube, lambda a: {"axis": (0, 1)}), NONE
    scalars = tuple(a[0, 0, 0].reshape(()) for a in cube)
    yield "0-d axis=None", with_inputs(scalars, lambda a: {"axis": None}), NONE
    yield "axis (0, 0)", with_inputs(cube, lambda a: {"axis": (0, 0)}), NONE
    yield "axis (0, 1.0)", with_inputs(cube, lambda a: {"axis": (0, 1.0)}), NONE
    yield "out separate", with_inputs(inputs, lambda a: {"out": np.empty_like(a[0])}), BOTH
    yield "out is the first input", with_inputs(inputs, lambda a: {"out": a[0]}), BOTH
    yield "out is the last input", with_inputs(inputs, lambda a: {"out": a[-1]}), BOTH
    yield "out a view of the first input", with_inputs(inputs, lambda a: {"out": a[0][:]}), BOTH
    f_out = with_inputs(inputs, lambda a: {"out": np.asfortranarray(np.empty_like(a[0]))})
    yield "out F-ordered", f_out, CPP
    yield "F-ordered input, no out", with_inputs(tuple(map(np.asfortranarray, inputs))), NONE
    # The C++ kernels take float16 as it is (they convert a few rows at a time).
    yield "float16", with_inputs(tuple(a.astype(np.float16) for a in inputs)), CPP
    yield "int", with_inputs(tuple((10 * a).astype(np.int64) for a in inputs)), NONE
    yield "byte-swapped", with_inputs(tuple(a.astype(">f4") for a in inputs)), NONE
    yield "subclass", with_inputs(tuple(a.view(Sub) for a in inputs)), NONE
    yield "empty", with_inputs(tuple(a[:0] for a in inputs)), NONE
    yield "0-d", with_inputs(tuple(a[0, 0].reshape(()) for a in inputs)), NONE
    yield "axis bool", with_inputs(inputs, lambda a: {"axis": True}), NONE
    yield "axis numpy int", with_inputs(inputs, lambda a: {"axis": np.int64(-1)}), NONE
    yield "axis out of range", with_inputs(inputs, lambda a: {"axis": 2}), NONE
    yield "axis huge", with_inputs(inputs, lambda a: {"axis": 2**80}), NONE
    read_only = with_inputs(inputs, lambda a: {"out": _read_only(np.empty_like(a[0]))})
    yield "out read-only", read_only, NONE
    yield "out float64", with_inputs(inputs, lambda a: {"out": np.empty(a[0].shape)}), NONE
    yield (
        "out wrong shape",
        with_inputs(inputs, lambda a: {"out": np.empty_like(a[0][:, 1:])}),
        NONE,
    )
    yield (
        "out subclass",
        with_inputs(inputs, lambda a: {"out": np.empty_like(a[0]).view(Sub)}),
        NONE,
    )
    yield "out misaligned", with_inputs(inputs, lambda a: {"out": _misaligned(a[0])}), NONE
    yield "out overlaps the first input", overlapping_out(0), NONE
    if binary:
        yield "out overlaps the second input", overlapping_out(1), NONE
        yield "mixed dtypes", with_inputs((inputs[0], wide[1])), NONE
        yield "second input None", lambda: ((np.array(inputs[0]), None), {}), NONE
        yield "first input None", lambda: ((None, np.array(inputs[1])), {}), NONE
        yield "shapes differ", with_inputs((inputs[0], inputs[1][:, :5])), NONE


def _run(name: str, build: Build, backend: str | None) -> tuple:
    inputs, kwargs = build()
    try:
        result = getattr(_api, name)(*inputs, backend=backend, **kwargs)
    except Exception as error:  # the exception itself is what is compared
        return type(error), str(error)
    returned_out = "out" in kwargs and result is kwargs["out"]
    return np.array(result, copy=True), returned_out


@pytest.mark.parametrize("backend", [None, *FAST_BACKENDS])
@pytest.mark.parametrize("name", _backends.FAST_OPS)
def test_fast_path_matches_the_python_layer(name, backend, monkeypatch):
    chosen = _backends.default_backend() if backend is None else backend
    _backends.resolve(chosen)  # loads the backend, and so its fast paths
    fast_path = _backends.fast_paths(chosen).get(name)
    if fast_path is None:
        pytest.skip(f"the default backend {chosen!r} has no fast path")
    for label, build, takers in _cases(name):
        fast_result = _run(name, build, backend)
        with monkeypatch.context() as patch:
            patch.setattr(_api, "_FAST", {})
            patch.setattr(_backends, "fast_paths", lambda name: {})
            full_result = _run(name, build, backend)
        if isinstance(full_result[0], type):
            assert fast_result == full_result, label
        else:
            np.testing.assert_array_equal(fast_result[0], full_result[0], err_msg=label)
            assert fast_result[0].dtype == full_result[0].dtype, label
            assert fast_result[1] == full_result[1], label  # out= returned as itself
        inputs, kwargs = build()
        taken = fast_path(*inputs, kwargs.get("out"), kwargs.get("axis", -1), 1)
        assert (taken is not None) == (chosen in takers), label


@pytest.mark.skipif("numba" not in FAST_BACKENDS, reason="Numba is not installed")
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name", _backends.FAST_OPS)
def test_numba_overlap_checks_on_each_walk(name, threads):
    """Numba's fast path checks ``out`` against the inputs in compiled code, on one thread and
    on several (a call of (64, 1000) is large enough to share its rows); the cases above are
    all too small for the second."""
    from fastsoftmax import _numba

    _backends.resolve("numba")
    fast_path = getattr(_numba, "try_" + name)
    inputs = make_inputs(name, (64, 1000), np.dtype(np.float32), np.random.default_rng(4))
    expected = getattr(_api, name)(*inputs, backend="numba")
    for which in range(len(inputs)):
        fresh = [np.array(a, copy=True) for a in inputs]
        fresh[which], out = _overlapping(fresh[which])
        assert fast_path(*fresh, out, -1, threads) is None
        np.testing.assert_array_equal(fresh[which], inputs[which])  # nothing written
        fresh = [np.array(a, copy=True) for a in inputs]
        view = fresh[which][:]  # the input's memory, not the input object
        assert fast_path(*fresh, view, -1, threads) is view
        np.testing.assert_array_equal(fresh[which], expected)
