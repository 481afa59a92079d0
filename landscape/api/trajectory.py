"""``landscape.trajectory``: the PCA plane of a path from any checkpoints, files or in memory.

The plane and the projection are :func:`landscape.workflows.trajectory.compute_trajectory`'s
(PCA of the differences to the final point, Li et al. 2018, §7); this module only turns what a
notebook holds into its inputs: a run folder (``landscape train`` or :class:`landscape.Recorder`),
a folder of foreign checkpoints (files, a Trainer output_dir, Lightning checkpoints), or a list
mixing checkpoint paths, state dicts (bare, ``{"model": ...}``, ``{"state_dict": ...}``, DDP
``module.`` prefixes) and ``nn.Module`` objects, oldest first, the final one last.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from torch import nn

from landscape.config import DirectionsConfig, RunConfig
from landscape.errors import CheckpointError, ConfigError
from landscape.integrations.notebook import TrajectoryDisplay
from landscape.io.checkpoint import Checkpoint, find_state_dict
from landscape.io.foreign import checkpoint_files, is_hf_folder
from landscape.io.trajectory_file import Trajectory as _TrajectoryFile
from landscape.io.trajectory_file import save_trajectory
from landscape.workflows import trajectory as _traj
from landscape.zoo.modules import plain_module

PathItem = str | Path | nn.Module | Mapping[str, Any]
_DIRECTIONS = DirectionsConfig()  # the CLI's defaults


@dataclass(frozen=True, eq=False)
class Trajectory(_TrajectoryFile, TrajectoryDisplay):
    """A path in the plane of its first two principal components.

    ``directions`` (x = PC1, y = PC2, unit norm, zero on biases/norm layers by default) go
    straight into ``landscape.surface(..., directions=t.directions)``; ``coords`` (n, 2) are the
    checkpoints' (α, β) in that plane, oldest first, the final one (0, 0); ``explained_variance``
    the two ratios λ_k / Σλ; ``losses`` the recorded ``train_loss`` per checkpoint (NaN if none).
    Also per checkpoint: ``epochs`` and ``steps`` (n,) int64 (−1 where unknown) and ``names`` (the
    files or ``checkpoint_<i>``); ``spectrum`` (n,) every explained-variance ratio, descending;
    ``meta`` how the plane was made (``center``, ``dir_type``, ``ignore``, ``source``, ...);
    ``fingerprint`` the model's state-dict names → shapes.
    """

    def axes(self, num: int = 31, margin: float = 0.3) -> tuple[tuple[float, float, int], tuple[float, float, int]]:
        """``(x, y)`` grids ``(min, max, num)`` covering the path and the origin (on a node) with ``margin``."""
        def parse(spec: str) -> tuple[float, float, int]:
            lo, hi, n = spec.split(":")
            return float(lo), float(hi), int(n)
        return (parse(_traj.path_axis(self.coords[:, 0], num, margin)),
                parse(_traj.path_axis(self.coords[:, 1], num, margin)))

    def save(self, path: str | Path) -> Path:
        """Write the trajectory file (a direction file too: ``landscape surface --directions``)."""
        save_trajectory(path, self)
        return Path(path)


def _in_memory(item: nn.Module | Mapping[str, Any], i: int) -> Checkpoint:
    """A checkpoint of a model or a state dict held in memory (tensors read, never copied nor changed)."""
    if isinstance(item, nn.Module):
        label = Path(f"<model {i}>")
        return Checkpoint(label, {k: v.detach() for k, v in plain_module(item).state_dict().items()}, None)
    label = Path(f"<state dict {i}>")
    epoch, step, metrics = item.get("epoch"), item.get("step"), item.get("metrics")
    return Checkpoint(label, find_state_dict(item, label), None,
                      epoch if isinstance(epoch, int) else None, step if isinstance(step, int) else None,
                      {k: float(v) for k, v in metrics.items()} if isinstance(metrics, Mapping) else {})


def _items(path: str | Path | Sequence[PathItem], include_steps: bool) -> tuple[list[Path | Checkpoint], str]:
    if isinstance(path, str | Path):
        return list(checkpoint_files(path, include_steps)), str(path)
    if isinstance(path, nn.Module | Mapping) or not isinstance(path, Sequence):
        raise ConfigError(f"trajectory takes a folder or a list of checkpoints, models or state dicts, got {type(path).__name__}")
    out: list[Path | Checkpoint] = []
    for i, item in enumerate(path):
        if isinstance(item, str | Path):
            if Path(item).is_dir() and not is_hf_folder(Path(item)):
                raise ConfigError(f"item {i} of the list is a folder ({str(item)!r}): list checkpoint files, or pass the folder alone")
            out.append(Path(item))
        elif isinstance(item, nn.Module | Mapping):
            out.append(_in_memory(item, i))
        else:
            raise ConfigError(f"item {i} of the list is a {type(item).__name__}: give a checkpoint path, an nn.Module or a state dict")
    _check_not_aliased(out)
    return out, ""


def _check_not_aliased(items: list[Path | Checkpoint]) -> None:
    """Two in-memory items viewing the same storage are one point, saved by reference by mistake."""
    seen: dict[int, int] = {}
    for i, item in enumerate(items):
        first = next(iter(item.state_dict.values()), None) if isinstance(item, Checkpoint) else None
        if first is not None and first.numel() > 0:
            ptr = first.untyped_storage().data_ptr()
            if ptr in seen:
                raise ConfigError(f"items {seen[ptr]} and {i} of the list share their tensors (a state_dict() is a view "
                                  "of the live weights): snapshot each point with copy.deepcopy(model.state_dict())")
            seen[ptr] = i


def _architecture(given: Sequence[PathItem] | str | Path, model: nn.Module | None) -> nn.Module | None:
    """The model whose names and shapes the directions take: ``model``, else the list's last module, else
    None (:func:`~landscape.workflows.trajectory.model_from_checkpoint` reads it from the final checkpoint)."""
    if model is not None:
        return plain_module(model)
    modules = [] if isinstance(given, str | Path) else [m for m in given if isinstance(m, nn.Module)]
    return plain_module(modules[-1]) if modules else None


def trajectory(path: str | Path | Sequence[PathItem], *, model: nn.Module | None = None, dir_type: str = _DIRECTIONS.dir_type,
               ignore: str = _DIRECTIONS.ignore, center: bool = RunConfig().pca_center, include_steps: bool = False,
               unsafe: bool = False, prefix: str | None = None) -> Trajectory:
    """PCA plane of an optimization path and the path projected onto it (Li et al., 2018, §7).

    Args:
        path: a folder (a run folder with ``run.json``, e.g. a :class:`landscape.Recorder`'s, or
            any folder of checkpoint files, taken in natural name order), or a list, oldest
            first and the final point last, of checkpoint paths, state dicts (bare or under
            ``"model"``/``"state_dict"``, ``module.`` prefixes stripped) and ``nn.Module``
            objects (read, never changed). At least 3 points.
        model: any instance of the architecture (names and shapes only; weights unused, not
            changed). Needed only for foreign checkpoint files with ``dir_type="weights"``.
        dir_type: ``"weights"`` (parameters) or ``"states"`` (every float state-dict entry).
        ignore: ``"biasbn"`` (the paper's default: tensors with ndim ≤ 1 stay out) or ``"none"``.
        center: mean-centre the differences to the final point before the PCA (default, as the
            paper's code: sklearn's PCA centres); ``False`` for the uncentred plane.
        include_steps: with a ``landscape train`` run folder, its step checkpoints too.
        unsafe: load files with ``weights_only=False`` (only files you trust).
        prefix: read only the tensors whose names start with it, stripped (``"model."`` of a
            LightningModule holding several networks); None finds the one prefix that fits ``model``.

    Returns:
        :class:`Trajectory`: ``directions`` for ``landscape.surface``, ``coords`` (n, 2) in units
        of the unit-norm directions, ``explained_variance`` (2,), ``axes()`` for a grid around it.
    """
    items, source = _items(path, include_steps)
    if len(items) < 3:
        raise CheckpointError(f"a PCA plane needs at least 3 checkpoints, got {len(items)}")
    traj = _traj.compute_trajectory(items, model=_architecture(path, model), dir_type=dir_type, ignore=ignore, center=center,
                                    unsafe=unsafe, source=source, prefix=prefix)
    return Trajectory(**{f.name: getattr(traj, f.name) for f in fields(traj)})


__all__ = ["Trajectory", "trajectory"]
