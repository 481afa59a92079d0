"""landscape.Recorder and landscape.trajectory: checkpoints from a user's own loop, any folder or list
of foreign checkpoints, models and state dicts in memory; the PCA plane against a dense float64 SVD."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch import Tensor, nn

import landscape
from landscape.cli import main
from landscape.errors import CheckpointError, ConfigError
from landscape.io.checkpoint import load_checkpoint
from landscape.io.recorder import skeleton_model
from landscape.workflows.info import describe


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 6), nn.Tanh(), nn.Linear(6, 3))


def _train(model: nn.Module, rec: landscape.Recorder | None, steps: int) -> list[dict[str, Tensor]]:
    """SGD with momentum on random data; returns a deep copy of the state after every step (index = step)."""
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(64, 4, generator=g), torch.randint(0, 3, (64,), generator=g)
    opt = torch.optim.SGD(model.parameters(), lr=0.3, momentum=0.9)
    states = [copy.deepcopy(model.state_dict())]
    if rec is not None:
        rec.save(model)
    for step in range(1, steps + 1):
        idx = torch.randperm(64, generator=g)[:16]
        loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        states.append(copy.deepcopy(model.state_dict()))
        if rec is not None:
            rec.step(model, loss=loss, metrics={"lr": 0.3}, epoch=step // 4)
    return states


@pytest.fixture
def recorded(tmp_path: Path) -> tuple[Path, nn.Module, list[dict[str, Tensor]]]:
    model = _model()
    rec = landscape.Recorder(tmp_path / "run", every=3)
    states = _train(model, rec, 9)
    rec.finish(model)
    return tmp_path / "run", model, states


def _weights(state: dict[str, Tensor], model: nn.Module) -> np.ndarray:
    """The PCA's coordinates: parameters with ndim > 1, flattened in float64."""
    return np.concatenate([state[k].double().reshape(-1).numpy() for k, p in model.named_parameters() if p.ndim > 1])


def _oracle(states: list[dict[str, Tensor]], model: nn.Module, center: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dense float64 SVD of M (rows θ_i − θ_final), optionally mean-centred: (v1, v2), ratios, coords of the rows."""
    m = np.stack([_weights(s, model) - _weights(states[-1], model) for s in states])  # (n, P)
    a = m - m.mean(axis=0) if center else m
    _, sv, vt = np.linalg.svd(a, full_matrices=False)
    ratios = sv**2 / np.sum(sv**2)
    return vt[:2], ratios[:2], m @ vt[:2].T


def _flat(d: dict[str, Tensor], model: nn.Module) -> np.ndarray:
    return np.concatenate([d[k].double().reshape(-1).numpy() for k, p in model.named_parameters() if p.ndim > 1])


def test_recorder_writes_loadable_checkpoints_and_manifest(recorded: tuple[Path, nn.Module, list[dict[str, Tensor]]]) -> None:
    run, model, states = recorded
    manifest = json.loads((run / "run.json").read_text())
    assert manifest["status"] == "finished"
    assert [c["step"] for c in manifest["checkpoints"]] == [0, 3, 6, 9]
    assert [c["epoch"] for c in manifest["checkpoints"]] == [-1, 0, 1, 2]
    for entry in manifest["checkpoints"]:
        raw = torch.load(run / entry["file"], weights_only=True)  # plain tensors and containers only
        want = states[entry["step"]]
        assert set(raw["state_dict"]) == set(want)
        for k, v in want.items():
            assert torch.equal(raw["state_dict"][k], v), (entry["step"], k)
        assert raw["parameters"] == [k for k, _ in model.named_parameters()]
        assert raw["model_class"] == "torch.nn.modules.container.Sequential"
        ckpt = load_checkpoint(run / entry["file"])
        assert ckpt.step == entry["step"] and not ckpt.is_ours
        if entry["step"]:
            assert entry["lr"] == 0.3 and ckpt.metrics["train_loss"] == pytest.approx(entry["train_loss"])
    assert not list(run.rglob("*.tmp"))
    info = describe(run / manifest["checkpoints"][-1]["file"])
    assert info["format"] == "recorded (landscape.Recorder)" and info["step"] == 9
    assert info["model_class"] == "torch.nn.modules.container.Sequential"


@pytest.mark.parametrize("center", [False, True])
def test_trajectory_of_a_recorded_run_matches_a_dense_svd(recorded: tuple[Path, nn.Module, list[dict[str, Tensor]]],
                                                           center: bool) -> None:
    run, model, states = recorded
    kept = [states[s] for s in (0, 3, 6, 9)]
    t = landscape.trajectory(run, center=center)  # no model: the checkpoints name their parameters
    vecs, ratios, coords = _oracle(kept, model, center)
    np.testing.assert_allclose(t.explained_variance, ratios, rtol=1e-6)
    signs = []
    for d, v in ((t.directions.x, vecs[0]), (t.directions.y, vecs[1])):
        cos = float(_flat(d, model) @ v)
        assert abs(cos) == pytest.approx(1.0, abs=1e-6)
        signs.append(np.sign(cos))
        assert all(float(d[k].abs().max()) == 0 for k, p in model.named_parameters() if p.ndim <= 1)
    np.testing.assert_allclose(t.coords, coords * np.array(signs), atol=1e-5)
    assert set(t.directions.x) == {k for k, _ in model.named_parameters()}
    np.testing.assert_allclose(t.losses[1:], [json.loads((run / "run.json").read_text())["checkpoints"][i]["train_loss"]
                                              for i in (1, 2, 3)])
    assert np.isnan(t.losses[0]) and list(t.steps) == [0, 3, 6, 9]


def test_every_input_form_gives_the_same_plane(tmp_path: Path,
                                               recorded: tuple[Path, nn.Module, list[dict[str, Tensor]]]) -> None:
    run, model, states = recorded
    kept = [states[s] for s in (0, 3, 6, 9)]
    ref = landscape.trajectory(run)
    folder = tmp_path / "foreign"
    folder.mkdir()
    # natural name order (step_3 before step_10), three foreign layouts, a DDP prefix
    for name, obj in (("step_0.pt", kept[0]), ("step_3.pth", {"model": kept[1]}),
                      ("step_6.pt", {"state_dict": {f"module.{k}": v for k, v in kept[2].items()}, "epoch": 1}),
                      ("step_10.pt", kept[3])):
        torch.save(obj, folder / name)
    (folder / "notes.txt").write_text("not a checkpoint")
    before = copy.deepcopy(model.state_dict())
    modules = []
    for s in kept:
        m = copy.deepcopy(model)
        m.load_state_dict(s)
        modules.append(m)
    forms = {
        "folder": landscape.trajectory(folder, model=_model()),
        "paths": landscape.trajectory(sorted(folder.glob("step_*"), key=lambda p: int(p.stem.split("_")[1])), model=model),
        "state dicts": landscape.trajectory(kept, model=model),
        "modules": landscape.trajectory(modules),
        "mixed": landscape.trajectory([folder / "step_0.pt", kept[1], {"model": kept[2]}, modules[3]]),
        "recorder files": landscape.trajectory(landscape.Recorder(run, resume=True).checkpoints),
    }
    for name, t in forms.items():
        np.testing.assert_allclose(t.coords, ref.coords, atol=1e-6, err_msg=name)
        np.testing.assert_allclose(t.explained_variance, ref.explained_variance, rtol=1e-9, err_msg=name)
        for k in ref.directions.x:
            torch.testing.assert_close(t.directions.x[k], ref.directions.x[k], msg=name)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_cli_trajectory_reads_a_recorded_run_and_surfaces_use_it(tmp_path: Path,
                                                                recorded: tuple[Path, nn.Module, list[dict[str, Tensor]]]) -> None:
    run, _, _ = recorded
    ref = landscape.trajectory(run)
    assert main(["trajectory", str(run), "--out", str(tmp_path / "t.h5")]) == 0
    with h5py.File(tmp_path / "t.h5", "r") as f:
        np.testing.assert_allclose(f["trajectory"]["coords"][()], ref.coords, atol=1e-9)
    saved = ref.save(tmp_path / "api.h5")
    with h5py.File(saved, "r") as f:
        np.testing.assert_allclose(f["trajectory"]["coords"][()], ref.coords)
    (x0, x1, nx), (y0, y1, ny) = ref.axes(num=21)
    assert nx == ny == 21 and x0 < min(0, ref.coords[:, 0].min()) and x1 > max(0, ref.coords[:, 0].max())
    assert np.any(np.isclose(np.linspace(y0, y1, ny), 0.0, atol=1e-12))  # the origin is a grid node


def test_recorder_refuses_and_resumes(tmp_path: Path) -> None:
    model = _model()
    with pytest.raises(ConfigError, match="every must be a positive int, got 0"):
        landscape.Recorder(tmp_path / "r", every=0)
    rec = landscape.Recorder(tmp_path / "r", every=2)
    rec.save(model)
    for _ in range(3):
        rec.step(model)
    with pytest.raises(CheckpointError, match="already holds a recorded run"):
        landscape.Recorder(tmp_path / "r")
    again = landscape.Recorder(tmp_path / "r", every=2, resume=True)
    assert again.count == 2
    again.step(model)
    again.step(model)
    assert [p.name for p in again.checkpoints] == ["step_0000000.pt", "step_0000002.pt", "step_0000004.pt"]
    with pytest.raises(ConfigError, match=r"takes an nn\.Module, got OrderedDict"):
        rec.save(model.state_dict())  # type: ignore[arg-type]


def test_trajectory_input_errors(tmp_path: Path) -> None:
    model = _model()
    live = model.state_dict()
    with pytest.raises(ConfigError, match="share their tensors"):
        landscape.trajectory([live, live, live], model=model)
    states = _train(model, None, 2)
    for i, s in enumerate(states):
        torch.save(s, tmp_path / f"c{i}.pt")
    with pytest.raises(CheckpointError, match="does not say which of its tensors are parameters: pass model="):
        landscape.trajectory(tmp_path)
    t = landscape.trajectory(tmp_path, dir_type="states")  # every float entry moves: no model needed
    assert "1.running_mean" in t.directions.x
    with pytest.raises(CheckpointError, match="at least 3 checkpoints, got 2"):
        landscape.trajectory(states[:2], model=model)
    with pytest.raises(ConfigError, match="item 1 of the list is a int"):
        landscape.trajectory([states[0], 3, states[1]], model=model)  # type: ignore[list-item]
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"holds no run\.json, no checkpoint-N/ folders and no checkpoint files"):
        landscape.trajectory(tmp_path / "empty")


def test_skeleton_has_the_names_shapes_and_parameters() -> None:
    model = _model()
    sk = skeleton_model(model.state_dict(), [k for k, _ in model.named_parameters()])
    assert {k: tuple(v.shape) for k, v in sk.state_dict().items()} == {k: tuple(v.shape) for k, v in model.state_dict().items()}
    assert [k for k, _ in sk.named_parameters()] == [k for k, _ in model.named_parameters()]
    assert all(v.device.type == "meta" for v in sk.state_dict().values())


def test_a_trajectory_as_directions_defaults_to_a_grid_that_holds_the_path(
        recorded: tuple[Path, nn.Module, list[dict[str, Tensor]]]) -> None:
    """With x and y left out, the grid is the trajectory's own (t.axes), so every checkpoint lies inside it."""
    run, model, _ = recorded
    t = landscape.trajectory(run)
    g = torch.Generator().manual_seed(2)
    data = (torch.randn(32, 4, generator=g), torch.randint(0, 3, (32,), generator=g))
    s = landscape.surface(model, data, directions=t, progress=False)
    (x_lo, x_hi, nx), (y_lo, y_hi, ny) = t.axes(num=51)
    assert (s.x[0], s.x[-1], len(s.x)) == (x_lo, x_hi, nx) and (s.y[0], s.y[-1], len(s.y)) == (y_lo, y_hi, ny)
    assert s.x.min() < t.coords[:, 0].min() and t.coords[:, 0].max() < s.x.max()
    assert s.y.min() < t.coords[:, 1].min() and t.coords[:, 1].max() < s.y.max()
    assert np.abs(s.x).min() < 1e-12 and np.abs(s.y).min() < 1e-12  # the final checkpoint sits on a grid node
