"""The CLI on batches that are not (inputs, targets) tuples (dicts) with a batch loss ``--loss file.py:fn``,
and ``landscape hessian`` on streamed data.

Oracles: float64 hand loops over all samples at once (one point at a time), the Python API on the
same batches, and for the Hessian a dense float64 ``torch.autograd.functional.hessian`` of the same
loss on the same data (its top eigenvalue and eigenvector).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from stopping import stopping_loss_file
from torch import Tensor, nn

import landscape
import landscape.zoo.data
from landscape.cli import main
from landscape.engine.directions import save_directions

MODEL_PY = """
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self, hidden=3):
        super().__init__()
        self.a = nn.Linear(4, hidden)
        self.b = nn.Linear(hidden, 3)

    def forward(self, features):
        return self.b(torch.tanh(self.a(features)))

def make(hidden=3):
    return Net(hidden)

def shaped(input_shape, output_shape, hidden=3):
    return Net(hidden)
"""

DATA_PY = """
import torch
from torch.utils.data import DataLoader, Dataset

def tensors():
    g = torch.Generator().manual_seed(1)
    return torch.randn(100, 4, generator=g), torch.randint(0, 3, (100,), generator=g)

class Items(Dataset):
    def __init__(self, x, y):
        self.x, self.y = x, y
    def __len__(self):
        return len(self.x)
    def __getitem__(self, i):
        return {"features": self.x[i], "labels": self.y[i]}

def dicts(kind="list"):
    x, y = tensors()
    if kind == "loader":  # a DataLoader collating dict items into dict batches
        return DataLoader(Items(x[:70], y[:70]), batch_size=16), DataLoader(Items(x[70:], y[70:]), batch_size=16)
    def cut(a, b):
        return [{"features": x[i:min(i + 16, b)], "labels": y[i:min(i + 16, b)]} for i in range(a, b, 16)]
    return cut(0, 70), cut(70, 100)

def pairs():
    x, y = tensors()
    return [(x[i:min(i + 16, 70)], y[i:min(i + 16, 70)]) for i in range(0, 70, 16)], [(x[70:], y[70:])]
"""

LOSS_PY = stopping_loss_file("DICT_STOP_AT", 'batch["features"]', 'batch["labels"]') + """
def mean_loss(model, batch):
    return F.cross_entropy(model(batch["features"]), batch["labels"])

def pair_loss(model, batch):
    return F.cross_entropy(model(batch[0]), batch[1], reduction="none")
"""

AXIS = (-1.0, 1.0, 3)


def data() -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(100, 4, generator=g), torch.randint(0, 3, (100,), generator=g)


def files(tmp_path: Path) -> tuple[nn.Module, dict[str, Any], Path]:
    """The three user files, a checkpoint (bare state dict) and a saved direction file."""
    for name, text in (("umodel.py", MODEL_PY), ("udata.py", DATA_PY), ("uloss.py", LOSS_PY)):
        (tmp_path / name).write_text(text)
    ns: dict[str, Any] = {}
    exec(MODEL_PY, ns)
    torch.manual_seed(5)
    model = ns["make"]()
    torch.save(model.state_dict(), tmp_path / "m.pt")
    save_directions(tmp_path / "d.h5", landscape.random_directions(model, seed=3), model)
    data_ns: dict[str, Any] = {}
    exec(DATA_PY, data_ns)
    return model, data_ns, tmp_path / "m.pt"


def flags(tmp_path: Path, loss: str = "loss", data: str = "dicts", model: str = "make") -> list[str]:
    return ["--model", f"{tmp_path / 'umodel.py'}:{model}", "--data", f"{tmp_path / 'udata.py'}:{data}",
            "--loss", f"{tmp_path / 'uloss.py'}:{loss}"]


def surface_flags(tmp_path: Path, n: int = 3, **kw: str) -> list[str]:
    return [*flags(tmp_path, **kw), "--directions", str(tmp_path / "d.h5"), "--x", f"-1:1:{n}", "--y", f"-1:1:{n}"]


def forward64(p: dict[str, Tensor], x: Tensor) -> Tensor:
    return torch.tanh(x.double() @ p["a.weight"].T + p["a.bias"]) @ p["b.weight"].T + p["b.bias"]


def hand(model: nn.Module, dirs: landscape.Directions, xs: np.ndarray, ys: np.ndarray, x: Tensor, y: Tensor) -> np.ndarray:
    """Mean cross-entropy at every (α, β) in float64, all samples at once."""
    assert dirs.y is not None
    origin = {k: p.detach().double() for k, p in model.named_parameters()}
    out = np.empty((len(xs), len(ys)))
    for i, a in enumerate(xs):
        for j, b in enumerate(ys):
            p = {k: o + float(a) * dirs.x[k].double() + float(b) * dirs.y[k].double() for k, o in origin.items()}
            out[i, j] = float(F.cross_entropy(forward64(p, x), y))
    return out


def test_cli_dict_batches_equal_the_hand_loop_and_the_api(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model, data_ns, ckpt = files(tmp_path)
    out = tmp_path / "s.h5"
    assert main(["surface", str(ckpt), *surface_flags(tmp_path), "--split", "both", "--out", str(out)]) == 0
    assert "dict batches are cached on the device" in capsys.readouterr().out
    s = landscape.load_surface(out)
    assert s.columns == ["train_loss", "test_loss"] and s.directions is not None
    x, y = data()
    np.testing.assert_allclose(s["train_loss"], hand(model, s.directions, s.x, s.y, x[:70], y[:70]), rtol=1e-6)
    np.testing.assert_allclose(s["test_loss"], hand(model, s.directions, s.x, s.y, x[70:], y[70:]), rtol=1e-6)
    # the API on the same dict batches, the same loss and the file's directions: value for value
    train, test = data_ns["dicts"]()
    loss_ns: dict[str, Any] = {}
    exec(LOSS_PY, loss_ns)
    api = landscape.surface(model, {"train": train, "test": test}, loss=loss_ns["loss"], directions=out, x=AXIS, y=AXIS,
                            progress=False)
    assert np.array_equal(api["train_loss"], s["train_loss"]) and np.array_equal(api["test_loss"], s["test_loss"])
    # a batch loss returning the batch mean is weighted by the batch's samples: the same means
    mean = tmp_path / "mean.h5"
    assert main(["surface", str(ckpt), *surface_flags(tmp_path, loss="mean_loss"), "--out", str(mean)]) == 0
    np.testing.assert_allclose(landscape.load_surface(mean)["train_loss"], s["train_loss"], rtol=1e-6)
    # what the CLI does with any surface file
    assert main(["info", str(out)]) == 0
    assert main(["plot", str(out), "--kind", "contour", "--format", "png", "--out", str(tmp_path / "fig")]) == 0
    assert (tmp_path / "fig" / "s_contour.png").stat().st_size > 0
    capsys.readouterr()
    # settings are checked before a file is resumed: another loss is refused in one line, the file kept
    before = out.read_bytes()
    assert main(["surface", str(ckpt), *surface_flags(tmp_path, loss="mean_loss"), "--split", "both", "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert "mean_loss" in err and len(err.splitlines()) == 1
    assert out.read_bytes() == before


@pytest.mark.parametrize("kind", ["list", "loader"])
def test_cli_dict_batches_cached_and_streamed_agree(tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    model, _, ckpt = files(tmp_path)
    base = [*surface_flags(tmp_path), "--set", f'data.options={{kind="{kind}"}}']
    cached, streamed = tmp_path / "c.h5", tmp_path / "s.h5"
    assert main(["surface", str(ckpt), *base, "--out", str(cached)]) == 0
    assert "cached on the device" in capsys.readouterr().out
    assert main(["surface", str(ckpt), *base, "--memory-budget", "1", "--out", str(streamed)]) == 0
    assert "streamed from the loader" in capsys.readouterr().out
    c, s = landscape.load_surface(cached), landscape.load_surface(streamed)
    np.testing.assert_allclose(s["train_loss"], c["train_loss"], rtol=1e-6)
    x, y = data()
    assert s.directions is not None
    np.testing.assert_allclose(s["train_loss"], hand(model, s.directions, s.x, s.y, x[:70], y[:70]), rtol=1e-6)


@pytest.mark.parametrize("budget", ["1", "1000000"])
def test_cli_dict_batches_interrupted_run_resumes_to_the_same_values(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, budget: str) -> None:
    files(tmp_path)
    args = [*surface_flags(tmp_path, n=5), "--memory-budget", budget]
    full, part = tmp_path / "full.h5", tmp_path / "part.h5"
    assert main(["surface", str(tmp_path / "m.pt"), *args, "--out", str(full)]) == 0
    # 1 call checks the first batch, 2 points × 5 batches calibrate: call 30 is in a later point
    monkeypatch.setenv("DICT_STOP_AT", "30")
    assert main(["surface", str(tmp_path / "m.pt"), *args, "--out", str(part)]) == 130
    partial = landscape.load_surface(part)
    assert partial.done is not None and 2 <= int(partial.done.sum()) < 25
    monkeypatch.delenv("DICT_STOP_AT")
    assert main(["surface", str(tmp_path / "m.pt"), *args, "--out", str(part)]) == 0
    resumed, whole = landscape.load_surface(part), landscape.load_surface(full)
    assert resumed.done is not None and resumed.done.all()
    assert np.array_equal(resumed["train_loss"], whole["train_loss"])


# --- landscape hessian ---------------------------------------------------------------------------------------------


def dense_top(model: nn.Module, x: Tensor, y: Tensor) -> tuple[float, dict[str, Tensor]]:
    """Top eigenvalue and eigenvector (by name, largest entry positive) of the dense float64 Hessian of
    the mean cross-entropy w.r.t. the weight matrices (the default parameter set: ndim > 1)."""
    p0 = {k: v.detach().double() for k, v in model.named_parameters()}
    names = [k for k, v in p0.items() if v.ndim > 1]
    sizes = [p0[k].numel() for k in names]

    def loss(flat: Tensor) -> Tensor:
        p = dict(p0)
        for k, part in zip(names, torch.split(flat, sizes), strict=True):
            p[k] = part.reshape(p0[k].shape)
        return F.cross_entropy(forward64(p, x), y)

    h = torch.autograd.functional.hessian(loss, torch.cat([p0[k].reshape(-1) for k in names]))
    values, vectors = torch.linalg.eigh(h)
    v = vectors[:, -1]
    v = v * torch.sign(v[v.abs().argmax()])
    return float(values[-1]), {k: part.reshape(p0[k].shape) for k, part in zip(names, torch.split(v, sizes), strict=True)}


@pytest.mark.parametrize("case", ["dicts", "dicts streamed", "pairs streamed", "pairs streamed batch loss"])
def test_cli_hessian_matches_the_dense_float64_hessian(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    model, _, ckpt = files(tmp_path)
    loss = "pair_loss" if case == "pairs streamed batch loss" else "loss"
    args = flags(tmp_path, loss=loss, data=case.split()[0])
    if case.startswith("pairs") and loss == "loss":
        args[-1] = "cross_entropy"
    if case.startswith("pairs"):
        def refuse(*_: Any) -> None:
            raise AssertionError("the data were concatenated in memory")

        monkeypatch.setattr(landscape.zoo.data, "_concatenated", refuse)  # streaming never holds all the data
    report, dfile = tmp_path / "h.json", tmp_path / "hd.h5"
    assert main(["hessian", str(ckpt), *args, *(["--memory-budget", "1"] if "streamed" in case else []),
                 "--top-k", "1", "--trace-samples", "2", "--out", str(report), "--save-directions", str(dfile)]) == 0
    got = json.loads(report.read_text())
    x, y = data()
    want, vector = dense_top(model, x[:70], y[:70])
    assert got["settings"]["num_samples"] == 70
    np.testing.assert_allclose(got["eigenvalues"][0], want, rtol=1e-5)
    assert got["parameters"]["names"] == ["a.weight", "b.weight"]
    with h5py.File(dfile) as f:  # saved under the model's own names, the dense top eigenvector (up to sign)
        assert sorted(f["x"]) == ["a.bias", "a.weight", "b.bias", "b.weight"]
        saved = {k: torch.as_tensor(np.asarray(f["x"][k]), dtype=torch.float64) for k in vector}
    dot = sum(float((saved[k] * vector[k]).sum()) for k in vector)
    assert abs(abs(dot) - 1.0) < 1e-5


# --- one-line errors -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("extra", "message"), [
    (["--loss", "cross_entropy"], "compares a model output with targets, which the dict batches of"),
    (["--model", "shaped"], "needs input_shape and output_shape, which batches that are not (inputs, targets) tuples"),
    (["--model", "mlp"], "name a factory file.py:fn that builds the model itself"),
    (["--max-samples", "10"], "--max-samples 10 cuts (inputs, targets) data"),
    (["--bn", "recompute"], "--metric eig_ratio and --bn recompute need (inputs, targets) data"),
    (["--set", "data.max_train=10"], "data.max_train apply to (inputs, targets) data; "),
])
def test_cli_dict_batches_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str],
                                              message: str) -> None:
    files(tmp_path)
    args = surface_flags(tmp_path)
    if extra[0] in ("--loss", "--model") and extra[1] != "mlp":
        i = args.index(extra[0])
        args[i + 1] = extra[1] if extra[0] == "--loss" else f"{tmp_path / 'umodel.py'}:{extra[1]}"
    elif extra[0] == "--model":
        args[args.index("--model") + 1] = extra[1]
    else:
        args += extra
    out = tmp_path / "s.h5"
    assert main(["surface", str(tmp_path / "m.pt"), *args, "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err, err
    assert len(err.splitlines()) == 1 and not out.exists()


def test_cli_hessian_refuses_a_registry_loss_on_dict_batches(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files(tmp_path)
    args = flags(tmp_path)
    args[-1] = "cross_entropy"
    assert main(["hessian", str(tmp_path / "m.pt"), *args, "--out", str(tmp_path / "h.json")]) == 1
    err = capsys.readouterr().err.strip()
    assert "pass a batch loss --loss file.py:fn" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("case", ["dicts", "pairs"])
def test_cli_surface_hessian_directions_on_streamed_data_are_the_dense_top_eigenvector(tmp_path: Path, case: str) -> None:
    model, _, ckpt = files(tmp_path)
    args = flags(tmp_path, data=case)
    if case == "pairs":
        args[-1] = "cross_entropy"
    out = tmp_path / "s.h5"
    assert main(["surface", str(ckpt), *args, "--hessian-directions", "--memory-budget", "1", "--x", "-1:1:3",
                 "--out", str(out)]) == 0
    s = landscape.load_surface(out)
    assert s.directions is not None
    x, y = data()
    _, vector = dense_top(model, x[:70], y[:70])
    dot = sum(float((s.directions.x[k].double() * vector[k]).sum()) for k in vector)
    assert abs(dot - 1.0) < 1e-5  # unit norm, canonical sign: the largest entry positive, as the oracle's
    assert all(not s.directions.x[k].any() for k in ("a.bias", "b.bias"))


def test_cli_train_on_dict_batches_says_where_they_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files(tmp_path)
    run = tmp_path / "run"
    assert main(["train", "--data", f"{tmp_path / 'udata.py'}:dicts", "--model", f"{tmp_path / 'umodel.py'}:make",
                 "--epochs", "1", "--out", str(run)]) == 1
    err = capsys.readouterr().err.strip()
    assert "got dict; batches of other shapes (dicts) work with a batch loss --loss file.py:fn in landscape surface" in err
    assert len(err.splitlines()) == 1 and not (run / "run.json").exists()
