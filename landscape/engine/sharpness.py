"""Sharpness measures of the loss at θ*, on the same problems as the curvature (any model, data, loss).

With ``L`` the mean loss over the data and the restricted parameters θ (``problem.names``):

* **worst-case sharpness** ``max_{‖ε‖_p ≤ ρ} L(θ + s ⊙ ε) − L(θ)`` (Keskar et al. 2017; Foret et al.
  2021; Andriushchenko et al. 2023), p ∈ {2, ∞}; ``s = 1`` (standard) or ``s = |θ|`` (adaptive,
  Kwon et al. 2021: invariant to rescaling a layer). Found by projected gradient ascent from a
  small random start: ``steps`` steps of length ``step·ρ`` along ``g/‖g‖₂`` (L2) or ``sign(g)`` (L∞),
  g the gradient in ε, each followed by the projection onto the ball; the largest increase seen
  is reported (a lower bound of the maximum).
* **average-case sharpness** ``E_{z∼𝒩(0, I)} L(θ + ρ s ⊙ z) − L(θ)`` by Monte Carlo over ``samples``
  draws, with its standard error.
* **m-sharpness** (Foret et al. 2021; Andriushchenko & Flammarion 2022): either measure taken on
  every batch of m samples separately and averaged (``m > 0``), with the standard error over batches.
* **Fisher-Rao norm** ``‖θ‖_FR = √(θᵀ F θ)`` with F the empirical Fisher (Liang et al. 2019):
  ``θᵀFθ = (1/N) Σᵢ ⟨∇ℓᵢ, θ⟩²``.
* **filter-normalized curvature**: the Hessian of ``L(θ + αδ + βη)`` at (0, 0) for the random
  filter-normalized directions δ, η of the surfaces — ``[[δᵀHδ, δᵀHη], [ηᵀHδ, ηᵀHη]]``, its two
  eigenvalues and their mean: the limit r → 0 of the quadratic fit the compare table reports.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from landscape.engine.hessian import HessianProblem
from landscape.engine.operators import convert
from landscape.errors import HessianError
from landscape.zoo.userdata import batch_size_of

WORST = {"worst_l2": ("l2", False), "worst_linf": ("linf", False),
         "adaptive_worst_l2": ("l2", True), "adaptive_worst_linf": ("linf", True)}
AVERAGE = {"average": False, "adaptive_average": True}
MEASURES: tuple[str, ...] = (*WORST, *AVERAGE, "fisher_rao", "curvature")
_START = 0.1  # the random start of the ascent: this fraction of ρ


@dataclass(frozen=True)
class SharpnessResult:
    """One measure: ``value`` (loss units; the norm for fisher_rao), its standard error where
    sampled (Monte Carlo draws, or m-batches), ρ, and the ascent steps or draws it took."""

    measure: str
    value: float
    stderr: float | None
    rho: float | None
    iterations: int
    m: int = 0  # samples per batch of m-sharpness (0: the whole data)
    seconds: float = 0.0
    details: dict[str, Any] = field(default_factory=dict)


def _point(problem: HessianProblem) -> Tensor:
    return problem.flatten([problem._tensors[n] for n in problem.names])


def _loss_grad(problem: HessianProblem, theta: Tensor) -> tuple[float, Tensor]:
    """L and ∇L (flat float64) at the restricted parameters ``theta`` (flat)."""
    loss, grad = problem.at(problem.as_dict(problem.unflatten(theta))).loss_and_grad()
    return loss, problem.flatten(grad)


def _loss(problem: HessianProblem, theta: Tensor) -> float:
    return _loss_grad(problem, theta)[0]


def _project_(eps: Tensor, rho: float, norm: str) -> Tensor:
    if norm == "linf":
        return eps.clamp_(-rho, rho)
    n = float(eps.norm())
    return eps.mul_(rho / n) if n > rho else eps


def worst_case(problem: HessianProblem, rho: float, *, norm: str = "l2", adaptive: bool = False, steps: int = 20,
               step: float = 1.0, seed: int = 0) -> tuple[float, int]:
    """``max_{‖ε‖_p ≤ ρ} L(θ + s⊙ε) − L(θ)`` by projected gradient ascent (see the module docstring);
    returns (the largest increase seen, gradient evaluations)."""
    theta = _point(problem)
    scale = theta.abs() if adaptive else torch.ones_like(theta)
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(theta.numel(), generator=gen, dtype=torch.float64).to(theta.device)
    eps = _START * rho * (z.sign() if norm == "linf" else z / z.norm())
    base = _loss(problem, theta)
    best = 0.0
    for _ in range(steps):
        loss, grad = _loss_grad(problem, theta + scale * eps)
        best = max(best, loss - base)
        g = scale * grad  # ∂L/∂ε
        if norm == "linf":
            eps = _project_(eps + step * rho * g.sign(), rho, norm)
        elif float(g.norm()) > 0:
            eps = _project_(eps + step * rho * g / g.norm(), rho, norm)
    best = max(best, _loss(problem, theta + scale * eps) - base)
    return best, steps + 2


def average_case(problem: HessianProblem, rho: float, *, adaptive: bool = False, samples: int = 20,
                 seed: int = 0) -> tuple[float, float]:
    """``E L(θ + ρ s⊙z) − L(θ)`` over ``samples`` Gaussian draws z: (mean, standard error)."""
    theta = _point(problem)
    scale = theta.abs() if adaptive else torch.ones_like(theta)
    gen = torch.Generator().manual_seed(seed)
    base = _loss(problem, theta)
    draws = []
    for _ in range(samples):
        z = torch.randn(theta.numel(), generator=gen, dtype=torch.float64).to(theta.device)
        draws.append(_loss(problem, theta + rho * scale * z) - base)
    return float(np.mean(draws)), float(np.std(draws, ddof=1) / math.sqrt(samples))


def fisher_rao_norm(problem: HessianProblem) -> float:
    """``√(θᵀFθ)`` over the restricted parameters, F the empirical Fisher (one Fisher product)."""
    theta = _point(problem)
    return math.sqrt(max(float(theta @ convert(problem, "fisher").hvp_flat(theta)), 0.0))


def filter_curvature(problem: HessianProblem, x: Mapping[str, Tensor], y: Mapping[str, Tensor],
                     prefix: str = "") -> dict[str, float]:
    """The Hessian of ``L(θ + αδ + βη)`` at 0 for directions ``x`` = δ, ``y`` = η (name → tensor, the
    model's names): its eigenvalues and their mean. Taken over the tensors where δ or η is non-zero."""
    names = [prefix + k for k in x if float(x[k].abs().sum()) > 0 or float(y[k].abs().sum()) > 0]
    if not names:
        raise HessianError("the directions are zero on every tensor: no curvature along them")
    h = convert(problem, "hessian", names)
    own = [n.removeprefix(prefix) for n in h.names]
    d, e = (h.flatten([v[k] for k in own]).to(h.device) for v in (x, y))
    hd, he = h.hvp_flat(d), h.hvp_flat(e)
    mat = np.array([[float(d @ hd), float(d @ he)], [float(e @ hd), float(e @ he)]])
    mat = 0.5 * (mat + mat.T)
    lo, hi = np.linalg.eigvalsh(mat)
    return {"curvature_mean": 0.5 * float(lo + hi), "curvature_max": float(hi), "curvature_min": float(lo)}


def _slice(x: Any, lo: int, hi: int) -> Any:
    if isinstance(x, Tensor):
        return x[lo:hi]
    if isinstance(x, Mapping):
        return {k: _slice(v, lo, hi) for k, v in x.items()}
    if isinstance(x, tuple | list):
        return type(x)(_slice(v, lo, hi) for v in x)
    return x  # not per sample (None, a scalar): shared by every slice


def m_batches(batches: Iterable[tuple[Any, Any]], m: int) -> Iterator[tuple[Any, Any]]:
    """The data re-cut into consecutive batches of m samples (a shorter tail batch is dropped, so
    every batch has exactly m); read once, batch by batch (streamed data stays streamed)."""
    for x, y in batches:
        n = batch_size_of(x)
        for lo in range(0, n - m + 1, m):
            yield _slice(x, lo, lo + m), _slice(y, lo, lo + m)



def sharpness(problem: HessianProblem, measures: Sequence[str], rhos: Sequence[float], *, steps: int = 20,
              step: float = 1.0, samples: int = 20, m: int = 0, seed: int = 0,
              directions: tuple[Mapping[str, Tensor], Mapping[str, Tensor]] | None = None,
              prefix: str = "") -> list[SharpnessResult]:
    """Every measure of ``measures`` (at every ρ of ``rhos`` where it has one) on the Hessian
    problem's loss; ``directions`` (δ, η) are needed for ``curvature``."""
    unknown = [k for k in measures if k not in MEASURES]
    if unknown:
        raise HessianError(f"unknown sharpness measure {unknown[0]!r}; choose from {', '.join(MEASURES)}")
    if any(not (math.isfinite(r) and r > 0) for r in rhos) or not rhos:
        raise HessianError(f"rho must be positive numbers, got {list(rhos)}")
    if steps < 1 or samples < 2 or m < 0 or not step > 0:
        raise HessianError(f"steps ≥ 1, step > 0, samples ≥ 2 and m ≥ 0 are needed; got {steps}, {step}, {samples}, {m}")
    out: list[SharpnessResult] = []
    for name in measures:
        start = time.perf_counter()
        if name == "fisher_rao":
            out.append(SharpnessResult(name, fisher_rao_norm(problem), None, None, 1, 0, time.perf_counter() - start))
            continue
        if name == "curvature":
            if directions is None:
                raise HessianError("the curvature measure needs the two filter-normalized directions")
            fit = filter_curvature(problem, directions[0], directions[1], prefix)
            out.append(SharpnessResult(name, fit["curvature_mean"], None, None, 2, 0, time.perf_counter() - start, fit))
            continue
        for rho in rhos:
            out.append(_sampled(problem, name, rho, steps, step, samples, m, seed))
    return out


def _sampled(problem: HessianProblem, name: str, rho: float, steps: int, step: float, samples: int, m: int,
             seed: int) -> SharpnessResult:
    start = time.perf_counter()

    def one(p: HessianProblem) -> tuple[float, float | None, int]:
        if name in WORST:
            norm, adaptive = WORST[name]
            value, iters = worst_case(p, rho, norm=norm, adaptive=adaptive, steps=steps, step=step, seed=seed)
            return value, None, iters
        mean, err = average_case(p, rho, adaptive=AVERAGE[name], samples=samples, seed=seed)
        return mean, err, samples

    if m == 0:
        value, err, iters = one(problem)
        return SharpnessResult(name, value, err, rho, iters, 0, time.perf_counter() - start)
    per_m = (type(problem)(problem._model, problem.names, [batch], problem._loss_fn, params=problem._tensors)
             for batch in m_batches(problem._batches, m))  # one problem per batch of m samples
    values = torch.tensor([one(p)[0] for p in per_m], dtype=torch.float64)
    # count, Σv, Σv² over this rank's m-batches, summed over the ranks under torchrun (each rank holds a shard)
    stats = torch.stack([torch.tensor(float(values.numel()), dtype=torch.float64), values.sum(), (values * values).sum()])
    count, total, squares = (float(v) for v in (stats if problem._reduce is None else problem._reduce(stats.to(problem.device))))
    if count < 2:
        raise HessianError(f"m-sharpness with m = {m} leaves {count:.0f} batch(es) of the data; choose a smaller m")
    mean = total / count
    err_m = math.sqrt(max(squares - count * mean * mean, 0.0) / (count - 1) / count)
    return SharpnessResult(name, mean, err_m, rho, steps + 2 if name in WORST else samples, m,
                           time.perf_counter() - start, {"batches": round(count)})
