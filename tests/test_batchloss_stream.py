"""Streamed data, several grid points per read of the loader: against float64 hand loops that
evaluate one point at a time, the number of reads counted by a wrapping iterable, and the
caller's model left as it was after an error in the middle of a multi-point pass."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from stopping import stopping_loss_file
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

import landscape
import landscape.zoo.data
from landscape.cli import main
from landscape.engine.batchloss import BatchEngine, OutputMetrics, batch_sums_of, output_sums_of
from landscape.engine.directions import Directions, save_directions
from landscape.zoo.userdata import Streamed, batch_size_of

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


@dataclasses.dataclass
class Case:
    """A model, its data as a counted DataLoader, directions, and a batch engine streaming them."""

    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    source: Counted
    dirs: Directions
    engine: BatchEngine


def streamed_case(**engine_options: Any) -> Case:
    model = mlp()
    x, y = classification()
    source = Counted(DataLoader(TensorDataset(x, y), batch_size=16))
    dirs = landscape.random_directions(model, seed=3)
    metrics = OutputMetrics([("loss", nn.CrossEntropyLoss())], acc=True)
    engine = BatchEngine(model, dirs, {"train": Streamed(source, torch.device("cpu"))}, metrics.names,
                         output_sums_of(metrics), **engine_options)
    return Case(model, x, y, source, dirs, engine)


@pytest.mark.parametrize("k", [1, 3, 7])
def test_k_points_per_call_read_the_loader_once_and_match_the_hand_loop(k: int) -> None:
    c = streamed_case(points_per_call=k)
    reads, batches = c.source.reads, c.source.batches  # the set-up check reads a first batch
    coords = grid_coords((-1.0, 1.0, 3))[:k]
    vals = c.engine.evaluate(coords)
    assert c.source.reads - reads == 1 and c.source.batches - batches == 5  # one pass for the k points
    np.testing.assert_allclose(vals, hand(c.model, c.dirs, coords, c.x, c.y), rtol=1e-6)


def test_the_values_of_a_point_do_not_depend_on_the_points_read_with_it() -> None:
    engine = streamed_case(points_per_call=1).engine
    coords = grid_coords(AXIS)
    together = engine.evaluate(coords)
    alone = np.concatenate([engine.evaluate(c[None]) for c in coords])
    assert np.array_equal(together, alone)  # the same float64 sums in the same batch order, bit for bit


def test_calibration_reads_a_first_pass_and_keeps_the_values() -> None:
    c = streamed_case()
    coords = grid_coords(AXIS)
    vals, used = c.engine.calibrate(coords)
    assert used == 2 and 1 <= c.engine.points_per_call <= 64 and c.engine.passes == 1
    np.testing.assert_allclose(vals, hand(c.model, c.dirs, coords[:2], c.x, c.y), rtol=1e-6)


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
                         batch_sums_of([("loss", loss)], batch_size_of), points_per_call=4)
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


# --- the CLI: --data file.py:fn returning loaders, over --memory-budget -------------------------------------------

STREAM_MODEL_PY = """
from torch import nn

def make(input_shape, output_shape):
    return nn.Sequential(nn.Linear(input_shape[0], 8), nn.Tanh(), nn.Linear(8, output_shape[0]))
"""

STREAM_DATA_PY = """
import torch
from torch.utils.data import DataLoader, TensorDataset

def load(task="classification"):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(100, 6, generator=g)
    y = torch.randint(0, 3, (100,), generator=g) if task == "classification" else x[:, :2].sum(1)
    return DataLoader(TensorDataset(x[:70], y[:70]), batch_size=16), DataLoader(TensorDataset(x[70:], y[70:]), batch_size=16)
"""


def _cli_files(tmp_path: Path) -> tuple[nn.Module, list[str], Path]:
    (tmp_path / "smodel.py").write_text(STREAM_MODEL_PY)
    (tmp_path / "sdata.py").write_text(STREAM_DATA_PY)
    model = mlp(5)
    torch.save(model.state_dict(), tmp_path / "m.pt")
    dirs = landscape.random_directions(model, seed=3)
    save_directions(tmp_path / "d.h5", dirs, model)
    flags = ["--model", f"{tmp_path / 'smodel.py'}:make", "--data", f"{tmp_path / 'sdata.py'}:load",
             "--directions", str(tmp_path / "d.h5"), "--x", "-1:1:3", "--y", "-1:1:3"]
    return model, flags, tmp_path / "m.pt"


def test_cli_streams_a_dataloader_over_the_memory_budget_and_equals_the_api(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    model, flags, ckpt = _cli_files(tmp_path)
    cached = tmp_path / "cached.h5"
    assert main(["surface", str(ckpt), *flags, "--split", "both", "--out", str(cached)]) == 0  # 2,800 bytes: in memory
    assert "streamed" not in capsys.readouterr().out

    def refuse(*_: Any) -> None:
        raise AssertionError("the loader was concatenated in memory")

    monkeypatch.setattr(landscape.zoo.data, "_concatenated", refuse)  # streaming must never hold all the data
    out = tmp_path / "s.h5"
    assert main(["surface", str(ckpt), *flags, "--split", "both", "--memory-budget", "1000", "--out", str(out)]) == 0
    assert "streamed from the loader" in capsys.readouterr().out
    s = landscape.load_surface(out)
    assert s.columns == ["train_loss", "train_acc", "test_loss", "test_acc"]
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(100, 6, generator=g), torch.randint(0, 3, (100,), generator=g)
    assert s.directions is not None
    coords = grid_coords((-1.0, 1.0, 3))
    for split, (xs, ys) in {"train": (x[:70], y[:70]), "test": (x[70:], y[70:])}.items():
        want = hand(model, s.directions, coords, xs, ys).reshape(3, 3, 2)
        np.testing.assert_allclose(s[f"{split}_loss"], want[..., 0], rtol=1e-6)
        np.testing.assert_allclose(s[f"{split}_acc"], want[..., 1], rtol=1e-6)
    np.testing.assert_allclose(s["train_loss"], landscape.load_surface(cached)["train_loss"], rtol=1e-6)
    # the API on the same loader, streamed: the CLI's values, value for value
    namespace: dict[str, Any] = {}
    exec(STREAM_DATA_PY, namespace)
    api = landscape.surface(model, namespace["load"]()[0], directions=out, x=(-1, 1, 3), y=(-1, 1, 3),
                            memory_budget=1000, progress=False)
    assert api.attrs["streamed"] == ["train"]
    assert np.array_equal(api["train_loss"], s["train_loss"]) and np.array_equal(api["train_acc"], s["train_acc"])


def test_cli_streamed_regression_with_max_samples(tmp_path: Path) -> None:
    model, flags, ckpt = _cli_files(tmp_path)
    model = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 1))
    torch.save(model.state_dict(), ckpt)
    out = tmp_path / "s.h5"
    flags[flags.index("--directions") : flags.index("--directions") + 2] = ["--seed", "4"]
    assert main(["surface", str(ckpt), *flags, "--loss", "mse", "--set", 'data.options={task="regression"}',
                 "--max-samples", "37", "--memory-budget", "500", "--out", str(out)]) == 0
    s = landscape.load_surface(out)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(100, 6, generator=g)[:37]
    t = x[:, :2].sum(1, keepdim=True).double()
    assert s.directions is not None and s.directions.y is not None
    origin = {k: p.detach().double() for k, p in model.named_parameters()}
    for i, a in enumerate(s.x):
        for j, b in enumerate(s.y):
            p = {k: o + float(a) * s.directions.x[k].double() + float(b) * s.directions.y[k].double() for k, o in origin.items()}
            pred = torch.tanh(x.double() @ p["0.weight"].T + p["0.bias"]) @ p["2.weight"].T + p["2.bias"]
            np.testing.assert_allclose(s["train_loss"][i, j], float(F.mse_loss(pred, t)), rtol=1e-6)


def test_cli_streaming_refuses_what_needs_the_data_in_memory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, flags, ckpt = _cli_files(tmp_path)
    assert main(["surface", str(ckpt), *flags, "--bn", "recompute", "--memory-budget", "1000", "--out", str(tmp_path / "s.h5")]) == 1
    err = capsys.readouterr().err.strip()
    assert "--bn recompute need the data in memory; raise --memory-budget" in err and len(err.splitlines()) == 1
    assert not (tmp_path / "s.h5").exists()
    assert main(["surface", str(ckpt), *flags, "--memory-budget", "0", "--out", str(tmp_path / "s.h5")]) == 1
    assert "memory_budget must be a positive number of bytes, got 0" in capsys.readouterr().err


def test_cli_calls_the_data_function_once_whether_it_streams_or_not(tmp_path: Path) -> None:
    _, flags, ckpt = _cli_files(tmp_path)
    calls = tmp_path / "calls.txt"
    (tmp_path / "sdata.py").write_text(STREAM_DATA_PY.replace("def load(task=\"classification\"):",
                                                              f"def load(task=\"classification\"):\n    with open({str(calls)!r}, \"a\") as f:\n        f.write(\"x\")"))
    for budget in ("1000", "100000"):
        calls.write_text("")
        assert main(["surface", str(ckpt), *flags, "--memory-budget", budget, "--out", str(tmp_path / f"{budget}.h5")]) == 0
        assert calls.read_text() == "x", budget


STOPPING_LOSS_PY = stopping_loss_file("STREAM_STOP_AT", "batch[0]", "batch[1]")


def test_cli_streamed_run_interrupted_mid_pass_resumes_to_the_same_values(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _, flags, ckpt = _cli_files(tmp_path)
    (tmp_path / "stoploss.py").write_text(STOPPING_LOSS_PY)
    flags = [*flags[: flags.index("--x")], "--x", "-1:1:5", "--y", "-1:1:5", "--loss", f"{tmp_path / 'stoploss.py'}:loss",
             "--memory-budget", "1000"]
    full, part = tmp_path / "full.h5", tmp_path / "part.h5"
    assert main(["surface", str(ckpt), *flags, "--out", str(full)]) == 0
    # 1 call checks the first batch, then 2 points × 5 batches calibrate: call 20 is inside a later multi-point pass
    monkeypatch.setenv("STREAM_STOP_AT", "20")
    assert main(["surface", str(ckpt), *flags, "--out", str(part)]) == 130
    partial = landscape.load_surface(part)
    assert partial.done is not None and 2 <= int(partial.done.sum()) < 25  # the calibration pass was saved
    monkeypatch.delenv("STREAM_STOP_AT")
    assert main(["surface", str(ckpt), *flags, "--out", str(part)]) == 0
    resumed, whole = landscape.load_surface(part), landscape.load_surface(full)
    assert resumed.done is not None and resumed.done.all()
    assert np.array_equal(resumed["train_loss"], whole["train_loss"])  # a point's value does not depend on its pass


DATASET_DATA_PY = """
import torch
from torch.utils.data import Dataset

class Pairs(Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y
    def __len__(self):
        return len(self.x)
    def __getitem__(self, i):
        return self.x[i], self.y[i]

def load():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(100, 6, generator=g)
    y = torch.randint(0, 3, (100,), generator=g)
    return Pairs(x[:70], y[:70]), Pairs(x[70:], y[70:])
"""


def test_cli_streams_a_map_style_dataset(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model, flags, ckpt = _cli_files(tmp_path)
    (tmp_path / "sdata.py").write_text(DATASET_DATA_PY)
    out = tmp_path / "s.h5"
    assert main(["surface", str(ckpt), *flags, "--memory-budget", "1000", "--out", str(out)]) == 0
    assert "streamed from the loader" in capsys.readouterr().out
    s = landscape.load_surface(out)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(100, 6, generator=g), torch.randint(0, 3, (100,), generator=g)
    assert s.directions is not None
    want = hand(model, s.directions, grid_coords((-1.0, 1.0, 3)), x[:70], y[:70]).reshape(3, 3, 2)
    np.testing.assert_allclose(s["train_loss"], want[..., 0], rtol=1e-6)
    np.testing.assert_allclose(s["train_acc"], want[..., 1], rtol=1e-6)
