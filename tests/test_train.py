"""Training: the loss goes down, the manifest tells the truth, resume is exact, settings are guarded."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from landscape.config import Config, DataConfig, ModelConfig, load_config
from landscape.errors import ConfigError, TrainingDiverged
from landscape.io.checkpoint import load_checkpoint, sha256_file
from landscape.workflows.experiment import checkpoint_config, experiment_from_checkpoint
from landscape.workflows.train import RunResult, train
from landscape.zoo.data import load_data

REPO = Path(__file__).resolve().parents[1]
MakeConfig = Callable[..., Config]
SMALL = DataConfig(max_train=200, max_test=100)  # 4 steps per epoch at batch size 50


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path).state_dict


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)


# --- one finished run -----------------------------------------------------------------------------


def test_run_folder_layout_and_manifest(tiny_run: RunResult, tiny_config: Config) -> None:
    out = tiny_run.out_dir
    manifest = json.loads((out / "run.json").read_text())
    assert manifest == tiny_run.manifest
    assert manifest["status"] == "finished"
    entries = manifest["checkpoints"]
    assert [e["file"] for e in entries] == [f"checkpoints/epoch_{e:03d}.pt" for e in range(3)]
    assert [e["epoch"] for e in entries] == [0, 1, 2]
    steps_per_epoch = math.ceil(1438 / 64)  # 1797 − 359 training images
    assert [e["step"] for e in entries] == [0, steps_per_epoch, 2 * steps_per_epoch]
    for entry in entries:
        assert {"train_loss", "train_acc", "test_loss", "test_acc"} <= set(entry)
        assert all(math.isfinite(entry[k]) for k in ("train_loss", "train_acc", "test_loss", "test_acc"))
        assert (out / entry["file"]).is_file()
    assert tiny_run.final == out / "checkpoints" / "epoch_002.pt"
    # the resolved config is saved beside the run, readable by the normal loader
    assert load_config(out / "config.toml") == tiny_config
    assert checkpoint_config(load_checkpoint(tiny_run.final)) == tiny_config


def test_loss_goes_down(tiny_run: RunResult) -> None:
    entries = tiny_run.manifest["checkpoints"]
    initial, final = entries[0]["train_loss"], entries[-1]["train_loss"]
    assert initial == pytest.approx(math.log(10), rel=0.15)  # an untrained net is near uniform over 10 classes
    assert final < initial / 3
    assert entries[-1]["test_acc"] > entries[0]["test_acc"] + 0.5


def test_recorded_metrics_match_an_independent_evaluation(tiny_run: RunResult) -> None:
    ckpt = load_checkpoint(tiny_run.final)
    model = experiment_from_checkpoint(ckpt).model.eval()
    cfg = checkpoint_config(ckpt)
    assert cfg is not None
    data = load_data(cfg.data)
    with torch.no_grad():
        logits = model(data.train.inputs).double()
    loss = F.cross_entropy(logits, data.train.targets).item()
    acc = (logits.argmax(1) == data.train.targets).double().mean().item()
    last = tiny_run.manifest["checkpoints"][-1]
    assert last["train_loss"] == pytest.approx(loss, rel=1e-5)
    assert last["train_acc"] == pytest.approx(acc, abs=1e-12)
    assert ckpt.metrics["train_loss"] == last["train_loss"]


def test_running_a_finished_run_again_changes_nothing(make_config: MakeConfig, tmp_path: Path) -> None:
    config = make_config(data=SMALL, batch_size=50)
    first = train(config, tmp_path)
    hashes = {p.name: sha256_file(p) for p in first.checkpoints}
    again = train(config, tmp_path)
    assert again.manifest["checkpoints"] == first.manifest["checkpoints"]
    assert {p.name: sha256_file(p) for p in again.checkpoints} == hashes


def test_a_run_saved_before_a_setting_existed_still_resumes(make_config: MakeConfig, tmp_path: Path) -> None:
    """A run folder written by an older version lacks keys added since: they count as their defaults;
    only the sections training depends on are compared."""
    config = make_config(data=SMALL, batch_size=50, epochs=1)
    first = train(config, tmp_path)
    manifest_path = tmp_path / "run.json"
    manifest = json.loads(manifest_path.read_text())
    del manifest["config"]["compare"]["floor"], manifest["config"]["directions"]["seed"]
    manifest_path.write_text(json.dumps(manifest))
    again = train(config, tmp_path)
    assert [c["epoch"] for c in again.manifest["checkpoints"]] == [c["epoch"] for c in first.manifest["checkpoints"]]
    # settings that do not shape training (plots, comparisons) may change; a training setting may not
    later = dataclasses.replace(config, compare=dataclasses.replace(config.compare, floor=0.5),
                                plot=dataclasses.replace(config.plot, levels=12))
    assert train(later, tmp_path).manifest["checkpoints"] == again.manifest["checkpoints"]
    with pytest.raises(ConfigError, match=r"data.max_train: 200 → 150"):
        train(dataclasses.replace(config, data=dataclasses.replace(config.data, max_train=150)), tmp_path)


@pytest.mark.parametrize("name", ["digits_mlp", "digits_cnn"])
def test_shipped_digits_configs_reach_95_percent(name: str, tmp_path: Path) -> None:
    result = train(load_config(REPO / "configs" / f"{name}.toml"), tmp_path)
    assert result.manifest["checkpoints"][-1]["test_acc"] >= 0.95


# --- resume -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("schedule", ["constant", "step"])
def test_resume_ends_exactly_where_an_uninterrupted_run_does(
    make_config: MakeConfig, tmp_path: Path, schedule: str
) -> None:
    def config(epochs: int) -> Config:
        return make_config(data=SMALL, batch_size=50, epochs=epochs, schedule=schedule, step_size=1, gamma=0.5)

    resumed_dir, straight_dir = tmp_path / "resumed", tmp_path / "straight"
    short = train(config(2), resumed_dir)
    kept = {p.name: sha256_file(p) for p in short.checkpoints}
    resumed = train(config(4), resumed_dir)
    straight = train(config(4), straight_dir)
    assert [e["epoch"] for e in resumed.manifest["checkpoints"]] == [0, 1, 2, 3, 4]
    assert {p.name: sha256_file(p) for p in resumed.checkpoints[:3]} == kept  # not retrained
    assert _equal(_weights(resumed.final), _weights(straight.final))
    # the optimizer state travelled too: the momentum buffers agree bit for bit
    opt_a = load_checkpoint(resumed.final).extra["optimizer"]["state"]
    opt_b = load_checkpoint(straight.final).extra["optimizer"]["state"]
    assert all(torch.equal(opt_a[i]["momentum_buffer"], opt_b[i]["momentum_buffer"]) for i in opt_b)
    for a, b in zip(resumed.manifest["checkpoints"], straight.manifest["checkpoints"], strict=True):
        assert a["train_loss"] == b["train_loss"]


def test_extending_a_cosine_run_is_refused(make_config: MakeConfig, tmp_path: Path) -> None:
    """Cosine's period is train.epochs, so a longer run is a different run, not a continuation."""
    train(make_config(data=SMALL, batch_size=50, epochs=1, schedule="cosine"), tmp_path)
    with pytest.raises(ConfigError, match=r"train\.epochs: 1 → 2"):
        train(make_config(data=SMALL, batch_size=50, epochs=2, schedule="cosine"), tmp_path)


def test_changed_settings_name_the_difference(make_config: MakeConfig, tmp_path: Path) -> None:
    train(make_config(data=SMALL, batch_size=50, epochs=1), tmp_path)
    with pytest.raises(ConfigError) as info:
        train(make_config(data=SMALL, batch_size=50, epochs=1, lr=0.05), tmp_path)
    assert "train.lr: 0.1 → 0.05" in str(info.value)
    assert "--overwrite" in str(info.value)
    other_model = ModelConfig(name="mlp", options={"hidden": [8]})
    with pytest.raises(ConfigError, match=r"model.options.hidden: \[32\] → \[8\]"):
        train(make_config(data=SMALL, model=other_model, batch_size=50, epochs=1), tmp_path)


def test_overwrite_starts_afresh(make_config: MakeConfig, tmp_path: Path) -> None:
    train(make_config(data=SMALL, batch_size=50, epochs=1), tmp_path)
    config = make_config(data=SMALL, batch_size=50, epochs=2, lr=0.05)
    result = train(config, tmp_path, overwrite=True)
    assert [e["epoch"] for e in result.manifest["checkpoints"]] == [0, 1, 2]
    assert result.manifest["config"]["train"]["lr"] == 0.05
    assert load_config(tmp_path / "config.toml") == config
    # the same as a run made in an empty folder
    fresh = train(config, tmp_path / "fresh")
    assert _equal(_weights(result.final), _weights(fresh.final))


def test_device_and_threads_may_change_on_resume(make_config: MakeConfig, tmp_path: Path) -> None:
    train(make_config(data=SMALL, batch_size=50, epochs=1), tmp_path)
    result = train(make_config(data=SMALL, batch_size=50, epochs=2, threads=1, device="cpu"), tmp_path)
    assert [e["epoch"] for e in result.manifest["checkpoints"]] == [0, 1, 2]


# --- checkpoints within an epoch, optimizers, schedules ------------------------------------------------------


def test_save_every_steps_writes_step_checkpoints(make_config: MakeConfig, tmp_path: Path) -> None:
    result = train(make_config(data=SMALL, batch_size=50, epochs=2, save_every_steps=2), tmp_path)
    entries = result.manifest["checkpoints"]
    assert [(e["kind"], e["epoch"], e["step"]) for e in entries] == [
        ("epoch", 0, 0),
        ("step", 1, 2), ("step", 1, 4), ("epoch", 1, 4),
        ("step", 2, 6), ("step", 2, 8), ("epoch", 2, 8),
    ]  # fmt: skip
    files = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert files == ["epoch_000.pt", "epoch_001.pt", "epoch_002.pt",
                     "step_0000002.pt", "step_0000004.pt", "step_0000006.pt", "step_0000008.pt"]  # fmt: skip
    step4 = load_checkpoint(tmp_path / "checkpoints" / "step_0000004.pt")
    assert (step4.epoch, step4.step) == (1, 4)
    # a step checkpoint at an epoch's end holds that epoch's weights; one in the middle does not
    assert _equal(step4.state_dict, _weights(tmp_path / "checkpoints" / "epoch_001.pt"))
    mid = _weights(tmp_path / "checkpoints" / "step_0000002.pt")
    assert not _equal(mid, step4.state_dict) and not _equal(mid, _weights(tmp_path / "checkpoints" / "epoch_000.pt"))


def _lr(path: Path) -> float:
    return float(load_checkpoint(path).extra["optimizer"]["param_groups"][0]["lr"])


@pytest.mark.parametrize(
    ("optimizer", "schedule", "lr_after"),
    [
        ("sgd", "constant", [0.02, 0.02]),
        ("sgd", "step", [0.01, 0.005]),  # × 0.5 after every epoch (step_size 1)
        ("adam", "cosine", [0.01, 0.0]),  # 0.02 · (1 + cos(π e / 2)) / 2
        ("adamw", "step", [0.01, 0.005]),
    ],
)
def test_optimizers_and_schedules(
    make_config: MakeConfig, tmp_path: Path, optimizer: str, schedule: str, lr_after: list[float]
) -> None:
    config = make_config(data=SMALL, batch_size=50, lr=0.02, optimizer=optimizer, schedule=schedule,
                         step_size=1, gamma=0.5, weight_decay=1e-3)  # fmt: skip
    result = train(config, tmp_path)
    entries = result.manifest["checkpoints"]
    assert all(math.isfinite(e["train_loss"]) for e in entries)
    assert entries[-1]["train_loss"] < entries[0]["train_loss"]
    assert [_lr(p) for p in result.checkpoints[1:]] == pytest.approx(lr_after, abs=1e-12)
    state = load_checkpoint(result.final).extra["optimizer"]
    group = state["param_groups"][0]
    assert group["weight_decay"] == 1e-3
    first = state["state"][0]
    if optimizer == "sgd":
        assert "momentum_buffer" in first
    else:
        assert "exp_avg" in first and "exp_avg_sq" in first
        assert group["decoupled_weight_decay"] is (optimizer == "adamw")


def test_nesterov_is_for_sgd_only(make_config: MakeConfig, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nesterov applies to sgd only, not 'adam'"):
        train(make_config(data=SMALL, optimizer="adam", nesterov=True), tmp_path)


@pytest.mark.parametrize("bad", [{"epochs": -1}, {"batch_size": 0}, {"lr": 0.0}, {"lr": float("nan")}])
def test_invalid_training_numbers(make_config: MakeConfig, tmp_path: Path, bad: dict[str, float]) -> None:
    with pytest.raises(ConfigError, match=r"train\.epochs must be"):  # the config itself refuses the value
        make_config(**bad)


def test_divergence_stops_with_a_clear_error(make_config: MakeConfig, tmp_path: Path) -> None:
    config = make_config(data=DataConfig(name="linreg"), model=ModelConfig(name="linear"),
                         loss="mse", lr=1e3, momentum=0.0, epochs=10)  # fmt: skip
    with pytest.raises(TrainingDiverged, match=r"lower train\.lr"):
        train(config, tmp_path)
    manifest = json.loads((tmp_path / "run.json").read_text())
    assert manifest["status"] == "diverged"
    assert not math.isfinite(manifest["checkpoints"][-1]["train_loss"])
    assert math.isfinite(manifest["checkpoints"][0]["train_loss"])
