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


def _ours_and_oracle(x, target, axis, weight, reduction, smoothing, backend):
    """``(loss, grad)`` of softmax_cross_entropy and of the oracle, for one case."""
    ours = fsm.softmax_cross_entropy(
        x,
        target,
        axis,
        weight=weight,
        reduction=reduction,
        label_smoothing=smoothing,
        backend=backend,
    )
    return ours, ref_cross_entropy(x, target, axis, weight, -100, reduction, smoothing)


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
    (loss, grad), (want_loss, want_grad) = _ours_and_oracle(
        x, target, axis, weight, reduction, smoothing, plain_backend
    )
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


def test_mean_over_zero_total_weight_is_nan_with_smoothing_too():
    x = np.arange(6.0).reshape(2, 3)
    weight = np.array([0.0, 1.0, 1.0])
    loss, grad = fsm.softmax_cross_entropy(x, np.array([0, 0]), weight=weight, label_smoothing=0.1)
    want_loss, want_grad = ref_cross_entropy(x, np.array([0, 0]), -1, weight, -100, "mean", 0.1)
    assert np.isnan(loss)
    assert np.isnan(want_loss)
    np.testing.assert_array_equal(np.isnan(grad), np.isnan(want_grad))


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


@pytest.mark.parametrize("kind", ["index", "probability"])
@pytest.mark.parametrize("smoothing", [0.0, 0.3])
@pytest.mark.parametrize(
    ("shape", "axis"), [((300, 500), -1), ((2, 70000), -1), ((2, 5, 3, 4), 1), ((40, 3), 0)]
)
def test_blocks_and_layouts_against_the_oracle(shape, axis, smoothing, kind, plain_backend, rng):
    # Rows in several blocks of the smoothing's pass, rows longer than a block, the class axis
    # in the middle (PyTorch's (N, C, H, W)) and first.
    x, target = _case(rng, shape, axis, kind, np.float64, ignore=True)
    weight = rng.uniform(0.1, 2, shape[axis])
    for reduction in REDUCTIONS:
        (loss, grad), want = _ours_and_oracle(
            x, target, axis, weight, reduction, smoothing, plain_backend
        )
        np.testing.assert_allclose(loss, want[0], rtol=1e-12, atol=1e-15)
        np.testing.assert_allclose(grad, want[1], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("kind", ["index", "probability"])
@pytest.mark.parametrize("smoothing", [0.0, 0.2])
def test_masked_classes_take_no_part(kind, smoothing, plain_backend, rng):
    # A mask over the classes is the same loss as the logits without those classes.
    x, target = _case(rng, (6, 7), -1, kind, np.float64)
    keep = np.array([True, False, True, True, False, True, True])
    weight = rng.uniform(0.5, 2, 7)
    if kind == "index":
        target = np.where(keep[target], target, 0)
        compressed = np.cumsum(keep)[target] - 1
    else:
        target = np.where(keep, target, rng.random(target.shape))  # masked entries: ignored
        compressed = target[:, keep]
    loss, grad = fsm.softmax_cross_entropy(
        x, target, weight=weight, where=keep, label_smoothing=smoothing, backend=plain_backend
    )
    want_loss, want_grad = ref_cross_entropy(
        x[:, keep], compressed, -1, weight[keep], -100, "mean", smoothing
    )
    np.testing.assert_allclose(loss, want_loss, rtol=1e-12)
    np.testing.assert_allclose(grad[:, keep], want_grad, rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(grad[:, ~keep], 0)


def test_float16_logits_are_computed_in_float32(plain_backend, rng):
    x, target = _case(rng, (8, 30), -1, "index", np.float16)
    loss, grad = fsm.softmax_cross_entropy(x, target, label_smoothing=0.1, backend=plain_backend)
    want_loss, want_grad = ref_cross_entropy(x, target, label_smoothing=0.1)
    assert loss.dtype == np.float16
    assert grad.dtype == np.float16
    np.testing.assert_allclose(loss, want_loss, rtol=1e-3)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-2, atol=1e-5)
    out = np.empty_like(x)
    assert fsm.softmax_cross_entropy(x, target, label_smoothing=0.1, grad_out=out)[1] is out
    np.testing.assert_array_equal(out, grad)


@pytest.mark.parametrize("kind", ["index", "probability"])
def test_infinite_and_nan_logits_follow_the_oracle(kind, plain_backend):
    # +inf logits take the limit (k entries at +inf share the probability), a NaN makes its
    # row NaN, as log_softmax does.
    x = np.array([[np.inf, 0.0, 1.0], [np.inf, np.inf, 2.0], [0.0, -np.inf, 1.0], [1, 2, 3]])
    target = np.array([0, 2, 1, 0]) if kind == "index" else np.full((4, 3), 1 / 3)
    for smoothing in (0.0, 0.1):
        loss = fsm.softmax_cross_entropy(
            x,
            target,
            reduction="none",
            label_smoothing=smoothing,
            return_grad=False,
            backend=plain_backend,
        )
        want = ref_cross_entropy(x, target, reduction="none", label_smoothing=smoothing)[0]
        np.testing.assert_allclose(loss, want, rtol=1e-14)
    x[3, 1] = np.nan
    assert np.isnan(fsm.softmax_cross_entropy(x, target, reduction="none")[0][3])


def test_backends_agree_and_inputs_are_not_modified(rng):
    x, target = _case(rng, (33, 257), -1, "index", np.float32, ignore=True)
    saved = x.copy(), target.copy()
    results = [
        fsm.softmax_cross_entropy(x, target, label_smoothing=0.1, backend=b)
        for b in fsm.available_backends()
    ]
    np.testing.assert_array_equal(x, saved[0])
    np.testing.assert_array_equal(target, saved[1])
    for loss, grad in results[1:]:
        np.testing.assert_allclose(loss, results[0][0], rtol=1e-6)
        np.testing.assert_allclose(grad, results[0][1], rtol=1e-5, atol=1e-8)
