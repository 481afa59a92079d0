"""Filters follow what a layer computes; parametrized weights move as the forward sees them;
``params`` subsets survive a saved file; a flat surface says so.

Every model of the zoo (tests/layer_zoo.py: a torchvision-layout ResNet-18, GPT-2, BERT, ViT, a
grouped ConvTranspose autoencoder, depthwise-separable convs, attention, LSTM/GRU, weight_norm,
spectral_norm and a user parametrization, peft LoRA, bfloat16 and float64) is checked against
oracles written here: per-output-unit norms from each module's definition, a float64 hand loop
that sets the effective weights itself, the caller's model bit for bit.
"""

from __future__ import annotations

import fnmatch
import json
import textwrap
import warnings
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch
from layer_zoo import ZOO, Entry, lora
from torch import Tensor, nn
from torch.nn.utils import parametrize

import landscape
from landscape.cli import main
from landscape.engine import filters
from landscape.errors import ConfigError, DirectionError, FlatSurfaceWarning

XS, YS = [-0.4, 0.6], [-0.5, 0.3]


# --- oracles -----------------------------------------------------------------------------------------------------


def unit_rows(module: nn.Module, local: str, w: Tensor) -> Tensor | None:
    """(units, entries): each output unit's weights, written from the module's definition; None: a bias."""
    if w.ndim <= 1 or (isinstance(module, nn.MultiheadAttention) and local in ("bias_k", "bias_v")):
        return None
    if isinstance(module, nn.ConvTranspose1d | nn.ConvTranspose2d | nn.ConvTranspose3d) and local == "weight":
        # (in, out/groups, k...): output channel g·(out/groups) + j reads inputs of group g through w[group g, j]
        per_group = w.shape[0] // module.groups
        return torch.stack([w[g * per_group:(g + 1) * per_group, j].reshape(-1)
                            for g in range(module.groups) for j in range(w.shape[1])])
    if type(module).__name__ == "Conv1D":  # transformers: (in, out), y = x @ W + b
        return w.T.reshape(w.shape[1], -1)
    return w.reshape(w.shape[0], -1)  # Linear, Conv*d (grouped too), Embedding, RNN gates, in_proj: a row per output unit


def effective(model: nn.Module, name: str) -> Tensor:
    """The tensor the forward uses for ``name`` (a parametrized one through torch's own property)."""
    owner, _, local = name.rpartition(".")
    with torch.no_grad():
        return getattr(model.get_submodule(owner), local).detach()  # type: ignore[no-any-return]


def snapshot(model: nn.Module) -> dict[str, Any]:
    return {"state": {k: v.clone() for k, v in model.state_dict().items()},
            "params": {k: v.detach().clone() for k, v in model.named_parameters()},
            "modes": [m.training for m in model.modules()], "types": [type(m) for m in model.modules()]}


def assert_unchanged(model: nn.Module, before: dict[str, Any]) -> None:
    after = snapshot(model)
    assert after["state"].keys() == before["state"].keys() and after["params"].keys() == before["params"].keys()
    assert all(torch.equal(before["state"][k], v) for k, v in after["state"].items())
    assert all(torch.equal(before["params"][k], v) for k, v in after["params"].items())
    assert after["modes"] == before["modes"] and after["types"] == before["types"]


def hand_loop(entry: Entry, dx: dict[str, Tensor], dy: dict[str, Tensor]) -> np.ndarray:
    """The mean loss at every (XS[i], YS[j]) in float64, written by hand on a second instance of the
    model whose parametrizations torch itself removes (leaving the effective weights)."""
    ref = entry.build()
    for m in list(ref.modules()):
        if parametrize.is_parametrized(m):
            for t in list(m.parametrizations):  # type: ignore[union-attr]
                parametrize.remove_parametrizations(m, t, leave_parametrized=True)
    ref = ref.double().eval()
    inputs, targets = entry.data()
    batch = (inputs.double() if inputs.is_floating_point() else inputs, targets.double() if targets.is_floating_point() else targets)
    origin = {k: ref.get_parameter(k).detach().clone() for k in dx}
    out = np.empty((len(XS), len(YS)))
    with torch.no_grad():
        for i, a in enumerate(XS):
            for j, b in enumerate(YS):
                for k in dx:
                    ref.get_parameter(k).copy_(origin[k] + a * dx[k].double() + b * dy[k].double())
                out[i, j] = float(entry.loss(ref, batch).mean())
    return out


# --- the zoo -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ZOO, ids=[e.name for e in ZOO])
def test_zoo(entry: Entry, tmp_path: Path) -> None:
    if entry.needs:
        pytest.importorskip(entry.needs)
    model = entry.build()
    before = snapshot(model)
    data = entry.data()
    with torch.no_grad():
        loss0 = entry.loss(model, data)
    dirs = landscape.random_directions(model, seed=7)
    assert dirs.y is not None
    assert not any(".parametrizations." in k for k in dirs.x)  # parametrized weights under the module's name

    # every tensor's direction: one output unit at a time, the norm of the weights' unit
    checked = 0
    for name, d in dirs.x.items():
        owner, _, local = name.rpartition(".")
        w = effective(model, name).float()
        assert d.shape == w.shape
        expected = unit_rows(model.get_submodule(owner), local, w)
        if expected is None:
            assert not d.any(), name  # a bias: zero under ignore="biasbn"
            continue
        got = unit_rows(model.get_submodule(owner), local, d)
        assert got is not None
        np.testing.assert_allclose(got.double().norm(dim=1), expected.double().norm(dim=1), rtol=1e-4, atol=1e-6, err_msg=name)
        checked += 1
    assert checked >= 2

    # two points and two more: the engine against a float64 hand loop that sets the effective weights itself
    want = hand_loop(entry, dirs.x, dirs.y)
    s = landscape.surface(model, data, loss=entry.loss, directions=dirs, x=XS, y=YS, progress=False)
    np.testing.assert_allclose(s["train_loss"], want, rtol=entry.rtol, atol=1e-7)
    if entry.named:
        fast = landscape.surface(model, data, loss=entry.named, directions=dirs, x=XS, y=YS, progress=False)
        np.testing.assert_allclose(fast["train_loss"], want, rtol=entry.rtol, atol=1e-7)

    # a params subset: the saved directions hold only it, and reusing them moves exactly it
    chosen = {k for k in dirs.x if fnmatch.fnmatchcase(k, entry.params)}
    sub = landscape.surface(model, data, loss=entry.loss, directions=dirs, x=XS, y=YS, params=entry.params, progress=False)
    assert sub.directions is not None and set(sub.directions.x) == chosen
    only = hand_loop(entry, {k: dirs.x[k] for k in chosen}, {k: dirs.y[k] for k in chosen})
    np.testing.assert_allclose(sub["train_loss"], only, rtol=entry.rtol, atol=1e-7)
    sub.save(tmp_path / "s.h5")
    with h5py.File(tmp_path / "s.h5", "r") as f:
        assert set(f["directions"]["x"]) == chosen and json.loads(f["directions"].attrs["params"]) == [entry.params]
    again = landscape.surface(model, data, loss=entry.loss, directions=tmp_path / "s.h5", x=XS, y=YS, progress=False)
    np.testing.assert_allclose(again["train_loss"], sub["train_loss"], rtol=1e-6)
    assert_unchanged(model, before)
    with torch.no_grad():  # and it still computes what it did (its parametrizations' classes untouched)
        assert torch.equal(entry.loss(model, data), loss0)


# --- what a filter is, found from the layer's own computation ------------------------------------------------


def _conv1d() -> nn.Module:
    conv1d = pytest.importorskip("transformers.pytorch_utils").Conv1D
    return conv1d(5, 3)  # type: ignore[no-any-return]  # nf = 5 outputs from nx = 3 inputs: weight (3, 5)


@pytest.mark.parametrize(("make", "inputs"), [
    (lambda: nn.ConvTranspose2d(4, 6, 3, groups=2), (2, 4, 5, 5)),
    (lambda: nn.ConvTranspose1d(6, 9, 2, groups=3), (2, 6, 4)),
    (lambda: nn.Conv2d(4, 6, 3, groups=2), (2, 4, 5, 5)),
    (lambda: nn.Conv2d(3, 6, 3, groups=3), (2, 3, 5, 5)),  # depthwise: a channel reads its one input channel
    (_conv1d, (2, 4, 3)),
    (lambda: nn.Linear(3, 4), (2, 3)),
], ids=["convtranspose2d_groups", "convtranspose1d_groups", "conv2d_groups", "depthwise", "hf_conv1d", "linear"])
def test_a_filter_is_what_one_output_unit_reads(make: Any, inputs: tuple[int, ...]) -> None:
    """For each output unit c, the weights with a non-zero gradient of output c are exactly one filter."""
    torch.manual_seed(0)
    layer = make()
    w = layer.weight
    f = filters.filters_of(layer, "weight", w.detach())
    assert f is not None
    ids = torch.arange(f.count()).reshape([f.shape[i] for i in f.units])
    ids = ids.reshape([f.shape[i] if i in f.units else 1 for i in range(len(f.shape))]).expand(f.shape).reshape(w.shape)
    out = layer(torch.randn(*inputs))
    channel_dim = out.ndim - 1 if type(layer).__name__ in ("Conv1D", "Linear") else 1
    seen = set()
    for c in range(out.shape[channel_dim]):
        (grad,) = torch.autograd.grad(out.select(channel_dim, c).sum(), w, retain_graph=True)
        reads = grad != 0
        unit = ids[reads].unique()
        assert len(unit) == 1 and torch.equal(reads, ids == unit), f"output unit {c}"
        seen.add(int(unit))
    assert len(seen) == f.count()


def test_a_users_own_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    """register_filter_rule: by type with an output dim, by class name with a function; bad rules are refused."""
    monkeypatch.setattr(filters, "_BY_TYPE", dict(filters._BY_TYPE))
    monkeypatch.setattr(filters, "_BY_NAME", dict(filters._BY_NAME))

    class Columns(nn.Module):  # y = x @ W, W (in, out): an output unit is a column
        def __init__(self) -> None:
            super().__init__()
            self.weight = nn.Parameter(torch.randn(6, 4))

        def forward(self, x: Tensor) -> Tensor:
            return x @ self.weight

    class Blocks(Columns):
        pass

    torch.manual_seed(0)
    model = nn.Sequential(Columns(), Blocks())
    model[1].weight = nn.Parameter(torch.randn(4, 2) * torch.tensor([1.0, 10.0]))
    landscape.register_filter_rule(Columns, 1)
    d = landscape.random_directions(model, dims=1, seed=1).x
    for k in ("0.weight", "1.weight"):  # Blocks inherits Columns' rule
        w = model.get_parameter(k).detach()
        np.testing.assert_allclose(d[k].norm(dim=0), w.norm(dim=0), rtol=1e-5)
    landscape.register_filter_rule("Blocks", lambda m, name, t: landscape.Filters(tuple(t.shape), (0,)))
    d = landscape.random_directions(model, dims=1, seed=1).x
    np.testing.assert_allclose(d["1.weight"].norm(dim=1), model[1].weight.detach().norm(dim=1), rtol=1e-5)
    with pytest.raises(ConfigError, match="filter rule"):
        landscape.register_filter_rule(Columns, "columns")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"nn\.Module subclass"):
        landscape.register_filter_rule(int, 0)  # type: ignore[arg-type]
    landscape.register_filter_rule(Columns, lambda m, name, t: landscape.Filters((5, 5), (0,)))
    with pytest.raises(DirectionError, match="must hold its 24 entries"):
        landscape.random_directions(model, dims=1)


# --- parametrizations ------------------------------------------------------------------------------------------


def test_weight_norm_switches_no_filter_off() -> None:
    """The direction lives on the effective weight: at α = 1 every one of the 16 filters is still on
    (on g, a magnitude per filter, a filter-normalized direction is ±|g| and switched 7 of 16 off)."""
    model = ZOO[[e.name for e in ZOO].index("parametrized")].build()
    dirs = landscape.random_directions(model, dims=1, seed=0)
    assert "0.weight" in dirs.x and "4.weight" in dirs.x and "6.weight" in dirs.x
    w = effective(model, "0.weight")
    moved = (w + dirs.x["0.weight"]).flatten(1).norm(dim=1)
    assert int((moved < 1e-3 * w.flatten(1).norm(dim=1)).sum()) == 0
    np.testing.assert_allclose(dirs.x["0.weight"].flatten(1).norm(dim=1), w.flatten(1).norm(dim=1), rtol=1e-5)


# --- subsets through the CLI ------------------------------------------------------------------------------------

MODEL_PY = """
import torch
from torch import nn

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(12, 6)
        self.b = nn.Linear(6, 3)
        self.spare = nn.Linear(3, 3)  # never called: moving it cannot change the loss

    def forward(self, x):
        return self.b(torch.tanh(self.a(x)))

def make():
    return Net()

def load():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 12, generator=g)
    y = torch.randint(0, 3, (40,), generator=g)
    return (x[:30], y[:30]), (x[30:], y[30:])
"""


def test_cli_params_round_trip_and_flat_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "net.py").write_text(textwrap.dedent(MODEL_PY))
    namespace: dict[str, Any] = {}
    exec(textwrap.dedent(MODEL_PY), namespace)
    torch.manual_seed(3)
    torch.save(namespace["make"]().state_dict(), tmp_path / "m.pt")
    flags = ["--model", f"{tmp_path / 'net.py'}:make", "--data", f"{tmp_path / 'net.py'}:load", "--loss", "cross_entropy",
             "--split", "train", "--x", "-1:1:3", "--y", "-1:1:3"]
    first, second, full = tmp_path / "sub.h5", tmp_path / "again.h5", tmp_path / "all.h5"
    assert main(["surface", str(tmp_path / "m.pt"), *flags, "--params", "a.*", "--out", str(first)]) == 0
    assert main(["surface", str(tmp_path / "m.pt"), *flags, "--directions", str(first), "--out", str(second)]) == 0
    assert main(["surface", str(tmp_path / "m.pt"), *flags, "--out", str(full)]) == 0
    s1, s2, s3 = (landscape.load_surface(p) for p in (first, second, full))
    assert s1.directions is not None and set(s1.directions.x) == {"a.weight", "a.bias"}
    assert s2.directions is not None and set(s2.directions.x) == {"a.weight", "a.bias"}
    np.testing.assert_array_equal(s2["train_loss"], s1["train_loss"])
    assert not np.allclose(s3["train_loss"][0, 0], s1["train_loss"][0, 0])  # moving everything is another surface
    assert "warning:" not in capsys.readouterr().out

    assert main(["surface", str(tmp_path / "m.pt"), *flags, "--params", "spare.*", "--out", str(tmp_path / "flat.h5")]) == 0
    out = capsys.readouterr().out
    assert out.count("warning: every point of the surface equals the origin") == 1
    assert len([line for line in out.splitlines() if "equals the origin" in line]) == 1


# --- flat surfaces through the API ----------------------------------------------------------------------------


def test_a_fresh_lora_moved_in_a_only_warns() -> None:
    pytest.importorskip("peft")
    model = lora(fresh=True)
    g = torch.Generator().manual_seed(1)
    data = (torch.randn(8, 6, generator=g), torch.randint(0, 3, (8,), generator=g))
    with pytest.warns(FlatSurfaceWarning, match="every point of the surface equals the origin") as caught:
        s = landscape.surface(model, data, params="*lora_A*", x=(-1, 1, 3), y=(-1, 1, 3), progress=False)
    assert len([w for w in caught if issubclass(w.category, FlatSurfaceWarning)]) == 1
    assert np.ptp(s["train_loss"]) == 0
    # B = 0 has filter norms 0, so its filter-normalized direction is zero as well: the adapters alone stay flat
    with pytest.warns(FlatSurfaceWarning):
        landscape.surface(model, data, params="*lora_*", x=(-1, 1, 3), y=(-1, 1, 3), progress=False)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the base weights too: a real surface, no warning
        s = landscape.surface(model, data, x=(-1, 1, 3), y=(-1, 1, 3), progress=False)
    assert np.ptp(s["train_loss"]) > 0


def test_hessian_without_a_trace() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Linear(5, 3))
    data = (torch.randn(20, 4), torch.randint(0, 3, (20,)))
    h = landscape.hessian(model, data, top_k=1, trace_samples=0, progress=False)
    assert h.trace is None and h.trace_std is None and h.exact_trace is None
    assert np.isfinite(h.eigenvalues[0])
    with pytest.raises(landscape.LandscapeError, match="at least 2"):
        landscape.hessian(model, data, top_k=1, trace_samples=1, progress=False)


def test_the_cli_takes_trace_samples_0_as_no_trace(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--out", str(tmp_path / "r"), "--epochs", "1", "--set", "model.options={hidden=[8]}"]) == 0
    ckpt, out = str(tmp_path / "r" / "checkpoints" / "epoch_001.pt"), tmp_path / "h.json"
    capsys.readouterr()
    assert main(["hessian", ckpt, "--trace-samples", "0", "--top-k", "1", "--max-iter", "10", "--out", str(out)]) == 0
    assert "trace not estimated" in capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["trace"] is None and report["exact_trace"] is None and np.isfinite(report["eigenvalues"][0])
    assert main(["hessian", ckpt, "--trace-samples", "1", "--out", str(out)]) == 1  # one probe has no error bar
    assert "trace_samples 0 (no trace) or ≥ 2" in capsys.readouterr().err


def test_the_your_model_example_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/YOUR_MODEL.md's register_filter_rule block runs as written (its assert is the claim)."""
    from docblocks import REPO, python_blocks

    monkeypatch.setattr(filters, "_BY_TYPE", dict(filters._BY_TYPE))
    (block,) = [b for b in python_blocks(REPO / "docs/YOUR_MODEL.md") if "register_filter_rule" in b]
    exec(compile(block, "docs/YOUR_MODEL.md", "exec"), {"__name__": "__docs__"})


WEIGHT_NORM_PY = """
import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm, weight_norm

def make():
    return nn.Sequential(weight_norm(nn.Linear(12, 16)), nn.Tanh(), spectral_norm(nn.Linear(16, 3)))

def load():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(40, 12, generator=g)
    y = torch.randint(0, 3, (40,), generator=g)
    return (x[:30], y[:30]), (x[30:], y[30:])
"""


def test_cli_moves_parametrized_weights_as_the_forward_sees_them(tmp_path: Path) -> None:
    """``landscape surface`` on a weight_norm/spectral_norm model: directions on ``0.weight`` and
    ``2.weight``, the values of a float64 loop that sets those effective weights itself."""
    (tmp_path / "wn.py").write_text(textwrap.dedent(WEIGHT_NORM_PY))
    namespace: dict[str, Any] = {}
    exec(textwrap.dedent(WEIGHT_NORM_PY), namespace)
    torch.manual_seed(2)
    model = namespace["make"]().eval()
    torch.save(model.state_dict(), tmp_path / "m.pt")
    out = tmp_path / "s.h5"
    assert main(["surface", str(tmp_path / "m.pt"), "--model", f"{tmp_path / 'wn.py'}:make", "--data",
                 f"{tmp_path / 'wn.py'}:load", "--loss", "cross_entropy", "--split", "train", "--x", "-1:1:3",
                 "--y", "-1:1:3", "--out", str(out)]) == 0
    s = landscape.load_surface(out)
    assert s.directions is not None and s.directions.y is not None
    assert sorted(s.directions.x) == ["0.bias", "0.weight", "2.bias", "2.weight"]
    x, y = namespace["load"]()[0]
    w = {k: effective(model, k).double() for k in ("0.weight", "2.weight")}
    b = {k: model.get_parameter(k).detach().double() for k in ("0.bias", "2.bias")}
    for i, a in enumerate(s.x):
        for j, c in enumerate(s.y):
            p = {k: v + float(a) * s.directions.x[k].double() + float(c) * s.directions.y[k].double() for k, v in w.items()}
            logits = torch.tanh(x.double() @ p["0.weight"].T + b["0.bias"]) @ p["2.weight"].T + b["2.bias"]
            assert s["train_loss"][i, j] == pytest.approx(float(torch.nn.functional.cross_entropy(logits, y)), rel=1e-5)


def test_directions_on_a_parametrizations_own_tensors_move_those() -> None:
    """Directions keyed by ``original0``/``original1`` (as a target checkpoint's are) move g and v themselves."""
    def make() -> nn.Module:
        torch.manual_seed(0)
        return nn.Sequential(torch.nn.utils.parametrizations.weight_norm(nn.Linear(5, 4)), nn.Tanh(), nn.Linear(4, 3)).eval()

    model = make()
    g = torch.Generator().manual_seed(1)
    data = (torch.randn(10, 5, generator=g), torch.randint(0, 3, (10,), generator=g))
    dx = {k: torch.randn(p.shape, generator=g) * 0.3 for k, p in model.named_parameters()}
    assert "0.parametrizations.weight.original0" in dx
    s = landscape.surface(model, data, directions=(dx, None), x=[-1.0, 0.5], y=None, progress=False)
    for i, a in enumerate(s.x):
        ref = make().double()
        with torch.no_grad():
            for k, p in ref.named_parameters():
                p.add_(float(a) * dx[k].double())
            want = float(torch.nn.functional.cross_entropy(ref(data[0].double()), data[1]))
        assert s["train_loss"][i] == pytest.approx(want, rel=1e-5)
