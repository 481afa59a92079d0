"""Every path a user's own model can take through the CLI, and the API giving the CLI's values.

Model and data files are written into ``tmp_path`` (nothing the registry built): checkpoints as a
bare state_dict and as ``{"model": state_dict}``, tasks classification, regression, binary and
autoencoder, commands surface, hessian and trajectory. Oracles: the loss at the origin from a
float64 hand computation, the exact Hessian trace from the dense float64 Hessian, and the API's
surface on the same model, data and directions.
"""

from __future__ import annotations

import copy
import json
import re
import textwrap
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import landscape
from landscape.cli import main

MODEL_PY = """
from torch import nn

def make(input_shape, output_shape):
    return nn.Sequential(nn.Linear(input_shape[0], 6), nn.Tanh(), nn.Linear(6, output_shape[0]))
"""

DATA_PY = """
import torch

def load(task="classification"):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(48, 12, generator=g)
    if task == "classification":
        y = torch.randint(0, 3, (48,), generator=g)
    elif task == "binary":
        y = (x[:, 0] > 0).long()
    elif task == "regression":
        y = x[:, :3].sum(1) + 0.1 * torch.randn(48, generator=g)
    else:
        y = torch.zeros(48)
    return (x[:32], y[:32]), (x[32:], y[32:])
"""

# task → (loss flag, extra --set overrides, hand loss in float64 on (output, targets))
TASKS: dict[str, tuple[str, list[str]]] = {
    "classification": ("cross_entropy", []),
    "regression": ("mse", []),
    "binary": ("bce", ["data.binary=true"]),
    "autoencoder": ("mse", ["data.target=\"input\""]),
}


def _outputs(task: str) -> int:
    return {"classification": 3, "regression": 1, "binary": 1, "autoencoder": 12}[task]


def _data(task: str) -> tuple[Tensor, Tensor]:
    namespace: dict[str, Any] = {}
    exec(textwrap.dedent(DATA_PY), namespace)  # the very function the CLI loads
    (x, y), _ = namespace["load"](task if task != "autoencoder" else "classification")
    if task == "regression":
        return x, y.float().unsqueeze(1)
    if task == "binary":
        return x, y.float().unsqueeze(1)
    if task == "autoencoder":
        return x, x
    return x, y


def _hand_loss(task: str, out: Tensor, y: Tensor) -> float:
    if task == "classification":
        return float(F.cross_entropy(out, y))
    if task == "binary":
        return float(F.binary_cross_entropy_with_logits(out, y.double()))
    return float(((out - y.double()) ** 2).mean())


def _setup(tmp_path: Path, task: str, layout: str) -> tuple[list[str], nn.Module, list[Path]]:
    (tmp_path / "usermodel.py").write_text(textwrap.dedent(MODEL_PY))
    (tmp_path / "userdata.py").write_text(textwrap.dedent(DATA_PY))
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(12, 6), nn.Tanh(), nn.Linear(6, _outputs(task)))
    paths = []
    for k in range(3):  # a short "training path": the last is the model the surface is around
        with torch.no_grad():
            for p in model.parameters():
                p.add_(0.05 * torch.randn_like(p))
        state = {n: t.clone() for n, t in model.state_dict().items()}
        path = tmp_path / f"ckpt{k}.pt"
        torch.save(state if layout == "bare" else {"model": state, "epoch": k}, path)
        paths.append(path)
    data_task = task if task != "autoencoder" else "classification"
    flags = ["--model", f"{tmp_path / 'usermodel.py'}:make", "--data", f"{tmp_path / 'userdata.py'}:load",
             "--set", f"data.options={{task = \"{data_task}\"}}"]
    for override in TASKS[task][1]:
        flags += ["--set", override]
    return flags, model, paths


@pytest.mark.parametrize("layout", ["bare", "dict"])
@pytest.mark.parametrize("task", list(TASKS))
def test_user_model_through_surface_hessian_and_trajectory(tmp_path: Path, task: str, layout: str) -> None:
    flags, model, paths = _setup(tmp_path, task, layout)
    loss = TASKS[task][0]
    x, y = _data(task)
    surface = tmp_path / "s.h5"
    assert main(["surface", str(paths[-1]), *flags, "--loss", loss, "--x", "-1:1:3", "--y", "-1:1:3",
                 "--out", str(surface)]) == 0
    with h5py.File(surface, "r") as f:
        cli = np.asarray(f["train_loss"][()])
    with torch.no_grad():
        want = _hand_loss(task, copy.deepcopy(model).double()(x.double()), y)
    np.testing.assert_allclose(cli[1, 1], want, rtol=1e-5)  # the origin: the checkpoint's own loss
    # the API on the same model, data and directions gives the CLI's values
    api = landscape.surface(model, (x, y), loss=loss, directions=surface, x=(-1, 1, 3), y=(-1, 1, 3))
    np.testing.assert_allclose(api["train_loss"], cli, rtol=1e-6)

    report = tmp_path / "h.json"
    assert main(["hessian", str(paths[-1]), *flags, "--loss", loss, "--top-k", "1", "--max-iter", "30",
                 "--trace-samples", "4", "--out", str(report)]) == 0
    exact = json.loads(report.read_text())["exact_trace"]
    names = ["0.weight", "2.weight"]
    base = {k: v.detach().double() for k, v in model.named_parameters()}
    sizes = [base[k].numel() for k in names]

    def loss_of(flat: Tensor) -> Tensor:
        parts = dict(zip(names, (t.reshape(base[k].shape) for t, k in zip(torch.split(flat, sizes), names, strict=True)), strict=True))
        p = {**base, **parts}
        out = torch.tanh(x.double() @ p["0.weight"].T + p["0.bias"]) @ p["2.weight"].T + p["2.bias"]
        if task == "classification":
            return F.cross_entropy(out, y)
        if task == "binary":
            return F.binary_cross_entropy_with_logits(out, y.double())
        return ((out - y.double()) ** 2).mean()

    dense = torch.autograd.functional.hessian(loss_of, torch.cat([base[k].reshape(-1) for k in names]))
    np.testing.assert_allclose(exact, float(torch.trace(dense)), rtol=1e-4)

    traj = tmp_path / "t.h5"
    assert main(["trajectory", *map(str, paths), "--model", flags[1], "--data", flags[3], "--set", flags[5],
                 *[a for o in TASKS[task][1] for a in ("--set", o)], "--out", str(traj)]) == 0
    with h5py.File(traj, "r") as f:
        assert len(f["trajectory"]["loss"][()]) == 3


LOADER_DATA_PY = """
import torch
from torch.utils.data import DataLoader, TensorDataset

def load():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 12, generator=g)
    y = torch.randint(0, 3, (50,), generator=g)
    return DataLoader(TensorDataset(x[:35], y[:35]), batch_size=8), DataLoader(TensorDataset(x[35:], y[35:]), batch_size=8)
"""

LOSS_PY = """
import torch.nn.functional as F

def loss(model, batch):
    inputs, targets = batch
    return F.cross_entropy(model(inputs), targets, reduction="none")
"""


def test_cli_takes_a_batch_loss_file_a_dataloader_and_params(tmp_path: Path) -> None:
    (tmp_path / "usermodel.py").write_text(textwrap.dedent(MODEL_PY))
    (tmp_path / "loaders.py").write_text(textwrap.dedent(LOADER_DATA_PY))
    (tmp_path / "userloss.py").write_text(textwrap.dedent(LOSS_PY))
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(12, 6), nn.Tanh(), nn.Linear(6, 3))
    torch.save(model.state_dict(), tmp_path / "m.pt")
    flags = ["--model", f"{tmp_path / 'usermodel.py'}:make", "--data", f"{tmp_path / 'loaders.py'}:load",
             "--loss", f"{tmp_path / 'userloss.py'}:loss"]
    out = tmp_path / "s.h5"
    assert main(["surface", str(tmp_path / "m.pt"), *flags, "--params", "0.*", "--x", "-1:1:3", "--y", "-1:1:3",
                 "--out", str(out)]) == 0
    s = landscape.load_surface(out)
    assert s.columns == ["train_loss"] and s.attrs["settings"]["params"] == ["0.*"]
    dirs = s.directions
    assert dirs is not None and dirs.y is not None
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(50, 12, generator=g)[:35], torch.randint(0, 3, (50,), generator=g)[:35]
    base = {k: v.detach().double() for k, v in model.named_parameters()}
    want = np.empty((3, 3))
    for i, a in enumerate(s.x):
        for j, b in enumerate(s.y):  # only the first layer moves
            p = {k: v + (float(a) * dirs.x[k].double() + float(b) * dirs.y[k].double() if k.startswith("0.") else 0)
                 for k, v in base.items()}
            out_ = torch.tanh(x.double() @ p["0.weight"].T + p["0.bias"]) @ p["2.weight"].T + p["2.bias"]
            want[i, j] = float(F.cross_entropy(out_, y))
    np.testing.assert_allclose(s["train_loss"], want, rtol=1e-5)
    # the API on the same loader, callable and params: the CLI's values
    namespace: dict[str, Any] = {}
    exec(textwrap.dedent(LOSS_PY), namespace)
    exec(textwrap.dedent(LOADER_DATA_PY), namespace)
    api = landscape.surface(model, namespace["load"]()[0], loss=namespace["loss"], directions=out, x=(-1, 1, 3),
                            y=(-1, 1, 3), params="0.*")
    np.testing.assert_allclose(api["train_loss"], s["train_loss"], rtol=1e-6)

    report = tmp_path / "h.json"
    assert main(["hessian", str(tmp_path / "m.pt"), *flags, "--params", "2.*", "--top-k", "1", "--max-iter", "20",
                 "--trace-samples", "2", "--out", str(report)]) == 0
    w2 = base["2.weight"].reshape(-1)

    def loss_of(flat: Tensor) -> Tensor:
        h = torch.tanh(x.double() @ base["0.weight"].T + base["0.bias"])
        return F.cross_entropy(h @ flat.reshape(3, 6).T + base["2.bias"], y)

    dense = torch.autograd.functional.hessian(loss_of, w2)
    np.testing.assert_allclose(json.loads(report.read_text())["exact_trace"], float(torch.trace(dense)), rtol=1e-4)


# --- one tool: the API and the CLI on the same checkpoint, with no seed -----------------------------------------------

TINY_BN_TOML = """
[data]
name = "digits"
max_train = 120
max_test = 60

[model]
name = "mlp"
options = { hidden = [12], batchnorm = true }

[train]
epochs = 1
batch_size = 40
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint of ``landscape train`` (an MLP with BatchNorm on 120 digits), trained in-process."""
    root = tmp_path_factory.mktemp("trained")
    (root / "tiny.toml").write_text(TINY_BN_TOML)
    assert main(["train", str(root / "tiny.toml"), "--out", str(root / "run")]) == 0
    (ckpt,) = sorted((root / "run" / "checkpoints").glob("epoch_*.pt"))[-1:]
    return ckpt


@pytest.mark.parametrize(("points_per_call", "bn"), [(0, "keep"), (3, "keep"), (4, "recompute")])
def test_the_notebook_flow_gives_the_clis_file_bit_for_bit_with_no_seed(trained: Path, tmp_path: Path,
                                                                       points_per_call: int, bn: str) -> None:
    cli_file, api_file = tmp_path / "cli.h5", tmp_path / "api.h5"
    assert main(["surface", str(trained), "--x", "-1:1:5", "--y", "-0.5:0.5:3", "--split", "both", "--out", str(cli_file),
                 "--set", f"surface.points_per_call={points_per_call}", "--set", f'surface.bn="{bn}"']) == 0
    # the five lines a notebook runs after `landscape train`: no seed, no data or model code
    ck = landscape.load_checkpoint(trained)
    s = landscape.surface(ck.model, ck.data, x=(-1, 1, 5), y=(-0.5, 0.5, 3), points_per_call=points_per_call,
                          bn=bn, progress=False)  # type: ignore[arg-type]
    s.save(api_file)
    with h5py.File(cli_file, "r") as f, h5py.File(api_file, "r") as g:
        columns = ["train_loss", "train_acc", "test_loss", "test_acc"]
        assert [c for c in f if c in columns] == [c for c in g if c in columns] and all(c in f for c in columns)
        for c in columns:  # exact equality: the same engine on the same tensors
            np.testing.assert_array_equal(np.asarray(f[c][()]), np.asarray(g[c][()]), err_msg=c)
        assert np.isfinite(np.asarray(f["train_loss"][()])).all()
    cli, api = landscape.load_surface(cli_file).directions, landscape.load_surface(api_file).directions
    assert cli is not None and api is not None and cli.y is not None and api.y is not None
    assert cli.meta["seed"] == api.meta["seed"] == 123
    assert list(cli.x) == list(api.x)
    for k in cli.x:
        assert torch.equal(cli.x[k], api.x[k]) and torch.equal(cli.y[k], api.y[k]), k
    # the origin is the checkpoint's own model, as the CLI evaluates it (fixed BatchNorm)
    if bn == "keep":
        (x_train, y_train), _ = ck.data
        with torch.no_grad():
            want = float(F.cross_entropy(ck.model(x_train).double(), y_train))
        np.testing.assert_allclose(s["train_loss"][2, 1], want, rtol=1e-5)


def test_load_checkpoint_gives_the_config_epoch_and_a_model_that_is_the_files(trained: Path) -> None:
    ck = landscape.load_checkpoint(trained)
    saved = torch.load(trained, weights_only=True)
    assert ck.config == saved["config"] and ck.config["model"]["options"]["batchnorm"] is True
    assert (ck.epoch, ck.step) == (saved["epoch"], saved["step"]) and ck.epoch == 1 and ck.step == 3
    assert not ck.model.training
    state = ck.model.state_dict()
    assert list(state) == list(saved["state_dict"]) and all(torch.equal(state[k], v) for k, v in saved["state_dict"].items())
    (x_train, y_train), (x_test, _) = ck.data
    assert (len(x_train), len(x_test)) == (120, 60) and x_train.shape[1:] == (1, 8, 8) and y_train.dtype == torch.int64


@pytest.mark.parametrize("layout", ["bare", "dict", "ddp"])
def test_load_checkpoint_of_a_foreign_file_takes_a_factory_or_a_module(tmp_path: Path, layout: str) -> None:
    torch.manual_seed(4)
    trained_model = nn.Sequential(nn.Linear(12, 6), nn.Tanh(), nn.Linear(6, 3))
    state = trained_model.state_dict()
    saved = {"bare": state, "dict": {"model": state, "epoch": 2},
             "ddp": {f"module.{k}": v for k, v in state.items()}}[layout]
    path = tmp_path / "foreign.pt"
    torch.save(saved, path)

    def factory() -> nn.Module:
        return nn.Sequential(nn.Linear(12, 6), nn.Tanh(), nn.Linear(6, 3))

    blank = factory()
    before = {k: v.clone() for k, v in blank.state_dict().items()}
    for given in (factory, blank):
        ck = landscape.load_checkpoint(path, given)
        assert ck.data is None and ck.config is None
        assert all(torch.equal(ck.model.state_dict()[k], v) for k, v in state.items())
    assert all(torch.equal(blank.state_dict()[k], v) for k, v in before.items())  # the module passed is not written
    with pytest.raises(landscape.LandscapeError, match="does not say which model") as err:
        landscape.load_checkpoint(path)
    assert "\n" not in str(err.value)
    with pytest.raises(landscape.LandscapeError, match=r"unexpected keys: 2\.weight, 2\.bias"):
        landscape.load_checkpoint(path, nn.Sequential(nn.Linear(12, 6)))


def test_the_apis_engine_options_are_checked_in_one_line(trained: Path) -> None:
    ck = landscape.load_checkpoint(trained)
    (x, y), _ = ck.data
    for kwargs, text in (({"bn": "fixed"}, "bn must be 'keep' or 'recompute'"),
                         ({"points_per_call": -1}, "points_per_call ≥ 0"),
                         ({"bn": "recompute", "memory_budget": 1}, "needs (inputs, targets) data in memory")):
        with pytest.raises(landscape.LandscapeError, match=re.escape(text)) as err:
            landscape.surface(ck.model, (x, y), x=(-1, 1, 3), y=(-1, 1, 3), progress=False, **kwargs)
        assert "\n" not in str(err.value)
