"""The shape suite, its inputs, and the float64 references every implementation is checked against.

Each case is a shape a user recognises. Inputs are random logits and gradients from a fixed seed;
the reference for each op is computed once per case in float64, a block of rows at a time so the
temporaries stay small even for the 256 MiB cases, together with the scale each output's error
is measured against (see `max_relative_error`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

MiB = 1 << 20

OPS = ("softmax", "log_softmax", "softmax_backward", "log_softmax_backward", "softmax_jvp")
FORWARD_OPS = frozenset({"softmax", "log_softmax"})

# Working sets at least this large are "out of cache" and reported as GB/s against the measured
# memory bandwidth. Measured on the project machine: 32 MiB arrays stay cached, 64 MiB do not
# (lscpu's "480 MiB L3" is not what a core can use).
LARGE_BYTES = 64 * MiB

# float64 elements per block of rows when computing references and errors (8 MiB: the blocks'
# temporaries, several per block, then stay a small part of the default run's 1.5 GB).
_BLOCK_ELEMENTS = 1 << 20

# Logits of a trained classifier span about ±10: normal with this standard deviation.
_LOGIT_SCALE = 3.0


@dataclass(frozen=True)
class Case:
    """One labelled shape of the suite."""

    key: str  # the name --shapes takes
    label: str  # what the table and the plot call it
    shape: tuple[int, ...]
    dtype: type = np.float32
    axis: int = -1

    @property
    def length(self) -> int:
        """Elements along the softmax axis (N)."""
        return self.shape[self.axis]

    @property
    def array_bytes(self) -> int:
        return int(np.prod(self.shape)) * np.dtype(self.dtype).itemsize

    def describe(self) -> str:
        dims = ", ".join(map(str, self.shape)) + ("," if len(self.shape) == 1 else "")
        size = self.array_bytes
        if size >= MiB:
            size_text = f"{size / MiB:.3g} MiB"
        else:
            size_text = f"{size / 1024:.1f} KiB" if size >= 1024 else f"{size} B"
        return (
            f"({dims}) {np.dtype(self.dtype).name}, axis={self.axis}, "
            f"N={self.length}, {size_text} per array"
        )


SUITE = (
    Case("tiny", "tiny", (1, 10)),
    Case("classifier", "classifier batch", (64, 1000)),
    Case("cache", "cache-resident", (1024, 4096)),
    Case("out-of-cache", "out-of-cache", (8192, 8192)),
    Case("lm-vocab", "LM vocabulary", (8, 50257)),
    Case("attention", "attention", (98304, 512)),
    Case("float64", "float64", (4096, 4096), np.float64),
    Case("axis0", "axis=0 (C order)", (4096, 1024), axis=0),
    Case("long-row", "one row of 10^7", (10_000_000,)),
    Case("attention-64", "attention, 64 MiB", (32768, 512)),
)
CASES = {case.key: case for case in SUITE}

# The default run: a shape of each kind a user meets (per-call overhead, a classifier batch,
# rows in cache, a vocabulary-long row, out of cache), in about 2 minutes and under 1.5 GB on
# 2 cores. The out-of-cache one has 64 MiB arrays, the smallest size that leaves the project
# machine's cache, so the run's memory stays small; --full has the 256 MiB ones. It runs first:
# the allocator keeps what the smaller cases freed, and after them it would add to this one's
# peak (a peak of 1.46 GB measured with it last, 1.28 GB first).
DEFAULT_CASES = ("attention-64", "tiny", "classifier", "cache", "lm-vocab")
# --full: today's whole matrix (the 64 MiB attention case is the default's, not the full one's).
FULL_CASES = tuple(key for key in CASES if key != "attention-64")
# --quick: small cases of each kind (short rows, long rows, axis=0), so CI exercises every code
# path in seconds.
QUICK_CASES = ("tiny", "classifier", "lm-vocab", "axis0")


def arrays_moved(op: str) -> int:
    """Arrays of the case's size one call must move: forward reads x and writes the result;
    backward and jvp read two arrays and write one."""
    return 2 if op in FORWARD_OPS else 3


def is_large(case: Case, op: str) -> bool:
    return case.array_bytes * arrays_moved(op) >= LARGE_BYTES


def rows(array: np.ndarray, axis: int) -> np.ndarray:
    """A 2-D view whose rows run along ``axis`` (a view, never a copy: the suite is 1-D/2-D)."""
    if array.ndim > 2:
        raise ValueError("the suite's shapes are 1-D or 2-D")
    view = np.moveaxis(array, axis, -1)
    return view.reshape(1, -1) if view.ndim == 1 else view


def _blocks(n_rows: int, row_length: int) -> Iterator[slice]:
    step = max(1, _BLOCK_ELEMENTS // row_length)
    for start in range(0, n_rows, step):
        yield slice(start, min(start + step, n_rows))


class CaseData:
    """The inputs of one case, made on first use and shared by every op and implementation."""

    def __init__(self, case: Case, seed: int = 0) -> None:
        self.case = case
        self._rng = np.random.default_rng(seed)
        self._x: np.ndarray | None = None
        self._g: np.ndarray | None = None
        self._y: tuple[str, np.ndarray] | None = None

    def _normal(self) -> np.ndarray:
        return self._rng.standard_normal(self.case.shape, dtype=self.case.dtype)

    @property
    def x(self) -> np.ndarray:
        """Logits."""
        if self._x is None:
            self._x = self._normal()
            self._x *= _LOGIT_SCALE
        return self._x

    @property
    def g(self) -> np.ndarray:
        """Upstream gradient (the tangent ``v`` for the jvp)."""
        if self._g is None:
            self._g = self._normal()
        return self._g

    def saved(self, forward: str) -> np.ndarray:
        """The saved forward output a backward takes: ``forward(x)``, correctly rounded. Only
        one is kept at a time, so a 256 MiB case holds one more array, not two."""
        if self._y is None or self._y[0] != forward:
            self._y = None  # freed before the next one is made
            value = reference_value(forward, (self.x,), self.case.axis).astype(self.case.dtype)
            self._y = (forward, value)
        return self._y[1]

    def inputs(self, op: str) -> tuple[np.ndarray, ...]:
        """The positional array arguments of ``op``."""
        if op == "softmax_backward":
            return self.saved("softmax"), self.g
        if op == "log_softmax_backward":
            return self.saved("log_softmax"), self.g
        self._y = None  # the other ops need no saved output: free it
        if op == "softmax_jvp":
            return self.x, self.g
        return (self.x,)


def _reference_block(op: str, blocks: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray | None]:
    """``op`` in float64 on 2-D blocks whose rows are the softmax axis, and the error scale.

    The scale is what each output's error is divided by (None: ``|value|`` itself, for softmax).
    A gradient element is a difference, ``y_i * (g_i - sum(y * g))``, that can be ~0 by
    cancellation, where any relative error at all is possible: its scale is the size of the
    terms that cancel. A log-probability near 0 is measured absolutely, ``max(|value|, 1)``:
    an absolute error in ``log p`` is the relative error of ``p``.
    """
    if op == "softmax_backward":
        y, g = blocks
        return _gradient(y, g)
    if op == "log_softmax_backward":
        y, g = blocks
        return _log_gradient(y, g)
    shifted = blocks[0] - np.max(blocks[0], axis=1, keepdims=True)
    exps = np.exp(shifted)
    total = np.sum(exps, axis=1, keepdims=True)
    if op == "log_softmax":
        value = shifted - np.log(total)
        return value, np.maximum(np.abs(value), 1.0)
    s = exps / total
    if op == "softmax":
        return s, None
    return _gradient(s, blocks[1])


def _gradient(y: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``y * (g - sum(y * g))`` and its scale ``y * (|g| + sum(y * |g|))``."""
    result = y * (g - np.sum(y * g, axis=1, keepdims=True))
    magnitude = np.abs(g)
    return result, y * (magnitude + np.sum(y * magnitude, axis=1, keepdims=True))


def _log_gradient(y: np.ndarray, g: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``g - exp(y) * sum(g)`` and its scale ``|g| + exp(y) * sum(|g|)``."""
    p = np.exp(y)
    result = g - p * np.sum(g, axis=1, keepdims=True)
    return result, np.abs(g) + p * np.sum(np.abs(g), axis=1, keepdims=True)


@dataclass
class Reference:
    """The float64 result of one op on one case, and the scale its errors are measured in."""

    value: np.ndarray
    scale: np.ndarray | None  # None: |value| itself


def reference_value(op: str, inputs: tuple[np.ndarray, ...], axis: int) -> np.ndarray:
    return reference(op, inputs, axis, with_scale=False).value


def reference(
    op: str, inputs: tuple[np.ndarray, ...], axis: int, with_scale: bool = True
) -> Reference:
    """``op`` computed in float64, block by block, in the inputs' shape."""
    value = np.empty(inputs[0].shape, dtype=np.float64)
    needs_scale = with_scale and op != "softmax"
    # float64, since y * |g| of a tiny probability would underflow in float32.
    scale = np.empty(inputs[0].shape, dtype=np.float64) if needs_scale else None
    value_rows = rows(value, axis)
    scale_rows = rows(scale, axis) if needs_scale else None
    in_rows = [rows(a, axis) for a in inputs]
    for block in _blocks(*value_rows.shape):
        result, block_scale = _reference_block(op, [r[block].astype(np.float64) for r in in_rows])
        value_rows[block] = result
        if needs_scale:
            scale_rows[block] = block_scale
    return Reference(value, scale)


def max_relative_error(op: str, result: np.ndarray, ref: Reference, axis: int) -> float:
    """Largest relative error of ``result`` against the float64 reference.

    ``|out - ref| / scale`` element by element, the scale being ``|ref|`` for softmax,
    ``max(|ref|, 1)`` for log_softmax and, for the gradients, the size of the terms that cancel
    (see `_reference_block`). A NaN anywhere gives NaN, so a wrong result cannot hide.
    """
    if result.shape != ref.value.shape:
        return float("nan")
    got, want = rows(result, axis), rows(ref.value, axis)
    scale = rows(ref.scale, axis) if ref.scale is not None else None
    tiny = np.finfo(np.float64).tiny
    worst = 0.0
    for block in _blocks(*want.shape):
        w = want[block]
        denominator = np.abs(w) if scale is None else scale[block]
        err = np.max(np.abs(got[block].astype(np.float64) - w) / np.maximum(denominator, tiny))
        if np.isnan(err):
            return float("nan")
        worst = max(worst, float(err))
    return worst
