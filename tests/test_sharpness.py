"""Sharpness measures against closed forms (a quadratic loss) and direct float64 implementations
written here for a small MLP (projected gradient ascent, Monte Carlo, per-sample gradients, a dense
Hessian)."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

import landscape
from landscape.engine.hessian import HessianProblem
from landscape.engine.sharpness import average_case, fisher_rao_norm, m_batches, sharpness, worst_case
from landscape.errors import HessianError

DT = torch.float64


class Quadratic(nn.Module):
    """Every sample's loss is ½(θ − c)ᵀA(θ − c); θ starts at c (the minimum)."""

    def __init__(self, a: Tensor, c: Tensor) -> None:
        super().__init__()
        self.theta = nn.Parameter(c.clone())
        self.register_buffer("a", a)
        self.register_buffer("c", c)

    def forward(self, x: Tensor) -> Tensor:
        d = self.theta - self.c
        return (0.5 * d @ self.a @ d).expand(x.shape[0])


def identity(out: Tensor, _: object) -> Tensor:
    return out


def quadratic(c: Tensor, a: Tensor) -> HessianProblem:
    return HessianProblem(Quadratic(a, c), ["theta"], [(torch.zeros(4, 1, dtype=DT), None)], identity)  # type: ignore[list-item]


def spd(p: int, top: float = 5.0, seed: int = 0) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(p, p, generator=g, dtype=DT))
    lam = torch.cat([torch.tensor([top], dtype=DT), torch.linspace(2.0, 0.1, p - 1, dtype=DT)])
    return q @ torch.diag(lam) @ q.T


def test_worst_case_l2_of_a_quadratic_is_half_rho_squared_lambda_max() -> None:
    a = spd(12)
    rho = 0.3
    value, _ = worst_case(quadratic(torch.zeros(12, dtype=DT), a), rho, steps=30)
    assert value == pytest.approx(0.5 * rho**2 * 5.0, rel=1e-6)


def test_adaptive_worst_case_scales_by_the_weights() -> None:
    """At θ* = c: max over ‖ε‖ ≤ ρ of ½(|c|⊙ε)ᵀA(|c|⊙ε) = ½ρ² λmax(DAD), D = diag|c|."""
    a, c = spd(10, seed=1), torch.linspace(-2.0, 3.0, 10, dtype=DT)
    d = torch.diag(c.abs())
    rho = 0.1
    value, _ = worst_case(quadratic(c, a), rho, adaptive=True, steps=60)
    assert value == pytest.approx(0.5 * rho**2 * float(torch.linalg.eigvalsh(d @ a @ d)[-1]), rel=1e-5)


def test_worst_case_linf_of_a_diagonal_quadratic_is_its_corner() -> None:
    lam = torch.linspace(0.5, 3.0, 8, dtype=DT)
    value, _ = worst_case(quadratic(torch.zeros(8, dtype=DT), torch.diag(lam)), 0.2, norm="linf", steps=5)
    assert value == pytest.approx(0.5 * 0.2**2 * float(lam.sum()), rel=1e-12)


@pytest.mark.parametrize("adaptive", [False, True])
def test_average_case_of_a_quadratic_is_half_rho_squared_trace(adaptive: bool) -> None:
    a, c = spd(10, seed=2), torch.linspace(0.5, 2.0, 10, dtype=DT)
    s = torch.diag(c.abs()) if adaptive else torch.eye(10, dtype=DT)
    rho = 0.2
    mean, err = average_case(quadratic(c, a), rho, adaptive=adaptive, samples=200, seed=3)
    exact = 0.5 * rho**2 * float(torch.trace(s @ a @ s))
    assert abs(mean - exact) <= 4 * err and err < 0.2 * exact


# --- a small MLP against direct float64 implementations ----------------------------------------------


@pytest.fixture(scope="module")
def mlp() -> tuple[nn.Module, Tensor, Tensor, HessianProblem]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 10), nn.Tanh(), nn.Linear(10, 3)).to(DT)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(60, 6, generator=g, dtype=DT), torch.randint(0, 3, (60,), generator=g)

    def ce(out: Tensor, t: Tensor) -> Tensor:
        return F.cross_entropy(out, t, reduction="none")

    names = ["0.weight", "2.weight"]
    return model, x, y, HessianProblem(model, names, [(x[:35], y[:35]), (x[35:], y[35:])], ce)


def loss_at(model: nn.Module, x: Tensor, y: Tensor, flat: Tensor) -> Tensor:
    w1, w2 = flat[:60].reshape(10, 6), flat[60:].reshape(3, 10)
    own = {k: p.detach() for k, p in model.named_parameters()}
    return F.cross_entropy(functional_call(model, {**own, "0.weight": w1, "2.weight": w2}, (x,)), y)


def theta0(model: nn.Module) -> Tensor:
    return torch.cat([model[0].weight.detach().reshape(-1), model[2].weight.detach().reshape(-1)])  # type: ignore[index]


def direct_ascent(model: nn.Module, x: Tensor, y: Tensor, rho: float, steps: int = 200) -> float:
    """max_{‖δ‖≤ρ} L(θ+δ) − L(θ): start along the gradient, small steps, projection onto the sphere."""
    t0 = theta0(model)
    base = float(loss_at(model, x, y, t0))
    t = t0.clone().requires_grad_(True)
    (g,) = torch.autograd.grad(loss_at(model, x, y, t), [t])
    delta = rho * g / g.norm()
    best = -math.inf
    for _ in range(steps):
        t = (t0 + delta).requires_grad_(True)
        value = loss_at(model, x, y, t)
        (g,) = torch.autograd.grad(value, [t])
        best = max(best, float(value.detach()) - base)
        delta = delta + 0.2 * rho * g / g.norm()
        delta = delta * min(1.0, rho / float(delta.norm()))
    return best


def test_worst_case_on_the_mlp_matches_a_direct_ascent(mlp: tuple[nn.Module, Tensor, Tensor, HessianProblem]) -> None:
    model, x, y, problem = mlp
    value, _ = worst_case(problem, 0.5, steps=30)
    assert value == pytest.approx(direct_ascent(model, x, y, 0.5), rel=1e-3)


def test_m_sharpness_averages_the_worst_case_of_each_m_batch(
        mlp: tuple[nn.Module, Tensor, Tensor, HessianProblem]) -> None:
    model, x, y, problem = mlp
    # batches of 35 and 25 samples re-cut into m = 10: 3 + 2 batches (the 5-sample tails are dropped)
    cut = [(x[lo:lo + 10], y[lo:lo + 10]) for lo in (0, 10, 20, 35, 45)]
    assert [int(b[0].shape[0]) for b in m_batches(problem._batches, 10)] == [10] * 5
    per = [direct_ascent(model, bx, by, 0.5) for bx, by in cut]
    (res,) = sharpness(problem, ["worst_l2"], [0.5], steps=30, m=10)
    assert res.m == 10 and res.details["batches"] == 5
    assert res.value == pytest.approx(float(np.mean(per)), rel=1e-3)
    assert res.stderr == pytest.approx(float(np.std(per, ddof=1) / math.sqrt(5)), rel=1e-2)


def test_average_case_on_the_mlp_matches_a_direct_monte_carlo(
        mlp: tuple[nn.Module, Tensor, Tensor, HessianProblem]) -> None:
    model, x, y, problem = mlp
    t0 = theta0(model)
    base = float(loss_at(model, x, y, t0))
    g = torch.Generator().manual_seed(99)  # other draws than the engine's
    draws = [float(loss_at(model, x, y, t0 + 0.3 * torch.randn(t0.numel(), generator=g, dtype=DT))) - base for _ in range(400)]
    mean, err = average_case(problem, 0.3, samples=100)
    direct, direct_err = float(np.mean(draws)), float(np.std(draws, ddof=1) / math.sqrt(400))
    assert abs(mean - direct) <= 4 * math.hypot(err, direct_err)


def test_fisher_rao_norm_is_the_mean_squared_directional_gradient(
        mlp: tuple[nn.Module, Tensor, Tensor, HessianProblem]) -> None:
    model, x, y, problem = mlp
    t0 = theta0(model)
    terms = []
    for i in range(60):
        t = t0.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(loss_at(model, x[i:i + 1], y[i:i + 1], t), [t])
        terms.append(float(g @ t0) ** 2)
    assert fisher_rao_norm(problem) == pytest.approx(math.sqrt(np.mean(terms)), rel=1e-10)


def test_filter_normalized_curvature_is_the_projected_dense_hessian(
        mlp: tuple[nn.Module, Tensor, Tensor, HessianProblem]) -> None:
    model, x, y, problem = mlp
    dirs = landscape.random_directions(model, 2, seed=5)
    assert dirs.y is not None
    hess = torch.autograd.functional.hessian(lambda t: loss_at(model, x, y, t), theta0(model))
    d = torch.cat([dirs.x["0.weight"].double().reshape(-1), dirs.x["2.weight"].double().reshape(-1)])
    e = torch.cat([dirs.y["0.weight"].double().reshape(-1), dirs.y["2.weight"].double().reshape(-1)])
    proj = np.array([[float(d @ hess @ d), float(d @ hess @ e)], [float(e @ hess @ d), float(e @ hess @ e)]])
    lo, hi = np.linalg.eigvalsh(proj)
    (res,) = sharpness(problem, ["curvature"], [0.1], directions=(dirs.x, dirs.y))
    assert res.value == pytest.approx((lo + hi) / 2, rel=1e-5)
    assert res.details["curvature_max"] == pytest.approx(hi, rel=1e-5)
    assert res.details["curvature_min"] == pytest.approx(lo, rel=1e-5, abs=1e-9 * hi)


def test_bad_settings_name_the_value(mlp: tuple[nn.Module, Tensor, Tensor, HessianProblem]) -> None:
    problem = mlp[3]
    with pytest.raises(HessianError, match="unknown sharpness measure 'sam'"):
        sharpness(problem, ["sam"], [0.1])
    with pytest.raises(HessianError, match=r"rho must be positive numbers, got \[-0.1\]"):
        sharpness(problem, ["worst_l2"], [-0.1])
    with pytest.raises(HessianError, match="m = 30 leaves 1 batch"):
        sharpness(problem, ["worst_l2"], [0.1], m=30, steps=1)


# --- the command and the API ---------------------------------------------------------------------------

BLOBS = """
    [data]
    name = "blobs"
    options = { n_train = 120, n_test = 60 }

    [model]
    name = "mlp"
    options = { hidden = [6], activation = "tanh" }

    [train]
    loss = "cross_entropy"
    epochs = 2
"""


def test_sharpness_command_against_direct_float64_measures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from landscape.cli import main
    from landscape.io.checkpoint import load_checkpoint
    from landscape.workflows.experiment import experiment_from_checkpoint

    (tmp_path / "c.toml").write_text(textwrap.dedent(BLOBS))
    assert main(["--quiet", "train", str(tmp_path / "c.toml"), "--out", str(tmp_path / "run")]) == 0
    ckpt = tmp_path / "run" / "checkpoints" / "epoch_002.pt"
    out = tmp_path / "s.json"
    assert main(["sharpness", str(ckpt), "--out", str(out), "--measures", "worst_l2,average,fisher_rao,curvature",
                 "--rho", "0.05,0.2", "--steps", "30", "--samples", "10"]) == 0
    assert "worst_l2" in capsys.readouterr().out
    r = json.loads(out.read_text())
    rows = {(row["measure"], row["rho"]): row for row in r["measures"]}
    assert set(rows) == {("worst_l2", 0.05), ("worst_l2", 0.2), ("average", 0.05), ("average", 0.2),
                         ("fisher_rao", None), ("curvature", None)}
    exp = experiment_from_checkpoint(load_checkpoint(ckpt))
    model = exp.model.double().eval()
    x, y = exp.data.train.inputs.double(), exp.data.train.targets
    names = r["parameters"]["names"]
    assert names == ["fc1.weight", "out.weight"]
    own = {k: p.detach() for k, p in model.named_parameters()}
    sizes = [own[k].numel() for k in names]
    t0 = torch.cat([own[k].reshape(-1) for k in names])

    def loss(flat: Tensor, xs: Tensor = x, ys: Tensor = y) -> Tensor:
        parts = dict(zip(names, (p.reshape(own[k].shape) for p, k in zip(torch.split(flat, sizes), names, strict=True)), strict=True))
        return F.cross_entropy(functional_call(model, {**own, **parts}, (xs,)), ys)

    base = float(loss(t0))
    for rho in (0.05, 0.2):  # a direct ascent, started along the gradient
        t = t0.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(loss(t), [t])
        delta, best = rho * g / g.norm(), -math.inf
        for _ in range(200):
            t = (t0 + delta).requires_grad_(True)
            value = loss(t)
            (g,) = torch.autograd.grad(value, [t])
            best = max(best, float(value.detach()) - base)
            delta = delta + 0.2 * rho * g / g.norm()
            delta = delta * min(1.0, rho / float(delta.norm()))
        assert rows[("worst_l2", rho)]["value"] == pytest.approx(best, rel=2e-3)
    grads = []
    for i in range(len(x)):
        t = t0.clone().requires_grad_(True)
        grads.append(float(torch.autograd.grad(loss(t, x[i:i + 1], y[i:i + 1]), [t])[0] @ t0) ** 2)
    assert rows[("fisher_rao", None)]["value"] == pytest.approx(math.sqrt(np.mean(grads)), rel=1e-4)
    dirs = landscape.random_directions(exp.model, 2, seed=123)
    assert dirs.y is not None
    hess = torch.autograd.functional.hessian(loss, t0)
    d, e = (torch.cat([v[k].double().reshape(-1) for k in names]) for v in (dirs.x, dirs.y))
    mean = 0.5 * float(d @ hess @ d + e @ hess @ e)
    assert rows[("curvature", None)]["value"] == pytest.approx(mean, rel=1e-4)
    assert rows[("average", 0.2)]["stderr"] > 0 and rows[("average", 0.2)]["iterations"] == 10


def test_api_sharpness_on_dict_batches_with_a_callable_loss() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3))
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(40, 5, generator=g), torch.randint(0, 3, (40,), generator=g)
    batches = [{"inputs": x[:20], "labels": y[:20]}, {"inputs": x[20:], "labels": y[20:]}]

    def per_sample(m: nn.Module, b: dict[str, Tensor]) -> Tensor:
        return F.cross_entropy(m(b["inputs"]), b["labels"], reduction="none")

    before = {k: v.clone() for k, v in model.state_dict().items()}
    s = landscape.sharpness(model, batches, loss=per_sample, measures=["adaptive_worst_linf", "fisher_rao"],
                            rho=[0.01], m=10, progress=False, steps=5)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())  # the model is not written
    assert s.names == ["0.weight", "2.weight"] and s.dim == 48
    worst = s.results[0]
    assert worst.m == 10 and worst.details["batches"] == 4 and worst.stderr is not None and worst.value > 0
    m64 = model.double()
    params = [m64[0].weight, m64[2].weight]  # type: ignore[index]
    theta = torch.cat([p.detach().reshape(-1) for p in params])
    sq = [float(torch.cat([gr.reshape(-1) for gr in torch.autograd.grad(
        F.cross_entropy(m64(x[i:i + 1].double()), y[i:i + 1]), params)]) @ theta) ** 2 for i in range(40)]
    assert s.value("fisher_rao") == pytest.approx(math.sqrt(np.mean(sq)), rel=1e-4)
    with pytest.raises(landscape.LandscapeError, match="no result for measure 'average'"):
        s.value("average")



def _fisher_rao64(model: nn.Module, x: Tensor, y: Tensor) -> float:
    """√((1/N) Σᵢ ⟨∇ℓᵢ, θ⟩²) over the weights (ndim > 1), by a float64 loop of per-sample gradients."""
    m64 = copy.deepcopy(model).double()
    params = [p for p in m64.parameters() if p.ndim > 1]
    theta = torch.cat([p.detach().reshape(-1) for p in params])
    sq = [float(torch.cat([gr.reshape(-1) for gr in torch.autograd.grad(
        F.cross_entropy(m64(x[i:i + 1].double()), y[i:i + 1]), params)]) @ theta) ** 2 for i in range(len(x))]
    return math.sqrt(float(np.mean(sq)))


def test_sharpness_split_both_gives_one_report_per_split(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``--split both`` as ``landscape hessian --split both``: one report per split, each equal to a run on
    that split alone; the test split's numbers against a float64 loop over the test data."""
    from landscape.cli import main
    from landscape.io.checkpoint import load_checkpoint
    from landscape.workflows.experiment import experiment_from_checkpoint

    (tmp_path / "c.toml").write_text(textwrap.dedent(BLOBS))
    assert main(["--quiet", "train", str(tmp_path / "c.toml"), "--out", str(tmp_path / "run")]) == 0
    ckpt = tmp_path / "run" / "checkpoints" / "epoch_002.pt"
    flags = ["--measures", "worst_l2,fisher_rao", "--rho", "0.05", "--steps", "4"]
    capsys.readouterr()
    assert main(["sharpness", str(ckpt), *flags, "--split", "both", "--out", str(tmp_path / "both.json")]) == 0
    shown = capsys.readouterr().out
    assert "[train]" in shown and "[test]" in shown and "on test (60 samples)" in shown
    both = json.loads((tmp_path / "both.json").read_text())
    assert both["split"] == "both" and list(both["reports"]) == ["train", "test"]
    for split in ("train", "test"):
        assert main(["--quiet", "sharpness", str(ckpt), *flags, "--split", split, "--out", str(tmp_path / f"{split}.json")]) == 0
        alone = json.loads((tmp_path / f"{split}.json").read_text())
        got = both["reports"][split]
        assert got["settings"]["split"] == split and got["loss"] == alone["loss"]
        assert [r["value"] for r in got["measures"]] == [r["value"] for r in alone["measures"]]
    exp = experiment_from_checkpoint(load_checkpoint(ckpt))
    x, y = exp.data.test.inputs, exp.data.test.targets
    test = both["reports"]["test"]
    with torch.no_grad():
        assert test["loss"] == pytest.approx(float(F.cross_entropy(exp.model.double()(x.double()), y)), rel=1e-6)
    exp = experiment_from_checkpoint(load_checkpoint(ckpt))
    assert test["measures"][1]["value"] == pytest.approx(_fisher_rao64(exp.model, x, y), rel=1e-4)
    assert test["loss"] != both["reports"]["train"]["loss"]
    # landscape compare --sharpness under split both: each split's measures as its own columns
    from landscape.workflows.experiment import checkpoint_config
    from landscape.workflows.sharpness import sharpness_columns

    cfg = checkpoint_config(load_checkpoint(ckpt))
    assert cfg is not None
    cfg = dataclasses.replace(cfg, surface=dataclasses.replace(cfg.surface, split="both"),
                              sharpness=dataclasses.replace(cfg.sharpness, measures=("worst_l2", "fisher_rao"), rho=(0.05,), steps=4))
    cols = sharpness_columns(ckpt, cfg)
    assert cols == {f"{split}_{m}": both["reports"][split]["measures"][i]["value"]
                    for split in ("train", "test") for i, m in enumerate(["worst_l2@0.05", "fisher_rao"])}


def test_api_sharpness_split_both_returns_one_result_per_split() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 6), nn.Tanh(), nn.Linear(6, 3))
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(50, 5, generator=g), torch.randint(0, 3, (50,), generator=g)
    data = ((x[:30], y[:30]), (x[30:], y[30:]))
    both = landscape.sharpness(model, data, measures=["fisher_rao"], split="both", progress=False)
    assert set(both) == {"train", "test"} and both["test"].split == "test" and both["train"].split == "train"
    assert both["test"].value("fisher_rao") == pytest.approx(_fisher_rao64(model, x[30:], y[30:]), rel=1e-4)
    assert both["train"].value("fisher_rao") == pytest.approx(_fisher_rao64(model, x[:30], y[:30]), rel=1e-4)
    one = landscape.sharpness(model, data, measures=["fisher_rao"], progress=False)
    assert one.split == "train" and one.value("fisher_rao") == both["train"].value("fisher_rao")
    with pytest.raises(landscape.LandscapeError, match="split 'test' is not in the data, which hold train"):
        landscape.sharpness(model, (x, y), measures=["fisher_rao"], split="both", progress=False)
    with pytest.raises(landscape.LandscapeError, match="split 'valid': choose 'train', 'test' or 'both'"):
        landscape.sharpness(model, data, measures=["fisher_rao"], split="valid", progress=False)  # type: ignore[call-overload]


COMPARE = """
    [data]
    name = "digits"
    max_train = 120
    max_test = 60

    [model]
    name = "mlp"
    options = { hidden = [8] }

    [train]
    lr = 0.1
    batch_size = 40
    epochs = 2

    [compare]
    losses = ["mse"]
    x = "-1:1:7"
    y = "-1:1:7"
    line_x = "-1:1:5"
    pca_grid = 5

    [sharpness]
    rho = [0.1]
    steps = 5

    [plot]
    formats = ["png"]
    dpi = 40
"""


def test_compare_adds_sharpness_columns_on_request(tmp_path: Path) -> None:
    """``landscape compare --sharpness`` puts each final model's measures (own loss) in the table; they
    equal ``landscape sharpness`` on that checkpoint with that loss."""
    import csv

    from landscape.cli import main

    (tmp_path / "c.toml").write_text(textwrap.dedent(COMPARE))
    out = tmp_path / "cmp"
    assert main(["--quiet", "compare", str(tmp_path / "c.toml"), "--out", str(out),
                 "--sharpness", "worst_l2,fisher_rao"]) == 0
    with (out / "summary.csv").open() as f:
        rows = {r["loss"]: r for r in csv.DictReader(f)}
    assert set(rows) == {"mse"} and float(rows["mse"]["worst_l2@0.1"]) > 0
    for loss, row in rows.items():
        ckpt = sorted((out / loss / "checkpoints").glob("epoch_*.pt"))[-1]
        assert main(["--quiet", "sharpness", str(ckpt), "--out", str(tmp_path / f"{loss}.json"), "--loss", loss,
                     "--measures", "worst_l2,fisher_rao", "--rho", "0.1", "--steps", "5"]) == 0
        ref = {m["measure"]: m["value"] for m in json.loads((tmp_path / f"{loss}.json").read_text())["measures"]}
        assert float(row["worst_l2@0.1"]) == pytest.approx(ref["worst_l2"], rel=1e-9)
        assert float(row["fisher_rao"]) == pytest.approx(ref["fisher_rao"], rel=1e-9)
