"""Self-describing checkpoints: save atomically, load safely, recognise foreign formats.

Our checkpoint is a dict with ``format = "landscape-checkpoint"``, the ``state_dict``, the
resolved ``config`` as a plain dict (data, model, train sections; this layer does not read it:
the workflows turn it into a :class:`landscape.config.Config`), the data's input/output shapes, epoch,
step, metrics and the optimizer state for resuming. Everything in it is plain tensors and
containers, so it loads with ``torch.load(weights_only=True)``. Foreign checkpoints (a bare
state dict, ``{"state_dict": ...}``, ``{"model": ...}``, ``{"model_state_dict": ...}``, with or
without a DataParallel ``module.`` prefix) load too; the user then names model, data and loss.
"""

from __future__ import annotations

import hashlib
import pickle
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from landscape.atomic import atomic_write, os_reason
from landscape.errors import CheckpointError

FORMAT = "landscape-checkpoint"


@dataclass(frozen=True)
class Checkpoint:
    path: Path
    state_dict: dict[str, Tensor]
    config: dict[str, Any] | None  # the saved config dict; None for foreign checkpoints
    epoch: int | None = None
    step: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # optimizer, scheduler, rng, shapes

    @property
    def is_ours(self) -> bool:
        return self.config is not None


def sha256_file(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with Path(path).open("rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def atomic_torch_save(obj: object, path: Path) -> None:
    """``torch.save`` through :func:`landscape.atomic.atomic_write`: the old file or the new one, never half.

    A full disk or an unwritable folder raises :class:`CheckpointError`; files already written stay.
    """
    try:
        atomic_write(path, lambda fh: torch.save(obj, fh))
    except (OSError, RuntimeError) as err:  # torch reports a failed write as RuntimeError
        raise CheckpointError(f"cannot write checkpoint {str(path)!r}: {os_reason(err)}; "
                              "the checkpoints already written are kept") from err


def save_checkpoint(path: Path, model: nn.Module, config: Mapping[str, Any], *, epoch: int, step: int,
                    metrics: Mapping[str, float], input_shape: tuple[int, ...],
                    output_shape: tuple[int, ...], extra: Mapping[str, Any] | None = None) -> None:
    """Write ``model``'s weights with ``config`` (a plain dict, as :func:`landscape.config.config_to_dict` makes it)."""
    from landscape import __version__

    payload = {
        "format": FORMAT,
        "format_version": 1,
        "landscape_version": __version__,
        "state_dict": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
        "config": dict(config),
        "input_shape": list(input_shape),
        "output_shape": list(output_shape),
        "epoch": epoch,
        "step": step,
        "metrics": dict(metrics),
        **(dict(extra) if extra else {}),
    }
    atomic_torch_save(payload, path)


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _refusal_reason(text: str) -> str:
    """The line of torch's weights_only refusal that names the culprit, without its boilerplate.

    Depending on the torch version the reason follows "WeightsUnpickler error:" or stands on a
    line of its own ("Trying to load unsupported GLOBAL posix.system ..."), between paragraphs
    of advice and ANSI colour codes.
    """
    text = re.sub(r"\x1b\[[0-9;]*m", "", text).split("WeightsUnpickler error:", 1)[-1]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for line in lines:
        if "GLOBAL" in line or "Unsupported" in line or "unsupported" in line:
            return line.split(". Please use", 1)[0].rstrip(".")
    advice = ("Weights only load failed", "Check the documentation", "Please file an issue", "In PyTorch")
    rest = [ln for ln in lines if not ln.startswith(advice)]
    return rest[0].rstrip(".") if rest else ""


def _torch_load(path: Path, map_location: str | torch.device, unsafe: bool) -> Any:
    if not path.exists():
        raise CheckpointError(f"checkpoint {str(path)!r} does not exist")
    if path.is_dir():
        inside = sorted(path.glob("*.pt")) or sorted(path.glob("checkpoints/epoch_*.pt"))  # a run folder: its last epoch
        hint = f", e.g. {str(inside[-1])!r}" if inside else ""
        raise CheckpointError(f"checkpoint {str(path)!r} is a folder: name a checkpoint file in it{hint}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} is not a file")
    try:
        return torch.load(path, map_location=map_location, weights_only=not unsafe)
    except pickle.UnpicklingError as err:
        if unsafe:
            raise CheckpointError(f"checkpoint {str(path)!r} is corrupt: {_first_line(err)}") from err
        reason = _refusal_reason(str(err)) or type(err).__name__
        if "Unsupported operand" in reason:  # a byte that is no pickle opcode: damaged data, not code
            raise CheckpointError(f"checkpoint {str(path)!r} is truncated or not a torch checkpoint: {reason}") from err
        raise CheckpointError(
            f"checkpoint {str(path)!r} was refused: loading it would run code from the file "
            f"(weights_only=True refused it: {reason}); if you trust the file, pass --unsafe-load"
        ) from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError, IndexError, TypeError, AttributeError) as err:
        raise CheckpointError(f"checkpoint {str(path)!r} is truncated or not a torch checkpoint: {str(err).splitlines()[0] if str(err) else type(err).__name__}") from err


def _strip_prefix(state: Mapping[str, Any]) -> dict[str, Tensor]:
    tensors = {k: v for k, v in state.items() if isinstance(v, Tensor)}
    if tensors and all(k.startswith("module.") for k in tensors):
        tensors = {k[len("module."):]: v for k, v in tensors.items()}
    return tensors


def _find_state_dict(obj: Any, path: Path) -> dict[str, Tensor]:
    """Recognise the foreign layouts users bring; return a flat name → tensor dict."""
    if isinstance(obj, Mapping):
        for key in ("state_dict", "model_state_dict", "model", "net", "network"):
            inner = obj.get(key)
            if isinstance(inner, Mapping) and any(isinstance(v, Tensor) for v in inner.values()):
                return _strip_prefix(inner)
        if obj and all(isinstance(v, Tensor) for v in obj.values()):
            return _strip_prefix(obj)
    raise CheckpointError(
        f"checkpoint {str(path)!r} holds no state dict (looked for a dict of tensors, or one under "
        "'state_dict', 'model_state_dict', 'model', 'net')"
    )


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", unsafe: bool = False) -> Checkpoint:
    """Load ``path`` with ``weights_only=True`` (unless ``unsafe``) and describe what it holds."""
    p = Path(path)
    obj = _torch_load(p, map_location, unsafe)
    if isinstance(obj, Mapping) and obj.get("format") == FORMAT and obj.get("config") is None:
        return _recorded(p, obj)  # written by landscape.Recorder from a user's own training loop
    if isinstance(obj, Mapping) and obj.get("format") == FORMAT:
        config = obj["config"]
        if not isinstance(config, Mapping):
            raise CheckpointError(f"checkpoint {str(p)!r} has an unreadable config: a {type(config).__name__}, not a table")
        known = {"format", "format_version", "state_dict", "config", "epoch", "step", "metrics"}
        return Checkpoint(p, dict(obj["state_dict"]), dict(config), int(obj["epoch"]), int(obj["step"]),
                          dict(obj.get("metrics", {})), {k: v for k, v in obj.items() if k not in known})
    return Checkpoint(p, _find_state_dict(obj, p), None)


def _recorded(p: Path, obj: Mapping[str, Any]) -> Checkpoint:
    """A checkpoint of a user's model saved by :class:`landscape.io.recorder.Recorder` (no config)."""
    known = {"format", "format_version", "state_dict", "config", "epoch", "step", "metrics"}
    epoch, step = obj.get("epoch"), obj.get("step")
    return Checkpoint(p, _find_state_dict(obj, p), None, None if epoch is None else int(epoch),
                      None if step is None else int(step), dict(obj.get("metrics") or {}),
                      {k: v for k, v in obj.items() if k not in known})


def _short(items: list[str], n: int = 4) -> str:
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")


def load_into(model: nn.Module, state_dict: Mapping[str, Tensor], what: str = "the model") -> None:
    """Load ``state_dict`` strictly; a mismatch is one error listing missing, unexpected and misshaped keys."""
    own = model.state_dict()
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    shapes = [f"{k} {tuple(state_dict[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
              if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys: {_short(missing)}")
        if unexpected:
            parts.append(f"unexpected keys: {_short(unexpected)}")
        if shapes:
            parts.append(f"shape mismatches (checkpoint vs model): {_short(shapes)}")
        raise CheckpointError(f"the checkpoint does not fit {what}: " + "; ".join(parts))
    model.load_state_dict(state_dict, strict=True)


def find_state_dict(obj: Any, where: Path) -> dict[str, Tensor]:
    """The flat name → tensor dict inside ``obj`` (a file's contents or a dict held in memory, named ``where``
    in messages): bare, or under ``state_dict``/``model``/..., DataParallel ``module.`` prefixes stripped."""
    return _find_state_dict(obj, where)
