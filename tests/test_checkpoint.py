"""Checkpoints: round trip, foreign layouts, mismatch reports, and refusal of unsafe pickles."""

from __future__ import annotations

import argparse
import builtins
import hashlib
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from landscape.config import Config, ModelConfig, TrainConfig, config_to_dict
from landscape.errors import CheckpointError
from landscape.io.checkpoint import FORMAT, load_checkpoint, load_into, save_checkpoint, sha256_file
from landscape.workflows.experiment import checkpoint_config
from landscape.zoo.models import build_model


def _mlp(hidden: list[int], seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_model("mlp", (1, 8, 8), (10,), {"hidden": hidden})


CONFIG = Config(model=ModelConfig(name="mlp", options={"hidden": [16]}), train=TrainConfig(lr=0.05, epochs=3))


def _assert_same_weights(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert list(a) == list(b)
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_round_trip(tmp_path: Path) -> None:
    model = _mlp([16])
    path = tmp_path / "ckpt.pt"
    metrics = {"train_loss": 0.25, "test_acc": 0.875}
    save_checkpoint(
        path,
        model,
        config_to_dict(CONFIG),
        epoch=3,
        step=120,
        metrics=metrics,
        input_shape=(1, 8, 8),
        output_shape=(10,),
        extra={"kind": "epoch"},
    )
    ckpt = load_checkpoint(path)
    assert ckpt.is_ours
    assert ckpt.config == config_to_dict(CONFIG)
    assert checkpoint_config(ckpt) == CONFIG
    assert (ckpt.epoch, ckpt.step) == (3, 120)
    assert ckpt.metrics == metrics
    assert ckpt.extra["input_shape"] == [1, 8, 8] and ckpt.extra["output_shape"] == [10]
    assert ckpt.extra["kind"] == "epoch"
    _assert_same_weights(ckpt.state_dict, model.state_dict())
    fresh = _mlp([16], seed=1)
    load_into(fresh, ckpt.state_dict)
    _assert_same_weights(fresh.state_dict(), model.state_dict())
    # self-describing and plain: the standard safe loader reads it without our code
    raw = torch.load(path, weights_only=True)
    assert raw["format"] == FORMAT and raw["config"]["train"]["lr"] == 0.05
    # atomic save leaves no temporary file behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt"]


def test_saving_over_an_existing_checkpoint_replaces_it(tmp_path: Path) -> None:
    path = tmp_path / "c.pt"
    for epoch, seed in ((1, 0), (2, 1)):
        save_checkpoint(
            path, _mlp([8], seed), config_to_dict(CONFIG), epoch=epoch, step=0, metrics={}, input_shape=(64,), output_shape=(10,)
        )
    ckpt = load_checkpoint(path)
    assert ckpt.epoch == 2
    _assert_same_weights(ckpt.state_dict, _mlp([8], 1).state_dict())


def test_sha256_file(tmp_path: Path) -> None:
    path = tmp_path / "blob"
    path.write_bytes(b"abc" * 1000)
    assert sha256_file(path, chunk=7) == hashlib.sha256(b"abc" * 1000).hexdigest()


# --- foreign layouts ---------------------------------------------------------------------------------


def _prefixed(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"module.{k}": v for k, v in state.items()}


LAYOUTS = {
    "bare": lambda sd: sd,
    "state_dict": lambda sd: {"state_dict": sd, "epoch": 7, "best_acc": 0.9},
    "model": lambda sd: {"model": sd, "optimizer": {"state": {}, "param_groups": []}},
    "model_state_dict": lambda sd: {"model_state_dict": sd, "epoch": 1},
    "bare module.": lambda sd: _prefixed(sd),
    "state_dict module.": lambda sd: {"state_dict": _prefixed(sd)},
}


@pytest.mark.parametrize("layout", LAYOUTS)
def test_foreign_layouts_load_into_the_model(tmp_path: Path, layout: str) -> None:
    source = _mlp([16], seed=3)
    path = tmp_path / "foreign.pth"
    torch.save(LAYOUTS[layout](source.state_dict()), path)
    ckpt = load_checkpoint(path)
    assert not ckpt.is_ours and ckpt.config is None and ckpt.epoch is None
    target = _mlp([16], seed=4)
    load_into(target, ckpt.state_dict)
    _assert_same_weights(target.state_dict(), source.state_dict())


def test_a_checkpoint_without_tensors_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.pt"
    torch.save({"epoch": 3, "notes": "hello"}, path)
    with pytest.raises(CheckpointError, match="holds no state dict"):
        load_checkpoint(path)


def test_our_format_with_a_broken_config(tmp_path: Path) -> None:
    path = tmp_path / "x.pt"
    torch.save({"format": FORMAT, "state_dict": {}, "config": {"train": {"lr": "fast"}}, "epoch": 0, "step": 0}, path)
    with pytest.raises(CheckpointError, match=r"unreadable config.*train\.lr"):
        checkpoint_config(load_checkpoint(path))


# --- mismatches --------------------------------------------------------------------------------------


def test_shape_mismatch_is_listed() -> None:
    with pytest.raises(CheckpointError) as info:
        load_into(_mlp([32]), _mlp([16]).state_dict(), what="model 'mlp'")
    message = str(info.value)
    assert "does not fit model 'mlp'" in message
    assert "shape mismatches (checkpoint vs model)" in message
    assert "fc1.weight (16, 64) vs (32, 64)" in message
    assert "out.weight (10, 16) vs (10, 32)" in message
    assert "missing keys" not in message and "unexpected keys" not in message


def test_missing_and_unexpected_keys_are_listed() -> None:
    model = _mlp([16])
    state = dict(model.state_dict())
    del state["out.bias"]
    state["head.weight"] = torch.zeros(3)
    with pytest.raises(CheckpointError) as info:
        load_into(model, state)
    message = str(info.value)
    assert "missing keys: out.bias" in message
    assert "unexpected keys: head.weight" in message


def test_a_different_architecture_fails_without_touching_the_model() -> None:
    model = _mlp([16, 16])
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"missing keys: fc2\.weight, fc2\.bias"):
        load_into(model, _mlp([16]).state_dict())
    _assert_same_weights(model.state_dict(), before)


# --- damaged and unsafe files ---------------------------------------------------------------------------


def test_missing_path(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "none.pt")
    with pytest.raises(CheckpointError, match=r"is a folder: name a checkpoint file in it$"):
        load_checkpoint(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    for name in ("epoch_000.pt", "epoch_002.pt", "epoch_001.pt"):
        (tmp_path / "checkpoints" / name).write_bytes(b"")
    with pytest.raises(CheckpointError, match=r"is a folder: .*, e\.g\. '.*epoch_002\.pt'"):  # a run folder: its last epoch
        load_checkpoint(tmp_path)


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.0])
def test_truncated_file(tmp_path: Path, keep: float) -> None:
    good = tmp_path / "good.pt"
    save_checkpoint(good, _mlp([16]), config_to_dict(CONFIG), epoch=1, step=1, metrics={}, input_shape=(64,), output_shape=(10,))
    raw = good.read_bytes()
    bad = tmp_path / "bad.pt"
    bad.write_bytes(raw[: int(len(raw) * keep)])
    with pytest.raises(CheckpointError, match="truncated"):
        load_checkpoint(bad)


@pytest.mark.parametrize(
    "content",
    [b"these are not weights\n", b'{"weights": [1, 2]}', bytes(range(256)) * 4, b"\0" * 64],
    ids=["text", "json", "bytes", "zeros"],
)
def test_a_file_of_other_data_is_not_a_checkpoint(tmp_path: Path, content: bytes) -> None:
    """Damaged data is reported as such, not as unsafe code to be waved through with --unsafe-load."""
    path = tmp_path / "notes.pt"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=r"notes\.pt' is truncated or not a torch checkpoint"):
        load_checkpoint(path)


class _Payload:
    """Unpickling this calls open(marker, "w"): code from the file would create the marker."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (builtins.open, (str(self.marker), "w"))


@pytest.mark.parametrize("wrap", ["bare", "inside a state dict"])
def test_a_malicious_pickle_is_refused(tmp_path: Path, wrap: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    payload: Any = _Payload(marker)
    if wrap != "bare":
        payload = {"state_dict": {"w": torch.zeros(2), "x": payload}}
    torch.save(payload, path)
    assert not marker.exists()
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    message = str(info.value)
    assert "refused" in message and "weights_only" in message and "--unsafe-load" in message
    assert "io.open" in message  # the global that would have been called (builtins.open is io.open)
    assert "\x1b" not in message  # one clean line: none of torch's terminal colour codes
    assert not marker.exists()


def test_unsafe_load_reads_a_trusted_pickle_with_objects(tmp_path: Path) -> None:
    """The paper's code stores argparse namespaces beside the weights: refused by default, read on request."""
    model = _mlp([16])
    path = tmp_path / "old.t7"
    torch.save({"state_dict": model.state_dict(), "args": argparse.Namespace(lr=0.1)}, path)
    with pytest.raises(CheckpointError, match="--unsafe-load"):
        load_checkpoint(path)
    ckpt = load_checkpoint(path, unsafe=True)
    _assert_same_weights(ckpt.state_dict, model.state_dict())
