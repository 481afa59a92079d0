"""Checkpoints from elsewhere: torch.compile, Lightning, Hugging Face folders, safetensors, and folders of them.

The fixtures are written here: a Lightning checkpoint is the dict Lightning's Trainer saves (built
with torch.save; lightning is not needed), a Hugging Face folder is ``save_pretrained`` of a tiny
GPT-2 built from a config (nothing downloaded). Values are checked against losses computed by hand
in float64 from the weights written into the fixtures.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch
from torch import nn

import landscape
from landscape.cli import main
from landscape.errors import CheckpointError
from landscape.io.checkpoint import load_checkpoint, load_into
from landscape.io.foreign import checkpoint_files

transformers = pytest.importorskip("transformers")

NET_PY = '''
import torch
from torch import nn

def make(input_shape=(6,), output_shape=(3,), hidden: int = 8):
    return nn.Sequential(nn.Linear(input_shape[0], hidden), nn.Tanh(), nn.Linear(hidden, output_shape[0]))

def data():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 6, generator=g)
    y = torch.randint(0, 3, (64,), generator=g)
    return (x[:48], y[:48]), (x[48:], y[48:])
'''

TEXT_PY = '''
import torch

def data():
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(0, 16, (12, 8), generator=g)
    batches = [{"input_ids": ids[i:i + 4], "labels": ids[i:i + 4]} for i in range(0, 12, 4)]
    return batches[:2], batches[2:]

def loss(model, batch):
    return model(**batch).loss
'''


def _net(seed: int, hidden: int = 8) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, hidden), nn.Tanh(), nn.Linear(hidden, 3))


def _net_data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 6, generator=g)
    y = torch.randint(0, 3, (64,), generator=g)
    return x[:48], y[:48]


def _ce64(state: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> float:
    """Cross-entropy of the two-layer net with these weights, by hand in float64."""
    w = {k: v.double() for k, v in state.items()}
    h = torch.tanh(x.double() @ w["0.weight"].T + w["0.bias"])
    out = h @ w["2.weight"].T + w["2.bias"]
    return float(nn.functional.cross_entropy(out, y))


def _lightning(path: Path, state: dict[str, torch.Tensor], epoch: int, step: int, **more: dict[str, torch.Tensor]) -> None:
    """What Lightning's Trainer saves for a LightningModule with ``self.model = net`` (and ``more`` attributes)."""
    sd = {f"model.{k}": v for k, v in state.items()}
    for attr, tensors in more.items():
        sd.update({f"{attr}.{k}": v for k, v in tensors.items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"epoch": epoch, "global_step": step, "pytorch-lightning_version": "2.4.0", "state_dict": sd,
                "hyper_parameters": {"lr": 0.1, "hidden": 8}, "loops": {}, "callbacks": {},
                "optimizer_states": [], "lr_schedulers": []}, path)


def _gpt2(seed: int, n_layer: int = 1) -> nn.Module:
    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(vocab_size=16, n_positions=8, n_embd=8, n_layer=n_layer, n_head=2,
                                  bos_token_id=0, eos_token_id=0)
    return transformers.GPT2LMHeadModel(cfg).eval()


def _text_loss64(model: nn.Module, batches: list[dict[str, torch.Tensor]]) -> float:
    """The mean over equal-sized batches of the model's own LM loss, in float64 on a copy."""
    import copy

    m = copy.deepcopy(model).double().eval()
    with torch.no_grad():
        return float(np.mean([float(m(**b).loss) for b in batches]))


def _text_batches() -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(2)
    ids = torch.randint(0, 16, (12, 8), generator=g)
    return [{"input_ids": ids[i:i + 4], "labels": ids[i:i + 4]} for i in range(0, 8, 4)]


def _fails_cleanly(capsys: pytest.CaptureFixture[str], argv: list[str], *needles: str) -> str:
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"landscape {argv[0]}: error: ") and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def _origin(path: Path, column: str = "train_loss") -> float:
    with h5py.File(path, "r") as f:
        values = np.asarray(f[column][()])
    return float(values[len(values) // 2])


# --- the loader ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("wrap", ["_orig_mod.", "module._orig_mod.", "_orig_mod.module."])
def test_a_compiled_or_wrapped_models_checkpoint_loads(tmp_path: Path, wrap: str) -> None:
    net = _net(3)
    path = tmp_path / "c.pt"
    torch.save({wrap + k: v for k, v in net.state_dict().items()}, path)
    model = _net(0)
    load_into(model, load_checkpoint(path).state_dict)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), net.state_dict().values(), strict=True))


def test_torch_compile_state_dict_names_carry_orig_mod() -> None:
    """The fixture above is what torch.compile gives: its state dict puts _orig_mod. before every name."""
    assert all(k.startswith("_orig_mod.") for k in torch.compile(_net(0)).state_dict())


def test_a_lightning_checkpoint_finds_its_prefix(tmp_path: Path) -> None:
    net = _net(5)
    path = tmp_path / "epoch=3-step=120.ckpt"
    _lightning(path, net.state_dict(), 3, 120, criterion={"weight": torch.ones(3)})  # a loss's buffer beside the net
    ckpt = load_checkpoint(path)
    assert (ckpt.epoch, ckpt.step, ckpt.extra["kind"]) == (3, 120, "lightning")
    model = _net(0)
    load_into(model, ckpt.state_dict)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), net.state_dict().values(), strict=True))


def test_two_fitting_prefixes_ask_for_one(tmp_path: Path) -> None:
    net, ema = _net(5), _net(6)
    path = tmp_path / "two.ckpt"
    _lightning(path, net.state_dict(), 0, 1, ema=ema.state_dict())
    with pytest.raises(CheckpointError, match=r"several prefixes \('ema\.', 'model\.'\): choose one with --prefix ema\."):
        load_into(_net(0), load_checkpoint(path).state_dict)
    model = _net(0)
    load_into(model, load_checkpoint(path, prefix="ema").state_dict)  # the dot is added
    assert torch.equal(model[0].weight, ema[0].weight)


def test_a_misfit_names_the_prefix_to_try(tmp_path: Path) -> None:
    state = dict(_net(5).state_dict())
    del state["2.bias"]
    path = tmp_path / "short.ckpt"
    _lightning(path, state, 0, 1, criterion={"weight": torch.ones(3)})
    with pytest.raises(CheckpointError) as info:
        load_into(_net(0), load_checkpoint(path).state_dict)
    assert "missing keys: 0.weight" in str(info.value)
    assert "pass --prefix model. (API: prefix='model.')" in str(info.value)
    with pytest.raises(CheckpointError, match=r"missing keys: 2\.bias$"):  # with the prefix: what is really missing
        load_into(_net(0), load_checkpoint(path, prefix="model.").state_dict)
    with pytest.raises(CheckpointError, match=r"no name in checkpoint .* starts with prefix 'net\.'; its names start with 'criterion\.', 'model\.'"):
        load_checkpoint(path, prefix="net")


def test_an_hf_folder_loads_with_tied_weights(tmp_path: Path) -> None:
    from landscape.zoo.hf import model_from_hf_config

    gpt = _gpt2(1)
    gpt.save_pretrained(tmp_path / "hf")
    ckpt = load_checkpoint(tmp_path / "hf")
    assert ckpt.extra["kind"] == "huggingface" and "lm_head.weight" not in ckpt.state_dict  # saved once, as wte
    model = model_from_hf_config(ckpt.extra["hf_config"], "hf")
    assert type(model).__name__ == "GPT2LMHeadModel"  # from config.json's architectures
    load_into(model, ckpt.state_dict)
    for (k, a), b in zip(model.state_dict().items(), gpt.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()  # still tied


def test_an_hf_folder_with_pytorch_model_bin_and_a_safetensors_file(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    gpt = _gpt2(2)
    folder = tmp_path / "bin"
    gpt.save_pretrained(tmp_path / "hf")
    folder.mkdir()
    (folder / "config.json").write_text((tmp_path / "hf" / "config.json").read_text())
    torch.save({k: v for k, v in gpt.state_dict().items() if k != "lm_head.weight"}, folder / "pytorch_model.bin")
    net = _net(4)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "net.safetensors"))
    a = load_checkpoint(folder)
    assert set(a.state_dict) == {k for k in gpt.state_dict() if k != "lm_head.weight"}
    model = _net(0)
    load_into(model, load_checkpoint(tmp_path / "net.safetensors").state_dict)
    assert torch.equal(model[2].weight, net[2].weight)
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file at all")
    with pytest.raises(CheckpointError, match="truncated or not a safetensors file"):
        load_checkpoint(tmp_path / "bad.safetensors")


def test_folders_are_ordered_by_step(tmp_path: Path) -> None:
    runs = tmp_path / "lightning_logs" / "version_0"
    for epoch, step in [(0, 10), (10, 110), (1, 20)]:
        _lightning(runs / "checkpoints" / f"epoch={epoch}-step={step}.ckpt", _net(step).state_dict(), epoch, step)
    _lightning(runs / "checkpoints" / "last.ckpt", _net(110).state_dict(), 10, 110)
    names = [p.name for p in checkpoint_files(runs)]
    assert names == ["epoch=0-step=10.ckpt", "epoch=1-step=20.ckpt", "epoch=10-step=110.ckpt"]
    assert [p.name for p in checkpoint_files(runs / "checkpoints")] == names
    out = tmp_path / "trainer"
    for n in (100, 5, 10):
        folder = out / f"checkpoint-{n}"
        folder.mkdir(parents=True)
        (folder / "config.json").write_text("{}")
        (folder / "model.safetensors").write_bytes(b"")
    (out / "runs").mkdir()  # tensorboard logs beside them
    assert [p.name for p in checkpoint_files(out)] == ["checkpoint-5", "checkpoint-10", "checkpoint-100"]


# --- through the CLI ----------------------------------------------------------------------------------------


@pytest.fixture
def lightning_run(tmp_path: Path) -> tuple[Path, Path, dict[int, dict[str, torch.Tensor]]]:
    (tmp_path / "net.py").write_text(NET_PY)
    run = tmp_path / "lightning_logs" / "version_0"
    states = {}
    for epoch, step in [(0, 12), (1, 24), (9, 108)]:
        states[step] = _net(step).state_dict()
        _lightning(run / "checkpoints" / f"epoch={epoch}-step={step}.ckpt", states[step], epoch, step,
                   criterion={"weight": torch.ones(3)})
    return tmp_path / "net.py", run, states


def test_cli_surface_hessian_trajectory_on_lightning(lightning_run: Any, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    net_py, run, states = lightning_run
    last = run / "checkpoints" / "epoch=9-step=108.ckpt"
    user = ["--model", f"{net_py}:make", "--data", f"{net_py}:data", "--loss", "cross_entropy"]
    assert main(["--quiet", "surface", str(last), *user, "--x", "-1:1:3", "--out", str(tmp_path / "s.h5")]) == 0
    x, y = _net_data()
    assert _origin(tmp_path / "s.h5") == pytest.approx(_ce64(states[108], x, y), rel=1e-6)
    assert main(["--quiet", "hessian", str(last), *user, "--top-k", "1", "--max-iter", "20", "--trace-samples", "2",
                 "--out", str(tmp_path / "h.json")]) == 0
    assert json.loads((tmp_path / "h.json").read_text())["loss"] == pytest.approx(_ce64(states[108], x, y), rel=1e-6)
    assert main(["--quiet", "trajectory", str(run), "--model", f"{net_py}:make", "--data", f"{net_py}:data",
                 "--out", str(tmp_path / "t.h5")]) == 0
    capsys.readouterr()
    from landscape.io.trajectory_file import load_trajectory

    t = load_trajectory(tmp_path / "t.h5")
    assert list(t.steps) == [12, 24, 108] and list(t.epochs) == [0, 1, 9]
    api = landscape.trajectory(run, model=_net(0))  # the same folder through the API
    np.testing.assert_allclose(np.abs(api.coords), np.abs(t.coords), atol=1e-6)


def test_cli_lightning_errors(lightning_run: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    net_py, run, states = lightning_run
    two = tmp_path / "two.ckpt"
    _lightning(two, states[12], 0, 12, ema=states[24])
    user = ["--model", f"{net_py}:make", "--data", f"{net_py}:data", "--loss", "cross_entropy"]
    out = ["--out", str(tmp_path / "h.json")]
    _fails_cleanly(capsys, ["surface", str(two), *user, "--out", str(tmp_path / "s.h5")], "--prefix ema.")
    _fails_cleanly(capsys, ["hessian", str(two), *user, *out], "several prefixes")
    assert main(["--quiet", "hessian", str(two), *user, "--prefix", "ema.", "--top-k", "1", "--max-iter", "10",
                 "--trace-samples", "2", *out]) == 0
    x, y = _net_data()
    assert json.loads((tmp_path / "h.json").read_text())["loss"] == pytest.approx(_ce64(states[24], x, y), rel=1e-6)
    wide = ["--set", "model.options={hidden = 9}"]
    _fails_cleanly(capsys, ["surface", str(two), *user, *wide, "--prefix", "model.", "--out", str(tmp_path / "w.h5")],
                   "shape mismatches", "0.weight (8, 6) vs (9, 6)")
    _fails_cleanly(capsys, ["trajectory", str(run), "--model", f"{net_py}:make", "--data", f"{net_py}:data", *wide,
                            "--out", str(tmp_path / "t.h5")], "epoch=9-step=108.ckpt", "shape mismatches")
    _fails_cleanly(capsys, ["surface", str(two), *user, "--prefix", "net", "--out", str(tmp_path / "s.h5")],
                   "starts with prefix 'net.'")


@pytest.fixture
def trainer_dir(tmp_path: Path) -> tuple[Path, Path, dict[int, nn.Module]]:
    (tmp_path / "text.py").write_text(TEXT_PY)
    out = tmp_path / "output_dir"
    models = {}
    for n in (4, 8, 12):
        models[n] = _gpt2(n)
        models[n].save_pretrained(out / f"checkpoint-{n}")
        (out / f"checkpoint-{n}" / "trainer_state.json").write_text(json.dumps({"global_step": n, "epoch": n / 4}))
    return tmp_path / "text.py", out, models


def test_cli_surface_hessian_trajectory_on_hf_folders(trainer_dir: Any, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    text_py, out, models = trainer_dir
    user = ["--data", f"{text_py}:data", "--loss", f"{text_py}:loss"]  # no --model: config.json says it
    last = out / "checkpoint-12"
    assert main(["--quiet", "surface", str(last), *user, "--x", "-1:1:3", "--out", str(tmp_path / "s.h5")]) == 0
    want = _text_loss64(models[12], _text_batches())
    assert _origin(tmp_path / "s.h5") == pytest.approx(want, rel=1e-5)
    assert main(["--quiet", "hessian", str(last), *user, "--top-k", "1", "--max-iter", "10", "--trace-samples", "2",
                 "--params", "transformer.h.0.attn.c_proj.weight", "--out", str(tmp_path / "h.json")]) == 0  # 64 weights: fast
    assert json.loads((tmp_path / "h.json").read_text())["loss"] == pytest.approx(want, rel=1e-5)
    assert main(["--quiet", "trajectory", str(out), "--out", str(tmp_path / "t.h5")]) == 0
    capsys.readouterr()
    from landscape.io.trajectory_file import load_trajectory

    t = load_trajectory(tmp_path / "t.h5")
    assert list(t.steps) == [4, 8, 12] and list(t.epochs) == [1, 2, 3]
    np.testing.assert_allclose(t.coords[-1], [0.0, 0.0], atol=1e-7)
    api = landscape.trajectory(out)  # the API builds the model from config.json too
    np.testing.assert_allclose(np.abs(api.coords), np.abs(t.coords), atol=1e-6)


def test_cli_hf_errors(trainer_dir: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text_py, out, _ = trainer_dir
    user = ["--data", f"{text_py}:data", "--loss", f"{text_py}:loss"]
    other = tmp_path / "other"
    _gpt2(0, n_layer=2).save_pretrained(other)
    config = json.loads((other / "config.json").read_text())
    (out / "checkpoint-12" / "config.json").write_text(json.dumps(config))  # says two layers; the weights hold one
    capsys.readouterr()
    _fails_cleanly(capsys, ["surface", str(out / "checkpoint-12"), *user, "--out", str(tmp_path / "s.h5")],
                   "missing keys: transformer.h.1.")
    _fails_cleanly(capsys, ["hessian", str(out / "checkpoint-12"), *user, "--out", str(tmp_path / "h.json")],
                   "missing keys: transformer.h.1.")
    _fails_cleanly(capsys, ["trajectory", str(out), "--out", str(tmp_path / "t.h5")], "checkpoint-12", "missing keys")
    (out / "checkpoint-8" / "model.safetensors").write_bytes(b"\x00" * 10)
    _fails_cleanly(capsys, ["surface", str(out / "checkpoint-8"), *user, "--out", str(tmp_path / "s.h5")],
                   "not a safetensors file")
    _fails_cleanly(capsys, ["surface", str(out), *user, "--out", str(tmp_path / "s.h5")],
                   "is a folder", "checkpoint-12")


def test_info_describes_foreign_checkpoints(trainer_dir: Any, lightning_run: Any, capsys: pytest.CaptureFixture[str]) -> None:
    _, out, _ = trainer_dir
    _, run, _ = lightning_run
    capsys.readouterr()
    assert main(["info", str(out / "checkpoint-8")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["format"], info["step"], info["epoch"], info["model_type"]) == ("huggingface", 8, 2, "gpt2")
    assert main(["info", str(run / "checkpoints" / "epoch=1-step=24.ckpt")]) == 0
    info = json.loads(capsys.readouterr().out)
    assert (info["format"], info["step"], info["epoch"]) == ("lightning", 24, 1)


def test_a_sharded_hf_folder_loads(tmp_path: Path) -> None:
    from landscape.zoo.hf import model_from_hf_config

    gpt = _gpt2(3, n_layer=2)
    gpt.save_pretrained(tmp_path / "sharded", max_shard_size="4KB")
    assert (tmp_path / "sharded" / "model.safetensors.index.json").is_file()
    ckpt = load_checkpoint(tmp_path / "sharded")
    model = model_from_hf_config(ckpt.extra["hf_config"], "sharded")
    load_into(model, ckpt.state_dict)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), gpt.state_dict().values(), strict=True))


def test_model_hf_names_the_config_json_and_refuses_other_checkpoints(trainer_dir: Any, lightning_run: Any,
                                                                      tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text_py, out, models = trainer_dir
    _, run, _ = lightning_run
    user = ["--data", f"{text_py}:data", "--loss", f"{text_py}:loss"]
    assert main(["--quiet", "surface", str(out / "checkpoint-4"), "--model", "hf", *user, "--x", "-1:1:3",
                 "--out", str(tmp_path / "s.h5")]) == 0
    assert _origin(tmp_path / "s.h5") == pytest.approx(_text_loss64(models[4], _text_batches()), rel=1e-5)
    capsys.readouterr()
    _fails_cleanly(capsys, ["surface", str(run / "checkpoints" / "epoch=1-step=24.ckpt"), "--model", "hf", *user,
                            "--out", str(tmp_path / "x.h5")], "model 'hf' is built from a Hugging Face folder's config.json")


def test_api_trajectory_takes_a_prefix(tmp_path: Path) -> None:
    nets = {step: (_net(step), _net(100 + step)) for step in (1, 2, 3)}
    for step, (net, ema) in nets.items():
        _lightning(tmp_path / "checkpoints" / f"epoch=0-step={step}.ckpt", net.state_dict(), 0, step, ema=ema.state_dict())
    with pytest.raises(CheckpointError, match="several prefixes"):
        landscape.trajectory(tmp_path, model=_net(0))
    t = landscape.trajectory(tmp_path, model=_net(0), prefix="ema.")
    want = landscape.trajectory([nets[s][1] for s in (1, 2, 3)])  # the ema networks in memory
    np.testing.assert_allclose(t.coords, want.coords, atol=1e-6)
    assert list(t.steps) == [1, 2, 3]


def test_dataparallel_and_mixed_dtypes() -> None:
    from landscape.zoo.modules import floating_dtype, plain_module

    net = _net(0)
    assert plain_module(nn.DataParallel(torch.compile(net))) is net
    assert set(landscape.random_directions(nn.DataParallel(net)).x) == {k for k, _ in net.named_parameters()}
    mixed = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2).double())
    assert floating_dtype(mixed) is None and floating_dtype(net.double()) == torch.float64


def test_a_missing_extra_is_one_line_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from landscape.errors import MissingExtraError
    from landscape.zoo.hf import model_from_hf_config

    (tmp_path / "w.safetensors").write_bytes(b"")
    monkeypatch.setitem(__import__("sys").modules, "safetensors", None)  # as if not installed
    with pytest.raises(MissingExtraError, match=r"needs the safetensors package: pip install \".*\[hf\]\"$"):
        load_checkpoint(tmp_path / "w.safetensors")
    monkeypatch.setitem(__import__("sys").modules, "transformers", None)
    with pytest.raises(MissingExtraError, match=r"from its config.json needs transformers: pip install \".*\[hf\]\"$"):
        model_from_hf_config({"model_type": "gpt2"}, "folder")


def test_lightning_hyper_parameters_that_are_objects_need_unsafe_load(tmp_path: Path) -> None:
    import argparse

    net = _net(5)
    path = tmp_path / "ns.ckpt"
    torch.save({"epoch": 0, "global_step": 3, "pytorch-lightning_version": "2.4.0",
                "state_dict": {f"model.{k}": v for k, v in net.state_dict().items()},
                "hyper_parameters": argparse.Namespace(lr=0.1)}, path)
    with pytest.raises(CheckpointError, match=r"refused.*Namespace.*pass --unsafe-load"):
        load_checkpoint(path)
    model = _net(0)
    load_into(model, load_checkpoint(path, unsafe=True).state_dict)
    assert torch.equal(model[0].weight, net[0].weight)


def test_prefix_is_refused_where_nothing_reads_a_foreign_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for command in ("train", "run"):  # the flag table gives --prefix only to the commands that read checkpoints
        assert main([command, "--prefix", "model.", "--out", str(tmp_path / "r")]) == 2
        assert "unrecognized arguments: --prefix" in capsys.readouterr().err


def test_a_model_whose_own_names_start_with_module(tmp_path: Path) -> None:
    """The loader strips a module. every name carries; a model that holds its net as .module still fits."""
    holder = nn.Module()
    holder.module = _net(0)
    net = _net(8)
    torch.save({f"module.{k}": v for k, v in net.state_dict().items()}, tmp_path / "held.pt")
    load_into(holder, load_checkpoint(tmp_path / "held.pt").state_dict)
    assert torch.equal(holder.module[0].weight, net[0].weight)


def test_an_hf_folder_saved_in_bfloat16_is_evaluated_in_float32(tmp_path: Path) -> None:
    from landscape.zoo.hf import model_from_hf_config

    gpt = _gpt2(4).to(torch.bfloat16)
    gpt.save_pretrained(tmp_path / "bf")
    ckpt = load_checkpoint(tmp_path / "bf")
    model = model_from_hf_config(ckpt.extra["hf_config"], "bf")
    load_into(model, ckpt.state_dict)
    assert next(model.parameters()).dtype == torch.float32
    assert all(torch.equal(a.float(), b) for a, b in zip(gpt.state_dict().values(), model.state_dict().values(), strict=True))
