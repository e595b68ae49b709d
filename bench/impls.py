"""The implementations under test, each turned into a zero-argument call the timer can repeat.

fastsoftmax's backends, the plain NumPy formula, the textbook explicit Jacobian, PyTorch CPU and
JAX CPU. Every call starts from NumPy arrays and returns a NumPy array, so conversions a NumPy
user needs (``torch.from_numpy``, ``.numpy()``, JAX's transfer) are inside the timing. With
``out=`` each implementation writes into an output allocated once, outside the timing; "fresh"
allocates the result on every call, page faults included.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import numpy as np
from suite import OPS, Case, rows

Call = Callable[[], np.ndarray]

# Bytes of explicit N×N Jacobians built at once: small enough to stay in L2, which is the
# textbook method at its best (larger batches measured slower here).
_JACOBIAN_BATCH_BYTES = 2 << 20
_JACOBIAN_MAX_N = 1024


@dataclass
class Impl:
    """One implementation: how to build its call for a case, and what it can do."""

    key: str  # the name --backends takes
    label: str  # what the table calls it
    build: Callable[[Case, str, tuple[np.ndarray, ...], np.ndarray | None], Call]
    # "follow": uses the thread count the bench sets; "one": always one thread (measured once
    # per case); "own": its own thread pool we cannot set (measured once, at all threads).
    threads: str
    has_out: bool = True
    jit: bool = False  # compiles on its first call for each new shape or dtype
    ops: tuple[str, ...] = OPS
    # Why this implementation is not run on a case ("" when it is).
    skip: Callable[[Case], str] = field(default=lambda case: "")


# ----------------------------------------------------------------- fastsoftmax


def _fsm_build(fsm, backend: str | None, case: Case, op: str, inputs, out) -> Call:
    function = getattr(fsm, op)
    if out is None:
        return partial(function, *inputs, case.axis, backend=backend)
    return partial(function, *inputs, case.axis, out=out, backend=backend)


def _fsm_probe(fsm, backend: str) -> str:
    """Why ``backend`` cannot be benchmarked here ("" if it can): listed is not enough, since a
    backend may be listed while its module is still missing or broken."""
    x = np.array([[0.0, 1.0, 2.0]], dtype=np.float32)
    try:
        got = fsm.softmax(x, backend=backend)
    except Exception as err:
        return f"failed a smoke test: {type(err).__name__}: {err}"
    want = np.exp(x - 2.0) / np.exp(x - 2.0).sum()
    if not np.allclose(got, want, rtol=1e-5):
        return f"failed a smoke test: softmax([0, 1, 2]) gave {got}"
    return ""


def fastsoftmax_impls() -> tuple[list[Impl], dict[str, str]]:
    """The fastsoftmax backends that work here, and why each other one is left out."""
    import fastsoftmax as fsm
    from fastsoftmax import _backends

    impls, skipped = [], {}
    for backend in _backends.BACKENDS:
        reason = _backends.unavailable_reason(backend) or _fsm_probe(fsm, backend)
        if reason:
            skipped[backend] = reason
            continue
        impls.append(
            Impl(
                backend,
                f"fastsoftmax[{backend}]"
                + (" (default)" if backend == _backends.default_backend() else ""),
                # The default backend is called as users call it, without backend=.
                partial(
                    _fsm_build, fsm, None if backend == _backends.default_backend() else backend
                ),
                # The NumPy backend runs NumPy ufuncs, which use one thread whatever we set.
                threads="one" if backend == "numpy" else "follow",
                jit=backend == "numba",
            )
        )
    return impls, skipped


# ----------------------------------------------------------------- NumPy


def _formula_softmax(x, axis, out=None):
    exps = np.exp(x - np.max(x, axis=axis, keepdims=True))
    return np.divide(exps, np.sum(exps, axis=axis, keepdims=True), out=out)


def _formula_log_softmax(x, axis, out=None):
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return np.subtract(shifted, np.log(np.sum(np.exp(shifted), axis=axis, keepdims=True)), out=out)


def _formula_softmax_backward(y, g, axis, out=None):
    return np.multiply(y, g - np.sum(y * g, axis=axis, keepdims=True), out=out)


def _formula_log_softmax_backward(y, g, axis, out=None):
    return np.subtract(g, np.exp(y) * np.sum(g, axis=axis, keepdims=True), out=out)


def _formula_softmax_jvp(x, v, axis, out=None):
    return _formula_softmax_backward(_formula_softmax(x, axis), v, axis, out=out)


_FORMULAS = {
    "softmax": _formula_softmax,
    "log_softmax": _formula_log_softmax,
    "softmax_backward": _formula_softmax_backward,
    "log_softmax_backward": _formula_log_softmax_backward,
    "softmax_jvp": _formula_softmax_jvp,
}


def _formula_build(case: Case, op: str, inputs, out) -> Call:
    # The formula as a NumPy user writes it; out= only spares the final allocation, as it would
    # in their code.
    return partial(_FORMULAS[op], *inputs, case.axis, out=out)


def _jacobian_vjp(y, g, axis, out=None):
    """``(diag(y) - y yᵀ) @ g`` row by row, the N×N matrices built a small batch at a time."""
    if out is None:
        out = np.empty_like(y)
    y_rows, g_rows, out_rows = rows(y, axis), rows(g, axis), rows(out, axis)
    n = y_rows.shape[1]
    batch = max(1, _JACOBIAN_BATCH_BYTES // (n * n * y.itemsize))
    diagonal = np.arange(n)
    for start in range(0, y_rows.shape[0], batch):
        block = slice(start, start + batch)
        ys = y_rows[block]
        jacobian = -ys[:, :, None] * ys[:, None, :]
        jacobian[:, diagonal, diagonal] += ys
        np.einsum("bij,bj->bi", jacobian, g_rows[block], out=out_rows[block])
    return out


def _jacobian_jvp(x, v, axis, out=None):
    return _jacobian_vjp(_formula_softmax(x, axis), v, axis, out=out)


def _jacobian_build(case: Case, op: str, inputs, out) -> Call:
    function = _jacobian_vjp if op == "softmax_backward" else _jacobian_jvp
    return partial(function, *inputs, case.axis, out=out)


# The default run leaves out cases whose N×N products exceed this (about 0.5 s a call): at
# (32768, 512) one call takes 5.5 s, a tenth of that run's time for two cells.
_JACOBIAN_QUICK_ELEMENTS = 1 << 30


def _jacobian_skip(case: Case, max_elements: int | None) -> str:
    if case.length > _JACOBIAN_MAX_N:
        return f"not run where N > {_JACOBIAN_MAX_N} (its N×N matrices; nothing is extrapolated)"
    products = int(np.prod(case.shape)) * case.length
    if max_elements is not None and products > max_elements:
        return "not run where its N×N products exceed 2^30 elements (--full runs them)"
    return ""


def numpy_impls(full: bool = True) -> list[Impl]:
    """The NumPy formula and the explicit Jacobian (``full=False``: only on its quick cases)."""
    return [
        Impl("formula", "NumPy formula", _formula_build, threads="one"),
        # Its out= differs from fresh only in the last write, which the N×N matrices dwarf.
        Impl(
            "jacobian",
            "explicit Jacobian",
            _jacobian_build,
            threads="one",
            has_out=False,
            ops=("softmax_backward", "softmax_jvp"),  # the Jacobian only enters the gradients
            skip=partial(_jacobian_skip, max_elements=None if full else _JACOBIAN_QUICK_ELEMENTS),
        ),
    ]


# ----------------------------------------------------------------- PyTorch


def _torch_build(torch, case: Case, op: str, inputs, out) -> Call:
    """PyTorch's own kernels from NumPy arrays; with out= its out= variants."""
    dim = case.axis
    t = torch.from_numpy
    if op == "softmax_backward":
        y, g = inputs
        if out is None:
            return lambda: torch._softmax_backward_data(t(g), t(y), dim, t(y).dtype).numpy()
        return lambda: torch._softmax_backward_data(
            t(g), t(y), dim, t(y).dtype, grad_input=t(out)
        ).numpy()
    if op == "log_softmax_backward":
        y, g = inputs
        if out is None:
            return lambda: torch._log_softmax_backward_data(t(g), t(y), dim, t(y).dtype).numpy()
        return lambda: torch._log_softmax_backward_data(
            t(g), t(y), dim, t(y).dtype, out=t(out)
        ).numpy()
    if op == "softmax_jvp":  # no fused kernel: forward, then the backward from its output
        x, v = inputs
        if out is None:
            return lambda: _torch_jvp(torch, t(x), t(v), dim, None, None).numpy()
        s_buffer = torch.empty_like(t(x))  # PyTorch's out= path has a reusable workspace too
        return lambda: _torch_jvp(torch, t(x), t(v), dim, s_buffer, t(out)).numpy()
    (x,) = inputs
    if out is None:
        function = torch.softmax if op == "softmax" else torch.log_softmax
        return lambda: function(t(x), dim).numpy()
    function = torch._softmax if op == "softmax" else torch._log_softmax
    return lambda: function(t(x), dim, False, out=t(out)).numpy()


def _torch_jvp(torch, x, v, dim, s_buffer, out):
    if s_buffer is None:
        s = torch.softmax(x, dim)
        return torch._softmax_backward_data(v, s, dim, x.dtype)
    s = torch._softmax(x, dim, False, out=s_buffer)
    return torch._softmax_backward_data(v, s, dim, x.dtype, grad_input=out)


def torch_impl() -> tuple[Impl | None, str, object]:
    """``(impl, reason it is missing, the torch module)``."""
    if importlib.util.find_spec("torch") is None:
        return None, "PyTorch is not installed", None
    import torch

    return Impl("torch", "PyTorch", partial(_torch_build, torch), threads="follow"), "", torch


# ----------------------------------------------------------------- JAX

JAX_THREADS_NOTE = (
    "JAX (XLA) sizes its CPU thread pool when it starts and offers no way to change it "
    "in-process, so JAX is measured once, at its default (all cores), fresh output only "
    "(it has no out=)"
)


def _jax_functions(jax, axis: int) -> dict[str, Callable]:
    jnp = jax.numpy
    softmax = partial(jax.nn.softmax, axis=axis)

    def backward(y, g):
        # What JAX's autodiff runs for softmax's VJP, given the saved output.
        return y * (g - jnp.sum(y * g, axis=axis, keepdims=True))

    def log_backward(y, g):
        # And for log_softmax's, given its saved output.
        return g - jnp.exp(y) * jnp.sum(g, axis=axis, keepdims=True)

    def jvp(x, v):
        return jax.jvp(softmax, (x,), (v,))[1]

    return {
        "softmax": softmax,
        "log_softmax": partial(jax.nn.log_softmax, axis=axis),
        "softmax_backward": backward,
        "log_softmax_backward": log_backward,
        "softmax_jvp": jvp,
    }


def _jax_build(jax, case: Case, op: str, inputs, out) -> Call:
    compiled = jax.jit(_jax_functions(jax, case.axis)[op])
    # NumPy in, NumPy out: the transfer and block_until_ready are part of each call.
    return lambda: np.asarray(compiled(*inputs).block_until_ready())


def jax_impl() -> tuple[Impl | None, str]:
    if importlib.util.find_spec("jax") is None:
        return None, "JAX is not installed"
    import jax

    # Without this JAX silently computes the float64 case in float32.
    jax.config.update("jax_enable_x64", True)
    build = partial(_jax_build, jax)
    return Impl("jax", "JAX (jit)", build, threads="own", has_out=False, jit=True), ""
