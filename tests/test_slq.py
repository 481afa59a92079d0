"""Hutch++, Hutchinson and the SLQ density against the exact spectrum of dense float64 matrices.

The oracle is ``numpy.linalg.eigvalsh`` of the Hessian built by ``torch.autograd.functional.hessian``
(and of the GGN's dense matrix from the test of the operators, through its own module's helpers).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from landscape.engine.hessian import HessianProblem, hutchinson_trace
from landscape.engine.operators import FisherProblem
from landscape.engine.slq import DENSITY_RUNS, DENSITY_STEPS, gaussian_smoothing, hutchpp_trace, slq_density, trace
from landscape.errors import HessianError

DT = torch.float64
N, D, C = 64, 10, 4


def ce(out: Tensor, y: Tensor) -> Tensor:
    return F.cross_entropy(out, y, reduction="none")


@pytest.fixture(scope="module")
def mlp_problem() -> tuple[HessianProblem, np.ndarray]:
    """(the problem, its exact spectrum, ascending) for a tanh MLP at init, P = 340."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(D, 12), nn.Tanh(), nn.Linear(12, 12), nn.Tanh(), nn.Linear(12, C)).to(DT)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(N, D, generator=g, dtype=DT), torch.randint(0, C, (N,), generator=g)
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for p in model.parameters()]
    theta0 = torch.cat([p.detach().reshape(-1) for p in model.parameters()])

    def loss(theta: Tensor) -> Tensor:
        parts = torch.split(theta, [s.numel() for s in shapes])
        out = functional_call(model, {n: p.reshape(s) for n, p, s in zip(names, parts, shapes, strict=True)}, (x,))
        return F.cross_entropy(out, y)

    dense = torch.autograd.functional.hessian(loss, theta0).numpy()  # type: ignore[union-attr]
    problem = HessianProblem(model, names, [(x[:40], y[:40]), (x[40:], y[40:])], ce)
    return problem, np.linalg.eigvalsh(dense)


def w1(nodes: np.ndarray, weights: np.ndarray, exact: np.ndarray) -> float:
    """Wasserstein-1 to the uniform measure on ``exact``: ∫|F_slq − F_exact| by a fine step grid."""
    grid = np.linspace(min(nodes.min(), exact.min()), max(nodes.max(), exact.max()), 200_001)
    f_slq = np.array([weights[nodes <= t].sum() for t in grid[::100]])
    f_exact = np.searchsorted(np.sort(exact), grid[::100], side="right") / exact.size
    return float(np.abs(f_slq - f_exact).sum() * (grid[100] - grid[0]))


def test_hutchpp_and_hutchinson_within_their_error(mlp_problem: tuple[HessianProblem, np.ndarray]) -> None:
    problem, spectrum = mlp_problem
    exact = float(spectrum.sum())
    pp = hutchpp_trace(problem, samples=90, seed=0)
    hu = hutchinson_trace(problem, samples=90, seed=0)
    for res in (pp, hu):
        assert abs(res.estimate - exact) <= 4 * res.stderr
        assert res.ci95[0] < res.estimate < res.ci95[1] and res.hvps == 90
    assert trace(problem, "hutch++", samples=90, seed=0).estimate == pp.estimate


def test_hutchpp_beats_hutchinson_on_a_decaying_spectrum() -> None:
    """Least squares with eig(2XᵀX/n) = 100/i², i = 1..60: the sketch takes the top, the rest is tiny."""
    g = torch.Generator().manual_seed(4)
    n, d = 120, 60
    lam = 100.0 / torch.arange(1, d + 1, dtype=DT) ** 2
    q, _ = torch.linalg.qr(torch.randn(n, d, generator=g, dtype=DT))
    v, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=DT))
    x = q @ torch.diag((n * lam / 2).sqrt()) @ v.T

    def sq(out: Tensor, y: Tensor) -> Tensor:
        return (out.reshape(-1) - y) ** 2

    problem = HessianProblem(nn.Linear(d, 1, bias=False).to(DT), ["weight"], [(x, torch.zeros(n, dtype=DT))], sq)
    exact = float(lam.sum())
    pp, hu = hutchpp_trace(problem, samples=45), hutchinson_trace(problem, samples=45)
    assert abs(pp.estimate - exact) <= 4 * pp.stderr and abs(hu.estimate - exact) <= 4 * hu.stderr
    assert pp.stderr < hu.stderr / 10  # the deflated probes see a far smaller variance


def test_hutchpp_is_exact_when_the_sketch_spans_the_space() -> None:
    """P = 3: the sketch of 3 products spans R³, so tr(QᵀAQ) is the whole trace and the rest is 0."""
    a = torch.tensor([[2.0, 0.5, 0.0], [0.5, 1.0, -0.3], [0.0, -0.3, 4.0]], dtype=DT)
    model = nn.Linear(3, 1, bias=False).to(DT)
    x = torch.linalg.cholesky(a * 3 / 2).T  # (1/3)·Σ (w·x_i)² has the Hessian (2/3)·XᵀX = A

    def sq(out: Tensor, _: Tensor) -> Tensor:
        return out.reshape(-1) ** 2

    res = hutchpp_trace(HessianProblem(model, ["weight"], [(x, torch.zeros(3))], sq), samples=11)
    assert res.estimate == pytest.approx(7.0, abs=1e-9) and res.stderr == pytest.approx(0.0, abs=1e-9)


def test_slq_density_matches_the_exact_spectrum(mlp_problem: tuple[HessianProblem, np.ndarray]) -> None:
    problem, spectrum = mlp_problem
    d = slq_density(problem, seed=0)
    nodes, weights = np.asarray(d.nodes), np.asarray(d.weights)
    assert (d.runs, d.steps) == (DENSITY_RUNS, DENSITY_STEPS) and d.hvps == DENSITY_RUNS * DENSITY_STEPS
    assert weights.sum() == pytest.approx(1.0, abs=1e-12) and (weights >= 0).all()
    assert np.all(np.diff(nodes) >= 0)
    spread = spectrum[-1] - spectrum[0]
    assert w1(nodes, weights, spectrum) <= 0.02 * spread
    # the extreme nodes are the extreme Ritz values: inside the spectrum, close to its ends
    assert spectrum[0] - 1e-9 <= nodes[0] and nodes[-1] <= spectrum[-1] + 1e-9
    assert nodes[-1] == pytest.approx(spectrum[-1], rel=1e-6)
    # P · Σ wλ is the trace within the estimate's error
    est = problem.dim * float(weights @ nodes)
    assert est == pytest.approx(d.trace, rel=1e-9)
    assert abs(est - spectrum.sum()) <= 4 * d.trace_stderr


def test_slq_on_a_psd_operator_has_no_negative_mass() -> None:
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(D, 8), nn.Tanh(), nn.Linear(8, C)).to(DT)
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(N, D, generator=g, dtype=DT), torch.randint(0, C, (N,), generator=g)
    d = slq_density(FisherProblem(model, [n for n, _ in model.named_parameters()], [(x, y)], ce), runs=3, steps=30)
    assert min(d.nodes) > -1e-10 and d.hvps == 90


def test_smoothing_integrates_to_one_and_bad_settings_fail(mlp_problem: tuple[HessianProblem, np.ndarray]) -> None:
    grid = np.linspace(-5, 5, 20001)
    dens = gaussian_smoothing(np.array([-1.0, 0.5]), np.array([0.25, 0.75]), grid, 0.1)
    assert np.trapezoid(dens, grid) == pytest.approx(1.0, abs=1e-9)
    problem, _ = mlp_problem
    with pytest.raises(HessianError, match="at least 2 products"):
        hutchpp_trace(problem, samples=1)
    # no room for a sketch: Hutchinson's estimator, the same probes
    assert hutchpp_trace(problem, samples=3, seed=4).estimate == pytest.approx(
        hutchinson_trace(problem, samples=3, seed=4).estimate, rel=1e-12)
    with pytest.raises(HessianError, match="unknown trace method 'exact'"):
        trace(problem, "exact")
    with pytest.raises(HessianError, match="runs=0"):
        slq_density(problem, runs=0)
