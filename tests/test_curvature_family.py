"""``landscape hessian --operator/--trace/--density/--blocks`` and ``surface --hessian-directions
--operator`` end to end, against dense float64 matrices built here from a trained checkpoint.

Oracles (float64, independent of the package's products): the Hessian by
``torch.autograd.functional.hessian``; the GGN as ``Σ J_iᵀ (diag p_i − p_i p_iᵀ) J_i / N`` with J
from ``torch.autograd.functional.jacobian``; the empirical Fisher from a loop of per-sample
``torch.autograd.grad``. The model and the products run in float32, hence the 1e-4 tolerances.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import functional_call

from landscape.cli import main
from landscape.engine.directions import load_directions
from landscape.io.checkpoint import load_checkpoint
from landscape.workflows.experiment import experiment_from_checkpoint

MLP = """
    [data]
    name = "blobs"
    options = { n_train = 200, n_test = 100 }

    [model]
    name = "mlp"
    options = { hidden = [12], activation = "tanh" }

    [train]
    loss = "cross_entropy"
    epochs = 2
    seed = 1
"""
NAMES = ["fc1.weight", "fc1.bias", "out.weight", "out.bias"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray], list[int]]:
    """(checkpoint, dense float64 {hessian, ggn, fisher} over all parameters, tensor sizes)."""
    folder = tmp_path_factory.mktemp("mlp")
    (folder / "c.toml").write_text(textwrap.dedent(MLP))
    assert main(["--quiet", "train", str(folder / "c.toml"), "--out", str(folder / "run")]) == 0
    ckpt = folder / "run" / "checkpoints" / "epoch_002.pt"
    exp = experiment_from_checkpoint(load_checkpoint(ckpt))
    model = exp.model.double().eval()
    x, y = exp.data.train.inputs.double(), exp.data.train.targets
    own = {k: p.detach() for k, p in model.named_parameters()}
    sizes = [own[k].numel() for k in NAMES]

    def out_of(flat: Tensor, xs: Tensor = x) -> Tensor:
        parts = torch.split(flat, sizes)
        return functional_call(model, {k: p.reshape(own[k].shape) for k, p in zip(NAMES, parts, strict=True)}, (xs,))

    flat = torch.cat([own[k].reshape(-1) for k in NAMES])
    hess = torch.autograd.functional.hessian(lambda t: F.cross_entropy(out_of(t), y), flat)
    jac = torch.autograd.functional.jacobian(out_of, flat)  # (N, C, P)
    p = torch.softmax(out_of(flat), dim=1)
    ggn = sum(jac[i].T @ (torch.diag(p[i]) - torch.outer(p[i], p[i])) @ jac[i] for i in range(len(x))) / len(x)
    grads = torch.stack([torch.autograd.grad(F.cross_entropy(out_of(t, x[i:i + 1]), y[i:i + 1]), t)[0]
                         for i in range(len(x)) for t in [flat.clone().requires_grad_(True)]])
    fisher = grads.T @ grads / len(x)
    dense = {"hessian": hess.numpy(), "ggn": torch.as_tensor(ggn).numpy(), "fisher": fisher.numpy()}  # type: ignore[union-attr]
    return ckpt, dense, sizes


@pytest.mark.parametrize("operator", ["hessian", "ggn", "fisher"])
def test_operator_eigenvalues_and_hutchpp_trace(trained: tuple[Path, dict[str, np.ndarray], list[int]],
                                                 tmp_path: Path, operator: str) -> None:
    ckpt, dense, _ = trained
    out = tmp_path / "h.json"
    assert main(["--quiet", "hessian", str(ckpt), "--out", str(out), "--ignore", "none", "--operator", operator,
                 "--top-k", "3", "--trace-samples", "30"]) == 0
    r = json.loads(out.read_text())
    exact = np.linalg.eigvalsh(dense[operator])
    assert r["operator"] == operator and r["settings"]["operator"] == operator and r["parameters"]["names"] == NAMES
    np.testing.assert_allclose(r["eigenvalues"], exact[::-1][:3], rtol=1e-4)
    assert r["min_eigenvalue"] == pytest.approx(exact[0], abs=1e-4 * exact[-1])
    tr = r["trace"]
    assert tr["method"] == "hutch++" and tr["samples"] == 30
    assert abs(tr["estimate"] - exact.sum()) <= 4 * tr["stderr"] + 1e-5 * abs(exact.sum())
    assert r["exact_trace"] == pytest.approx(exact.sum(), rel=1e-4)


def test_density_and_blocks_of_the_ggn(trained: tuple[Path, dict[str, np.ndarray], list[int]], tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    ckpt, dense, sizes = trained
    out = tmp_path / "g.json"
    assert main(["hessian", str(ckpt), "--out", str(out), "--ignore", "none", "--operator", "ggn", "--density",
                 "--density-runs", "4", "--density-steps", "40", "--blocks", "module", "--trace-samples", "24"]) == 0
    text = capsys.readouterr().out
    assert "Gauss-Newton matrix of cross_entropy" in text and "density (SLQ, 4 runs × 40 steps" in text
    r = json.loads(out.read_text())
    d = r["density"]
    assert (d["runs"], d["steps"]) == (4, 40) and sum(d["weights"]) == pytest.approx(1.0, abs=1e-12)
    exact = np.linalg.eigvalsh(dense["ggn"])
    est = r["parameters"]["dim"] * float(np.dot(d["weights"], d["nodes"]))
    assert abs(est - exact.sum()) <= 4 * d["trace_stderr"]
    assert max(d["nodes"]) == pytest.approx(exact[-1], rel=1e-4) and min(d["nodes"]) >= -1e-5 * exact[-1]
    # blocks "module": fc1 (weight and bias) and out, each the dense diagonal block of the GGN
    assert [b["name"] for b in r["blocks"]] == ["fc1", "out"]
    cut = [0, sizes[0] + sizes[1], sum(sizes)]
    for b, lo, hi in zip(r["blocks"], cut[:-1], cut[1:], strict=True):
        block = np.linalg.eigvalsh(dense["ggn"][lo:hi, lo:hi])
        assert b["dim"] == hi - lo and b["names"] == NAMES[2 * (lo > 0): 2 * (lo > 0) + 2]
        assert b["top_eigenvalue"] == pytest.approx(block[-1], rel=1e-4)
        assert abs(b["trace"] - block.sum()) <= 4 * b["trace_stderr"] + 1e-5 * block.sum()
        assert sum(b["density"]["weights"]) == pytest.approx(1.0, abs=1e-12)
        assert f"{b['name']}" in text
    assert r["figures"] == [str(tmp_path / "g.density.png"), str(tmp_path / "g.blocks.png")]
    assert all(Path(f).stat().st_size > 10_000 for f in r["figures"])


def test_blocks_by_layer_and_by_glob(trained: tuple[Path, dict[str, np.ndarray], list[int]], tmp_path: Path) -> None:
    ckpt, dense, sizes = trained
    out = tmp_path / "b.json"
    assert main(["--quiet", "hessian", str(ckpt), "--out", str(out), "--ignore", "none", "--blocks", "*.weight,out.*",
                 "--trace-samples", "12", "--trace", "hutchinson"]) == 0
    r = json.loads(out.read_text())
    assert [b["names"] for b in r["blocks"]] == [["fc1.weight", "out.weight"], ["out.weight", "out.bias"]]
    starts = np.cumsum([0, *sizes])
    idx = np.r_[starts[0]:starts[1], starts[2]:starts[3]]  # fc1.weight and out.weight: a principal submatrix
    assert r["blocks"][0]["top_eigenvalue"] == pytest.approx(np.linalg.eigvalsh(dense["hessian"][np.ix_(idx, idx)])[-1], rel=1e-4)
    assert main(["--quiet", "hessian", str(ckpt), "--out", str(out), "--blocks", "layer"]) == 0
    assert [b["name"] for b in json.loads(out.read_text())["blocks"]] == ["fc1.weight", "out.weight"]  # biasbn: weights


def test_directions_of_the_fisher(trained: tuple[Path, dict[str, np.ndarray], list[int]], tmp_path: Path) -> None:
    ckpt, dense, _sizes = trained
    out = tmp_path / "f.h5"
    assert main(["--quiet", "surface", str(ckpt), "--out", str(out), "--hessian-directions", "--operator", "fisher",
                 "--x", "-1:1:3", "--y", "-1:1:3", "--set", "directions.ignore='none'"]) == 0
    model = experiment_from_checkpoint(load_checkpoint(ckpt)).model
    d = load_directions(out, model)
    assert d.meta["operator"] == "fisher" and d.y is not None
    _lam, vecs = np.linalg.eigh(dense["fisher"])
    for vec, k in ((d.x, -1), (d.y, -2)):
        v = np.concatenate([vec[n].double().numpy().reshape(-1) for n in NAMES])
        assert abs(float(v @ vecs[:, k])) == pytest.approx(1.0, abs=1e-4)


def test_curvature_flags_fail_in_one_line(trained: tuple[Path, dict[str, np.ndarray], list[int]], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    ckpt, _, _ = trained
    out = str(tmp_path / "x.json")
    assert main(["hessian", str(ckpt), "--out", out, "--density", "--density-runs", "0"]) == 1
    assert "density_runs must be ≥ 1" in capsys.readouterr().err
    assert main(["hessian", str(ckpt), "--out", out, "--blocks", "conv*"]) == 1
    assert "block pattern 'conv*' matches none" in capsys.readouterr().err
    assert main(["hessian", str(ckpt), "--out", out, "--operator", "kfac"]) != 0
    assert "invalid choice: 'kfac'" in capsys.readouterr().err
    assert main(["hessian", str(ckpt), "--out", out, "--products-per-call", "0"]) == 1
    err = capsys.readouterr().err
    assert "products_per_call must be at least 1, got 0" in err and len(err.strip().splitlines()) == 1


def test_api_operators_density_and_blocks_on_dict_batches() -> None:
    """``landscape.hessian(operator=..., density=True, blocks=...)`` with dict batches and a callable
    per-sample loss: the Fisher's spectrum and diagonal blocks against a dense float64 oracle."""
    import landscape

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(5, 6), torch.nn.Tanh(), torch.nn.Linear(6, 3))
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(40, 5, generator=g), torch.randint(0, 3, (40,), generator=g)
    batches = [{"inputs": x[:25], "labels": y[:25]}, {"inputs": x[25:], "labels": y[25:]}]

    def loss(m: torch.nn.Module, b: dict[str, Tensor]) -> Tensor:
        return F.cross_entropy(m(b["inputs"]), b["labels"], reduction="none")

    r = landscape.hessian(model, batches, loss=loss, operator="fisher", top_k=2, tol=1e-8, max_iter=60,
                          trace_samples=30, density=True, density_runs=3, density_steps=20, blocks="layer",
                          progress=False)
    m64 = model.double()
    params = [p for n, p in m64.named_parameters() if n.endswith("weight")]
    grads = torch.stack([torch.cat([gr.reshape(-1) for gr in torch.autograd.grad(
        F.cross_entropy(m64(x[i:i + 1].double()), y[i:i + 1]), params)]) for i in range(40)])
    fisher = (grads.T @ grads / 40).numpy()
    exact = np.linalg.eigvalsh(fisher)
    assert r.operator == "fisher" and r.trace_method == "hutch++" and r.names == ["0.weight", "2.weight"]
    np.testing.assert_allclose(r.eigenvalues, exact[::-1][:2], rtol=1e-4)
    assert r.exact_trace == pytest.approx(exact.sum(), rel=1e-4)
    assert r.density is not None and sum(r.density.weights) == pytest.approx(1.0, abs=1e-12)
    assert abs(r.density.trace - exact.sum()) <= 4 * r.density.trace_stderr
    assert [b.name for b in r.blocks] == ["0.weight", "2.weight"]
    top_block = np.linalg.eigvalsh(fisher[:30, :30])[-1]
    assert r.blocks[0].top.eigenvalues[0] == pytest.approx(top_block, rel=1e-4)
    assert r.blocks[0].density is not None and r.blocks[0].trace is not None


@pytest.mark.parametrize("operator", ["ggn", "fisher"])
def test_streamed_loader_gives_the_in_memory_operator(operator: str) -> None:
    """A DataLoader over the memory budget is re-read at every product: same eigenvalues and trace."""
    import landscape

    torch.manual_seed(2)
    model = torch.nn.Sequential(torch.nn.Linear(4, 5), torch.nn.Tanh(), torch.nn.Linear(5, 3))
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(50, 4, generator=g), torch.randint(0, 3, (50,), generator=g)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    kw: dict[str, object] = {"operator": operator, "top_k": 2, "tol": 1e-8, "max_iter": 40, "trace_samples": 12,
                             "progress": False}
    streamed = landscape.hessian(model, loader, memory_budget=1, **kw)  # type: ignore[arg-type]
    held = landscape.hessian(model, (x, y), **kw)  # type: ignore[arg-type]
    np.testing.assert_allclose(streamed.eigenvalues, held.eigenvalues, rtol=1e-5)
    assert streamed.trace == pytest.approx(held.trace, rel=1e-5)
