"""The costs of axis tuples, masks, logsumexp, the cross-entropy and float16, as ratios
measured in one process.

    python bench/features.py [--threads 1,2] [--quick]

Each line is one comparison with its target:

- axis=(1, 2) of a (64, 32, 32) array against axis=-1 of the same data as (64, 1024): the
  axes merge into one without a copy, so the two calls should cost the same (target 1.05x).
- softmax of (8, 12, 512, 512) float32 logits with a broadcast (512, 512) causal mask, into a
  preallocated output: against the unmasked softmax of the same logits (target at most 1.2x)
  and against PyTorch's way, ``masked_fill(~mask, -inf)`` then ``softmax`` (target 1.5x),
  timed as a NumPy user runs it (``torch.from_numpy`` of the logits and the mask, the result
  written into the same preallocated output through ``out=``).
- logsumexp on every shape of the bench suite (along its axis) against
  scipy.special.logsumexp (target 3x) and torch.logsumexp (target 1.3x). Every call allocates
  its result, as a user's call does.

- softmax_cross_entropy, loss and gradient, of float32 logits (64, 1000), (8, 50257) and
  (512, 50257) against integer labels (and with label smoothing 0.1): against PyTorch's
  ``F.cross_entropy`` forward and backward through autograd from NumPy arrays (target 2x), and
  against the NumPy formula (softmax, the loss from it, ``(p - onehot) / N``). Ours writes its
  gradient into a preallocated array; the others allocate theirs, as their users' code does.

- float16 softmax, (64, 1000), (8192, 8192) and (4096, 1024) along axis 0, into a
  preallocated float16 output: against PyTorch's float16 CPU softmax (``out=``, target 1.5x)
  and against our own float32 softmax of the same data (what a float16 call costs over its
  conversion); and the float16 softmax_backward of the two row shapes against PyTorch's.

PyTorch and SciPy are compared against when installed (``pip install torch==2.13.0 scipy``);
the lines that need them are left out otherwise. The machine is named first: figures from
another machine, or from another process, are not comparable.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
from collections.abc import Callable
from functools import partial

import fastsoftmax as fsm
import numpy as np
from machine import machine_facts
from suite import SUITE
from timer import measure


def _median(call: Callable[[], object], budget: float) -> float:
    timing, _ = measure(call, budget, 5)
    return timing.median


def _line(what: str, ours: float, other: float, target: str) -> str:
    times = f"{ours * 1e6:10.1f} us {other * 1e6:10.1f} us"
    return f"{what:58s} {times}  ratio {other / ours:5.2f}  ({target})"


def axis_tuple(budget: float) -> list[str]:
    x = np.random.default_rng(0).standard_normal((64, 32, 32), dtype=np.float32)
    flat = x.reshape(64, 1024)
    lines = []
    for op in ("softmax", "log_softmax"):
        f = getattr(fsm, op)
        tuple_time = _median(partial(f, x, axis=(1, 2)), budget)
        flat_time = _median(partial(f, flat, axis=-1), budget)
        lines.append(
            _line(
                f"{op} axis=(1, 2) (64, 32, 32) vs (64, 1024)",
                flat_time,
                tuple_time,
                "tuple / flat, target <= 1.05",
            )
        )
    return lines


def _torch_masked_softmax(torch, logits, keep, out) -> None:
    """How PyTorch users mask a softmax: fill the masked logits with -inf, then softmax."""
    torch.softmax(logits.masked_fill(~keep, -np.inf), -1, out=out)


def masked_softmax(budget: float, torch) -> list[str]:
    x = np.random.default_rng(0).standard_normal((8, 12, 512, 512), dtype=np.float32)
    causal = np.tril(np.ones((512, 512), dtype=bool))
    out = np.empty_like(x)
    masked = _median(partial(fsm.softmax, x, where=causal, out=out), budget)
    plain = _median(partial(fsm.softmax, x, out=out), budget)
    lines = [
        _line(
            "softmax (8, 12, 512, 512) causal where= vs unmasked",
            plain,
            masked,
            "masked / unmasked, target <= 1.2",
        )
    ]
    if torch is not None:
        call = partial(
            _torch_masked_softmax,
            torch,
            torch.from_numpy(x),
            torch.from_numpy(causal),
            torch.from_numpy(out),
        )
        theirs = _median(call, budget)
        lines.append(
            _line(
                "softmax (8, 12, 512, 512) causal vs PyTorch masked_fill",
                masked,
                theirs,
                "target >= 1.5",
            )
        )
    return lines


def _torch_logsumexp(torch, x: np.ndarray, axis: int) -> np.ndarray:
    return torch.logsumexp(torch.from_numpy(x), axis).numpy()


def logsumexp(budget: float, torch, scipy_special) -> list[str]:
    rng = np.random.default_rng(0)
    lines = []
    for case in SUITE:
        x = (3 * rng.standard_normal(case.shape)).astype(case.dtype)
        ours = _median(partial(fsm.logsumexp, x, axis=case.axis), budget)
        if scipy_special is not None:
            theirs = _median(partial(scipy_special.logsumexp, x, axis=case.axis), budget)
            lines.append(
                _line(f"logsumexp {case.label} {case.shape} vs SciPy", ours, theirs, "target >= 3")
            )
        if torch is not None:
            theirs = _median(partial(_torch_logsumexp, torch, x, case.axis), budget)
            lines.append(
                _line(
                    f"logsumexp {case.label} {case.shape} vs PyTorch", ours, theirs, "target >= 1.3"
                )
            )
        del x
    return lines


def _torch_cross_entropy(torch, logits: np.ndarray, labels: np.ndarray, smoothing: float):
    x = torch.from_numpy(logits).requires_grad_()
    loss = torch.nn.functional.cross_entropy(x, torch.from_numpy(labels), label_smoothing=smoothing)
    loss.backward()
    return loss.item(), x.grad.numpy()


def _numpy_cross_entropy(logits: np.ndarray, labels: np.ndarray):
    """The textbook formula: the probabilities, the loss from them, and (p - onehot) / N."""
    rows = np.arange(len(labels))
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    p = e / e.sum(axis=-1, keepdims=True)
    loss = -np.log(p[rows, labels]).mean()
    p[rows, labels] -= 1
    return loss, p / len(labels)


def cross_entropy(budget: float, torch) -> list[str]:
    rng = np.random.default_rng(0)
    lines = []
    for shape in ((64, 1000), (8, 50257), (512, 50257)):
        x = rng.standard_normal(shape, dtype=np.float32)
        labels = rng.integers(0, shape[1], shape[0])
        grad = np.empty_like(x)
        for smoothing in (0.0, 0.1):
            what = f"cross_entropy {shape}" + (" smoothing 0.1" if smoothing else "")
            call = partial(
                fsm.softmax_cross_entropy, x, labels, label_smoothing=smoothing, grad_out=grad
            )
            ours = _median(call, budget)
            if torch is not None:
                theirs = _median(partial(_torch_cross_entropy, torch, x, labels, smoothing), budget)
                lines.append(_line(f"{what} vs PyTorch", ours, theirs, "target >= 2"))
            if not smoothing:
                theirs = _median(partial(_numpy_cross_entropy, x, labels), budget)
                lines.append(_line(f"{what} vs NumPy formula", ours, theirs, "no target"))
    return lines


def float16_softmax(budget: float, torch) -> list[str]:
    rng = np.random.default_rng(0)
    lines = []
    for shape, axis in (((64, 1000), -1), ((8192, 8192), -1), ((4096, 1024), 0)):
        x = rng.standard_normal(shape, dtype=np.float32)
        half = x.astype(np.float16)
        out, out32 = np.empty_like(half), np.empty_like(x)
        what = f"{shape}" + (f" axis={axis}" if axis != -1 else "")
        ours = _median(partial(fsm.softmax, half, axis, out=out), budget)
        single = _median(partial(fsm.softmax, x, axis, out=out32), budget)
        lines.append(_line(f"softmax float16 {what} vs our float32", single, ours, "no target"))
        if torch is not None:
            call = partial(torch.softmax, torch.from_numpy(half), axis, out=torch.from_numpy(out))
            theirs = _median(call, budget)
            lines.append(_line(f"softmax float16 {what} vs PyTorch", ours, theirs, "target >= 1.5"))
        if axis == -1 and torch is not None:
            y = fsm.softmax(half)
            g = rng.standard_normal(shape, dtype=np.float32).astype(np.float16)
            ours = _median(partial(fsm.softmax_backward, y, g, out=out), budget)
            t = torch.from_numpy
            call = partial(
                torch._softmax_backward_data, t(g), t(y), -1, torch.float16, grad_input=t(out)
            )
            theirs = _median(call, budget)
            lines.append(
                _line(f"softmax_backward float16 {what} vs PyTorch", ours, theirs, "no target")
            )
            del y, g
        del x, half, out, out32
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", default="1,2", help="thread counts, e.g. 1,2")
    parser.add_argument("--quick", action="store_true", help="short budgets (a smoke test)")
    args = parser.parse_args()
    budget = 0.05 if args.quick else 0.5
    torch = None
    if importlib.util.find_spec("torch") is not None:
        import torch
    scipy_special = None
    if importlib.util.find_spec("scipy") is not None:
        import scipy.special as scipy_special
    facts = machine_facts(len(os.sched_getaffinity(0)))
    load = facts["load_average_at_start"]
    print(f"{facts['cpu_model']}, {facts['cores_usable']} cores, load average {load}")
    print(f"{'comparison':58s} {'baseline':>13s} {'compared':>13s}  ratio = compared / baseline")
    for threads in (int(t) for t in args.threads.split(",")):
        fsm.set_num_threads(threads)
        if torch is not None:
            torch.set_num_threads(threads)
        print(f"-- {threads} thread(s)")
        lines = (
            *axis_tuple(budget),
            *masked_softmax(budget, torch),
            *logsumexp(budget, torch, scipy_special),
            *cross_entropy(budget, torch),
            *float16_softmax(budget, torch),
        )
        for line in lines:
            print(line, flush=True)


if __name__ == "__main__":
    main()
