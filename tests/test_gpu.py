"""The CUDA path: skipped cleanly without a GPU (CI here is CPU-only)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from landscape.engine.directions import DirectionOptions, random_directions
from landscape.engine.grid import Grid
from landscape.engine.losses import MetricSet
from landscape.engine.surface import SurfaceEngine
from landscape.zoo.data import TensorSplit

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


@pytest.mark.parametrize("points_per_call", [1, 8])
def test_cuda_surface_equals_cpu_surface(points_per_call: int) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 64, 10)).eval()
    x, y = torch.randn(300, 1, 8, 8), torch.randint(0, 10, (300,))
    dirs = random_directions(model, DirectionOptions(), 2)
    metrics = MetricSet(["cross_entropy", "mse"], "classification", 10)
    grid = (np.linspace(-1, 1, 5), np.linspace(-1, 1, 4))
    coords = Grid(*grid).coords()
    cpu = SurfaceEngine(model, dirs, {"train": TensorSplit(x, y)}, metrics).evaluate(coords)
    gpu = SurfaceEngine(model, dirs, {"train": TensorSplit(x, y)}, metrics, device="cuda",
                        points_per_call=points_per_call).evaluate(coords)
    np.testing.assert_allclose(gpu, cpu, rtol=1e-4, atol=1e-6)
    assert next(model.parameters()).device.type == "cpu"  # the caller's model stayed where it was


def test_cuda_training_and_surface_cli(tmp_path) -> None:
    from landscape.cli import main

    assert main(["--quiet", "train", "configs/digits_mlp.toml", "--out", str(tmp_path / "run"), "--epochs", "2", "--device", "cuda"]) == 0
    ckpt = tmp_path / "run" / "checkpoints" / "epoch_002.pt"
    assert main(["--quiet", "surface", str(ckpt), "--out", str(tmp_path / "s.h5"), "--x", "-1:1:5", "--device", "cuda"]) == 0


def test_cuda_progressive_surface_reads_to_the_exact_cpu_values() -> None:
    import landscape

    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10))
    x, y = torch.randn(3000, 1, 8, 8), torch.randint(0, 10, (3000,))
    kw = {"x": (-1, 1, 5), "y": (-1, 1, 5), "progress": False}
    exact = landscape.surface(model, (x, y), **kw)
    full = landscape.surface(model, (x, y), device="cuda", tolerance=0, **kw)
    est = landscape.surface(model, (x, y), device="cuda", tolerance="5%", **kw)
    np.testing.assert_allclose(full["train_loss"], exact["train_loss"], rtol=1e-5)
    assert (np.abs(est["train_loss"] - exact["train_loss"]) <= 5 * est.extra["train_loss_stderr"] + 1e-6).all()
