"""Sharpness measures against closed forms (a quadratic loss) and direct float64 implementations
written here for a small MLP (projected gradient ascent, Monte Carlo, per-sample gradients, a dense
Hessian)."""

from __future__ import annotations

import math

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
