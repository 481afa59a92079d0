"""Self-describing checkpoints: save atomically, load safely, recognise foreign formats.

Our checkpoint is a dict with ``format = "landscape-checkpoint"``, the ``state_dict``, the
resolved ``config`` as a plain dict (data, model, train sections; this layer does not read it:
the workflows turn it into a :class:`landscape.config.Config`), the data's input/output shapes, epoch,
step, metrics and the optimizer state for resuming. Everything in it is plain tensors and
containers, so it loads with ``torch.load(weights_only=True)``. Foreign checkpoints load too; the
user then names model, data and loss: a bare state dict, ``{"state_dict": ...}``,
``{"model": ...}``, ``{"model_state_dict": ...}``, a Lightning ``.ckpt``, a Hugging Face folder
(``config.json`` + ``model.safetensors`` or ``pytorch_model.bin``) and a ``.safetensors`` file
(:mod:`landscape.io.foreign`). The prefixes that wrappers put before every name (``module.``
from DataParallel/DDP, ``_orig_mod.`` from ``torch.compile``) are stripped on loading; the
prefix of a LightningModule's attribute (``model.``) is found when the weights meet the model
(:func:`fit_state_dict`), or named with ``prefix=`` (CLI ``--prefix``).
"""

from __future__ import annotations

import hashlib
import pickle
import re
import zipfile
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from landscape.atomic import atomic_write, os_reason
from landscape.errors import CheckpointError
from landscape.io.foreign import (
    HF_CONFIG,
    checkpoint_files,
    hf_weight_files,
    is_hf_folder,
    is_lightning,
    read_json,
    read_safetensors,
    trainer_progress,
)

FORMAT = "landscape-checkpoint"
WRAPPERS = ("module.", "_orig_mod.")  # DataParallel/DDP and torch.compile put these before every name


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
    """The SHA-256 of a file; of a Hugging Face folder, of its config.json and weight files (names and bytes)."""
    h = hashlib.sha256()
    p = Path(path)
    files = [p / HF_CONFIG, *hf_weight_files(p)] if p.is_dir() else [p]
    for f in files:
        if p.is_dir():
            h.update(f.name.encode() + b"\0")
        with f.open("rb") as fh:
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
    from landscape.version import __version__

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
        try:
            inside = checkpoint_files(path)  # a run folder, a Trainer output_dir, Lightning checkpoints: the newest
        except CheckpointError:
            inside = []
        hint = f", e.g. {str(inside[-1])!r}" if inside else ""
        raise CheckpointError(f"checkpoint {str(path)!r} is a folder: name a checkpoint file in it{hint}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {str(path)!r} is not a file")
    try:
        return torch.load(path, map_location=map_location, weights_only=not unsafe)
    except pickle.UnpicklingError as err:
        if unsafe:
            raise CheckpointError(f"checkpoint {str(path)!r} is corrupt: {os_reason(err)}") from err
        reason = _refusal_reason(str(err)) or type(err).__name__
        if "Unsupported operand" in reason:  # a byte that is no pickle opcode: damaged data, not code
            raise CheckpointError(f"checkpoint {str(path)!r} is truncated or not a torch checkpoint: {reason}") from err
        raise CheckpointError(
            f"checkpoint {str(path)!r} was refused: loading it would run code from the file "
            f"(weights_only=True refused it: {reason}); if you trust the file, pass --unsafe-load"
        ) from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError, KeyError, IndexError, TypeError, AttributeError) as err:
        reason = os_reason(err)
        raise CheckpointError(f"checkpoint {str(path)!r} is truncated or not a torch checkpoint: {reason}") from err


def _strip_wrappers(tensors: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Names without the wrapper prefixes every one of them carries (``module._orig_mod.fc`` → ``fc``)."""
    out = dict(tensors)
    while out and (w := next((w for w in WRAPPERS if all(k.startswith(w) for k in out)), None)) is not None:
        out = {k[len(w):]: v for k, v in out.items()}
    return out


def _strip_prefix(state: Mapping[str, Any]) -> dict[str, Tensor]:
    return _strip_wrappers({k: v for k, v in state.items() if isinstance(v, Tensor)})


def _leading(names: Collection[str], n: int = 3) -> str:
    """The first name components of ``names``, for messages: ``'model.', 'criterion.'``."""
    heads = sorted({k.split(".", 1)[0] + "." for k in names if "." in k})
    return ", ".join(repr(h) for h in heads[:n]) + (f" and {len(heads) - n} more" if len(heads) > n else "") or "no prefix"


def select_prefix(state: Mapping[str, Tensor], prefix: str, path: Path) -> dict[str, Tensor]:
    """Only the tensors whose names start with ``prefix`` (a dot is added), with it stripped.

    A LightningModule saves every attribute (``model.``, ``ema.``, a loss's buffers): the prefix
    names the one that holds the network.
    """
    p = prefix if prefix.endswith(".") else prefix + "."
    plain = _strip_wrappers(state)
    for names in (plain, dict(state)):
        sub = {k[len(p):]: v for k, v in names.items() if k.startswith(p)}
        if sub:
            return _strip_wrappers(sub)
    raise CheckpointError(f"no name in checkpoint {str(path)!r} starts with prefix {p!r}; its names start with {_leading(plain)}")


def find_state_dict(obj: Any, path: Path) -> dict[str, Tensor]:
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


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu", unsafe: bool = False, *,
                    prefix: str | None = None) -> Checkpoint:
    """Load ``path`` with ``weights_only=True`` (unless ``unsafe``) and describe what it holds.

    ``path``: our checkpoint, a foreign ``.pt``/``.pth``/``.bin``, a Lightning ``.ckpt``, a
    ``.safetensors`` file or a Hugging Face folder. ``prefix``: keep only the tensors whose names
    start with it, stripped (``"model."``: a LightningModule's ``self.model``); None leaves the
    names as saved, less the ``module.``/``_orig_mod.`` wrappers.
    """
    p = Path(path)
    ckpt = _load_any(p, map_location, unsafe)
    return ckpt if prefix is None else replace(ckpt, state_dict=select_prefix(ckpt.state_dict, prefix, p))


def _load_any(p: Path, map_location: str | torch.device, unsafe: bool) -> Checkpoint:
    if is_hf_folder(p):
        return _hf_folder(p, map_location, unsafe)
    if p.suffix == ".safetensors" and p.is_file():
        return Checkpoint(p, _strip_wrappers(read_safetensors(p, str(map_location))), None, extra={"kind": "safetensors"})
    obj = _torch_load(p, map_location, unsafe)
    if isinstance(obj, Mapping) and obj.get("format") == FORMAT:
        return _ours(p, obj)
    if is_lightning(obj):
        epoch, step = obj.get("epoch"), obj.get("global_step")
        return Checkpoint(p, _strip_prefix(obj["state_dict"]), None, epoch if isinstance(epoch, int) else None,
                          step if isinstance(step, int) else None,
                          extra={"kind": "lightning", "hyper_parameters": obj.get("hyper_parameters") or {}})
    return Checkpoint(p, find_state_dict(obj, p), None)


def _hf_folder(p: Path, map_location: str | torch.device, unsafe: bool) -> Checkpoint:
    """A ``save_pretrained`` folder or a Trainer's ``checkpoint-N``: every shard, config.json, progress."""
    state: dict[str, Tensor] = {}
    for f in hf_weight_files(p):
        part = (read_safetensors(f, str(map_location)) if f.suffix == ".safetensors"
                else find_state_dict(_torch_load(f, map_location, unsafe), f))
        state.update(part)
    epoch, step = trainer_progress(p)
    return Checkpoint(p, _strip_wrappers(state), None, epoch, step,
                      extra={"kind": "huggingface", "hf_config": read_json(p / HF_CONFIG)})


def _ours(p: Path, obj: Mapping[str, Any]) -> Checkpoint:
    """A checkpoint of ``landscape train`` (with its config), or of a user's model saved by
    :class:`landscape.io.recorder.Recorder` from their own training loop (config None)."""
    config = obj.get("config")
    if config is not None and not isinstance(config, Mapping):
        raise CheckpointError(f"checkpoint {str(p)!r} has an unreadable config: a {type(config).__name__}, not a table")
    known = {"format", "format_version", "state_dict", "config", "epoch", "step", "metrics"}
    epoch, step = obj.get("epoch"), obj.get("step")
    return Checkpoint(p, find_state_dict(obj, p) if config is None else dict(obj["state_dict"]),
                      None if config is None else dict(config), None if epoch is None else int(epoch),
                      None if step is None else int(step), dict(obj.get("metrics") or {}),
                      {k: v for k, v in obj.items() if k not in known})


def _short(items: list[str], n: int = 4) -> str:
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")


def _tied(own: Mapping[str, Tensor]) -> dict[str, list[str]]:
    """Names of the model's state that are one tensor (GPT-2's ``lm_head.weight`` is ``transformer.wte.weight``).

    Hugging Face saves such a tensor once, under one of its names.
    """
    groups: dict[tuple[int, int, tuple[int, ...], tuple[int, ...]], list[str]] = {}
    for k, v in own.items():
        if v.numel() and v.device.type != "meta":
            key = (v.untyped_storage().data_ptr(), int(v.storage_offset()), tuple(v.shape), tuple(v.stride()))
            groups.setdefault(key, []).append(k)
    return {k: names for names in groups.values() if len(names) > 1 for k in names}


def _complete(state: Mapping[str, Tensor], own: Mapping[str, Tensor], tied: Mapping[str, list[str]]) -> dict[str, Tensor] | None:
    """``state`` with the names of tied tensors filled in, when its names are the model's; else None."""
    if any(k not in own for k in state):
        return None
    out = dict(state)
    for k in own:
        if k not in out:
            partner = next((t for t in tied.get(k, ()) if t in state), None)
            if partner is None:
                return None
            out[k] = state[partner]
    return out


def _prefixes(state: Mapping[str, Tensor], enough: int) -> list[str]:
    """Leading name components (``model.``, ``model.net.``, ...) under which ``enough`` tensors or more lie."""
    counts = Counter(".".join(parts[:i]) + "." for parts in (k.split(".") for k in state)
                     for i in range(1, min(len(parts), 4)))
    return sorted((p for p, n in counts.items() if n >= enough), key=lambda p: (p.count("."), p))


def _under(state: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return _strip_wrappers({k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)})


def fit_state_dict(model: nn.Module, state_dict: Mapping[str, Tensor], what: str = "the model") -> dict[str, Tensor]:
    """``state_dict`` under the model's own names, or one :class:`CheckpointError` naming the fix.

    The names fit as saved, or under exactly one prefix (``model.``: a LightningModule's attribute;
    a checkpoint that holds more, e.g. a loss's buffers, gives only the tensors under it). Tied
    tensors saved once are filled in under each name. Several fitting prefixes (``model.`` and
    ``ema.``) are an error that says to choose with ``--prefix``; no fit is an error that lists
    missing, unexpected and misshaped names, with the prefix that comes closest.
    """
    own = model.state_dict()
    tied = _tied(own)
    exact = _complete(state_dict, own, tied)
    for w in WRAPPERS:  # a model whose own names all start with a wrapper's prefix (a module held as .module)
        if exact is None and own and all(k.startswith(w) for k in own):
            exact = _complete({w + k: v for k, v in state_dict.items()}, own, tied)
    if exact is None:
        fits = [(p, sub) for p in _prefixes(state_dict, len(own) - len(tied))
                if (sub := _complete(_under(state_dict, p), own, tied)) is not None]
        if len(fits) > 1:
            names = ", ".join(repr(p) for p, _ in fits)
            raise CheckpointError(f"the checkpoint holds {what} under several prefixes ({names}): choose one with "
                                  f"--prefix {fits[0][0]} (API: prefix={fits[0][0]!r})")
        if not fits:
            missing, unexpected = [k for k in own if k not in state_dict], [k for k in state_dict if k not in own]
            parts = [f"{word} keys: {_short(keys)}" for word, keys in (("missing", missing), ("unexpected", unexpected))
                     if keys]
            raise CheckpointError(f"the checkpoint does not fit {what}: {'; '.join(parts)}"
                                  + _prefix_hint(state_dict, own))
        exact = fits[0][1]
    shapes = [f"{k} {tuple(exact[k].shape)} vs {tuple(v.shape)}" for k, v in own.items() if tuple(exact[k].shape) != tuple(v.shape)]
    if shapes:
        raise CheckpointError(f"the checkpoint does not fit {what}: shape mismatches (checkpoint vs model): {_short(shapes)}")
    return exact


def _prefix_hint(state: Mapping[str, Tensor], own: Mapping[str, Tensor]) -> str:
    """The prefix under which most of the model's names lie, as a fix to try; else where the names start."""
    plain = len(own.keys() & state.keys())
    under = [(p, n) for p in _prefixes(state, 1) if (n := len(own.keys() & _under(state, p).keys())) > plain]
    best, hits = max(under, key=lambda c: c[1], default=("", plain))  # (the first of the most)
    if best:
        return (f" (the checkpoint's names start with {best!r}: {hits} of the model's {len(own)} names lie under it; "
                f"pass --prefix {best} (API: prefix={best!r}) to read only those)")
    if {k.split(".", 1)[0] for k in state} & {k.split(".", 1)[0] for k in own}:
        return ""  # the same top-level names: no prefix would help
    return f" (the checkpoint's names start with {_leading(state)}, the model's with {_leading(own)})"


def load_into(model: nn.Module, state_dict: Mapping[str, Tensor], what: str = "the model") -> None:
    """Load ``state_dict`` strictly (:func:`fit_state_dict`); a mismatch is one error naming missing,
    unexpected and misshaped keys, and the prefix fix when there is one."""
    model.load_state_dict(fit_state_dict(model, state_dict, what), strict=True)
