"""The Lightning callback with the real framework: a 3-epoch CPU ``fit`` recording checkpoints, the
trajectory and surface at the end, figures in TensorBoard (read back) and paths in a CSV logger."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from frameworks import need
from matplotlib.image import imread

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),  # Lightning's advice (few workers, logging interval)
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),  # Lightning's own use of deprecated torch APIs
    pytest.mark.filterwarnings("ignore:.*LeafSpec.*:FutureWarning"),  # Lightning 2.6 on torch 2.13's pytree
]


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    need("lightning.pytorch", "lightning")
    from lightning_net import data

    return data()  # three classes from two thresholds


def _module() -> Any:
    need("lightning.pytorch", "lightning")
    from lightning_net import Net

    return Net()  # seeded in its __init__


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    pl = need("lightning.pytorch", "lightning")
    need("tensorboard", "tensorboard")
    need("wandb", "wandb")
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger, WandbLogger

    from landscape.integrations.lightning import LandscapeCallback

    root = tmp_path_factory.mktemp("lightning")
    x, y = _data()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)  # 6 steps an epoch
    callback = LandscapeCallback(root / "landscape", surface_at_end=True, grid=7, progress=False)
    saver = ModelCheckpoint(dirpath=root / "ckpts", save_top_k=-1, every_n_epochs=1)  # Lightning's own files too
    trainer = pl.Trainer(max_epochs=3, accelerator="cpu", callbacks=[callback, saver], enable_progress_bar=False,
                         enable_model_summary=False, log_every_n_steps=1,
                         logger=[TensorBoardLogger(root, name="tb"), CSVLogger(root, name="csv"),
                                 WandbLogger(save_dir=str(root), offline=True, project="landscape-test")])
    module = _module()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WANDB_SILENT", "true")
        mp.setenv("WANDB_MODE", "offline")
        trainer.fit(module, loader)
        import wandb

        wandb.finish()
    return {"root": root, "callback": callback, "module": module, "x": x, "y": y}


def test_records_a_checkpoint_per_epoch_at_the_global_step(fitted: dict[str, Any]) -> None:
    from landscape.io.checkpoint import load_checkpoint

    rec = fitted["callback"].recorder
    assert [p.name for p in rec.checkpoints] == [f"step_{s:07d}.pt" for s in (0, 6, 12, 18)]
    final = load_checkpoint(rec.checkpoints[-1])
    for name, value in fitted["module"].state_dict().items():  # the last file holds the trained weights
        assert torch.equal(final.state_dict[name], value)
    first = load_checkpoint(rec.checkpoints[0])
    assert not torch.equal(first.state_dict["net.0.weight"], final.state_dict["net.0.weight"])


def test_cli_trajectory_reads_the_folder(fitted: dict[str, Any], tmp_path: Path) -> None:
    from landscape.cli import main
    from landscape.io.trajectory_file import load_trajectory

    assert main(["--quiet", "trajectory", str(fitted["root"] / "landscape"), "--out", str(tmp_path / "t.h5")]) == 0
    t = load_trajectory(tmp_path / "t.h5")
    assert t.coords.shape == (4, 2)
    assert np.allclose(t.coords[-1], 0.0)  # the final point is the origin of the plane
    assert list(t.epochs) == [0, 1, 2, 3]


def test_lightning_own_checkpoints_give_the_same_path(fitted: dict[str, Any]) -> None:
    """Lightning's ``epoch=E-step=S.ckpt`` files (read by step) hold the weights the callback recorded."""
    import landscape
    from landscape.io.checkpoint import load_checkpoint

    own = landscape.trajectory(fitted["root"] / "ckpts", model=_module())
    assert list(own.steps) == [6, 12, 18]
    recorded = fitted["callback"].recorder.checkpoints[1:]
    mine = landscape.trajectory(recorded)  # the callback's files at the same steps: the same plane and path
    np.testing.assert_allclose(np.abs(own.coords), np.abs(mine.coords), atol=1e-6)
    for ckpt, rec in zip(sorted((fitted["root"] / "ckpts").iterdir()), recorded, strict=True):
        assert torch.equal(load_checkpoint(ckpt).state_dict["net.0.weight"], load_checkpoint(rec).state_dict["net.0.weight"])


def test_surface_origin_is_the_final_loss(fitted: dict[str, Any]) -> None:
    s = fitted["callback"].result.surface
    i, j = int(np.flatnonzero(s.x == 0.0)[0]), int(np.flatnonzero(s.y == 0.0)[0])
    # an independent float64 oracle: mean cross-entropy of the final weights, by hand
    w = {k: v.double() for k, v in fitted["module"].state_dict().items()}
    h = torch.tanh(fitted["x"].double() @ w["net.0.weight"].T + w["net.0.bias"])
    logits = h @ w["net.2.weight"].T + w["net.2.bias"]
    expected = float((torch.logsumexp(logits, 1) - logits[torch.arange(len(logits)), fitted["y"]]).mean())
    assert s["train_loss"][i, j] == pytest.approx(expected, rel=1e-5)
    assert s.shape == (7, 7)
    coords = fitted["callback"].result.trajectory.coords  # the grid holds the whole path
    assert s.x[0] <= coords[:, 0].min() and coords[:, 0].max() <= s.x[-1]
    assert s.y[0] <= coords[:, 1].min() and coords[:, 1].max() <= s.y[-1]


def test_tensorboard_holds_the_figures(fitted: dict[str, Any]) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    (version,) = (fitted["root"] / "tb").iterdir()
    acc = EventAccumulator(str(version))
    acc.Reload()
    assert sorted(acc.Tags()["images"]) == ["landscape/contour", "landscape/trajectory"]
    for name in ("contour", "trajectory"):
        (event,) = acc.Images(f"landscape/{name}")
        png = imread(fitted["root"] / "landscape" / "figures" / f"{name}.png")
        assert (event.height, event.width) == png.shape[:2]
        assert event.step == 18
        logged = imread(io.BytesIO(event.encoded_image_string), format="png")
        assert np.array_equal(np.rint(logged[:, :, :3] * 255), np.rint(png[:, :, :3] * 255))


def test_csv_logger_gets_the_paths(fitted: dict[str, Any]) -> None:
    (version,) = (fitted["root"] / "csv").iterdir()
    text = (version / "hparams.yaml").read_text()
    for name in ("contour", "trajectory"):
        path = fitted["root"] / "landscape" / "figures" / f"{name}.png"
        assert f"landscape/{name}: {path}" in text
        assert path.stat().st_size > 1000


def test_wandb_logger_run_holds_the_figures(fitted: dict[str, Any]) -> None:
    (run_dir,) = (fitted["root"] / "wandb").glob("offline-run-*")
    for name in ("contour", "trajectory"):
        (logged,) = (run_dir / "files" / "media" / "images" / "landscape").glob(f"{name}_*.png")
        png = imread(fitted["root"] / "landscape" / "figures" / f"{name}.png")
        assert imread(logged).shape[:2] == png.shape[:2]


def test_refuses_a_bad_setting() -> None:
    need("lightning.pytorch", "lightning")
    from landscape.errors import ConfigError
    from landscape.integrations.lightning import LandscapeCallback

    with pytest.raises(ConfigError, match="every_n_epochs must be a positive int, got 0"):
        LandscapeCallback("x", every_n_epochs=0)
    with pytest.raises(ConfigError, match="grid must be an int ≥ 3"):
        LandscapeCallback("x", grid=2)


def test_too_few_checkpoints_for_a_plane_is_one_clear_error(tmp_path: Path) -> None:
    pl = need("lightning.pytorch", "lightning")
    from landscape.errors import CheckpointError
    from landscape.integrations.lightning import LandscapeCallback

    x, y = _data()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=48)
    callback = LandscapeCallback(tmp_path / "run", surface_at_end=True, grid=5, progress=False)
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", callbacks=[callback], logger=False, enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=False)
    with pytest.raises(CheckpointError, match="a PCA plane needs at least 3 checkpoints, got 2"):
        trainer.fit(_module(), loader)
    assert len(callback.recorder.checkpoints) == 2  # what was recorded stays


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_only_rank_0_writes(tmp_path: Path) -> None:
    """``ddp_spawn``, gloo, 2 processes: one run folder (no rank raced another into it), the surface and
    its TensorBoard images from rank 0 alone, evaluated on the full data passed as ``data=``."""
    pl = need("lightning.pytorch", "lightning")
    need("tensorboard", "tensorboard")
    from lightning.pytorch.loggers import TensorBoardLogger
    from lightning_net import Net, data
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from landscape import load_surface
    from landscape.integrations.lightning import LandscapeCallback

    x, y = data()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)  # 3 steps a rank an epoch
    callback = LandscapeCallback(tmp_path / "run", surface_at_end=True, grid=5, data=(x, y), progress=False)
    trainer = pl.Trainer(max_epochs=3, accelerator="cpu", devices=2, strategy="ddp_spawn", callbacks=[callback],
                         logger=TensorBoardLogger(tmp_path, name="tb"), enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=False)
    trainer.fit(Net(), loader)
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert [c["step"] for c in run["checkpoints"]] == [0, 3, 6, 9] and run["status"] == "finished"
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == [f"step_{s:07d}.pt" for s in (0, 3, 6, 9)]
    assert load_surface(tmp_path / "run" / "surface.h5").shape == (5, 5)
    (version,) = (tmp_path / "tb").iterdir()
    acc = EventAccumulator(str(version))
    acc.Reload()
    assert sorted(acc.Tags()["images"]) == ["landscape/contour", "landscape/trajectory"]


def test_a_resumed_fit_continues_the_recorded_path(tmp_path: Path) -> None:
    pl = need("lightning.pytorch", "lightning")
    from landscape.errors import CheckpointError, ConfigError
    from landscape.integrations.lightning import LandscapeCallback

    x, y = _data()
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=48)  # 2 steps an epoch

    def trainer(callback: Any, epochs: int) -> Any:
        return pl.Trainer(max_epochs=epochs, accelerator="cpu", callbacks=[callback], logger=False, enable_progress_bar=False,
                          enable_model_summary=False, enable_checkpointing=False)

    first = trainer(LandscapeCallback(tmp_path / "run"), 1)
    first.fit(_module(), loader)
    first.save_checkpoint(tmp_path / "epoch1.ckpt")
    with pytest.raises(CheckpointError, match="already holds a recorded run"):
        trainer(LandscapeCallback(tmp_path / "run"), 1).fit(_module(), loader)
    with pytest.raises(ConfigError, match=r"starts at global step 0 but .* already records step 2"):
        trainer(LandscapeCallback(tmp_path / "run", resume=True), 1).fit(_module(), loader)  # a fresh start, not a resume
    trainer(LandscapeCallback(tmp_path / "run", resume=True), 2).fit(_module(), loader, ckpt_path=tmp_path / "epoch1.ckpt")
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert [(c["step"], c["epoch"]) for c in run["checkpoints"]] == [(0, 0), (2, 1), (4, 2)]
