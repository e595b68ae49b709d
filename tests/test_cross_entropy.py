"""softmax_cross_entropy against the oracle (PyTorch's semantics restated in wide precision),
its gradient against central differences, and its errors."""

from __future__ import annotations

import fastsoftmax as fsm
import numpy as np
import pytest
from support.cross_entropy import ref_cross_entropy

REDUCTIONS = ["mean", "sum", "none"]


def _case(rng, shape, axis, kind, dtype, ignore=False):
    x = rng.normal(0, 3, shape).astype(dtype)
    axis %= len(shape)
    classes = shape[axis]
    if kind == "index":
        batch = shape[:axis] + shape[axis + 1 :]
        target = rng.integers(0, classes, batch)
        if ignore:
            target = np.where(rng.random(batch) < 0.3, -100, target)
    else:
        target = rng.random(shape).astype(dtype)
        target /= target.sum(axis, keepdims=True)
    return x, target


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("kind", ["index", "probability"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize(("shape", "axis"), [((6, 5), -1), ((3, 4, 5), 1), ((7,), 0)])
def test_against_the_oracle(
    shape, axis, smoothing, weighted, kind, reduction, plain_backend, dtype, rng
):
    x, target = _case(rng, shape, axis, kind, dtype, ignore=True)
    weight = rng.uniform(0.1, 2, shape[axis]).astype(dtype) if weighted else None
    loss, grad = fsm.softmax_cross_entropy(
        x,
        target,
        axis,
        weight=weight,
        reduction=reduction,
        label_smoothing=smoothing,
        backend=plain_backend,
    )
    want_loss, want_grad = ref_cross_entropy(x, target, axis, weight, -100, reduction, smoothing)
    tol = 2e-6 if dtype == np.float32 else 1e-13
    assert np.asarray(loss).dtype == dtype
    assert grad.dtype == dtype
    np.testing.assert_allclose(loss, want_loss, rtol=tol, atol=tol)
    np.testing.assert_allclose(grad, want_grad, rtol=tol, atol=tol)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_gradient_against_central_differences(reduction, rng):
    x, target = _case(rng, (4, 6), -1, "index", np.float64)
    weight = rng.uniform(0.5, 2, 6)
    _, grad = fsm.softmax_cross_entropy(
        x, target, weight=weight, reduction=reduction, label_smoothing=0.1
    )
    h = 1e-6
    for index in np.ndindex(x.shape):
        step = np.zeros_like(x)
        step[index] = h
        up = fsm.softmax_cross_entropy(
            x + step,
            target,
            weight=weight,
            reduction=reduction,
            label_smoothing=0.1,
            return_grad=False,
        )
        down = fsm.softmax_cross_entropy(
            x - step,
            target,
            weight=weight,
            reduction=reduction,
            label_smoothing=0.1,
            return_grad=False,
        )
        assert abs((up - down) / (2 * h) - grad[index]) < 1e-7


def test_mean_over_no_counted_target_is_nan():
    x = np.zeros((3, 4))
    loss, grad = fsm.softmax_cross_entropy(x, np.full(3, -100))
    assert np.isnan(loss)
    np.testing.assert_array_equal(grad, 0)


def test_stable_at_huge_logits():
    x = np.array([[1e8, -1e8, 0.0], [3.4e38, -3.4e38, 0.0]], np.float32)
    loss, grad = fsm.softmax_cross_entropy(x, np.array([0, 1]), label_smoothing=0.1)
    assert np.isfinite(loss)
    assert np.isfinite(grad).all()
    loss, grad = fsm.softmax_cross_entropy(x, np.array([[1.0, 0, 0], [0, 0, 1.0]], np.float32))
    assert loss == np.float32(1.7e38)
    assert np.isfinite(grad).all()


def test_grad_out_may_be_the_logits(rng):
    x, target = _case(rng, (5, 7), -1, "index", np.float64)
    want = fsm.softmax_cross_entropy(x.copy(), target)[1]
    _, grad = fsm.softmax_cross_entropy(x, target, grad_out=x)
    assert grad is x
    np.testing.assert_array_equal(x, want)


def test_errors():
    x = np.zeros((2, 3))
    with pytest.raises(IndexError, match=r"target 3 at position \(1,\)"):
        fsm.softmax_cross_entropy(x, np.array([0, 3]))
    with pytest.raises(ValueError, match="probability target must have the logits' shape"):
        fsm.softmax_cross_entropy(x, np.ones((2, 4)) / 4)
    with pytest.raises(ValueError, match="without the class axis"):
        fsm.softmax_cross_entropy(x, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="reduction"):
        fsm.softmax_cross_entropy(x, np.array([0, 1]), reduction="avg")
    with pytest.raises(ValueError, match="label_smoothing"):
        fsm.softmax_cross_entropy(x, np.array([0, 1]), label_smoothing=1.5)
    with pytest.raises(ValueError, match="one entry per class"):
        fsm.softmax_cross_entropy(x, np.array([0, 1]), weight=np.ones(2))
    with pytest.raises(ValueError, match="where= leaves out"):
        fsm.softmax_cross_entropy(x, np.array([0, 1]), where=np.array([True, False, True]))
    with pytest.raises(TypeError, match="class indices"):
        fsm.softmax_cross_entropy(x, np.array(["a", "b"]))
