"""The run folder of one training: its manifest ``run.json``, its checkpoints, and whether it is done.

Layout::

    DIR/config.toml                  resolved config
    DIR/run.json                     manifest: the config, every checkpoint with epoch, step, metrics, and a status
    DIR/checkpoints/epoch_NNN.pt     after epoch NNN (epoch 0: the initial weights)
    DIR/checkpoints/step_SSSSSSS.pt  every ``train.save_every_steps`` steps, when asked

This module is the only one that parses ``run.json``; it knows nothing of configs (whether a run
is finished "with the same settings" is :func:`landscape.workflows.train.is_finished`, which
compares a config with the manifest's through :func:`diff_settings`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from landscape.atomic import os_reason, write_json_atomic
from landscape.errors import CheckpointError, ConfigError, RunFolderError

MANIFEST = "run.json"


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping) and value:
            flat.update(_flatten(value, name))
        else:
            flat[name] = value
    return flat


# Settings values recorded before a rename, read as today's (by the last part of the key): files written
# with ``bn = "fixed"`` resume under ``bn = "keep"`` (one idea, one name since 0.x).
LEGACY_VALUES: dict[str, dict[str, str]] = {"bn": {"fixed": "keep"}}


def _current(flat: Mapping[str, Any]) -> dict[str, Any]:
    return {k: LEGACY_VALUES.get(k.rsplit(".", 1)[-1], {}).get(v, v) if isinstance(v, str) else v for k, v in flat.items()}


def diff_settings(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Human-readable differences ``key: old → new`` between two nested settings dicts (old spellings
    of :data:`LEGACY_VALUES` count as the new ones)."""
    a, b = _current(_flatten(json.loads(json.dumps(old)))), _current(_flatten(json.loads(json.dumps(new))))
    return [f"{k}: {a.get(k, '<unset>')!r} → {b.get(k, '<unset>')!r}" for k in sorted(set(a) | set(b)) if a.get(k, "<unset>") != b.get(k, "<unset>")]


@dataclass(frozen=True)
class RunFolder:
    """A training run's folder (see the module docstring)."""

    path: Path

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    def manifest(self) -> dict[str, Any] | None:
        """The parsed ``run.json``; None when there is none; :class:`ConfigError` when it is corrupt."""
        if not self.manifest_path.is_file():
            return None
        try:
            manifest = json.loads(self.manifest_path.read_text())
        except json.JSONDecodeError as err:
            raise ConfigError(f"{self.manifest_path} is corrupt ({err}); remove it or pass --overwrite") from err
        if not isinstance(manifest, dict) or not isinstance(manifest.get("checkpoints", []), list):
            raise ConfigError(f"{self.manifest_path} is not a run manifest; remove it or pass --overwrite")
        return manifest

    def write_manifest(self, manifest: Mapping[str, Any]) -> None:
        """Replace ``run.json`` atomically; a failure is a :class:`RunFolderError` that keeps the checkpoints."""
        try:
            write_json_atomic(self.manifest_path, manifest)
        except OSError as err:
            raise RunFolderError(f"cannot write {str(self.manifest_path)!r}: {os_reason(err)}; "
                                 "the checkpoints already written are kept") from err

    def checkpoints(self, include_steps: bool = False) -> list[Path]:
        """The checkpoints in the order of ``run.json``, the final one last.

        Epoch checkpoints (epoch 0 holds the initial weights) and, with ``include_steps``, the step
        checkpoints between them; a step checkpoint saved at the same step as an epoch checkpoint
        holds the same weights and is left out.
        """
        if not self.manifest_path.is_file():
            raise CheckpointError(f"{str(self.path)!r} is not a run folder (it has no {MANIFEST})")
        try:
            entries = json.loads(self.manifest_path.read_text())["checkpoints"]
            epoch_steps = {int(c["step"]) for c in entries if c["kind"] != "step"}  # "epoch", or "record" (Recorder)
            keep = [c["file"] for c in entries if c["kind"] != "step" or (include_steps and int(c["step"]) not in epoch_steps)]
        except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
            raise CheckpointError(f"{str(self.manifest_path)!r} is not a readable run manifest: {err!r}") from err
        if not keep:
            raise CheckpointError(f"the run in {str(self.path)!r} lists no checkpoints yet")
        return [self.path / name for name in keep]


def run_checkpoints(run_dir: str | Path, include_steps: bool = False) -> list[Path]:
    """:meth:`RunFolder.checkpoints` of the folder ``run_dir``."""
    return RunFolder(Path(run_dir)).checkpoints(include_steps)

