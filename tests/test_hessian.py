"""Curvature against closed forms: linear least squares (H = 2XᵀX/n), a known saddle, a
restricted block, finite differences of gradients, and a model that must come back untouched."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from landscape.engine.hessian import (
    EigenResult,
    HessianProblem,
    eig_extremes,
    exact_trace,
    hutchinson_trace,
    lanczos,
)
from landscape.errors import HessianError


def dense_hessian(problem: HessianProblem) -> Tensor:
    """The full restricted Hessian (P, P) in float64, column i = ``H e_i`` (P HVPs)."""
    eye = torch.eye(problem.dim, dtype=torch.float64, device=problem.device)
    return torch.stack([problem.hvp_flat(eye[i]) for i in range(problem.dim)], dim=1)

DT = torch.float64


def squared_error(out: Tensor, y: Tensor) -> Tensor:
    """Per-sample (w·x − y)²: (n, 1), (n,) -> (n,)."""
    return (out.reshape(-1) - y) ** 2


def split(x: Tensor, y: Tensor, sizes: list[int]) -> list[tuple[Tensor, Tensor]]:
    return list(zip(torch.split(x, sizes), torch.split(y, sizes), strict=True))


# --- (1) linear regression: H = 2 XᵀX / n exactly ---------------------------------------------


def regression_data() -> tuple[nn.Module, Tensor, Tensor]:
    """Least squares with a designed spectrum: X = Q diag(√(nλ/2)) Vᵀ, so eig(2XᵀX/n) = λ.

    Both ends are separated from a bulk in [2, 6], so Lanczos must stop well before P = 80.
    """
    g = torch.Generator().manual_seed(0)
    n, d = 200, 80
    lam = torch.cat([torch.tensor([12.0, 10.0, 8.5]), torch.linspace(6.0, 2.0, d - 6), torch.tensor([1.0, 0.6, 0.35])])
    q, _ = torch.linalg.qr(torch.randn(n, d, generator=g, dtype=DT))
    v, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=DT))
    x = q @ torch.diag((n * lam.to(DT) / 2).sqrt()) @ v.T
    y = torch.randn(n, generator=g, dtype=DT)
    return nn.Linear(d, 1, bias=False).to(DT), x, y


@pytest.fixture(scope="module")
def regression() -> tuple[HessianProblem, np.ndarray]:
    model, x, y = regression_data()
    # uneven batches: the loss is the mean over all n samples, not a mean of batch means
    problem = HessianProblem(model, ["weight"], split(x, y, [90, 70, 40]), squared_error)
    xn = x.numpy()
    return problem, 2.0 * xn.T @ xn / len(xn)


def test_lanczos_matches_eigvalsh_at_both_ends(regression: tuple[HessianProblem, np.ndarray]) -> None:
    problem, h = regression
    oracle = np.linalg.eigvalsh(h)[::-1]
    res = lanczos(problem, 3, which="both", tol=1e-8)
    got = np.array(res.eigenvalues)
    np.testing.assert_allclose(got[:3], oracle[:3], rtol=1e-5)
    np.testing.assert_allclose(got[-3:], oracle[-3:], rtol=1e-5)
    assert res.all_converged and res.iterations < problem.dim // 2  # stopped on the residual test
    assert res.hvps == res.iterations and res.hvps_per_second == pytest.approx(res.hvps / res.seconds)


def test_lanczos_eigenvectors_satisfy_hv_equals_lambda_v(regression: tuple[HessianProblem, np.ndarray]) -> None:
    problem, h = regression
    res = lanczos(problem, 3, which="largest")
    assert res.eigenvectors is not None
    for lam, vec in zip(res.eigenvalues, res.eigenvectors, strict=True):
        (w,) = vec
        assert w.shape == (1, 80) and w.dtype == DT
        v = w.reshape(-1).numpy()
        assert np.linalg.norm(v) == pytest.approx(1.0, abs=1e-12)
        np.testing.assert_allclose(h @ v, lam * v, atol=1e-6 * lam)
        # the problem's own HVP agrees with the closed form
        np.testing.assert_allclose(problem.hvp([w])[0].reshape(-1).numpy(), h @ v, rtol=1e-10, atol=1e-12)


def test_lanczos_smallest_and_residual_report(regression: tuple[HessianProblem, np.ndarray]) -> None:
    problem, h = regression
    res = lanczos(problem, 2, which="smallest", max_iter=200)
    np.testing.assert_allclose(res.eigenvalues, np.linalg.eigvalsh(h)[:2][::-1], rtol=1e-5)
    assert all(r < 1e-6 * abs(lam) for r, lam in zip(res.residuals, res.eigenvalues, strict=True))
    # too few iterations: the result says it did not converge instead of pretending
    short = lanczos(problem, 1, which="smallest", max_iter=3)
    assert short.iterations == 3 and not short.all_converged


def test_traces(regression: tuple[HessianProblem, np.ndarray]) -> None:
    problem, h = regression
    exact = exact_trace(problem)
    assert exact.estimate == pytest.approx(np.trace(h), rel=1e-8)
    assert exact.hvps == problem.dim
    est = hutchinson_trace(problem, samples=100, seed=0)
    lo, hi = est.ci95
    assert lo <= np.trace(h) <= hi
    assert est.stderr > 0 and est.samples == est.hvps == 100
    np.testing.assert_allclose(dense_hessian(problem).numpy(), h, rtol=1e-10, atol=1e-12)


def test_batching_does_not_change_the_hessian() -> None:
    model, x, y = regression_data()
    v = [torch.randn(1, 80, generator=torch.Generator().manual_seed(1), dtype=DT)]
    whole = HessianProblem(model, ["weight"], [(x, y)], squared_error).hvp(v)[0]
    for sizes in ([90, 70, 40], [1] * 7 + [193]):
        parts = HessianProblem(model, ["weight"], split(x, y, sizes), squared_error).hvp(v)[0]
        torch.testing.assert_close(parts, whole, rtol=1e-12, atol=1e-12)


# --- (2) restriction to a block ----------------------------------------------------------------


class TwoParams(nn.Module):
    """out = tanh(x A) b: the loss is quadratic in b, so H_bb = 2 ZᵀZ / n with Z = tanh(x A)."""

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(3)
        self.a = nn.Parameter(torch.randn(5, 4, generator=g, dtype=DT))
        self.b = nn.Parameter(torch.randn(4, generator=g, dtype=DT))

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(x @ self.a) @ self.b


def test_restriction_selects_one_block() -> None:
    model = TwoParams()
    g = torch.Generator().manual_seed(4)
    x, y = torch.randn(40, 5, generator=g, dtype=DT), torch.randn(40, generator=g, dtype=DT)
    problem = HessianProblem(model, ["b"], [(x, y)], squared_error)
    z = torch.tanh(x @ model.a).detach().numpy()
    h_bb = 2.0 * z.T @ z / 40
    assert problem.dim == 4
    np.testing.assert_allclose(dense_hessian(problem).numpy(), h_bb, rtol=1e-10, atol=1e-12)
    res = lanczos(problem, 4)
    np.testing.assert_allclose(res.eigenvalues, np.linalg.eigvalsh(h_bb)[::-1], rtol=1e-8)
    # the other block is a different, non-quadratic Hessian of size 20
    assert HessianProblem(model, ["a"], [(x, y)], squared_error).dim == 20


# --- (3) negative curvature ------------------------------------------------------------------


class Saddle(nn.Module):
    """Ignores its input: every sample's loss is ½ θᵀAθ, A = R diag(3, 1, −0.5, −2) Rᵀ."""

    a: Tensor

    def __init__(self) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(5)
        r, _ = torch.linalg.qr(torch.randn(4, 4, generator=g, dtype=DT))
        self.register_buffer("a", r @ torch.diag(torch.tensor([3.0, 1.0, -0.5, -2.0], dtype=DT)) @ r.T)
        self.theta = nn.Parameter(torch.randn(4, generator=g, dtype=DT))

    def forward(self, x: Tensor) -> Tensor:
        return (0.5 * self.theta @ self.a @ self.theta).expand(x.shape[0])


def identity_loss(out: Tensor, y: Tensor) -> Tensor:
    return out


def test_saddle_has_the_analytic_negative_eigenvalue() -> None:
    batches = [(torch.zeros(3, 1, dtype=DT), torch.zeros(3, dtype=DT))]
    problem = HessianProblem(Saddle(), ["theta"], batches, identity_loss)
    lmax, lmin, info = eig_extremes(problem)
    assert lmax == pytest.approx(3.0, rel=1e-10) and lmin == pytest.approx(-2.0, rel=1e-10)
    assert isinstance(info, EigenResult) and info.all_converged
    assert lanczos(problem, 1, which="smallest").eigenvalues[0] == pytest.approx(-2.0, rel=1e-10)
    assert exact_trace(problem).estimate == pytest.approx(1.5, rel=1e-12)


# --- (4) the caller's model is left alone ------------------------------------------------------


class Noisy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(6, 8)
        self.bn = nn.BatchNorm1d(8)
        self.drop = nn.Dropout(0.5)
        self.fc2 = nn.Linear(8, 1)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.fc2(self.drop(torch.tanh(self.bn(self.fc1(x)))))
        return out


def test_model_is_unchanged_and_mode_restored() -> None:
    torch.manual_seed(6)
    model = Noisy().to(DT)
    model.train()
    model.fc2.eval()  # a mixed mode must come back as it was
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.randn(32, 6, dtype=DT), torch.randn(32, dtype=DT)
    problem = HessianProblem(model, ["fc1.weight", "fc2.weight"], [(x, y)], squared_error)
    v = [torch.randn_like(model.fc1.weight), torch.randn_like(model.fc2.weight)]
    first, second = problem.hvp(v), problem.hvp(v)
    for a, b in zip(first, second, strict=True):
        assert torch.equal(a, b)  # eval mode: dropout off, BN on running stats
    problem.loss_and_grad()
    lanczos(problem, 2, which="both", max_iter=20)
    hutchinson_trace(problem, samples=5)
    shifted = problem.at({"fc1.weight": model.fc1.weight + 1.0})
    shifted.hvp(v)
    after = model.state_dict()
    for k, t in before.items():
        assert torch.equal(t, after[k]), k
    assert all(p.grad is None for p in model.parameters())
    assert model.training and model.fc1.training and model.bn.training and not model.fc2.training


# --- (5) HVP against finite differences of gradients ---------------------------------------


def test_hvp_matches_finite_differences_of_gradients() -> None:
    torch.manual_seed(7)
    model = nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).to(DT)
    x, y = torch.randn(64, 5, dtype=DT), torch.randint(0, 3, (64,))
    names = [k for k, _ in model.named_parameters()]  # biases included on purpose here

    def ce(out: Tensor, t: Tensor) -> Tensor:
        loss: Tensor = nn.functional.cross_entropy(out, t, reduction="none")
        return loss

    problem = HessianProblem(model, names, split(x, y, [40, 24]), ce)
    g = torch.Generator().manual_seed(8)
    v = [torch.randn(p.shape, generator=g, dtype=DT) for p in model.parameters()]
    eps = 1e-4

    def grad_at(sign: float) -> Tensor:
        shifted = {k: p.detach() + sign * eps * vi for (k, p), vi in zip(model.named_parameters(), v, strict=True)}
        return problem.flatten(problem.at(shifted).loss_and_grad()[1])

    fd = (grad_at(1.0) - grad_at(-1.0)) / (2 * eps)
    hv = problem.flatten(problem.hvp(v))
    assert float((hv - fd).norm() / hv.norm()) < 1e-6
    # symmetry of the dense Hessian is a check on the double-backprop kernel
    h = dense_hessian(problem)
    torch.testing.assert_close(h, h.T, rtol=1e-10, atol=1e-12)


# --- input validation ------------------------------------------------------------------------


def test_invalid_inputs_raise_with_the_value() -> None:
    model = nn.Linear(3, 1, bias=False).to(DT)
    batches = [(torch.zeros(2, 3, dtype=DT), torch.zeros(2, dtype=DT))]
    with pytest.raises(HessianError, match="'nope'"):
        HessianProblem(model, ["nope"], batches, squared_error)
    with pytest.raises(HessianError, match="per-sample"):
        HessianProblem(model, ["weight"], batches, lambda o, t: squared_error(o, t).mean()).hvp([torch.ones(1, 3, dtype=DT)])
    problem = HessianProblem(model, ["weight"], batches, squared_error)
    with pytest.raises(HessianError, match="'sideways'"):
        lanczos(problem, 1, which="sideways")  # type: ignore[arg-type]
    with pytest.raises(HessianError, match="k must be"):
        lanczos(problem, 4)
    with pytest.raises(HessianError, match="shape"):
        problem.at({"weight": torch.zeros(2, 3, dtype=DT)})
