"""Checkpoints written by other tools: files and folders, recognised by their layout.

- a Lightning ``.ckpt``: a dict with ``state_dict`` (names carry the LightningModule's attribute,
  e.g. ``model.``), ``epoch``, ``global_step``, ``hyper_parameters``, ``pytorch-lightning_version``;
- a Hugging Face folder: ``config.json`` beside ``model.safetensors`` or ``pytorch_model.bin``
  (or their sharded ``*.index.json``), a Trainer's ``checkpoint-N/`` adding ``trainer_state.json``;
- a plain ``.safetensors`` file (read with the ``safetensors`` package of the ``hf`` extra).

Also which checkpoints a folder holds and in what order (:func:`checkpoint_files`): a run folder's
``run.json``, a Trainer output_dir's ``checkpoint-N/`` by N, a Lightning ``checkpoints/`` folder
by step, any other folder's files in natural name order. Nothing here builds a model
(:mod:`landscape.zoo.hf` does, from ``config.json``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from torch import Tensor

from landscape.atomic import os_reason
from landscape.errors import CheckpointError, MissingExtraError, install_hint

HF_CONFIG = "config.json"
HF_WEIGHTS = ("model.safetensors", "pytorch_model.bin")  # preferred first, as transformers does
HF_INDEXES = ("model.safetensors.index.json", "pytorch_model.bin.index.json")
SUFFIXES = (".pt", ".pth", ".ckpt", ".bin", ".tar", ".safetensors")


def read_safetensors(path: Path, device: str = "cpu") -> dict[str, Tensor]:
    """The tensors of a ``.safetensors`` file (a format that holds only tensors: nothing to unpickle)."""
    try:
        from safetensors import SafetensorError
        from safetensors.torch import load_file
    except ImportError as err:
        raise MissingExtraError(f"reading {str(path)!r} needs the safetensors package: {install_hint('hf')}") from err
    try:
        return dict(load_file(str(path), device=device))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        reason = os_reason(err)
        raise CheckpointError(f"checkpoint {str(path)!r} is truncated or not a safetensors file: {reason}") from err


def is_hf_folder(path: Path) -> bool:
    """A folder that ``save_pretrained`` (or a Trainer checkpoint) wrote: config.json and weights."""
    return path.is_dir() and (path / HF_CONFIG).is_file() and any((path / n).is_file() for n in HF_WEIGHTS + HF_INDEXES)


def hf_weight_files(folder: Path) -> list[Path]:
    """The weight files of a Hugging Face folder: the single file, or every shard its index names."""
    for name in HF_WEIGHTS:
        if (folder / name).is_file():
            return [folder / name]
    for name in HF_INDEXES:
        index = folder / name
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text())["weight_map"]
                shards = sorted({str(v) for v in weight_map.values()})
            except (ValueError, KeyError, TypeError, AttributeError) as err:
                raise CheckpointError(f"{str(index)!r} is not a shard index (no weight_map): {err}") from err
            missing = [s for s in shards if not (folder / s).is_file()]
            if missing:
                raise CheckpointError(f"{str(index)!r} names shards that are not in the folder: {', '.join(missing[:3])}")
            return [folder / s for s in shards]
    raise CheckpointError(f"{str(folder)!r} holds {HF_CONFIG} but no weights ({', '.join(HF_WEIGHTS)} or a shard index)")


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{str(path)!r} is not readable JSON: {err}") from err
    if not isinstance(data, dict):
        raise CheckpointError(f"{str(path)!r} holds a {type(data).__name__}, not a JSON object")
    return data


def trainer_progress(folder: Path) -> tuple[int | None, int | None]:
    """``(epoch, step)`` of a Trainer checkpoint (``trainer_state.json``); the step from ``checkpoint-N`` else.

    The Trainer records a fractional epoch mid-epoch: it is kept only when whole.
    """
    state = folder / "trainer_state.json"
    step = _trainer_step(folder)
    if not state.is_file():
        return None, step
    data = read_json(state)
    epoch, global_step = data.get("epoch"), data.get("global_step")
    whole = int(epoch) if isinstance(epoch, int | float) and float(epoch).is_integer() else None
    return whole, (global_step if isinstance(global_step, int) else step)


def is_lightning(obj: object) -> bool:
    """A checkpoint Lightning's Trainer wrote (its state dict under ``state_dict``, progress beside it)."""
    return isinstance(obj, Mapping) and isinstance(obj.get("state_dict"), Mapping) and (
        "pytorch-lightning_version" in obj or "global_step" in obj)


# --- folders of checkpoints ------------------------------------------------------------------------


def natural_key(path: Path) -> list[Any]:
    """``epoch_2`` before ``epoch_10``: digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def _trainer_step(path: Path) -> int | None:
    m = re.fullmatch(r"checkpoint-(\d+)", path.name)
    return int(m.group(1)) if m else None


def _lightning_key(path: Path) -> tuple[int, int]:
    """``epoch=3-step=400.ckpt`` → (400, 3): Lightning's default names, ordered by step."""
    step = re.search(r"(?:^|[-_])step=(\d+)", path.stem)
    epoch = re.search(r"(?:^|[-_])epoch=(\d+)", path.stem)
    return (int(step.group(1)) if step else -1, int(epoch.group(1)) if epoch else -1)


def checkpoint_files(folder: str | Path, include_steps: bool = False) -> list[Path]:
    """The checkpoints a folder holds, oldest first.

    - a run folder (``run.json``, from ``landscape train`` or a Recorder): as the manifest lists them;
    - a Hugging Face Trainer output_dir: its ``checkpoint-N/`` folders by N;
    - Lightning checkpoints (``epoch=E-step=S.ckpt``, in the folder or in its ``checkpoints/``):
      by step, then epoch; files not named by step (``last.ckpt``, a copy of the newest) are left out;
    - any other folder: its checkpoint files (``*.pt``, ``*.pth``, ``*.ckpt``, ``*.bin``, ``*.tar``,
      ``*.safetensors``) and Hugging Face subfolders, sorted by name with numbers compared as numbers.
    """
    root = Path(folder)
    if not root.is_dir():
        raise CheckpointError(f"{str(root)!r} is not a folder")
    if (root / "run.json").is_file():
        from landscape.io.run_folder import run_checkpoints

        return run_checkpoints(root, include_steps)
    trainer = [p for p in root.iterdir() if _trainer_step(p) is not None and is_hf_folder(p)]
    if trainer:
        return sorted(trainer, key=lambda p: _trainer_step(p) or 0)
    items = _plain_items(root)
    if not items and (root / "checkpoints").is_dir():  # a Lightning version folder: lightning_logs/version_0/
        items = _plain_items(root / "checkpoints")
    if not items:
        raise CheckpointError(f"{str(root)!r} holds no run.json, no checkpoint-N/ folders and no checkpoint files "
                              f"({', '.join(SUFFIXES)}) nor Hugging Face folders")
    by_step = [p for p in items if _lightning_key(p)[0] >= 0]
    if by_step:
        return sorted(by_step, key=lambda p: (*_lightning_key(p), natural_key(p)))
    return sorted(items, key=natural_key)


def _plain_items(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if (p.is_file() and p.suffix in SUFFIXES) or is_hf_folder(p)]
