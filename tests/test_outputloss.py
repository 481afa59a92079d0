"""``landscape.OutputLoss``: a batch loss given as the model's output and a loss of that output, so the
Gauss-Newton matrix of any batch loss can be formed (issue 23).

Oracle: the GGN written out densely in float64 here, ``(1/N) Σ_b J_bᵀ H_b J_b`` with J_b the Jacobian of
the batch's whole output by ``torch.autograd.functional.jacobian`` and H_b the Hessian of the batch's
summed loss in that output by ``torch.autograd.functional.hessian`` (no JVP, VJP or double backprop of
the library's path). The model is a per-token two-layer net on dict batches with a token loss that
skips labels -100, as a language model's.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

import landscape
from landscape.api.hessian import curvature_problem
from landscape.errors import ConfigError, HessianError, ModelError

DT = torch.float64
D, H, C, T = 4, 8, 3, 5


def net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(D, H), nn.Tanh(), nn.Linear(H, C)).to(DT)


def dict_batches() -> list[dict[str, Tensor]]:
    g = torch.Generator().manual_seed(1)
    feats = torch.randn(7, T, D, generator=g, dtype=DT)
    tags = torch.randint(0, C, (7, T), generator=g)
    tags[1, 3:] = -100  # rows predict different numbers of tokens
    tags[5, 0] = -100
    return [{"feats": feats[:4], "tags": tags[:4]}, {"feats": feats[4:], "tags": tags[4:]}]


def logits(m: nn.Module, b: Mapping[str, Tensor]) -> Tensor:
    return m(b["feats"])  # (n, T, C)


def token_ce(out: Tensor, b: Mapping[str, Tensor]) -> Tensor:
    """The batch's mean over its counted tokens (a 0-d batch mean)."""
    return F.cross_entropy(out.reshape(-1, C), b["tags"].reshape(-1), ignore_index=-100)


def row_ce(out: Tensor, b: Mapping[str, Tensor]) -> Tensor:
    """Each row's mean over its counted tokens: per-sample losses (n,)."""
    per = F.cross_entropy(out.reshape(-1, C), b["tags"].reshape(-1), ignore_index=-100, reduction="none")
    per = per.view(b["tags"].shape)
    return per.sum(dim=1) / (b["tags"] != -100).sum(dim=1)


LOSSES: dict[str, Callable[[Tensor, Mapping[str, Tensor]], Tensor]] = {"batch_mean": token_ce, "per_sample": row_ce}


def dense_ggn(model: nn.Module, batches: list[dict[str, Tensor]], loss: Callable[..., Tensor],
              shape: tuple[int, ...] = (T, C), key: str = "feats") -> np.ndarray:
    """(1/N) Σ_b J_bᵀ H_b J_b over every parameter, in float64 by dense autograd (``shape``: one sample's output; ``key``: the inputs)."""
    names = [n for n, _ in model.named_parameters()]
    shapes = [p.shape for _, p in model.named_parameters()]
    theta0 = torch.cat([p.detach().reshape(-1) for _, p in model.named_parameters()])
    total_n = sum(b[key].shape[0] for b in batches)
    g = torch.zeros(theta0.numel(), theta0.numel(), dtype=DT)
    for b in batches:
        n = b[key].shape[0]

        def out_of(theta: Tensor, b: Mapping[str, Tensor] = b) -> Tensor:
            parts = torch.split(theta, [s.numel() for s in shapes])
            params = {k: p.reshape(s) for k, p, s in zip(names, parts, shapes, strict=True)}
            return functional_call(model, params, (b[key],)).reshape(-1)

        def summed(o: Tensor, b: Mapping[str, Tensor] = b, n: int = n) -> Tensor:
            value = loss(o.view(n, *shape), b)
            return value * n if value.ndim == 0 else value.sum()  # a batch mean counts n samples

        jac = torch.autograd.functional.jacobian(out_of, theta0)  # (n·T·C, P)
        h_out = torch.autograd.functional.hessian(summed, out_of(theta0).detach())  # (n·T·C, n·T·C)
        g += jac.T @ h_out @ jac
    return (g / total_n).numpy()


@pytest.mark.parametrize("budget", [2**30, 1], ids=["kept_graph", "recomputed"])
@pytest.mark.parametrize("kind", ["batch_mean", "per_sample"])
def test_ggn_of_an_output_loss_equals_the_dense_jt_h_j(kind: str, budget: int) -> None:
    """Both product paths: the graph kept (the default budget holds it) and recomputed per product (a 1-byte budget)."""
    model, batches = net(), dict_batches()
    oracle = dense_ggn(model, batches, LOSSES[kind])
    exact = np.linalg.eigvalsh(oracle)
    fn = landscape.OutputLoss(output=logits, loss=LOSSES[kind], name=kind)
    r = landscape.hessian(model, batches, loss=fn, operator="ggn", ignore="none", top_k=3, tol=1e-10, max_iter=80,
                          trace_samples=2, progress=False, memory_budget=budget)
    assert r.operator == "ggn" and r.dim == oracle.shape[0] == 67
    problem = curvature_problem(model, batches, fn, None, "none", None, budget, "ggn")[0]
    problem.hvp([torch.zeros(s) for s in problem.shapes])
    assert problem.product_path == ("kept graph" if budget > 1 else "recomputed")
    np.testing.assert_allclose(r.eigenvalues, exact[::-1][:3], rtol=1e-4)
    assert r.exact_trace == pytest.approx(float(np.trace(oracle)), rel=1e-9)
    assert r.min_eigenvalue >= -1e-9 * exact[-1]  # a convex loss: G is positive semi-definite
    with torch.no_grad():
        want = sum(float(LOSSES[kind](logits(model, b), b).mean()) * b["feats"].shape[0] for b in batches) / 7
    assert r.loss == pytest.approx(want, rel=1e-12)


@pytest.mark.parametrize("operator", ["hessian", "fisher"])
def test_hessian_and_fisher_of_an_output_loss_equal_those_of_the_plain_batch_loss(operator: str) -> None:
    model, batches = net(), dict_batches()
    fn = landscape.OutputLoss(output=logits, loss=row_ce)

    def plain(m: nn.Module, b: Mapping[str, Tensor]) -> Tensor:
        return row_ce(m(b["feats"]), b)

    kwargs = {"operator": operator, "ignore": "none", "top_k": 3, "tol": 1e-10, "max_iter": 80, "trace_samples": 2,
              "progress": False}
    a = landscape.hessian(model, batches, loss=fn, **kwargs)  # type: ignore[arg-type]
    b = landscape.hessian(model, batches, loss=plain, **kwargs)  # type: ignore[arg-type]
    np.testing.assert_allclose(a.eigenvalues, b.eigenvalues, rtol=1e-10)
    assert a.min_eigenvalue == pytest.approx(b.min_eigenvalue, rel=1e-8, abs=1e-12)
    assert a.exact_trace == pytest.approx(b.exact_trace, rel=1e-12)
    assert a.loss == b.loss


def test_output_loss_is_a_batch_loss_for_surfaces_and_sharpness() -> None:
    model, batches = net(), dict_batches()
    fn = landscape.OutputLoss(output=logits, loss=token_ce)
    s = landscape.surface(model, batches, loss=fn, x=(-1, 1, 3), y=None, progress=False)
    with torch.no_grad():
        want = sum(float(token_ce(logits(model, b), b)) * b["feats"].shape[0] for b in batches) / 7
    assert s.values["train_loss"][1] == pytest.approx(want, rel=1e-12)
    sh = landscape.sharpness(model, batches, loss=fn, measures=["worst_l2"], rho=0.01, steps=2, progress=False)
    assert sh.loss == pytest.approx(want, rel=1e-12) and sh.value("worst_l2") > 0


def test_what_the_ggn_and_output_loss_refuse() -> None:
    model, batches = net(), dict_batches()
    with pytest.raises(HessianError, match=r"hides it: give it as landscape\.OutputLoss"):
        landscape.hessian(model, batches, loss=lambda m, b: token_ce(m(b["feats"]), b), operator="ggn", progress=False)
    with pytest.raises(ConfigError, match="OutputLoss loss= must be callable, got int"):
        landscape.OutputLoss(output=logits, loss=3)  # type: ignore[arg-type]
    wrong = landscape.OutputLoss(output=logits, loss=lambda out, b: out.sum(dim=(1, 2))[:2], name="short")
    with pytest.raises(ModelError, match=r"fails on the first train batch"):
        landscape.hessian(model, batches, loss=wrong, operator="ggn", progress=False)
    tupled = landscape.OutputLoss(output=lambda m, b: (m(b["feats"]),), loss=token_ce, name="tupled")  # type: ignore[arg-type,return-value]
    with pytest.raises(ModelError, match=r"'tupled'.* returned a tuple, not a tensor"):
        tupled(model, batches[0])


NET_PY = '''
import torch
from torch import nn

import landscape


def make():
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))


def data():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(40, 4, generator=g), torch.randint(0, 3, (40,), generator=g)
    batches = [{"features": x[i:i + 10], "labels": y[i:i + 10]} for i in range(0, 40, 10)]
    return batches[:3], batches[3:]


ggn_loss = landscape.OutputLoss(output=lambda m, b: m(b["features"]),
                                loss=lambda out, b: nn.functional.cross_entropy(out, b["labels"], reduction="none"))
'''


def test_cli_takes_an_output_loss_from_a_file_for_the_ggn(tmp_path: Path) -> None:
    """``--loss file.py:ggn_loss`` naming an OutputLoss: ``--operator ggn`` on dict batches, equal to the
    dense Jᵀ H_out J of the same net and batches."""
    from landscape.cli import main

    (tmp_path / "net.py").write_text(NET_PY)
    ns: dict[str, Any] = {}
    exec(NET_PY, ns)
    torch.manual_seed(4)
    model = ns["make"]()
    torch.save(model.state_dict(), tmp_path / "net.pt")
    out = tmp_path / "g.json"
    py = tmp_path / "net.py"
    assert main(["--quiet", "hessian", str(tmp_path / "net.pt"), "--model", f"{py}:make", "--data", f"{py}:data",
                 "--loss", f"{py}:ggn_loss", "--operator", "ggn", "--ignore", "none", "--top-k", "2", "--tol", "1e-8",
                 "--max-iter", "60", "--trace-samples", "2", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    train = ns["data"]()[0]
    m64 = copy.deepcopy(model).double()
    batches64 = [{"features": b["features"].double(), "labels": b["labels"]} for b in train]
    oracle = dense_ggn(m64, batches64, lambda o, b: F.cross_entropy(o.reshape(-1, 3), b["labels"], reduction="none"),
                       shape=(3,), key="features")
    assert report["operator"] == "ggn" and report["parameters"]["dim"] == oracle.shape[0] == 67
    np.testing.assert_allclose(report["eigenvalues"], np.linalg.eigvalsh(oracle)[::-1][:2], rtol=1e-4)
    assert report["exact_trace"] == pytest.approx(float(np.trace(oracle)), rel=1e-4)
