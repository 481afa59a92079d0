"""Losses against closed forms computed by hand in float64 numpy; metrics from one forward pass."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from landscape.engine.evaluate import evaluate
from landscape.engine.losses import ALL_TASKS, LOSSES, MetricSet, correct, get_criterion
from landscape.errors import ModelError, RegistryError
from landscape.zoo.data import TensorSplit

TASKS = sorted(ALL_TASKS)
N, C = 7, 4


def _problem(task: str, seed: int = 0) -> tuple[Tensor, Tensor, int]:
    """(output, target, num_classes) of a small batch for ``task``; outputs span several scales."""
    g = torch.Generator().manual_seed(seed)
    if task == "classification":
        out = 3 * torch.randn(N, C, generator=g)
        out[0, 2] = 40.0  # a confident logit: the oracle must stay exact, not overflow
        target = torch.tensor([2, 0, 1, 2, 3, 3, 1])
        return out, target, C
    if task == "binary":
        out = 2 * torch.randn(N, 1, generator=g)
        out[1, 0] = -30.0
        return out, torch.tensor([[1.0], [1.0], [0.0], [1.0], [0.0], [0.0], [1.0]]), 0
    if task == "regression":
        return torch.randn(N, 3, generator=g), 2 * torch.randn(N, 3, generator=g), 0
    # reconstruction: image-shaped outputs, targets in [0, 1] like pixels
    return torch.randn(N, 1, 4, 4, generator=g), torch.rand(N, 1, 4, 4, generator=g), 0


def _np(t: Tensor) -> np.ndarray:
    return t.detach().double().numpy()


def _onehot(y: Tensor, c: int) -> np.ndarray:
    return np.eye(c)[y.numpy()]


def _log_softmax(z: np.ndarray) -> np.ndarray:
    m = z.max(axis=1, keepdims=True)
    return z - m - np.log(np.exp(z - m).sum(axis=1, keepdims=True))


def _softplus(z: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, z)  # log(1 + e^z), exact for large |z|


def _flat(a: np.ndarray) -> np.ndarray:
    return a.reshape(a.shape[0], -1)


APPLICABLE = [(name, task) for name in LOSSES.names() for task in TASKS if task in LOSSES.get(name).tasks]
INAPPLICABLE = [(name, task) for name in LOSSES.names() for task in TASKS if task not in LOSSES.get(name).tasks]


def test_the_registry_holds_the_documented_losses() -> None:
    assert set(LOSSES.names()) >= {"cross_entropy", "label_smoothing", "mse", "l1", "smooth_l1", "bce", "hinge"}


@pytest.mark.parametrize(("name", "task"), APPLICABLE)
def test_value_is_finite_per_sample_and_differentiable(name: str, task: str) -> None:
    out, target, c = _problem(task)
    out.requires_grad_(True)
    crit = get_criterion(name, task)  # type: ignore[arg-type]
    per = crit.fn(out, target, c)
    assert per.shape == (N,)
    assert torch.isfinite(per).all()
    assert (per >= 0).all()  # every criterion here is a non-negative loss
    per.mean().backward()
    assert out.grad is not None and out.grad.shape == out.shape
    assert torch.isfinite(out.grad).all() and out.grad.abs().sum() > 0


@pytest.mark.parametrize(("name", "task"), INAPPLICABLE)
def test_inapplicable_loss_names_the_task(name: str, task: str) -> None:
    with pytest.raises(ModelError) as info:
        get_criterion(name, task)  # type: ignore[arg-type]
    message = str(info.value)
    assert f"loss {name!r}" in message and f"a {task} task" in message
    for allowed in LOSSES.get(name).tasks:
        assert allowed in message


def test_unknown_loss_lists_the_known_ones() -> None:
    with pytest.raises(RegistryError) as info:
        get_criterion("focal", "classification")
    for name in LOSSES.names():
        assert name in str(info.value)


# --- closed forms ---------------------------------------------------------------------------------


def _oracle(name: str, task: str, out: np.ndarray, target: Tensor, c: int) -> np.ndarray:
    """The per-sample loss written out by hand from its textbook definition."""
    if task == "classification":
        y = target.numpy()
        dense = _onehot(target, c)
        rows = np.arange(len(y))
        if name == "cross_entropy":
            return -_log_softmax(out)[rows, y]
        if name == "label_smoothing":  # (1 − ε)·CE + ε·mean over classes of −log p_j, ε = 0.1
            logp = _log_softmax(out)
            return 0.9 * -logp[rows, y] + 0.1 * -logp.mean(axis=1)
        if name == "hinge":  # Weston–Watkins: Σ_{j≠y} max(0, 1 − f_y + f_j), divided by C as torch does
            margins = np.maximum(0.0, 1.0 - out[rows, y][:, None] + out)
            margins[rows, y] = 0.0
            return margins.sum(axis=1) / c
    else:
        dense = _np(target).reshape(out.shape)
        if name == "hinge":  # one logit: max(0, 1 − s·f) with s = ±1
            s = 2 * dense - 1
            return _flat(np.maximum(0.0, 1.0 - s * out)).mean(axis=1)
        if name == "cross_entropy":  # binary: BCE with logits
            name = "bce"
    diff = out - dense
    pointwise = {
        "mse": diff**2,
        "l1": np.abs(diff),
        "smooth_l1": np.where(np.abs(diff) < 1.0, 0.5 * diff**2, np.abs(diff) - 0.5),
        "bce": _softplus(out) - dense * out,  # −[t log σ(f) + (1 − t) log(1 − σ(f))]
    }[name]
    return _flat(pointwise).mean(axis=1)  # mean over classes / outputs / pixels


@pytest.mark.parametrize(("name", "task"), APPLICABLE)
def test_matches_the_closed_form(name: str, task: str) -> None:
    out, target, c = _problem(task, seed=3)
    got = get_criterion(name, task).fn(out, target, c)  # type: ignore[arg-type]
    np.testing.assert_allclose(_np(got), _oracle(name, task, _np(out), target, c), rtol=1e-5, atol=1e-6)


def test_mse_on_classes_is_a_worked_example() -> None:
    out = torch.tensor([[1.0, 0.0, 0.0], [0.5, 0.5, 2.0]])
    target = torch.tensor([0, 1])
    # sample 0: exact one-hot → 0; sample 1: ((0.5)² + (−0.5)² + 2²)/3 = 4.5/3
    got = get_criterion("mse", "classification").fn(out, target, 3)
    assert got.tolist() == pytest.approx([0.0, 1.5])


def test_hinge_is_zero_beyond_the_margin() -> None:
    out = torch.tensor([[3.0, 1.9, -5.0], [0.0, 0.0, 0.0]])
    got = get_criterion("hinge", "classification").fn(out, torch.tensor([0, 2]), 3)
    # sample 0: margin 1.1 > 1 against both → 0; sample 1: all tied → (1 + 1)/3
    assert got.tolist() == pytest.approx([0.0, 2 / 3])


# --- accuracy -------------------------------------------------------------------------------------


def test_accuracy_by_argmax() -> None:
    out = torch.tensor([[0.1, 0.9, 0.0], [2.0, -1.0, 1.0], [0.0, 0.0, 5.0], [1.0, 3.0, 2.0]])
    got = correct(out, torch.tensor([1, 0, 1, 2]))
    assert got.tolist() == [1.0, 1.0, 0.0, 0.0]


def test_accuracy_of_one_logit_is_its_sign() -> None:
    out = torch.tensor([[2.0], [-0.5], [0.0], [-3.0], [0.1]])
    target = torch.tensor([[1.0], [0.0], [1.0], [1.0], [0.0]])
    # 0 is not > 0, so a zero logit predicts class 0
    assert correct(out, target).tolist() == [1.0, 1.0, 0.0, 0.0, 0.0]


# --- metric sets -------------------------------------------------------------------------------------


def test_metric_names() -> None:
    assert MetricSet(["cross_entropy"], "classification", 10).names == ["loss", "acc"]
    assert MetricSet(["mse"], "regression", 0).names == ["loss"]
    assert MetricSet(["hinge", "bce"], "binary", 2).names == ["loss", "hinge", "bce", "acc"]
    assert MetricSet(["mse", "l1"], "reconstruction", 0).names == ["loss", "mse", "l1"]


def test_metric_set_needs_a_loss() -> None:
    with pytest.raises(ModelError, match="at least one loss"):
        MetricSet([], "classification", 10)


def test_metric_set_rejects_an_inapplicable_loss() -> None:
    with pytest.raises(ModelError, match="does not apply to a regression task"):
        MetricSet(["mse", "cross_entropy"], "regression", 0)


class _Counting(nn.Module):
    """Returns fixed outputs row by row and counts its forward passes."""

    def __init__(self, outputs: Tensor) -> None:
        super().__init__()
        self.outputs = outputs
        self.calls = 0

    def forward(self, index: Tensor) -> Tensor:
        self.calls += 1
        return self.outputs[index.long()]


@pytest.mark.parametrize("batch_size", [1024, 3])
def test_every_metric_from_one_forward_pass_per_batch(batch_size: int) -> None:
    out, target, c = _problem("classification", seed=5)
    losses = ["cross_entropy", "mse", "hinge"]
    metrics = MetricSet(losses, "classification", c)
    assert metrics.names == ["loss", "cross_entropy", "mse", "hinge", "acc"]
    model = _Counting(out)
    split = TensorSplit(torch.arange(N).float(), target)  # "inputs" are row indices of ``out``
    values = evaluate(model, split, metrics, batch_size=batch_size)
    assert model.calls == -(-N // batch_size)  # one forward pass per batch serves all five metrics
    assert list(values) == metrics.names
    means = {name: float(_oracle(name, "classification", _np(out), target, c).mean()) for name in losses}
    acc = float(np.mean(_np(out).argmax(axis=1) == target.numpy()))
    assert values["loss"] == pytest.approx(means["cross_entropy"], rel=1e-6)
    for name in losses:
        assert values[name] == pytest.approx(means[name], rel=1e-6)
    assert values["acc"] == pytest.approx(acc, abs=1e-12)


def test_batch_sums_in_name_order() -> None:
    out, target, _ = _problem("binary", seed=2)
    metrics = MetricSet(["bce", "hinge"], "binary", 2)
    sums = metrics.batch_sums(out, target)
    assert sums.dtype == torch.float64 and sums.shape == (4,)
    bce = _oracle("bce", "binary", _np(out), target, 0).sum()
    hinge = _oracle("hinge", "binary", _np(out), target, 0).sum()
    hits = float(((_np(out) > 0) == (_np(target) > 0.5)).sum())
    np.testing.assert_allclose(sums.numpy(), [bce, bce, hinge, hits], rtol=1e-5)


@pytest.mark.parametrize(
    ("task", "out_shape", "losses"),
    [("classification", (N, 3), ["cross_entropy"]), ("binary", (N, 2), ["hinge"]), ("regression", (N, 3, 1), ["mse"])],
)
def test_check_names_a_wrong_output_shape(task: str, out_shape: tuple[int, ...], losses: list[str]) -> None:
    _, target, c = _problem(task)
    metrics = MetricSet(losses, task, c)  # type: ignore[arg-type]
    with pytest.raises(ModelError, match=rf"returns shape {tuple(out_shape)}".replace("(", r"\(").replace(")", r"\)")):
        metrics.check(torch.zeros(out_shape), target)


def test_check_refuses_bce_on_targets_outside_0_1() -> None:
    metrics = MetricSet(["bce"], "reconstruction", 0)
    metrics.check(torch.zeros(2, 3), torch.tensor([[0.0, 0.5, 1.0], [1.0, 0.0, 0.25]]))  # fine
    with pytest.raises(ModelError, match=r"targets in \[0, 1\]"):
        metrics.check(torch.zeros(2, 3), torch.tensor([[0.0, 0.5, 1.5], [1.0, 0.0, 0.25]]))
