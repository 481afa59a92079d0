"""``landscape.log_figures`` to a real TensorBoard SummaryWriter and a real W&B run (offline), read back;
``Recorder.save(step=)``; ``import landscape`` imports no framework."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from frameworks import need
from matplotlib.image import imread
from torch import nn

import landscape
from landscape.errors import ConfigError

REPO = Path(__file__).resolve().parents[1]


def _models_and_data() -> tuple[list[nn.Module], tuple[torch.Tensor, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(60, 3, generator=g)
    y = (x[:, 0] + x[:, 1] > 0).long()
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 2))
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    path = []
    for _ in range(4):
        path.append(nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 2)))
        path[-1].load_state_dict(model.state_dict())
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return path, (x, y)


@pytest.fixture(scope="module")
def plane() -> tuple[Any, Any]:
    path, data = _models_and_data()
    traj = landscape.trajectory(path)
    s = landscape.surface(path[-1], data, directions=traj, x=(-1.0, 1.0, 5), y=(-1.0, 1.0, 5), progress=False)
    return s, traj


def _expected_size(s: Any, kind: str, traj: Any = None) -> tuple[int, int]:
    fig = landscape.plot(s, kind, trajectory=traj)
    w, h = fig.get_size_inches() * 100  # log_figures draws at 100 dpi
    return round(h), round(w)


def test_summary_writer_gets_each_figure(plane: tuple[Any, Any], tmp_path: Path) -> None:
    need("tensorboard", "tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from torch.utils.tensorboard import SummaryWriter

    s, traj = plane
    writer = SummaryWriter(log_dir=str(tmp_path))
    sizes = landscape.log_figures(s, writer, trajectory=traj, step=7, tag="demo")
    writer.close()
    assert sizes == {"demo/contour": _expected_size(s, "contour"), "demo/trajectory": _expected_size(s, "trajectory", traj)}
    acc = EventAccumulator(str(tmp_path))
    acc.Reload()
    assert sorted(acc.Tags()["images"]) == ["demo/contour", "demo/trajectory"]
    for tag, (h, w) in sizes.items():
        (event,) = acc.Images(tag)
        assert (event.height, event.width, event.step) == (h, w, 7)
        img = imread(io.BytesIO(event.encoded_image_string), format="png")
        assert img[:, :, :3].std() > 0.05  # a drawing, not a blank image


def test_surface_file_and_run_folder_sources(plane: tuple[Any, Any], tmp_path: Path) -> None:
    need("tensorboard", "tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    s, _ = plane
    s.save(tmp_path / "s.h5")
    (tmp_path / "run" / "figures").mkdir(parents=True)
    landscape.plot(s, "heatmap").savefig(tmp_path / "run" / "figures" / "heat.png", dpi=50)
    writer = SummaryWriter(log_dir=str(tmp_path / "tb"))
    assert list(landscape.log_figures(tmp_path / "s.h5", writer)) == ["landscape/contour"]
    png = imread(tmp_path / "run" / "figures" / "heat.png")
    assert landscape.log_figures(tmp_path / "run", writer) == {"landscape/heat": png.shape[:2]}
    writer.close()


def test_wandb_offline_run_holds_the_images(plane: tuple[Any, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wandb = need("wandb", "wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    s, traj = plane
    run = wandb.init(project="landscape-test", dir=str(tmp_path), mode="offline")
    try:
        sizes = landscape.log_figures(s, run, trajectory=traj)
    finally:
        run.finish()
    (run_dir,) = (tmp_path / "wandb").glob("offline-run-*")
    for tag, size in sizes.items():
        folder, name = tag.split("/")
        (png,) = (run_dir / "files" / "media" / "images" / folder).glob(f"{name}_*.png")
        assert imread(png).shape[:2] == size


def test_refusals(plane: tuple[Any, Any], tmp_path: Path) -> None:
    s, _ = plane
    with pytest.raises(ConfigError, match=r"cannot log to a builtins\.object"):
        landscape.log_figures(s, object())
    need("tensorboard", "tensorboard")
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(tmp_path / "tb"))
    with pytest.raises(ConfigError, match="holds no PNG figures"):
        landscape.log_figures(tmp_path, writer)
    with pytest.raises(ConfigError, match="got int"):
        landscape.log_figures(3, writer)
    writer.close()


def test_recorder_save_at_a_given_step(tmp_path: Path) -> None:
    rec = landscape.Recorder(tmp_path / "run")
    model = nn.Linear(2, 2)
    rec.save(model, step=5)
    rec.step(model)  # counts on from the given step (every=1: saved at 6)
    rec.save(model, step=12)
    assert [p.name for p in rec.checkpoints] == ["step_0000005.pt", "step_0000006.pt", "step_0000012.pt"]
    assert rec.count == 12
    with pytest.raises(ConfigError, match="step must be a non-negative int, got -1"):
        rec.save(model, step=-1)


def test_import_landscape_imports_no_framework() -> None:
    code = ("import sys, landscape; print(sorted({m.split('.')[0] for m in sys.modules} & "
            "{'lightning', 'transformers', 'tensorboard', 'wandb', 'IPython', 'nbclient'}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
