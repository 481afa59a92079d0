"""Streamed data, several grid points per read of the loader: against float64 hand loops that
evaluate one point at a time, the number of reads counted by a wrapping iterable, and the
caller's model left as it was after an error in the middle of a multi-point pass."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

import landscape
from landscape.engine.batchloss import BatchEngine, OutputMetrics, batch_sums_of, output_sums_of, samples_in
from landscape.zoo.userdata import Streamed

AXIS = (-1.0, 1.0, 5)


def mlp(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3))


def classification(n: int = 70) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 6, generator=g), torch.randint(0, 3, (n,), generator=g)


class Counted:
    """A re-iterable source that counts how often it is iterated and how many batches it yields."""

    def __init__(self, source: Any) -> None:
        self.source, self.reads, self.batches = source, 0, 0

    def __iter__(self) -> Iterator[Any]:
        self.reads += 1
        for batch in self.source:
            self.batches += 1
            yield batch


def hand(model: nn.Module, dirs: landscape.Directions, coords: np.ndarray, x: Tensor, y: Tensor) -> np.ndarray:
    """Mean cross-entropy and accuracy at each (a, b) in float64, one point at a time, all samples at once."""
    assert dirs.y is not None
    origin = {k: p.detach().double() for k, p in model.named_parameters()}
    out = np.empty((len(coords), 2))
    for i, (a, b) in enumerate(coords):
        p = {k: o + float(a) * dirs.x[k].double() + float(b) * dirs.y[k].double() for k, o in origin.items()}
        logits = torch.tanh(x.double() @ p["0.weight"].T + p["0.bias"]) @ p["2.weight"].T + p["2.bias"]
        out[i] = float(F.cross_entropy(logits, y)), float((logits.argmax(1) == y).double().mean())
    return out


def grid_coords(axis: tuple[float, float, int]) -> np.ndarray:
    xs = np.linspace(*axis[:2], axis[2])
    xs[axis[2] // 2] = 0.0
    return np.stack(np.meshgrid(xs, xs, indexing="ij"), axis=-1).reshape(-1, 2)


@pytest.mark.parametrize("loss", ["cross_entropy", "callable"])
def test_streamed_surface_equals_the_float64_per_point_loop(loss: str) -> None:
    model = mlp()
    x, y = classification()
    loader = DataLoader(TensorDataset(x, y), batch_size=16)  # 5 batches, the last one short
    dirs = landscape.random_directions(model, seed=3)
    spec: Any = loss if loss == "cross_entropy" else (lambda m, b: F.cross_entropy(m(b[0]), b[1], reduction="none"))
    s = landscape.surface(model, loader, loss=spec, directions=dirs, x=AXIS, y=AXIS, memory_budget=1, progress=False)
    assert s.attrs["streamed"] == ["train"]
    want = hand(model, dirs, grid_coords(AXIS), x, y).reshape(5, 5, 2)
    np.testing.assert_allclose(s["train_loss"], want[..., 0], rtol=1e-6)
    if loss == "cross_entropy":
        np.testing.assert_allclose(s["train_acc"], want[..., 1], rtol=1e-6)


@pytest.mark.parametrize("k", [1, 3, 7])
def test_k_points_per_call_read_the_loader_once_and_match_the_hand_loop(k: int) -> None:
    model = mlp()
    x, y = classification()
    source = Counted(DataLoader(TensorDataset(x, y), batch_size=16))
    dirs = landscape.random_directions(model, seed=3)
    metrics = OutputMetrics([("loss", nn.CrossEntropyLoss())], acc=True)
    engine = BatchEngine(model, dirs, {"train": Streamed(source, torch.device("cpu"))}, metrics.names,
                         output_sums_of(metrics), points_per_call=k)
    reads, batches = source.reads, source.batches  # the set-up check reads a first batch
    coords = grid_coords((-1.0, 1.0, 3))[:k]
    vals = engine.evaluate(coords)
    assert source.reads - reads == 1 and source.batches - batches == 5  # one pass for the k points
    np.testing.assert_allclose(vals, hand(model, dirs, coords, x, y), rtol=1e-6)


def test_the_values_of_a_point_do_not_depend_on_the_points_read_with_it() -> None:
    model = mlp()
    x, y = classification()
    source = Counted(DataLoader(TensorDataset(x, y), batch_size=16))
    dirs = landscape.random_directions(model, seed=3)
    metrics = OutputMetrics([("loss", nn.CrossEntropyLoss())], acc=True)
    engine = BatchEngine(model, dirs, {"train": Streamed(source, torch.device("cpu"))}, metrics.names,
                         output_sums_of(metrics), points_per_call=1)
    coords = grid_coords(AXIS)
    together = engine.evaluate(coords)
    alone = np.concatenate([engine.evaluate(c[None]) for c in coords])
    assert np.array_equal(together, alone)  # the same float64 sums in the same batch order, bit for bit


def test_calibration_reads_a_first_pass_and_keeps_the_values() -> None:
    model = mlp()
    x, y = classification()
    source = Counted(DataLoader(TensorDataset(x, y), batch_size=16))
    dirs = landscape.random_directions(model, seed=3)
    metrics = OutputMetrics([("loss", nn.CrossEntropyLoss())], acc=True)
    engine = BatchEngine(model, dirs, {"train": Streamed(source, torch.device("cpu"))}, metrics.names,
                         output_sums_of(metrics))
    coords = grid_coords(AXIS)
    vals, used = engine.calibrate(coords)
    assert used == 2 and 1 <= engine.points_per_call <= 64 and engine.passes == 1
    np.testing.assert_allclose(vals, hand(model, dirs, coords[:2], x, y), rtol=1e-6)


def test_surface_reads_the_stream_fewer_times_than_it_has_points() -> None:
    model = mlp()
    x, y = classification()
    source = Counted(DataLoader(TensorDataset(x, y), batch_size=16))
    landscape.surface(model, source, directions=landscape.random_directions(model, seed=3), x=AXIS, y=AXIS,
                      memory_budget=1, progress=False)
    # one read to measure the data, one for the set-up check, then passes of two or more points each
    assert 3 <= source.reads <= 2 + 13


def test_model_untouched_after_an_error_in_the_middle_of_a_multi_point_pass() -> None:
    model = mlp()
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = classification()
    calls = [0]

    def loss(m: nn.Module, batch: Any) -> Tensor:
        calls[0] += 1
        if calls[0] == 9:  # the second batch, fourth point of the pass
            raise RuntimeError("injected")
        return F.cross_entropy(m(batch[0]), batch[1])

    source = Counted(DataLoader(TensorDataset(x, y), batch_size=16))
    dirs = landscape.random_directions(model, seed=3)
    engine = BatchEngine(model, dirs, {"train": Streamed(source, torch.device("cpu"))}, ["loss"],
                         batch_sums_of([("loss", loss)], samples_in), points_per_call=4)
    with pytest.raises(RuntimeError, match="injected"):
        engine.evaluate(grid_coords((-1.0, 1.0, 3))[:4])
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k  # the caller's model, bit for bit
    for k, v in engine.model.state_dict().items():
        assert torch.equal(v, before[k]), k  # the engine's copy is back at the origin
    assert model.training and all(p.requires_grad for p in model.parameters())
    calls[0] = 10**6  # the engine goes on afterwards from the origin: values of a fresh pass
    np.testing.assert_allclose(engine.evaluate(np.zeros((1, 2)))[0, 0], hand(model, dirs, np.zeros((1, 2)), x, y)[0, 0],
                               rtol=1e-6)

    calls[0] = 0  # the same through the API: the error reaches the caller, the model is as it was
    with pytest.raises(RuntimeError, match="injected"):
        landscape.surface(model, source, loss=loss, directions=dirs, x=AXIS, y=AXIS, memory_budget=1, progress=False)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert model.training
