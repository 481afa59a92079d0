"""``landscape connect``: paths, curve finding, barriers, weight matching, BatchNorm, resume, errors.

Oracles: hand-written path formulas, float64 hand loops for the losses and the BatchNorm
statistics, brute force for the linear assignment, finite differences for the Bezier gradient,
a closed-form 1D barrier, and a known random permutation.
"""

from __future__ import annotations

import itertools
import json
import math
from collections import OrderedDict
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from landscape.cli import main
from landscape.config import Config, ConnectConfig, DataConfig, ModelConfig, TrainConfig, config_to_dict
from landscape.engine.align import (
    AlignmentError,
    align_state,
    apply_permutation,
    linear_sum_assignment,
    permutation_spec,
)
from landscape.engine.connect import (
    PathEvaluator,
    barrier,
    curve_loss,
    path_point,
    recompute_bn_,
    t_grid,
)
from landscape.engine.losses import MetricSet
from landscape.io.checkpoint import save_checkpoint
from landscape.io.connect_file import read_connect
from landscape.workflows.connect import connect
from landscape.zoo.data import TensorSplit
from landscape.zoo.models import build_model

# --- tiny fixtures -------------------------------------------------------------------------------


def _data(n: int = 96, d: int = 6, classes: int = 3, seed: int = 0) -> TensorSplit:
    g = torch.Generator().manual_seed(seed)
    centres = 2.0 * torch.randn(classes, d, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    return TensorSplit(centres[y] + torch.randn(n, d, generator=g), y)


def _mlp(seed: int, d: int = 6, hidden: int = 8, classes: int = 3, bn: bool = False) -> nn.Sequential:
    torch.manual_seed(seed)
    layers: list[tuple[str, nn.Module]] = [("fc1", nn.Linear(d, hidden))]
    layers += [("bn1", nn.BatchNorm1d(hidden))] if bn else []
    layers += [("act1", nn.ReLU()), ("fc2", nn.Linear(hidden, hidden)), ("act2", nn.Tanh()), ("out", nn.Linear(hidden, classes))]
    return nn.Sequential(OrderedDict(layers))


def _randomize_bn_(model: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d | nn.BatchNorm2d):
            n = m.num_features
            m.running_mean.copy_(torch.randn(n, generator=g))
            m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
            m.weight.data.copy_(torch.randn(n, generator=g))
            m.bias.data.copy_(torch.randn(n, generator=g))


def _hand_ce(model: nn.Module, split: TensorSplit) -> float:
    """Mean cross-entropy, float64, one sample at a time."""
    model = model.eval()
    total = 0.0
    with torch.no_grad():
        for x, y in zip(split.inputs, split.targets, strict=True):
            z = model(x[None]).double()[0]
            total += float(torch.logsumexp(z, 0) - z[y])
    return total / len(split)


def _fast(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {"epochs": 2, "points": 5, "margin": 0.25, "batch_size": 32, "lr": 0.05, "plane_grid": 0,
                               "figures": False}
    base.update(kw)
    return base


# --- paths -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("t", [0.0, 0.1, 0.37, 0.5, 0.9, 1.0, -0.2, 1.2])
def test_path_points_equal_hand_formulas(t: float) -> None:
    g = torch.Generator().manual_seed(1)
    a, c1, c2, b = ({"w": torch.randn(3, 2, generator=g, dtype=torch.float64)} for _ in range(4))
    A, C1, C2, B = a["w"], c1["w"], c2["w"], b["w"]
    torch.testing.assert_close(path_point("line", t, [a, b])["w"], A + t * (B - A), rtol=0, atol=1e-12)
    quad = (1 - t) ** 2 * A + 2 * t * (1 - t) * C1 + t**2 * B
    torch.testing.assert_close(path_point("bezier", t, [a, c1, b])["w"], quad, rtol=0, atol=1e-12)
    cubic = (1 - t) ** 3 * A + 3 * t * (1 - t) ** 2 * C1 + 3 * t**2 * (1 - t) * C2 + t**3 * B
    torch.testing.assert_close(path_point("bezier", t, [a, c1, c2, b])["w"], cubic, rtol=0, atol=1e-12)
    # polygonal chain A -> C1 -> C2 -> B, each segment a third of t (ends extend beyond [0, 1])
    if t < 1 / 3:
        chain = A + 3 * t * (C1 - A)
    elif t < 2 / 3:
        chain = C1 + (3 * t - 1) * (C2 - C1)
    else:
        chain = C2 + (3 * t - 2) * (B - C2)
    torch.testing.assert_close(path_point("polychain", t, [a, c1, c2, b])["w"], chain, rtol=0, atol=1e-12)
    one_bend = A + 2 * t * (C1 - A) if t < 0.5 else C1 + (2 * t - 1) * (B - C1)
    torch.testing.assert_close(path_point("polychain", t, [a, c1, b])["w"], one_bend, rtol=0, atol=1e-12)


def test_t_grid_holds_both_models_exactly() -> None:
    t = t_grid(61, 0.2)
    assert t[0] == pytest.approx(-0.2) and t[-1] == pytest.approx(1.2) and len(t) == 61 + 2 * 12
    assert np.count_nonzero(t == 0.0) == 1 and np.count_nonzero(t == 1.0) == 1
    assert np.allclose(np.diff(t), 1 / 60)


def test_barrier_closed_form() -> None:
    """L(t) = a + (b − a)t + h·4t(1 − t) on [0, 1]: the barrier is h (at t = 1/2); values outside are ignored."""
    t = t_grid(41, 0.25)
    a, b, h = 0.3, 1.1, 0.75
    values = a + (b - a) * t + h * 4 * t * (1 - t)
    values[(t < 0) | (t > 1)] = 100.0
    assert barrier(t, values) == pytest.approx(h, abs=1e-12)
    # a path below its chord everywhere has barrier 0 (reached at the ends)
    assert barrier(t, a + (b - a) * t - 4 * t * (1 - t)) == pytest.approx(0.0, abs=1e-12)
    # a missing value inside [0, 1] gives NaN, not a wrong number
    values[len(t) // 2] = np.nan
    assert math.isnan(barrier(t, values))


def test_bezier_gradient_matches_finite_differences() -> None:
    torch.manual_seed(0)
    model = _mlp(0).double()
    split = _data()
    x, y = split.inputs.double(), split.targets
    params = {k: v.detach().clone() for k, v in model.named_parameters()}
    other = {k: v.detach().clone() for k, v in _mlp(1).double().named_parameters()}
    bend = {k: (0.5 * (params[k] + other[k]) + 0.1 * torch.randn_like(v)).requires_grad_(True) for k, v in params.items()}

    def ce(out: Tensor, target: Tensor) -> Tensor:
        return F.cross_entropy(out, target)

    t = 0.3
    loss = curve_loss(model, "bezier", t, [params, bend, other], {}, x, y, ce)
    (grad,) = torch.autograd.grad(loss, [bend["fc2.weight"]])
    eps = 1e-6
    for idx in [(0, 0), (3, 5), (7, 2)]:
        with torch.no_grad():
            plus = {k: v.detach().clone() for k, v in bend.items()}
            minus = {k: v.detach().clone() for k, v in bend.items()}
            plus["fc2.weight"][idx] += eps
            minus["fc2.weight"][idx] -= eps
            fd = (curve_loss(model, "bezier", t, [params, plus, other], {}, x, y, ce)
                  - curve_loss(model, "bezier", t, [params, minus, other], {}, x, y, ce)) / (2 * eps)
        assert float(grad[idx]) == pytest.approx(float(fd), rel=1e-6, abs=1e-9)


# --- linear assignment and weight matching ---------------------------------------------------------------


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_linear_assignment_equals_brute_force(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    for cost in (rng.normal(size=(n, n)), rng.integers(0, 3, size=(n, n)).astype(float)):  # ties in the second
        cols = linear_sum_assignment(cost)
        assert sorted(cols.tolist()) == list(range(n))
        best = min(sum(cost[i, p[i]] for i in range(n)) for p in itertools.permutations(range(n)))
        assert cost[np.arange(n), cols].sum() == pytest.approx(best, abs=1e-12)


class _UserCNN(nn.Sequential):
    def __init__(self) -> None:
        super().__init__(OrderedDict([
            ("c1", nn.Conv2d(1, 4, 3, padding=1)), ("b1", nn.BatchNorm2d(4)), ("r1", nn.ReLU()),
            ("c2", nn.Conv2d(4, 6, 3, padding=1)), ("r2", nn.ReLU()), ("pool", nn.MaxPool2d(2)),
            ("flat", nn.Flatten()), ("fc", nn.Linear(6 * 4 * 4, 5)), ("r3", nn.ReLU()), ("out", nn.Linear(5, 3))]))


def _models() -> list[tuple[str, nn.Module, Tensor]]:
    digits = torch.rand(16, 1, 8, 8, generator=torch.Generator().manual_seed(3))
    return [
        ("mlp", _mlp(0, bn=True), _data().inputs[:16]),
        ("registry mlp", build_model("mlp", (1, 8, 8), (10,), {"hidden": [12, 7], "batchnorm": True}), digits),
        ("registry cnn", build_model("cnn", (1, 8, 8), (10,), {"width": 4}), digits),
        ("user cnn", _UserCNN(), digits),
    ]


@pytest.mark.parametrize("case", range(4))
def test_alignment_keeps_the_function_of_b(case: int) -> None:
    name, template, x = _models()[case]
    torch.manual_seed(10 + case)
    model_b = type(template)() if isinstance(template, _UserCNN) else template
    for p in model_b.parameters():
        p.data.normal_()
    _randomize_bn_(model_b, case)
    a = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in model_b.state_dict().items()}
    a = {k: (v.abs() + 0.5 if k.endswith("running_var") else v) for k, v in a.items()}
    b = model_b.state_dict()
    permuted, perms = align_state(model_b, a, b)
    assert any(not torch.equal(p, torch.arange(len(p))) for p in perms), name  # something actually moved
    model_b.eval()
    with torch.no_grad():
        before = model_b(x).double()
        model_b.load_state_dict(permuted)
        after = model_b(x).double()
    assert (after - before).abs().max() <= 1e-5 * max(1.0, float(before.abs().max())), name


@pytest.mark.parametrize("case", range(4))
def test_alignment_recovers_a_known_permutation(case: int) -> None:
    _, model, _ = _models()[case]
    _randomize_bn_(model, case)
    a = {k: v.detach().clone() for k, v in model.state_dict().items()}
    spec = permutation_spec(model)
    g = torch.Generator().manual_seed(case)
    pi = [torch.randperm(n, generator=g) for n in spec.sizes]
    b = apply_permutation(a, spec, pi)  # B[i] = A[π[i]]
    permuted, perms = align_state(model, a, b)
    for key in a:
        assert torch.equal(permuted[key], a[key]), key
    for p, q in zip(perms, pi, strict=True):
        assert torch.equal(p, torch.argsort(q))  # the inverse of π


def test_residual_and_unsupported_layers_are_refused_naming_the_layer() -> None:
    resnet = build_model("resnet20", (3, 8, 8), (10,), {"width": 4})
    with pytest.raises(AlignmentError, match=r"residual connection.*'layer1\.0"):
        permutation_spec(resnet)
    with_ln = nn.Sequential(OrderedDict([("fc", nn.Linear(4, 5)), ("norm", nn.LayerNorm(5)), ("out", nn.Linear(5, 2))]))
    with pytest.raises(AlignmentError, match=r"'norm' \(LayerNorm\)"):
        permutation_spec(with_ln)


# --- BatchNorm re-estimation -----------------------------------------------------------------------------


@pytest.mark.parametrize("t", [0.0, 1.0])
def test_bn_recompute_at_the_ends_equals_hand_statistics(t: float) -> None:
    model_a, model_b = _mlp(0, bn=True), _mlp(1, bn=True)
    _randomize_bn_(model_a, 0)
    _randomize_bn_(model_b, 1)
    split = _data()
    batches = [split.inputs[i : i + 32] for i in range(0, 96, 32)]
    ev = PathEvaluator(model_a, {"train": split}, MetricSet(["cross_entropy"], "classification", 3),
                       device=torch.device("cpu"), bn="recompute", bn_inputs=batches)
    ev.load_(path_point("line", t, [model_a.state_dict(), model_b.state_dict()]))
    src = model_a if t == 0.0 else model_b
    w, bias = src.fc1.weight.double(), src.fc1.bias.double()
    means, variances = [], []
    for xb in batches:  # the hand oracle: per-batch mean and unbiased variance of fc1's outputs, averaged
        h = xb.double() @ w.T + bias
        means.append(h.mean(0))
        variances.append(((h - h.mean(0)) ** 2).sum(0) / (len(h) - 1))
    bn1 = ev.model.bn1
    assert isinstance(bn1, nn.BatchNorm1d)
    torch.testing.assert_close(bn1.running_mean.double(), torch.stack(means).mean(0), rtol=0, atol=1e-5)
    torch.testing.assert_close(bn1.running_var.double(), torch.stack(variances).mean(0), rtol=1e-5, atol=1e-5)
    assert not bn1.training  # evaluation still uses running statistics


def test_recompute_bn_leaves_the_modes_and_momentum() -> None:
    model = _mlp(0, bn=True).train()
    recompute_bn_(model, [_data().inputs])
    assert model.training and model.bn1.momentum == 0.1


# --- the API and the file ------------------------------------------------------------------------------


def test_endpoints_of_every_path_are_the_models_own_losses(tmp_path: Path) -> None:
    train, test = _data(seed=0), _data(seed=1)
    model_a, model_b = _mlp(0), _mlp(1)
    res = connect(model_a, model_b, (train, (test.inputs, test.targets)), out=tmp_path / "c",
                  **_fast(curve="bezier", align="weights"))
    i0, i1 = int(np.flatnonzero(res.t == 0)[0]), int(np.flatnonzero(res.t == 1)[0])
    for split, data in (("train", train), ("test", test)):
        la, lb = _hand_ce(model_a, data), _hand_ce(model_b, data)
        for path in ("line", "aligned_line", "curve"):
            assert res.values[path][f"{split}_loss"][i0] == pytest.approx(la, abs=1e-6), path
            assert res.values[path][f"{split}_loss"][i1] == pytest.approx(lb, abs=1e-6), path
    cf = read_connect(tmp_path / "c" / "connect.h5")
    assert cf.paths == ["line", "aligned_line", "curve"] and len(cf.bends) == 1
    assert all(cf.done[p].all() for p in cf.paths)
    with h5py.File(tmp_path / "c" / "connect.h5") as f:
        assert f.attrs["barrier_line_train_loss"] == pytest.approx(barrier(res.t, res.values["line"]["train_loss"]))
        assert "barrier_curve_test_err" in f.attrs and json.loads(f.attrs["settings"])["curve"] == "bezier"
    assert (tmp_path / "c" / "connect.csv").read_text().count("\n") == 4
    assert not (tmp_path / "c" / "connect_paths.png").exists()


def test_the_callers_models_are_untouched() -> None:
    model_a, model_b = _mlp(0, bn=True), _mlp(1, bn=True)
    before = [{k: v.clone() for k, v in m.state_dict().items()} for m in (model_a, model_b)]
    connect(model_a, model_b, _data(), **_fast(curve="polychain", bends=2, align="weights"))
    for m, saved in zip((model_a, model_b), before, strict=True):
        assert all(torch.equal(m.state_dict()[k], v) for k, v in saved.items())


class _Stop(Exception):
    pass


def test_a_killed_curve_training_resumes_from_its_last_epoch(tmp_path: Path) -> None:
    data, model_a, model_b = _data(), _mlp(0), _mlp(1)
    settings = _fast(curve="bezier", epochs=3)
    cc = ConnectConfig(**{k: v for k, v in settings.items() if k != "figures"})  # type: ignore[arg-type]
    whole = connect(model_a, model_b, data, out=tmp_path / "whole", **settings)
    seen: list[int] = []

    def stop_after_two(epoch: int, loss: float) -> None:
        seen.append(epoch)
        if epoch == 2:
            raise _Stop

    from landscape.workflows import connect as wf

    with pytest.raises(_Stop):
        wf.connect_states(model_a, model_a.state_dict(), model_b.state_dict(), data, {"train": data},
                          MetricSet(["cross_entropy"], "classification", 3), cc,
                          tmp_path / "killed", extra_settings={"loss": "cross_entropy"}, on_epoch=stop_after_two)
    assert not read_connect(tmp_path / "killed" / "connect.h5").bends  # killed before any evaluation
    resumed_epochs: list[int] = []
    resumed = wf.connect_states(model_a, model_a.state_dict(), model_b.state_dict(), data, {"train": data},
                                MetricSet(["cross_entropy"], "classification", 3), cc,
                                tmp_path / "killed", extra_settings={"loss": "cross_entropy"},
                                on_epoch=lambda e, _: resumed_epochs.append(e))
    assert seen == [1, 2] and resumed_epochs == [3]
    for key, value in whole.bends[0].items():
        assert torch.equal(resumed.bends[0][key], value), key
    for col, values in whole.values["curve"].items():
        np.testing.assert_array_equal(resumed.values["curve"][col], values)


def test_evaluation_resumes_from_its_done_mask(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data, model_a, model_b = _data(), _mlp(0), _mlp(1)
    settings = _fast(curve="line", points=9)
    whole = connect(model_a, model_b, data, out=tmp_path / "whole", **settings)
    from landscape.engine import connect as engine

    calls = {"n": 0}
    real = engine.PathEvaluator.evaluate

    def dying(self: engine.PathEvaluator, state: dict[str, Tensor]) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] == 6:
            raise _Stop
        return real(self, state)

    monkeypatch.setattr(engine.PathEvaluator, "evaluate", dying)
    with pytest.raises(_Stop):
        connect(model_a, model_b, data, out=tmp_path / "part", **settings)
    partial = read_connect(tmp_path / "part" / "connect.h5")
    assert int(partial.done["line"].sum()) == 5  # flushed on the way out
    monkeypatch.setattr(engine.PathEvaluator, "evaluate", real)
    # mark one finished point with a value no evaluation gives: a resume must keep it, not recompute it
    with h5py.File(tmp_path / "part" / "connect.h5", "r+") as f:
        first = int(np.flatnonzero(f["line"]["done"][()])[0])
        f["line"]["train_loss"][first] = 123.0
    resumed = connect(model_a, model_b, data, out=tmp_path / "part", **settings)
    assert resumed.values["line"]["train_loss"][first] == 123.0
    rest = np.arange(len(resumed.t)) != first
    np.testing.assert_array_equal(resumed.values["line"]["train_loss"][rest], whole.values["line"]["train_loss"][rest])


def test_other_settings_are_refused(tmp_path: Path) -> None:
    data, model_a, model_b = _data(), _mlp(0), _mlp(1)
    connect(model_a, model_b, data, out=tmp_path, **_fast(curve="line"))
    with pytest.raises(Exception, match="other settings"):
        connect(model_a, model_b, data, out=tmp_path, **_fast(curve="line", points=7))


# --- the command -------------------------------------------------------------------------------------------


def _checkpoint(path: Path, seed: int, hidden: list[int], bn: bool = False) -> Path:
    cfg = Config(data=DataConfig(name="digits", max_train=160, max_test=80),
                 model=ModelConfig(name="mlp", options={"hidden": hidden, "batchnorm": bn}), train=TrainConfig(seed=seed),
                 connect=ConnectConfig(epochs=1, points=5, plane_grid=5, batch_size=40, bn_batches=2))
    torch.manual_seed(seed)
    model = build_model("mlp", (1, 8, 8), (10,), {"hidden": hidden, "batchnorm": bn})
    save_checkpoint(path, model, config_to_dict(cfg), epoch=0, step=0, metrics={}, input_shape=(1, 8, 8), output_shape=(10,))
    return path


def test_cli_connect_info_and_plot(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _checkpoint(tmp_path / "a.pt", 0, [8], bn=True)
    b = _checkpoint(tmp_path / "b.pt", 1, [8], bn=True)
    out = tmp_path / "out"
    assert main(["connect", str(a), str(b), "--out", str(out), "--align", "weights", "--curve", "bezier",
                 "--set", 'plot.formats=["png"]', "--set", "plot.dpi=40"]) == 0
    text = capsys.readouterr().out
    assert "aligned line barrier" in text and "curve barrier" in text
    settings = read_connect(out / "connect.h5").attrs["settings"]
    assert settings["bn"] == "recompute" and settings["epochs"] == 1
    for name in ("connect.csv", "connect.md", "plane.h5", "connect_paths.png", "connect_plane.png", "curve_state.pt"):
        assert (out / name).exists(), name
    assert main(["info", str(out / "connect.h5")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["type"] == "connect" and info["done"]["curve"] == "5/5" and "line_train_loss" in info["barriers"]
    assert not (out / "connect_paths.pdf").exists()  # the [plot] section chooses the formats
    assert main(["plot", str(out / "connect.h5"), "--out", str(tmp_path / "figs"), "--format", "png", "--dpi", "40"]) == 0
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["connect_paths.png", "connect_plane.png"]


def test_cli_bad_input_gets_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _checkpoint(tmp_path / "a.pt", 0, [8])
    wide = _checkpoint(tmp_path / "wide.pt", 1, [16])
    out = str(tmp_path / "out")
    assert main(["connect", str(a), str(wide), "--out", out]) == 1
    err = capsys.readouterr().err.strip()
    assert "different architectures" in err and "fc1.weight" in err and "\n" not in err
    assert main(["connect", str(a), str(tmp_path / "." / "a.pt"), "--out", out]) == 1
    err = capsys.readouterr().err.strip()
    assert "given twice" in err and "\n" not in err
    torch.save(torch.load(a, weights_only=True), tmp_path / "copy.pt")
    assert main(["connect", str(a), str(tmp_path / "copy.pt"), "--out", out]) == 1
    err = capsys.readouterr().err.strip()
    assert "identical weights" in err and "\n" not in err


def test_cli_refuses_to_align_a_residual_net(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    paths = []
    for seed in (0, 1):
        cfg = Config(data=DataConfig(name="digits", max_train=40, max_test=20), model=ModelConfig(name="resnet20", options={"width": 2}),
                     train=TrainConfig(seed=seed))
        torch.manual_seed(seed)
        model = build_model("resnet20", (1, 8, 8), (10,), {"width": 2})
        paths.append(tmp_path / f"r{seed}.pt")
        save_checkpoint(paths[-1], model, config_to_dict(cfg), epoch=0, step=0, metrics={}, input_shape=(1, 8, 8), output_shape=(10,))
    assert main(["connect", *map(str, paths), "--out", str(tmp_path / "o"), "--align", "weights", "--curve", "line"]) == 1
    err = capsys.readouterr().err.strip()
    assert "residual connection" in err and "layer1.0" in err and "\n" not in err
