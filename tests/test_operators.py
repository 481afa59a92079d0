"""The GGN and empirical-Fisher products against dense float64 matrices built here, by hand.

Oracles: the Hessian by ``torch.autograd.functional.hessian`` of the flat loss; the Jacobian J
(N·C, P) by ``torch.autograd.functional.jacobian`` with the output Hessians written out in closed
form (softmax cross-entropy: ``(diag p − ppᵀ)``; squared error: ``2I``); the per-sample gradients
by a Python loop of ``torch.autograd.grad``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from landscape.engine.batchloss import BatchLossModel
from landscape.engine.hessian import HessianProblem, lanczos
from landscape.engine.losses import get_criterion
from landscape.engine.operators import FisherProblem, GGNProblem, convert, curvature_problem
from landscape.errors import HessianError

DT = torch.float64
N, D, C = 48, 10, 4


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(D, 12), nn.Tanh(), nn.Linear(12, 12), nn.Tanh(), nn.Linear(12, C)).to(DT)


def data() -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(N, D, generator=g, dtype=DT), torch.randint(0, C, (N,), generator=g)


def batches(x: Tensor, y: Tensor) -> list[tuple[Tensor, Tensor]]:
    return list(zip(torch.split(x, [20, 17, 11]), torch.split(y, [20, 17, 11]), strict=True))


def ce(out: Tensor, y: Tensor) -> Tensor:
    return F.cross_entropy(out, y, reduction="none")


def flat_fn(model: nn.Module, names: list[str], x: Tensor) -> tuple[Tensor, object]:
    """(θ0 flat, f(θ) -> model(x)) over the parameters ``names``."""
    shapes = [dict(model.named_parameters())[n].shape for n in names]
    theta0 = torch.cat([dict(model.named_parameters())[n].detach().reshape(-1) for n in names])

    def f(theta: Tensor) -> Tensor:
        parts = torch.split(theta, [s.numel() for s in shapes])
        return functional_call(model, {n: p.reshape(s) for n, p, s in zip(names, parts, shapes, strict=True)}, (x,))

    return theta0, f


def dense_of(problem: HessianProblem) -> np.ndarray:
    eye = torch.eye(problem.dim, dtype=DT)
    return torch.stack([problem.hvp_flat(eye[i]) for i in range(problem.dim)], dim=1).numpy()


@pytest.fixture(scope="module")
def setting() -> tuple[nn.Module, list[str], Tensor, Tensor]:
    model = mlp()
    names = [n for n, _ in model.named_parameters()]  # weights and biases: P = 340
    x, y = data()
    return model, names, x, y


@pytest.fixture(scope="module")
def ggn_oracle(setting: tuple[nn.Module, list[str], Tensor, Tensor]) -> np.ndarray:
    model, names, x, _ = setting
    return dense_ggn_ce(model, names, x)


def dense_ggn_ce(model: nn.Module, names: list[str], x: Tensor) -> np.ndarray:
    theta0, f = flat_fn(model, names, x)
    jac = torch.autograd.functional.jacobian(f, theta0)  # (N, C, P)
    p = torch.softmax(f(theta0), dim=1)
    g = torch.zeros(theta0.numel(), theta0.numel(), dtype=DT)
    for i in range(N):
        h_out = torch.diag(p[i]) - torch.outer(p[i], p[i])
        g += jac[i].T @ h_out @ jac[i]
    return (g / N).numpy()


def test_ggn_equals_the_dense_jt_h_j(setting: tuple[nn.Module, list[str], Tensor, Tensor],
                                     ggn_oracle: np.ndarray) -> None:
    model, names, x, y = setting
    oracle = ggn_oracle
    problem = GGNProblem(model, names, batches(x, y), ce)
    np.testing.assert_allclose(dense_of(problem), oracle, atol=1e-12)
    top = lanczos(problem, 3, tol=1e-10, max_iter=200)
    np.testing.assert_allclose(top.eigenvalues, np.linalg.eigvalsh(oracle)[::-1][:3], rtol=1e-4)


def test_fisher_equals_the_mean_of_per_sample_outer_products(
        setting: tuple[nn.Module, list[str], Tensor, Tensor]) -> None:
    model, names, x, y = setting
    params = [dict(model.named_parameters())[n] for n in names]
    grads = []
    for i in range(N):  # the per-sample gradients, one backward each
        loss = F.cross_entropy(model(x[i: i + 1]), y[i: i + 1])
        grads.append(torch.cat([g.reshape(-1) for g in torch.autograd.grad(loss, params)]))
    gmat = torch.stack(grads)
    oracle = (gmat.T @ gmat / N).numpy()
    problem = FisherProblem(model, names, batches(x, y), ce)
    np.testing.assert_allclose(dense_of(problem), oracle, atol=1e-12)
    top = lanczos(problem, 3, tol=1e-10, max_iter=200)
    np.testing.assert_allclose(top.eigenvalues, np.linalg.eigvalsh(oracle)[::-1][:3], rtol=1e-4)


def test_hessian_problem_matches_the_dense_autograd_hessian(
        setting: tuple[nn.Module, list[str], Tensor, Tensor]) -> None:
    model, names, x, y = setting
    theta0, f = flat_fn(model, names, x)
    oracle = torch.autograd.functional.hessian(lambda t: F.cross_entropy(f(t), y), theta0).numpy()  # type: ignore[operator]
    problem = curvature_problem("hessian", model, names, batches(x, y), ce)
    top = lanczos(problem, 2, tol=1e-10, max_iter=300, which="both")
    exact = np.linalg.eigvalsh(oracle)
    np.testing.assert_allclose(top.eigenvalues[:2], exact[::-1][:2], rtol=1e-4)
    np.testing.assert_allclose(top.eigenvalues[-1], exact[0], rtol=1e-4)


@pytest.mark.parametrize("mean_over_outputs", [False, True])
def test_ggn_of_squared_error_is_2_jtj_over_n(setting: tuple[nn.Module, list[str], Tensor, Tensor],
                                               mean_over_outputs: bool) -> None:
    """Σ_k (f_k − y_k)² per sample: G = 2JᵀJ/N; the registry's mse averages over the C outputs: 2JᵀJ/(NC)."""
    model, names, x, _ = setting
    target = torch.randn(N, C, generator=torch.Generator().manual_seed(5), dtype=DT)
    if mean_over_outputs:
        mse = get_criterion("mse", "regression")

        def loss(out: Tensor, t: Tensor) -> Tensor:
            return mse.fn(out, t, C)
    else:
        def loss(out: Tensor, t: Tensor) -> Tensor:
            return ((out - t) ** 2).sum(dim=1)
    theta0, f = flat_fn(model, names, x)
    jac = torch.autograd.functional.jacobian(f, theta0).reshape(N * C, -1)
    oracle = (2.0 * jac.T @ jac / (N * (C if mean_over_outputs else 1))).numpy()
    problem = GGNProblem(model, names, batches(x, target), loss)  # type: ignore[arg-type]
    np.testing.assert_allclose(dense_of(problem), oracle, atol=1e-12)


def test_ggn_equals_the_hessian_for_a_linear_model_with_cross_entropy() -> None:
    torch.manual_seed(3)
    model = nn.Linear(D, C).to(DT)
    x, y = data()
    names = ["weight", "bias"]
    ggn = dense_of(GGNProblem(model, names, batches(x, y), ce))
    hess = dense_of(HessianProblem(model, names, batches(x, y), ce))
    np.testing.assert_allclose(ggn, hess, atol=1e-12)
    assert np.abs(hess).max() > 1e-3  # a real curvature, not two zero matrices


def test_ggn_differs_from_the_hessian_off_a_minimum(setting: tuple[nn.Module, list[str], Tensor, Tensor]) -> None:
    model, names, x, y = setting  # a nonlinear net at init: J_f's second derivative matters
    v = [torch.randn(p.shape, dtype=DT, generator=torch.Generator().manual_seed(2))
         for n, p in model.named_parameters() if n in names]
    hv = HessianProblem(model, names, batches(x, y), ce).hvp(v)
    gv = GGNProblem(model, names, batches(x, y), ce).hvp(v)
    assert max(float((a - b).abs().max()) for a, b in zip(hv, gv, strict=True)) > 1e-4


def test_blocks_and_points_keep_the_operator(setting: tuple[nn.Module, list[str], Tensor, Tensor],
                                             ggn_oracle: np.ndarray) -> None:
    model, names, x, y = setting
    full = ggn_oracle
    problem = GGNProblem(model, names, batches(x, y), ce)
    block = convert(problem, names=["2.weight"])
    start = sum(p.numel() for n, p in model.named_parameters() if names.index(n) < names.index("2.weight"))
    size = dict(model.named_parameters())["2.weight"].numel()
    np.testing.assert_allclose(dense_of(block), full[start:start + size, start:start + size], atol=1e-12)
    assert isinstance(problem.at({}), GGNProblem) and isinstance(convert(problem, "fisher"), FisherProblem)


def test_operators_refuse_what_they_cannot_compute(setting: tuple[nn.Module, list[str], Tensor, Tensor]) -> None:
    model, names, x, y = setting
    wrapped = BatchLossModel(model, lambda m, b: F.cross_entropy(m(b[0]), b[1]))

    def identity(out: Tensor, _: object) -> Tensor:
        return out

    pairs = [((x, y), None)]
    with pytest.raises(HessianError, match="GGN needs the model's output"):
        GGNProblem(wrapped, [f"inner.{n}" for n in names], pairs, identity)  # type: ignore[arg-type]
    with pytest.raises(HessianError, match="batch mean"):
        FisherProblem(wrapped, [f"inner.{n}" for n in names], pairs, identity)  # type: ignore[arg-type]
    with pytest.raises(HessianError, match="unknown operator 'gauss'"):
        curvature_problem("gauss", model, names, batches(x, y), ce)


def test_fisher_of_a_per_sample_batch_loss_equals_the_output_loss_fisher(
        setting: tuple[nn.Module, list[str], Tensor, Tensor]) -> None:
    model, names, x, y = setting
    wrapped = BatchLossModel(model, lambda m, b: F.cross_entropy(m(b["x"]), b["y"], reduction="none"))

    def identity(out: Tensor, _: object) -> Tensor:
        return out

    dict_batches = [({"x": a, "y": b}, None) for a, b in batches(x, y)]
    via_batch = FisherProblem(wrapped, [f"inner.{n}" for n in names[:2]], dict_batches, identity)  # type: ignore[arg-type]
    direct = FisherProblem(model, names[:2], batches(x, y), ce)
    np.testing.assert_allclose(dense_of(via_batch), dense_of(direct), atol=1e-13)


def test_relu_layers_have_equal_hessian_and_ggn_diagonal_blocks() -> None:
    """f is piecewise linear in one layer's weights of a ReLU net: ∂²f/∂W² = 0 in that block, so its
    Hessian block is its GGN block; the blocks between layers differ (docs/CURVATURE.md)."""
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(D, 8), nn.ReLU(), nn.Linear(8, C)).to(DT)
    x, y = data()
    names = ["0.weight", "2.weight"]
    for name in names:
        h = dense_of(HessianProblem(model, [name], batches(x, y), ce))
        np.testing.assert_allclose(dense_of(GGNProblem(model, [name], batches(x, y), ce)), h, atol=1e-13)
    full_h = dense_of(HessianProblem(model, names, batches(x, y), ce))
    full_g = dense_of(GGNProblem(model, names, batches(x, y), ce))
    assert np.abs(full_h - full_g).max() > 1e-3
    assert np.linalg.eigvalsh(full_g).min() > -1e-12 > np.linalg.eigvalsh(full_h).min()  # G is PSD, H is not


def test_top_eigenvalues_on_a_few_thousand_parameters() -> None:
    """P = 2,244: the GGN's and the Fisher's top three eigenvalues to 1e-4 against eigvalsh of dense
    float64 matrices (J by jacobian, per-sample gradients by a loop)."""
    torch.manual_seed(6)
    model = nn.Sequential(nn.Linear(D, 40), nn.Tanh(), nn.Linear(40, 40), nn.Tanh(), nn.Linear(40, C)).to(DT)
    x, y = data()
    names = [n for n, _ in model.named_parameters()]
    theta0, f = flat_fn(model, names, x)
    assert theta0.numel() == 2244
    jac = torch.autograd.functional.jacobian(f, theta0)  # (N, C, P)
    p = torch.softmax(f(theta0), dim=1)
    h_out = torch.diag_embed(p) - p[:, :, None] * p[:, None, :]  # (N, C, C)
    ggn = torch.einsum("ncp,ncd,ndq->pq", jac, h_out, jac) / N
    params = list(model.parameters())
    grads = torch.stack([torch.cat([g.reshape(-1) for g in torch.autograd.grad(
        F.cross_entropy(model(x[i:i + 1]), y[i:i + 1]), params)]) for i in range(N)])
    fisher = grads.T @ grads / N
    for problem, dense in ((GGNProblem(model, names, batches(x, y), ce), ggn),
                           (FisherProblem(model, names, batches(x, y), ce), fisher)):
        top = lanczos(problem, 3, tol=1e-8, max_iter=200)
        np.testing.assert_allclose(top.eigenvalues, np.linalg.eigvalsh(dense.numpy())[::-1][:3], rtol=1e-4)
