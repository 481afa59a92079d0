"""Surface files: layout, resume, settings guard, locking, interruption, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from landscape.cli import main
from landscape.config import load_config
from landscape.engine.surface import SurfaceEngine
from landscape.errors import SurfaceFileError
from landscape.io.checkpoint import load_checkpoint
from landscape.io.surface_file import exclusive_lock, read_surface
from landscape.workflows.surface import run_surface
from landscape.workflows.train import train
from landscape.zoo.data import load_data


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    cfg = load_config(None, ["train.epochs=1", "data.max_train=300", "data.max_test=100", "model.options={hidden=[16]}"])
    return train(cfg, out).final


def _cfg(*extra: str):
    base = ["train.epochs=1", "data.max_train=300", "data.max_test=100", "model.options={hidden=[16]}"]
    return load_config(None, base + list(extra))


def test_file_layout_and_attributes(ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.h5"
    summary = run_surface(ckpt, out, _cfg('surface.x="-1:1:5"', 'surface.y="-2:2:3"', 'surface.split="both"',
                                          'surface.losses=["cross_entropy","mse"]'))
    assert summary.summary is not None and summary.summary["done"] == summary.summary["total"] == 15
    with h5py.File(out, "r") as f:
        assert f["x"].shape == (5,) and f["y"].shape == (3,)
        for name in ("train_loss", "train_acc", "test_loss", "train_mse", "test_cross_entropy"):
            assert f[name].shape == (5, 3) and f[name].dtype == np.float64
        assert f["done"].dtype == bool and f["done"][()].all()
        # one direction tensor per parameter, weights filter-normalized and non-zero, biases zeroed (ignore=biasbn)
        names = {"fc1.weight", "fc1.bias", "out.weight", "out.bias"}
        assert set(f["directions/x"]) == set(f["directions/y"]) == names
        for axis in ("x", "y"):
            assert not np.any(f[f"directions/{axis}/fc1.bias"][()]) and not np.any(f[f"directions/{axis}/out.bias"][()])
            assert np.all(np.linalg.norm(f[f"directions/{axis}/fc1.weight"][()], axis=1) > 0)
        assert "A[i, j]" in f.attrs["convention"]
        assert len(f.attrs["checkpoint_sha256"]) == 64
        settings = json.loads(f.attrs["settings"])
        assert settings["x"] == "-1:1:5" and settings["directions"]["norm"] == "filter"
        assert f.attrs["x_label"].startswith("α")
    # at the origin (x[2] = y[1] = 0) the values are the checkpoint's own, computed here by hand in float64
    sf = read_surface(out)
    assert sf.grid.x[2] == 0 and sf.grid.y is not None and sf.grid.y[1] == 0
    state = {k: v.double() for k, v in load_checkpoint(ckpt).state_dict.items()}
    data = load_data(_cfg().data)
    for split, part in (("train", data.train), ("test", data.test)):
        x, labels = part.inputs.double().flatten(1), part.targets
        hidden = torch.relu(x @ state["fc1.weight"].T + state["fc1.bias"])
        logits = hidden @ state["out.weight"].T + state["out.bias"]  # (n, 10)
        cross_entropy = (torch.logsumexp(logits, 1) - logits[torch.arange(len(labels)), labels]).mean()
        one_hot = torch.nn.functional.one_hot(labels, 10).double()
        mse = ((logits - one_hot) ** 2).mean()  # per sample: the mean over the 10 outputs
        accuracy = (logits.argmax(1) == labels).double().mean()
        assert sf.values[f"{split}_acc"][2, 1] == pytest.approx(float(accuracy), abs=1e-12)
        assert sf.values[f"{split}_loss"][2, 1] == pytest.approx(float(cross_entropy), rel=1e-5)
        assert sf.values[f"{split}_cross_entropy"][2, 1] == pytest.approx(float(cross_entropy), rel=1e-5)
        assert sf.values[f"{split}_mse"][2, 1] == pytest.approx(float(mse), rel=1e-5)


def test_rerun_resumes_and_other_settings_are_refused(ckpt: Path, tmp_path: Path) -> None:
    out = tmp_path / "s.h5"
    first = run_surface(ckpt, out, _cfg('surface.x="-1:1:7"'))
    assert first.computed == 7
    again = run_surface(ckpt, out, _cfg('surface.x="-1:1:7"'))
    assert again.computed == 0  # nothing recomputed
    with pytest.raises(SurfaceFileError, match=r"other settings \(x: '-1:1:7' → '-1:1:9'\)"):
        run_surface(ckpt, out, _cfg('surface.x="-1:1:9"'))
    with pytest.raises(SurfaceFileError, match="seed"):
        run_surface(ckpt, out, _cfg('surface.x="-1:1:7"', "directions.seed=1"))
    replaced = run_surface(ckpt, out, _cfg('surface.x="-1:1:9"'), overwrite=True)
    assert replaced.computed == 9


def test_interrupted_run_resumes_to_the_uninterrupted_result(ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = _cfg('surface.x="-1:1:6"', 'surface.y="-1:1:5"', "surface.points_per_call=1")
    full = tmp_path / "full.h5"
    run_surface(ckpt, full, cfg)
    calls = {"n": 0}
    original = SurfaceEngine.evaluate

    def flaky(self: SurfaceEngine, coords: np.ndarray) -> np.ndarray:
        calls["n"] += 1
        if calls["n"] == 2:  # the first call (the calibration claim) succeeds
            raise KeyboardInterrupt
        return original(self, coords)

    monkeypatch.setattr(SurfaceEngine, "evaluate", flaky)
    part = tmp_path / "part.h5"
    with pytest.raises(KeyboardInterrupt):
        run_surface(ckpt, part, cfg)
    partial = read_surface(part)
    n_done = int(partial.done.sum())
    assert 0 < n_done < 30
    ref = read_surface(full)
    np.testing.assert_array_equal(partial.values["train_loss"][partial.done], ref.values["train_loss"][partial.done])
    assert np.isnan(partial.values["train_loss"][~partial.done]).all()
    monkeypatch.setattr(SurfaceEngine, "evaluate", original)
    resumed = run_surface(ckpt, part, cfg)
    assert resumed.computed == 30 - n_done
    np.testing.assert_allclose(read_surface(part).values["train_loss"], ref.values["train_loss"], rtol=1e-12)


def test_second_writer_gets_a_clear_error(tmp_path: Path) -> None:
    target = tmp_path / "s.h5"
    with exclusive_lock(target), pytest.raises(SurfaceFileError, match="another process"), exclusive_lock(target):
        pass


def test_cli_surface_info_and_errors(ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "c.h5"
    assert main(["--quiet", "surface", str(ckpt), "--out", str(out), "--x", "-1:1:5", "--y", "-1:1:3", "--loss", "cross_entropy,l1"]) == 0
    printed = capsys.readouterr().out
    assert "15/15 points done" in printed and "min train_l1" in printed
    assert main(["info", str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["type"] == "surface" and info["done"] == 15 and "train_l1" in info["metrics"]
    assert main(["surface", str(ckpt), "--out", str(out), "--x", "-1:1:7", "--y", "-1:1:3"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "other settings" in err[0] and "Traceback" not in err[0]
    assert main(["surface", str(ckpt), "--out", str(tmp_path / "d.h5"), "--x", "1:-1:0"]) == 1
    assert "NUM must be at least 2" in capsys.readouterr().err
    assert main(["surface", str(ckpt), "--out", str(tmp_path / "e.h5"), "--loss", "bogus"]) == 1
    assert "unknown loss 'bogus'" in capsys.readouterr().err
    corrupt = tmp_path / "corrupt.h5"
    corrupt.write_bytes(out.read_bytes()[:200])
    assert main(["info", str(corrupt)]) == 1
    assert capsys.readouterr().err.count("\n") == 1
