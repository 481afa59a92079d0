"""Checkpoints of a model trained anywhere: a recorder for the user's own training loop.

A :class:`Recorder` writes, every ``every`` calls of :meth:`Recorder.step` (steps or epochs, as
the loop calls it), a self-describing checkpoint of the model and appends it to a manifest, so
the folder is a run folder that ``landscape trajectory DIR`` and :func:`landscape.trajectory`
read like one written by ``landscape train``::

    DIR/run.json                      manifest: file, kind="record", step, epoch, metrics
    DIR/checkpoints/step_SSSSSSS.pt   one checkpoint per recorded step

Each checkpoint is ``landscape.io.checkpoint``'s format without a ``config`` (the tool did not
build the model): the state dict, the names of the parameters (so a trajectory knows which
tensors are weights without the model's code), the model's class name, a HuggingFace model's
config as JSON when it has one, step, epoch and metrics. Plain tensors and containers only, so
``torch.load(weights_only=True)`` reads it; files and manifest are written atomically.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from landscape.atomic import os_reason, write_json_atomic
from landscape.errors import CheckpointError, ConfigError
from landscape.io.checkpoint import FORMAT, atomic_torch_save

KIND = "record"


def _write_json_atomic(path: Path, data: Any) -> None:
    """:func:`landscape.atomic.write_json_atomic`: a reader sees the old manifest or the new one."""
    try:
        write_json_atomic(path, data)
    except OSError as err:
        raise CheckpointError(f"cannot write {str(path)!r}: {os_reason(err)}; the checkpoints already written are kept") from err


def _model_config_json(model: nn.Module) -> str | None:
    """A HuggingFace model's config as JSON (``model.config.to_json_string()``), else None."""
    to_json = getattr(getattr(model, "config", None), "to_json_string", None)
    if not callable(to_json):
        return None
    try:
        return str(to_json())
    except (TypeError, ValueError):  # a config holding something JSON cannot write: record nothing
        return None


def _metric_values(loss: float | Tensor | None, metrics: Mapping[str, float | Tensor] | None) -> dict[str, float]:
    def number(v: float | Tensor) -> float:
        return float(v.detach()) if isinstance(v, Tensor) else float(v)
    out = {k: number(v) for k, v in (metrics or {}).items()}
    if loss is not None:
        out["train_loss"] = number(loss)
    return out


class Recorder:
    """Save a trajectory of a model trained in the user's own loop (``landscape.Recorder``).

    Args:
        out_dir: folder of the run (created); holds ``run.json`` and ``checkpoints/``.
        every: write a checkpoint every ``every``-th call of :meth:`step` (a positive int; one
            call per optimizer step, or one per epoch, as the loop chooses).
        resume: append to a run already recorded in ``out_dir`` (its step count continues);
            without it a folder that already holds a recorded run is refused.

    Typical use::

        rec = landscape.Recorder("runs/mine", every=50)
        rec.save(model)                        # the initial weights, step 0
        for batch in loader:
            ...; opt.step()
            rec.step(model, loss=loss)         # writes at steps 50, 100, ...
        rec.finish(model)                      # the final weights; the manifest says "finished"

    The model is only read (``state_dict()``), never changed; tensors are copied to the CPU.
    """

    def __init__(self, out_dir: str | Path, every: int = 1, *, resume: bool = False) -> None:
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ConfigError(f"Recorder every must be a positive int, got {every!r}")
        self.out_dir = Path(out_dir)
        self.every = every
        self.manifest_path = self.out_dir / "run.json"
        self.manifest: dict[str, Any] = {"format": "landscape-run", "source": "recorder", "every": every,
                                         "checkpoints": [], "status": "running"}
        if self.manifest_path.exists():
            self._reopen(resume)
        self.count = max((int(c["step"]) for c in self.manifest["checkpoints"]), default=0)
        self._last_saved: int | None = None

    def _reopen(self, resume: bool) -> None:
        try:
            old = json.loads(self.manifest_path.read_text())
            entries = list(old["checkpoints"])
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
            raise CheckpointError(f"{str(self.manifest_path)!r} is not a readable run manifest: {err!r}") from err
        if entries and not resume:
            raise CheckpointError(f"{str(self.out_dir)!r} already holds a recorded run ({len(entries)} checkpoints): "
                                  "pass resume=True to append to it, or choose another folder")
        if entries and any(c.get("kind") != KIND for c in entries):
            raise CheckpointError(f"{str(self.out_dir)!r} holds a run of `landscape train`, not a recorded one: "
                                  "choose another folder")
        self.manifest = {**old, "status": "running"}

    def step(self, model: nn.Module, *, loss: float | Tensor | None = None,
             metrics: Mapping[str, float | Tensor] | None = None, epoch: int | None = None) -> Path | None:
        """Count one step (or epoch); on every ``every``-th, save ``model``. Returns the file written or None.

        ``loss`` (a float or a 0-d tensor: the training loss of this step) is stored as
        ``train_loss``; ``metrics`` (name → number) are stored as given; ``epoch`` is a label.
        """
        self.count += 1
        if self.count % self.every:
            return None
        return self.save(model, loss=loss, metrics=metrics, epoch=epoch)

    def save(self, model: nn.Module, *, loss: float | Tensor | None = None,
             metrics: Mapping[str, float | Tensor] | None = None, epoch: int | None = None,
             step: int | None = None) -> Path:
        """Save ``model`` now at the current step count (0 before the first :meth:`step`).

        ``step`` (a non-negative int) records it at that step instead and sets the count there: a
        loop that keeps its own step count (a Lightning or Hugging Face trainer's global step).
        """
        if not isinstance(model, nn.Module):
            raise ConfigError(f"Recorder.save takes an nn.Module, got {type(model).__name__}")
        if step is not None:
            if isinstance(step, bool) or not isinstance(step, int) or step < 0:
                raise ConfigError(f"Recorder.save step must be a non-negative int, got {step!r}")
            self.count = step
        values = _metric_values(loss, metrics)
        name = f"checkpoints/step_{self.count:07d}.pt"
        from landscape.version import __version__

        payload = {
            "format": FORMAT, "format_version": 1, "landscape_version": __version__, "kind": KIND,
            # torch.save writes the values now: no copy needed, and tied tensors stay shared
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "parameters": [k for k, _ in model.named_parameters()],
            "model_class": f"{type(model).__module__}.{type(model).__qualname__}",
            "model_config_json": _model_config_json(model),
            "epoch": epoch, "step": self.count, "metrics": values,
        }
        atomic_torch_save(payload, self.out_dir / name)
        entries = [c for c in self.manifest["checkpoints"] if c["file"] != name]
        entries.append({"file": name, "kind": KIND, "epoch": -1 if epoch is None else epoch, "step": self.count,
                        **{k: (v if math.isfinite(v) else None) for k, v in values.items()}})
        self.manifest["checkpoints"] = entries
        _write_json_atomic(self.manifest_path, self.manifest)
        self._last_saved = self.count
        return self.out_dir / name

    def finish(self, model: nn.Module, *, loss: float | Tensor | None = None,
               metrics: Mapping[str, float | Tensor] | None = None, epoch: int | None = None) -> Path:
        """Save the final weights (unless the last :meth:`step` just did) and mark the run finished."""
        path = self.out_dir / f"checkpoints/step_{self.count:07d}.pt"
        if self._last_saved != self.count or loss is not None or metrics:
            path = self.save(model, loss=loss, metrics=metrics, epoch=epoch)
        self.manifest["status"] = "finished"
        _write_json_atomic(self.manifest_path, self.manifest)
        return path

    @property
    def checkpoints(self) -> list[Path]:
        """The checkpoint files recorded so far, oldest first."""
        return [self.out_dir / c["file"] for c in self.manifest["checkpoints"]]


def skeleton_model(state_dict: Mapping[str, Tensor], parameters: list[str] | None) -> nn.Module:
    """A module with ``state_dict``'s names and shapes (on the ``meta`` device: no memory).

    ``parameters`` names the entries that are parameters (a recorded checkpoint lists them); the
    rest become buffers. ``None`` makes every floating-point entry a parameter. Enough for what
    needs only names and shapes (a trajectory's PCA, a fingerprint), never for a forward pass.
    """
    params = set(parameters) if parameters is not None else {k for k, v in state_dict.items() if v.is_floating_point()}
    unknown = sorted(params - set(state_dict))
    if unknown:
        raise CheckpointError(f"the checkpoint lists parameters it does not hold: {', '.join(unknown[:3])}")
    root = nn.Module()
    for name, t in state_dict.items():
        *path, leaf = name.split(".")
        owner = root
        for part in path:
            child = owner._modules.get(part)
            if child is None:
                if hasattr(owner, part):
                    raise CheckpointError(f"the checkpoint's names clash at {name!r}: a tensor and a module share a name")
                child = nn.Module()
                owner.add_module(part, child)
            owner = child
        empty = torch.empty(t.shape, dtype=t.dtype, device="meta")
        if hasattr(owner, leaf):
            raise CheckpointError(f"the checkpoint's names clash at {name!r}: a tensor and a module share a name")
        if name in params:
            owner.register_parameter(leaf, nn.Parameter(empty, requires_grad=empty.is_floating_point()))
        else:
            owner.register_buffer(leaf, empty)
    return root
