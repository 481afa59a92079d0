"""Stochastic trace and spectral-density estimators on any curvature operator (Hessian, GGN, Fisher).

* :func:`hutchpp_trace` — Hutch++ (Meyer, Musco, Musco & Woodruff, SOSA 2021): a third of the
  products sketch the top of the spectrum, whose trace is then taken exactly, and Hutchinson's
  estimator runs only on the deflated rest. For spectra with a few large eigenvalues (the usual
  Hessian) the error falls like 1/m instead of 1/√m.
* :func:`slq_density` — stochastic Lanczos quadrature (Golub & Meurant 1994; Ubaru, Chen & Saad
  2017; Ghorbani, Krishnan & Xiao 2019): k Lanczos runs of m steps from random unit vectors, each
  giving the Gauss quadrature of the spectral measure seen from its start vector; the k rules
  averaged give nodes λᵢ and weights wᵢ (Σ wᵢ = 1) of the eigenvalue density per unit count, so
  ``P · Σ wᵢλᵢ`` is an unbiased trace estimate (each run contributes ``P · vᵀAv``).

Both take a :class:`~landscape.engine.hessian.HessianProblem` (or a subclass) and count its products.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from landscape.engine.hessian import (
    _BREAKDOWN,
    _Z95,
    HessianProblem,
    TraceResult,
    _Operator,
    _orthogonalize_,
    _tridiagonal,
    hutchinson_trace,
)
from landscape.errors import HessianError

TRACE_METHODS = ("hutch++", "hutchinson")
DENSITY_RUNS = 10  # k: Lanczos runs (independent start vectors)
DENSITY_STEPS = 80  # m: Lanczos steps per run (a rule exact for polynomials of degree 2m − 1)


def _rademacher(gen: torch.Generator, shape: tuple[int, ...], device: torch.device) -> Tensor:
    # drawn on the CPU so a seed gives the same probes on any device
    return (torch.randint(0, 2, shape, generator=gen) * 2 - 1).to(device, torch.float64)


def hutchpp_trace(problem: HessianProblem, *, samples: int = 100, seed: int = 0) -> TraceResult:
    """Hutch++ with ``samples`` products in all: ``s = samples // 3`` for the sketch ``Y = A S``,
    ``s`` for ``tr(QᵀAQ)`` over its orthonormal basis Q, and the remaining ``samples − 2s`` as
    Hutchinson probes of ``(I − QQᵀ) A (I − QQᵀ)``.

    The standard error is that of the Hutchinson part (the deflated trace is exact given Q): the
    sample standard deviation of its probes over √count; the 95 % interval is ±1.96 of it.
    With 2 or 3 products there is no room for a sketch and two probes: it is then Hutchinson's
    estimator (an empty sketch). Memory: Q holds s float64 vectors of length P.
    """
    if samples < 2:
        raise HessianError(f"Hutch++ needs at least 2 products to estimate an error, got {samples}")
    start = time.perf_counter()
    op, gen = _Operator(problem), torch.Generator().manual_seed(seed)
    s = min(samples // 3, problem.dim) if samples >= 4 else 0
    probes = samples - 2 * s
    sketch = _rademacher(gen, (s, problem.dim), problem.device)
    y = op.many(sketch).T if s else sketch.T  # (P, s)
    q, _ = torch.linalg.qr(y)  # (P, s) orthonormal columns
    top = math.fsum((q.T * op.many(q.T)).sum(dim=1).tolist()) if s else 0.0
    draws = torch.empty(probes, dtype=torch.float64, device=problem.device)
    for lo in range(0, probes, problem.products_per_call):
        hi = min(lo + problem.products_per_call, probes)  # probes drawn one by one: the same for any chunking
        z = torch.stack([_rademacher(gen, (problem.dim,), problem.device) for _ in range(lo, hi)])
        z = z - (z @ q) @ q.T
        draws[lo:hi] = (z * op.many(z)).sum(dim=1)
    rest = float(draws.mean())
    stderr = float(draws.std(correction=1)) / math.sqrt(probes)
    estimate = top + rest
    half = _Z95 * stderr
    return TraceResult(estimate, stderr, (estimate - half, estimate + half), samples, op.calls,
                       time.perf_counter() - start)


def trace(problem: HessianProblem, method: str = "hutch++", *, samples: int = 100, seed: int = 0) -> TraceResult:
    """The trace by ``method``: ``hutch++`` (default) or ``hutchinson``, ``samples`` products."""
    if method == "hutch++":
        return hutchpp_trace(problem, samples=samples, seed=seed)
    if method == "hutchinson":
        return hutchinson_trace(problem, samples=samples, seed=seed)
    raise HessianError(f"unknown trace method {method!r}; choose one of {', '.join(TRACE_METHODS)}")


@dataclass(frozen=True)
class Density:
    """An SLQ spectral density: ``nodes`` (ascending) with ``weights`` summing to 1.

    ``trace``/``trace_stderr``: ``P · Σ wᵢλᵢ`` and the standard error over the runs' ``P · vᵀAv``.
    """

    nodes: tuple[float, ...]
    weights: tuple[float, ...]
    runs: int
    steps: int
    dim: int
    trace: float
    trace_stderr: float
    hvps: int
    seconds: float

    def smoothed(self, grid: np.ndarray, sigma: float) -> np.ndarray:
        """The density convolved with a Gaussian of width ``sigma`` on ``grid`` (for figures only)."""
        return gaussian_smoothing(np.asarray(self.nodes), np.asarray(self.weights), grid, sigma)


def gaussian_smoothing(nodes: np.ndarray, weights: np.ndarray, grid: np.ndarray, sigma: float) -> np.ndarray:
    """``Σ wᵢ 𝒩(x; λᵢ, σ²)`` at every x of ``grid``: integrates to Σ wᵢ = 1."""
    if not sigma > 0:
        raise HessianError(f"the smoothing width must be positive, got {sigma}")
    z = (grid[:, None] - nodes[None, :]) / sigma
    out: np.ndarray = (np.exp(-0.5 * z * z) @ weights) / (sigma * math.sqrt(2.0 * math.pi))
    return out


def _lanczos_rules(op: _Operator, problem: HessianProblem, starts: Tensor, steps: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """(nodes, weights) of the m-point Gauss rule of ``vᵀ f(A) v`` for each unit row v of ``starts`` (K, P),
    by Lanczos with full reorthogonalization, the K runs advanced in lockstep (their products in one
    call); a run stops early on an invariant subspace (its rule is then exact)."""
    k = len(starts)
    basis = torch.empty((k, steps, problem.dim), dtype=torch.float64, device=problem.device)
    basis[:, 0] = starts
    alpha: list[list[float]] = [[] for _ in range(k)]
    beta: list[list[float]] = [[] for _ in range(k)]
    hq_max = [0.0] * k
    active = list(range(k))
    for j in range(steps):
        going = []
        for r, w in zip(active, op.many(basis[active, j]), strict=True):
            hq_max[r] = max(hq_max[r], float(w.norm()))
            alpha[r].append(float(basis[r, j] @ w))
            _orthogonalize_(w, basis[r, : j + 1])
            b = float(w.norm())
            if j + 1 < steps and b > _BREAKDOWN * hq_max[r]:
                beta[r].append(b)
                basis[r, j + 1] = w / b
                going.append(r)
        active = going
        if not active:
            break
    eig = [np.linalg.eigh(_tridiagonal(alpha[r], beta[r])) for r in range(k)]
    return [(theta, s[0, :] ** 2) for theta, s in eig]  # Gauss weights: squared first components of T's eigenvectors


def slq_density(problem: HessianProblem, *, runs: int = DENSITY_RUNS, steps: int = DENSITY_STEPS,
                seed: int = 0) -> Density:
    """The spectral density of the operator by stochastic Lanczos quadrature.

    ``runs`` start vectors (Rademacher, normalized), ``min(steps, P)`` Lanczos steps each with a
    float64 basis (steps × P values on the device, for each of the ``problem.products_per_call`` runs
    advanced together). Nodes of all runs, weights divided by ``runs``.
    """
    if runs < 1 or steps < 1:
        raise HessianError(f"SLQ needs runs ≥ 1 and steps ≥ 1, got runs={runs}, steps={steps}")
    start = time.perf_counter()
    op, gen = _Operator(problem), torch.Generator().manual_seed(seed)
    m = min(steps, problem.dim)
    nodes, weights, per_run = [], [], []
    starts = [_rademacher(gen, (problem.dim,), problem.device) for _ in range(runs)]
    rules = []
    for lo in range(0, runs, problem.products_per_call):
        chunk = torch.stack(starts[lo : lo + problem.products_per_call])
        rules += _lanczos_rules(op, problem, chunk / chunk.norm(dim=1, keepdim=True), m)
    for theta, tau in rules:
        nodes.append(theta)
        weights.append(tau / runs)
        per_run.append(problem.dim * float(tau @ theta))  # P · vᵀAv (= P · e₁ᵀ T e₁)
    order = np.argsort(np.concatenate(nodes), kind="stable")
    lam, w = np.concatenate(nodes)[order], np.concatenate(weights)[order]
    w = w / w.sum()  # Σ τ² = ‖v‖² = 1 per run up to round-off
    est = float(np.mean(per_run))
    err = float(np.std(per_run, ddof=1)) / math.sqrt(runs) if runs > 1 else float("nan")
    return Density(tuple(float(x) for x in lam), tuple(float(x) for x in w), runs, m, problem.dim, est, err,
                   op.calls, time.perf_counter() - start)

