"""PCA trajectories against closed forms: a path lying exactly in a known plane, the 2×2 normal
equations on skewed directions, a dense SVD oracle, and the file read back by the surface command."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch import Tensor, nn

from landscape.cli import main
from landscape.config import Config, config_from_dict, config_to_dict
from landscape.engine.directions import Directions, load_directions, save_directions
from landscape.engine.grid import parse_axis
from landscape.errors import CheckpointError, DirectionError
from landscape.io.checkpoint import load_checkpoint, save_checkpoint
from landscape.io.run_folder import run_checkpoints
from landscape.io.surface_file import read_surface
from landscape.io.trajectory_file import load_trajectory, save_trajectory
from landscape.workflows.train import RunResult, train
from landscape.workflows.trajectory import (
    compute_trajectory,
    default_grid_overrides,
    model_from_checkpoint,
    path_axis,
    project_all,
)
from landscape.zoo.models import build_model

IN, OUT = (6,), (3,)


def _config() -> Config:
    return config_from_dict({"model": {"name": "mlp", "options": {"hidden": [5, 4]}}})


def _mlp() -> nn.Module:
    torch.manual_seed(0)
    return build_model("mlp", IN, OUT, {"hidden": [5, 4]})


def _save_ours(path: Path, model: nn.Module, state: dict[str, Tensor], i: int) -> Path:
    m = copy.deepcopy(model)
    m.load_state_dict(state)
    save_checkpoint(path, m, config_to_dict(_config()), epoch=i, step=10 * i, metrics={"train_loss": 1.0 / (i + 1)},
                    input_shape=IN, output_shape=OUT)
    return path


def _random_like(model: nn.Module, g: torch.Generator, biases: bool) -> dict[str, Tensor]:
    return {k: (torch.randn(p.shape, generator=g, dtype=p.dtype) if biases or p.ndim > 1 else torch.zeros_like(p))
            for k, p in model.named_parameters()}


# --- (1) a path exactly in a known plane --------------------------------------------------------


@pytest.fixture()
def planar(tmp_path: Path) -> tuple[nn.Module, list[Path], dict[str, Tensor], list[dict[str, Tensor]]]:
    """θ_i = θ_f + a_i u + b_i v with u, v non-orthogonal and zero on biases; θ_f last."""
    model = _mlp()
    g = torch.Generator().manual_seed(1)
    u = _random_like(model, g, biases=False)
    w = _random_like(model, g, biases=False)
    v = {k: 0.7 * u[k] + 0.3 * w[k] for k in u}  # strongly non-orthogonal
    theta_f = {k: t.detach().clone() for k, t in model.state_dict().items()}
    ab = [(2.0, -1.0), (1.5, 0.8), (0.9, 1.1), (0.4, -0.3), (0.1, 0.05), (0.0, 0.0)]
    paths, states = [], []
    for i, (a, b) in enumerate(ab):
        state = {k: t + a * u[k] + b * v[k] if k in u else t for k, t in theta_f.items()}
        paths.append(_save_ours(tmp_path / f"epoch_{i:03d}.pt", model, state, i))
        states.append(load_checkpoint(paths[-1]).state_dict)  # as stored: float32
    return model, paths, states[-1], states


def test_points_in_a_plane_are_reproduced(planar: tuple[nn.Module, list[Path], dict[str, Tensor], list[dict[str, Tensor]]]) -> None:
    _, paths, theta_f, states = planar
    traj = compute_trajectory(paths)  # the model is rebuilt from the final checkpoint
    assert traj.explained_variance.sum() > 0.999999
    assert traj.spectrum.sum() == pytest.approx(1.0, abs=1e-9)
    np.testing.assert_allclose(traj.coords[-1], [0.0, 0.0], atol=1e-7)
    d1, d2 = traj.directions.x, traj.directions.y
    assert d2 is not None
    for (c1, c2), state in zip(traj.coords, states, strict=True):
        for k in d1:
            back = theta_f[k].double() + c1 * d1[k].double() + c2 * d2[k].double()
            torch.testing.assert_close(back, state[k].double(), atol=1e-5, rtol=0)
    assert list(traj.epochs) == list(range(6)) and list(traj.steps) == [10 * i for i in range(6)]
    np.testing.assert_allclose(traj.losses, [1.0 / (i + 1) for i in range(6)])
    assert traj.meta["kind"] == "pca" and traj.meta["norm"] == "none" and traj.meta["seed"] == -1


def test_biases_are_zero_by_default(planar: tuple[nn.Module, list[Path], dict[str, Tensor], list[dict[str, Tensor]]],
                                    tmp_path: Path) -> None:
    model, paths, theta_f, _ = planar
    # move the biases too, so that ignore="none" has something to see
    g = torch.Generator().manual_seed(7)
    moved = [_save_ours(tmp_path / f"b{i}.pt", model, {k: t + torch.randn(t.shape, generator=g) for k, t in theta_f.items()}, i)
             for i in range(3)]
    for ignore, zero in (("biasbn", True), ("none", False)):
        traj = compute_trajectory([*moved, paths[-1]], ignore=ignore)
        assert traj.directions.y is not None
        for d in (traj.directions.x, traj.directions.y):
            assert set(d) == {k for k, _ in model.named_parameters()}
            for k, t in d.items():
                if t.ndim <= 1:
                    assert bool((t == 0).all()) is zero, (ignore, k)
                else:
                    assert t.abs().sum() > 0


# --- (2) projection onto skewed directions --------------------------------------------------------


def test_project_is_exact_for_non_orthogonal_non_unit_directions() -> None:
    g = torch.Generator().manual_seed(3)
    shapes = {"w": (4, 5), "b": (5,), "conv": (2, 3, 3, 3)}
    d1 = {k: 3.0 * torch.randn(s, generator=g, dtype=torch.float64) for k, s in shapes.items()}
    d2 = {k: 0.8 * d1[k] + 0.05 * torch.randn(s, generator=g, dtype=torch.float64) for k, s in shapes.items()}
    a, b = -1.234, 0.567
    delta = {k: a * d1[k] + b * d2[k] for k in shapes}
    got = tuple(project_all([delta], d1, d2)[0])
    assert got == pytest.approx((a, b), abs=1e-10)
    # a tensor missing from Δ counts as zero there
    got = tuple(project_all([{k: v for k, v in delta.items() if k != "b"}], {**d1, "b": torch.zeros(5, dtype=torch.float64)},
                            {**d2, "b": torch.zeros(5, dtype=torch.float64)})[0])
    assert got == pytest.approx((a, b), abs=1e-10)
    with pytest.raises(DirectionError, match="parallel"):
        project_all([delta], d1, {k: 2.0 * t for k, t in d1.items()})


# --- (3) Gram PCA against a dense SVD -----------------------------------------------------------------


class Tiny(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(4, 3)
        self.fc2 = nn.Linear(3, 2)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.fc2(torch.tanh(self.fc1(x)))
        return out


@pytest.fixture()
def random_path(tmp_path: Path) -> tuple[nn.Module, list[Path], list[dict[str, Tensor]]]:
    """Seven bare float64 state dicts (a foreign format) moving every tensor at random."""
    model = Tiny().double()
    g = torch.Generator().manual_seed(5)
    paths, states = [], []
    for i in range(7):
        state = {k: torch.randn(t.shape, generator=g, dtype=torch.float64) for k, t in model.state_dict().items()}
        torch.save(state, tmp_path / f"s{i}.pt")
        paths.append(tmp_path / f"s{i}.pt")
        states.append(state)
    return model, paths, states


@pytest.mark.parametrize("center", [False, True])
def test_gram_pca_equals_dense_svd(random_path: tuple[nn.Module, list[Path], list[dict[str, Tensor]]], center: bool) -> None:
    model, paths, states = random_path
    traj = compute_trajectory(paths, model=model, center=center)
    names = ["fc1.weight", "fc2.weight"]  # ignore="biasbn": the matrices only
    m = np.stack([np.concatenate([(s[k] - states[-1][k]).numpy().ravel() for k in names]) for s in states])  # (n, P)
    if center:
        m = m - m.mean(axis=0)
    _, sv, vt = np.linalg.svd(m, full_matrices=False)
    ratios = sv**2 / (sv**2).sum()
    np.testing.assert_allclose(traj.spectrum[: len(ratios)], ratios, atol=1e-10)
    np.testing.assert_allclose(traj.explained_variance, ratios[:2], atol=1e-10)
    assert traj.directions.y is not None
    for d, ref in ((traj.directions.x, vt[0]), (traj.directions.y, vt[1])):
        got = np.concatenate([d[k].double().numpy().ravel() for k in names])
        sign = np.sign(got @ ref)
        np.testing.assert_allclose(sign * got, ref, atol=1e-6)
    # the rows projected on orthonormal directions: M vᵀ (uncentred Δ: the origin is θ_final)
    raw = np.stack([np.concatenate([(s[k] - states[-1][k]).numpy().ravel() for k in names]) for s in states])
    expect = raw @ vt[:2].T
    signs = np.sign(np.sum(traj.coords * expect, axis=0))
    np.testing.assert_allclose(traj.coords * signs, expect, atol=1e-5)


def test_mismatched_architecture_names_the_file(random_path: tuple[nn.Module, list[Path], list[dict[str, Tensor]]],
                                                tmp_path: Path) -> None:
    model, paths, _ = random_path
    odd = tmp_path / "odd.pt"
    torch.save({k: torch.zeros(5, 5) if k == "fc1.weight" else t for k, t in model.state_dict().items()}, odd)
    with pytest.raises(CheckpointError, match=r"odd\.pt"):
        compute_trajectory([paths[0], odd, paths[-1]], model=model)
    with pytest.raises(DirectionError, match="at least 3"):
        compute_trajectory(paths[:2], model=model)
    with pytest.raises(CheckpointError, match="not a landscape checkpoint"):
        compute_trajectory(paths)  # foreign files without a model


def test_collinear_path_is_refused(tmp_path: Path) -> None:
    model = Tiny().double()
    base = {k: t.detach().clone() for k, t in model.state_dict().items()}
    step = {k: torch.ones_like(t) for k, t in base.items()}
    paths = []
    for i in range(4):
        torch.save({k: base[k] + i * step[k] for k in base}, tmp_path / f"l{i}.pt")
        paths.append(tmp_path / f"l{i}.pt")
    with pytest.raises(DirectionError, match="line"):
        compute_trajectory(paths, model=model)


# --- files, grid and run folders --------------------------------------------------------------------


def test_file_round_trip_and_grid(planar: tuple[nn.Module, list[Path], dict[str, Tensor], list[dict[str, Tensor]]],
                                  tmp_path: Path) -> None:
    model, paths, _, _ = planar
    traj = compute_trajectory(paths)
    out = tmp_path / "t" / "traj.h5"
    save_trajectory(out, traj, model)
    back = load_trajectory(out)
    np.testing.assert_array_equal(back.coords, traj.coords)
    np.testing.assert_array_equal(back.epochs, traj.epochs)
    np.testing.assert_array_equal(back.losses, traj.losses)
    assert back.names == traj.names and back.axis_labels == traj.axis_labels
    np.testing.assert_allclose(back.explained_variance, traj.explained_variance)
    assert back.meta["origin_sha256"] == traj.meta["origin_sha256"] and back.meta["kind"] == "pca"
    with h5py.File(out, "r") as f:
        assert f.attrs["format"] == "landscape-directions"
        assert f["trajectory/coords"].shape == (6, 2) and f["trajectory/coords"].dtype == np.float64
        assert f["trajectory/epoch"].dtype == np.int64
    dirs = load_directions(out, model)
    assert dirs.meta["kind"] == "pca" and dirs.dims == 2
    assert not list(tmp_path.glob("t/.*tmp"))

    overrides = default_grid_overrides(out, num=21, margin=0.25)
    assert [o.split("=")[0] for o in overrides] == ["surface.x", "surface.y"]
    for axis_spec, col in zip(overrides, traj.coords.T, strict=True):
        axis = parse_axis(json.loads(axis_spec.split("=", 1)[1]))
        span = max(col.max(), 0) - min(col.min(), 0)
        assert len(axis) == 21
        assert axis[0] <= min(col.min(), 0) - 0.25 * span + 1e-12
        assert axis[-1] >= max(col.max(), 0) + 0.25 * span - 1e-12
        assert np.min(np.abs(axis)) < 1e-12  # the origin is a grid node

    plain = tmp_path / "random.h5"
    save_directions(plain, Directions(traj.directions.x, traj.directions.y, {"kind": "random"}), model)
    assert default_grid_overrides(plain) == []
    assert default_grid_overrides(tmp_path / "missing.h5") == []


@pytest.mark.parametrize("values", [[0.3, 1.7], [-2.0, -0.5], [-1.0, 1.0], [1e-4, 3e-4]])
def test_path_axis_covers_values_and_origin(values: list[float]) -> None:
    axis = parse_axis(path_axis(np.array(values), num=15, margin=0.1))
    assert axis[0] <= min(*values, 0.0) and axis[-1] >= max(*values, 0.0)
    assert np.min(np.abs(axis)) < 1e-9 * (axis[-1] - axis[0])


def test_run_checkpoints_order_and_steps(tmp_path: Path) -> None:
    entries = [("epoch_000.pt", "epoch", 0, 0), ("step_0000005.pt", "step", 1, 5), ("step_0000010.pt", "step", 1, 10),
               ("epoch_001.pt", "epoch", 1, 10), ("step_0000015.pt", "step", 2, 15), ("epoch_002.pt", "epoch", 2, 18)]
    manifest = {"checkpoints": [{"file": f"checkpoints/{f}", "kind": k, "epoch": e, "step": s} for f, k, e, s in entries]}
    (tmp_path / "run.json").write_text(json.dumps(manifest))
    names = [p.name for p in run_checkpoints(tmp_path)]
    assert names == ["epoch_000.pt", "epoch_001.pt", "epoch_002.pt"]
    names = [p.name for p in run_checkpoints(tmp_path, include_steps=True)]
    assert names == ["epoch_000.pt", "step_0000005.pt", "epoch_001.pt", "step_0000015.pt", "epoch_002.pt"]
    with pytest.raises(CheckpointError, match=r"run\.json"):
        run_checkpoints(tmp_path / "nowhere")


# --- (4) a real run through the CLI: trajectory → surface --directions ---------------------------------


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunResult]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LANDSCAPE_QUIET", "1")
        cfg = config_from_dict({"data": {"name": "digits", "max_train": 400, "max_test": 100},
                                "model": {"name": "mlp", "options": {"hidden": [16]}},
                                "train": {"epochs": 3, "lr": 0.05, "batch_size": 32}})
        yield train(cfg, tmp_path_factory.mktemp("run"))


def test_cli_trajectory_then_surface_on_the_plane(tiny_run: RunResult, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANDSCAPE_QUIET", "1")
    traj_file = tmp_path / "traj.h5"
    assert main(["trajectory", str(tiny_run.out_dir), "--out", str(traj_file)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["checkpoints"] == 4 and printed["origin"] == str(tiny_run.final)
    assert 0 < printed["explained_variance"][1] <= printed["explained_variance"][0] <= 1

    traj = load_trajectory(traj_file)
    assert list(traj.epochs) == [0, 1, 2, 3]
    np.testing.assert_allclose(traj.losses, [c["train_loss"] for c in tiny_run.manifest["checkpoints"]])
    model = model_from_checkpoint(load_checkpoint(tiny_run.final))
    assert load_directions(traj_file, model).meta["kind"] == "pca"

    surf = tmp_path / "surf.h5"
    assert main(["--quiet", "surface", str(tiny_run.final), "--directions", str(traj_file), "--out", str(surf),
                 "--max-samples", "64"]) == 0
    capsys.readouterr()
    sf = read_surface(surf)
    assert sf.grid.y is not None and sf.grid.shape == (31, 31) and bool(sf.done.all())
    for axis, col in ((sf.grid.x, traj.coords[:, 0]), (sf.grid.y, traj.coords[:, 1])):
        assert axis[0] < min(col.min(), 0.0) and axis[-1] > max(col.max(), 0.0)
        assert np.min(np.abs(axis)) < 1e-9
    assert str(sf.attrs["x_label"]).startswith("PC1 (")
    assert np.isfinite(sf.values["train_loss"]).all()


def test_cli_refuses_mixed_inputs(tiny_run: RunResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["trajectory", str(tiny_run.out_dir), str(tiny_run.final), "--out", str(tmp_path / "t.h5")])
    assert code == 1 and "run folder" in capsys.readouterr().err
    code = main(["trajectory", *map(str, tiny_run.checkpoints), "--include-steps", "--out", str(tmp_path / "t.h5")])
    assert code == 1 and "--include-steps" in capsys.readouterr().err
    assert main(["trajectory", *map(str, tiny_run.checkpoints), "--out", str(tmp_path / "t.h5")]) == 0
    assert json.loads(capsys.readouterr().out)["checkpoints"] == 4


def test_both_doors_take_foreign_checkpoints_with_states_directions_without_a_model(tmp_path: Path) -> None:
    """A folder of bare state dicts: `landscape trajectory --dir-type states` and `landscape.trajectory(dir_type=
    "states")` need no architecture (every float entry moves) and give the same plane, bit for bit."""
    import landscape

    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.Linear(5, 2))
    paths = []
    for k in range(4):
        with torch.no_grad():
            for t in model.state_dict().values():
                if t.is_floating_point():
                    t.add_(0.1 * torch.randn_like(t))
        paths.append(tmp_path / f"ck{k}.pt")
        torch.save(copy.deepcopy(model.state_dict()), paths[-1])
    out = tmp_path / "t.h5"
    assert main(["trajectory", *map(str, paths), "--dir-type", "states", "--out", str(out)]) == 0
    cli, api = load_trajectory(out), landscape.trajectory(paths, dir_type="states")
    np.testing.assert_array_equal(cli.coords, api.coords)
    dirs = load_directions(out, model)
    assert "1.running_mean" in dirs.x and all(torch.equal(dirs.x[k], api.directions.x[k]) for k in api.directions.x)
    with pytest.raises(CheckpointError, match="does not say which of its tensors are parameters"):
        landscape.trajectory(paths)
