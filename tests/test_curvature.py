"""Curvature jobs against closed forms: ``landscape hessian``, eig-ratio maps, Hessian directions.

Least squares with a linear model (``linreg`` + ``linear`` without bias, MSE) has the constant
Hessian ``H = 2XᵀX/n`` with X the training inputs, so every eigenvalue, the trace, the eig-ratio
map and the loss along an eigenvector are known in float64. The model and the HVPs run in
float32; the eigenvalues still agree to 1e-5 relative because H is well conditioned (κ ≈ 3).
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.func import functional_call

from landscape.cli import main
from landscape.config import DataConfig
from landscape.engine.directions import load_directions
from landscape.io.checkpoint import load_checkpoint, sha256_file
from landscape.io.surface_file import read_surface
from landscape.workflows.experiment import experiment_from_checkpoint
from landscape.workflows.hessian import eig_ratio, parameter_names
from landscape.zoo.data import load_data

LINREG = """
    [data]
    name = "linreg"

    [model]
    name = "linear"
    options = { bias = false }

    [train]
    loss = "mse"
    lr = 0.05
    batch_size = 32
    epochs = 1
"""

TANH_MLP = """
    [data]
    name = "blobs"

    [model]
    name = "mlp"
    options = { hidden = [4], activation = "tanh" }

    [train]
    loss = "cross_entropy"
    epochs = 1
    seed = 3
"""


def train_run(folder: Path, toml: str) -> Path:
    config = folder / "config.toml"
    config.write_text(textwrap.dedent(toml))
    assert main(["--quiet", "train", str(config), "--out", str(folder / "run")]) == 0
    return folder / "run" / "checkpoints"


@pytest.fixture(scope="module")
def linreg(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, np.ndarray]:
    """(trained checkpoint, training inputs X (n, 8), targets y (n,)) in float64."""
    ckpt = train_run(tmp_path_factory.mktemp("linreg"), LINREG) / "epoch_001.pt"
    train = load_data(DataConfig(name="linreg")).train
    return ckpt, train.inputs.double().numpy(), train.targets.double().numpy().reshape(-1)


def closed_form_hessian(x: np.ndarray) -> np.ndarray:
    """L(w) = (1/n) Σ (w·x_i − y_i)²  ⇒  H = 2XᵀX/n."""
    return 2.0 * x.T @ x / len(x)


def weights(ckpt: Path) -> np.ndarray:
    return load_checkpoint(ckpt).state_dict["fc.weight"].double().numpy().reshape(-1)


def test_hessian_cli_matches_closed_form(linreg: tuple[Path, np.ndarray, np.ndarray], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    ckpt, x, _ = linreg
    h = closed_form_hessian(x)
    oracle = np.linalg.eigvalsh(h)[::-1]  # descending
    out, dirs = tmp_path / "h.json", tmp_path / "hdirs.h5"
    assert main(["hessian", str(ckpt), "--out", str(out), "--top-k", "3", "--save-directions", str(dirs),
                 "--trace", "hutchinson"]) == 0
    assert "top eigenvalues" in capsys.readouterr().out
    r = json.loads(out.read_text())
    np.testing.assert_allclose(r["eigenvalues"], oracle[:3], rtol=1e-5)
    assert r["min_eigenvalue"] == pytest.approx(oracle[-1], rel=1e-5)
    assert r["eig_ratio"] == pytest.approx(abs(oracle[-1] / oracle[0]), rel=1e-5)
    assert all(r["eigenvalues_convergence"]["converged"]) and all(r["min_eigenvalue_convergence"]["converged"])
    assert r["exact_trace"] == pytest.approx(np.trace(h), rel=1e-5)
    lo, hi = r["trace"]["ci95"]
    assert lo <= np.trace(h) <= hi and r["trace"]["samples"] == 100 and r["trace"]["stderr"] > 0
    assert r["parameters"]["names"] == ["fc.weight"] and r["parameters"]["dim"] == 8
    assert r["checkpoint_sha256"] == sha256_file(ckpt)
    assert r["settings"]["loss"] == "mse" and r["settings"]["split"] == "train" and r["settings"]["top_k"] == 3
    # every Hutchinson sample and every exact-trace column is one HVP; the rate is their count over their time
    assert r["hvps"] >= r["trace"]["samples"] + r["parameters"]["dim"]
    assert r["hvps_per_second"] == pytest.approx(r["hvps"] / r["hvp_seconds"])
    # the saved directions are the top two unit eigenvectors of H
    model = experiment_from_checkpoint(load_checkpoint(ckpt)).model
    d = load_directions(dirs, model)
    assert d.meta["kind"] == "hessian" and d.y is not None
    for vec, lam in ((d.x, oracle[0]), (d.y, oracle[1])):
        v = vec["fc.weight"].double().numpy().reshape(-1)
        assert np.linalg.norm(v) == pytest.approx(1.0, abs=1e-6)
        np.testing.assert_allclose(h @ v, lam * v, atol=1e-5 * lam)


def test_batch_loss_hessian_saves_the_eigenvectors_under_the_models_names(
        linreg: tuple[Path, np.ndarray, np.ndarray], tmp_path: Path) -> None:
    """``--loss file.py:fn`` wraps the model (its names gain ``inner.``): the report and the saved
    directions still use the model's own names, and hold the top eigenvectors of H = 2XᵀX/n."""
    ckpt, x, _ = linreg
    h = closed_form_hessian(x)
    lam, vecs = np.linalg.eigh(h)
    (tmp_path / "sq.py").write_text(textwrap.dedent("""
        def squared(model, batch):
            x, y = batch
            out = model(x)
            return (out - y.reshape(out.shape)) ** 2
    """))
    out, dirs = tmp_path / "h.json", tmp_path / "hdirs.h5"
    assert main(["--quiet", "hessian", str(ckpt), "--loss", f"{tmp_path / 'sq.py'}:squared", "--top-k", "2",
                 "--out", str(out), "--save-directions", str(dirs)]) == 0
    r = json.loads(out.read_text())
    assert r["parameters"]["names"] == ["fc.weight"]
    np.testing.assert_allclose(r["eigenvalues"], lam[::-1][:2], rtol=1e-5)
    d = load_directions(dirs, experiment_from_checkpoint(load_checkpoint(ckpt)).model)
    assert d.y is not None
    for vec, k in ((d.x, -1), (d.y, -2)):
        v = vec["fc.weight"].double().numpy().reshape(-1)
        assert abs(float(v @ vecs[:, k])) == pytest.approx(1.0, abs=1e-5)  # the eigenvector, up to sign


def test_eig_ratio_map_is_constant_for_a_quadratic(linreg: tuple[Path, np.ndarray, np.ndarray], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    ckpt, x, _ = linreg
    oracle = np.linalg.eigvalsh(closed_form_hessian(x))
    out = tmp_path / "eig.h5"
    argv = ["surface", str(ckpt), "--out", str(out), "--metric", "eig_ratio", "--x", "-1:1:3", "--y", "-2:1:4"]
    assert main(argv) == 0
    sf = read_surface(out)
    assert sf.columns == ["train_max_eig", "train_min_eig", "train_eig_ratio", "train_eig_converged"]
    assert sf.done.all() and sf.values["train_max_eig"].shape == (3, 4)
    np.testing.assert_allclose(sf.values["train_max_eig"], oracle[-1], rtol=1e-5)
    np.testing.assert_allclose(sf.values["train_min_eig"], oracle[0], rtol=1e-5)
    np.testing.assert_allclose(sf.values["train_eig_ratio"], oracle[0] / oracle[-1], rtol=1e-5)
    assert (sf.values["train_eig_converged"] == 1.0).all()
    assert sf.attrs["settings"]["metric"] == "eig_ratio" and sf.attrs["settings"]["metric_options"]["tol"] == 1e-3
    # resumable like any surface: the same command has nothing left to do ...
    capsys.readouterr()
    assert main(argv) == 0
    assert "nothing to compute" in capsys.readouterr().out
    # ... and a loss surface is never mixed into the same file
    assert main(argv[:4] + argv[6:]) == 1
    assert "metric: 'eig_ratio' → '<unset>'" in capsys.readouterr().err


def test_hessian_directions_give_the_exact_parabola(linreg: tuple[Path, np.ndarray, np.ndarray], tmp_path: Path) -> None:
    """Along a unit eigenvector v: L(θ* + αv) = L(θ*) + α·gᵀv + ½·λ1·α² exactly (MSE is quadratic)."""
    ckpt, x, y = linreg
    h = closed_form_hessian(x)
    lam1 = np.linalg.eigvalsh(h)[-1]
    out = tmp_path / "hd.h5"
    assert main(["surface", str(ckpt), "--out", str(out), "--hessian-directions", "--x", "-2:2:5"]) == 0
    sf = read_surface(out)
    assert sf.attrs["directions"]["kind"] == "hessian" and "eigenvector 1" in sf.attrs["x_label"]
    model = experiment_from_checkpoint(load_checkpoint(ckpt)).model
    v = load_directions(out, model).x["fc.weight"].double().numpy().reshape(-1)
    assert np.linalg.norm(v) == pytest.approx(1.0, abs=1e-6)
    w = weights(ckpt)
    g = 2.0 * x.T @ (x @ w - y) / len(x)  # ∇L(θ*)
    loss0 = np.mean((x @ w - y) ** 2)
    alpha = sf.grid.x
    parabola = loss0 + alpha * (g @ v) + 0.5 * lam1 * alpha**2
    np.testing.assert_allclose(sf.values["train_loss"], parabola, rtol=1e-5)
    # the curvature read off the surface by a central second difference is λ1
    loss = sf.values["train_loss"]
    assert (loss[0] + loss[4] - 2 * loss[2]) / 4.0 == pytest.approx(lam1, rel=1e-4)


def test_negative_curvature_at_a_tanh_mlp_init(tmp_path: Path) -> None:
    """At a random init a tanh MLP sits on a slope with indefinite curvature: λmin < 0.

    Oracle: the dense restricted Hessian from ``torch.autograd.functional.hessian`` in float64.
    """
    ckpt = train_run(tmp_path, TANH_MLP) / "epoch_000.pt"
    out = tmp_path / "h.json"
    assert main(["hessian", str(ckpt), "--out", str(out), "--top-k", "2"]) == 0
    r = json.loads(out.read_text())
    assert r["parameters"]["names"] == ["fc1.weight", "out.weight"] and r["parameters"]["dim"] == 20

    exp = experiment_from_checkpoint(load_checkpoint(ckpt))
    model = exp.model.double().eval()
    xs, ys = exp.data.train.inputs.double(), exp.data.train.targets
    own = {k: p.detach() for k, p in model.named_parameters()}

    def loss(flat: torch.Tensor) -> torch.Tensor:
        w1, w2 = flat[:8].reshape(4, 2), flat[8:].reshape(3, 4)
        out = functional_call(model, {**own, "fc1.weight": w1, "out.weight": w2}, (xs,))
        return torch.nn.functional.cross_entropy(out, ys)

    flat = torch.cat([own["fc1.weight"].reshape(-1), own["out.weight"].reshape(-1)])
    oracle = np.linalg.eigvalsh(torch.autograd.functional.hessian(loss, flat).numpy())
    assert oracle[0] < 0 and r["min_eigenvalue"] < 0
    scale = abs(oracle[-1])
    assert r["min_eigenvalue"] == pytest.approx(oracle[0], abs=1e-5 * scale)
    np.testing.assert_allclose(r["eigenvalues"], oracle[::-1][:2], atol=1e-5 * scale)
    assert r["eig_ratio"] == pytest.approx(abs(oracle[0] / oracle[-1]), rel=1e-3)


def test_parameter_set_follows_the_directions_rule(linreg: tuple[Path, np.ndarray, np.ndarray]) -> None:
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4), torch.nn.Linear(4, 2))
    assert parameter_names(model) == ["0.weight", "2.weight"]
    assert parameter_names(model, ignore="none") == ["0.weight", "0.bias", "1.weight", "1.bias", "2.weight", "2.bias"]
    states = parameter_names(model, "states", "none")
    assert "1.running_var" in states and "1.num_batches_tracked" not in states
    assert eig_ratio(2.0, -0.5) == 0.25 and np.isnan(eig_ratio(0.0, 0.0))


def test_hessian_cli_errors_are_one_line(linreg: tuple[Path, np.ndarray, np.ndarray], tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    ckpt, _, _ = linreg
    out = str(tmp_path / "h.json")
    assert main(["hessian", str(ckpt), "--out", out, "--top-k", "9"]) == 1
    assert "hessian.top_k = 9" in capsys.readouterr().err
    assert main(["hessian", str(ckpt), "--out", out, "--loss", "mse,l1"]) == 1
    assert "one loss" in capsys.readouterr().err
    assert main(["surface", str(ckpt), "--out", str(tmp_path / "s.h5"), "--hessian-directions", "--target", str(ckpt)]) == 1
    assert "--hessian-directions" in capsys.readouterr().err
