"""What ``landscape check`` runs on: the :class:`Subject` (the model, its data and loss, and a factory
of the surface engine), the :class:`View` of a surface and the :class:`PathInput` of a trajectory,
built from a checkpoint's experiment, a surface file and a trajectory file (or the weights at hand).

The checks themselves: :mod:`landscape.workflows.check`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch import Tensor, nn

from landscape.config import Config
from landscape.engine.batchloss import BatchSums, output_sums_of
from landscape.engine.directions import Directions, read_directions_group
from landscape.engine.evaluator import EngineOptions, surface_evaluator, tensor_batches
from landscape.engine.surface import Evaluator
from landscape.errors import ConfigError, LandscapeError
from landscape.figures.views import auto_log
from landscape.io.checkpoint import load_checkpoint
from landscape.io.surface_file import read_surface
from landscape.io.trajectory_file import TrajectoryPoints, load_trajectory
from landscape.zoo.data import TensorSplit

EngineFactory = Callable[[Directions, str], Evaluator]  # (directions, "keep" | "recompute") -> an engine


@dataclass
class Subject:
    """What the surface was computed from: the model, its data per split, the loss as batch sums, and
    how to build the surface engine on other directions (the checks' only way to evaluate points)."""

    model: nn.Module
    data: dict[str, Any]  # split -> TensorSplit (sliced here) or an iterable of the user's batches
    sums: BatchSums
    names: list[str]  # metric names: column "<split>_<name>"
    make_engine: EngineFactory
    device: torch.device

    def batches(self, size: int) -> dict[str, Iterable[Any]]:
        return {k: tensor_batches(v, size) if isinstance(v, TensorSplit) else v for k, v in self.data.items()}


@dataclass(frozen=True)
class View:
    """The surface being checked. ``column`` is the loss the figures draw; ``bn`` how it was computed."""

    name: str
    x: np.ndarray
    y: np.ndarray | None
    values: dict[str, np.ndarray]
    done: np.ndarray
    column: str
    directions: Directions
    bn: str = "keep"
    x_label: str = ""
    y_label: str = ""
    # a progressive surface's (None: exact): the points computed (not interpolated), the column's
    # standard errors, and the points whose every column is exact (every sample read)
    computed: np.ndarray | None = None
    stderr: np.ndarray | None = None
    exact: np.ndarray | None = None
    scale: bool | None = None  # the figures' scale (plot.log): True log, False linear, None the figures' own rule

    @property
    def z(self) -> np.ndarray:
        return np.where(self.done, self.values[self.column], np.nan)

    @property
    def log(self) -> bool:
        """The figures' scale: ``scale`` when set, else their rule (a positive loss spanning more than a decade: log)."""
        return self.scale if self.scale is not None else auto_log(self.column, self.values[self.column][self.done])


@dataclass(frozen=True)
class PathInput:
    """A trajectory over the view's plane: coordinates, labels, each checkpoint's own loss (NaN
    where unknown: evaluated by the engine from ``states``) and its weights (None: not at hand)."""

    coords: np.ndarray  # (n, 2)
    labels: list[str]
    losses: np.ndarray  # (n,)
    states: list[dict[str, Tensor]] | None
    variance: float


# --- from files and experiments ------------------------------------------------------------------------


def bn_mode(recorded: Any) -> str:
    """The BatchNorm mode a surface file records: ``keep`` (files before 0.2 say ``fixed``) or ``recompute``."""
    return "recompute" if recorded == "recompute" else "keep"


def subject_from_experiment(exp: Any, cfg: Config, device: torch.device) -> Subject:
    """The model, data and loss of a checkpoint's experiment, with the surface job's engine."""
    from landscape.engine.outputloss import is_batch_loss
    from landscape.workflows.surface import _data_splits, batch_loss_sums

    if exp.batches is not None:
        raise ConfigError("landscape check needs (inputs, targets) data in memory; these data are streamed or come as "
                          "dict batches: check a --max-samples subset, or use landscape.check in Python")
    s = cfg.surface
    if s.metric != "loss":
        raise ConfigError(f"landscape check checks loss surfaces; --metric {s.metric} is not one")
    splits = _data_splits(exp, cfg, device)
    user = any(is_batch_loss(n) for n in s.losses)
    metrics = None if user else exp.metrics(s.losses)
    sums, names = (batch_loss_sums(s.losses), ["loss"]) if metrics is None else (output_sums_of(metrics), list(metrics.names))

    def engine(dirs: Directions, bn: str) -> Evaluator:
        options = EngineOptions(batch_size=s.batch_size, points_per_call=1, bn=bn, bn_batches=s.bn_batches)  # type: ignore[arg-type]
        return surface_evaluator(exp.model, dirs, splits, metrics, batch_loss=None if metrics is not None else (names, sums),
                                 options=options, bn_data=exp.data.train if bn == "recompute" else None, device=device)
    return Subject(exp.model, dict(splits), sums, names, engine, device)


def view_of_file(path: Path, name: str | None = None, column: str | None = None, scale: bool | None = None) -> View:
    """A surface file with the directions it embeds; ``scale``: the figures' (``plot.log``)."""
    sf = read_surface(path)
    try:
        with h5py.File(sf.path, "r") as f:
            dirs = read_directions_group(f["directions"])
    except (OSError, KeyError) as err:
        raise ConfigError(f"surface file {str(path)!r} holds no directions to check against: {err}") from err
    col = column or next((c for c in sf.columns if c.endswith("_loss")), sf.columns[0])
    if col not in sf.columns:
        raise ConfigError(f"surface file {str(path)!r} has no column {col!r}; it has {', '.join(sf.columns)}")
    return View(name or path.stem, sf.grid.x, sf.grid.y, dict(sf.values), sf.done, col, dirs,
                bn_mode(sf.attrs.get("settings", {}).get("bn")), str(sf.attrs.get("x_label", "")),
                str(sf.attrs.get("y_label", "")), **progressive_view(sf.columns, sf.extra, col), scale=scale)


def progressive_view(columns: Sequence[str], extra: Mapping[str, np.ndarray], column: str) -> dict[str, np.ndarray | None]:
    """A progressive surface's ``computed``, ``stderr`` and ``exact`` for :class:`View` (none for an exact one)."""
    if f"{column}_stderr" not in extra:
        return {}
    computed = np.asarray(extra.get("computed", np.ones(extra[f"{column}_stderr"].shape)), dtype=bool)
    exact = computed & np.logical_and.reduce([np.asarray(extra[f"{c}_stderr"]) == 0 for c in columns])
    return {"computed": computed, "stderr": np.asarray(extra[f"{column}_stderr"], dtype=np.float64), "exact": exact}


def path_from_file(path: Path, recorded: bool, states: Mapping[str, Mapping[str, Tensor]] | None = None) -> PathInput:
    """A trajectory file's path; the checkpoints' weights from ``states`` or their files (when they are still there).

    ``recorded``: the loss each checkpoint recorded (its training loss over the whole training
    split) is the loss the surface shows; otherwise the engine evaluates each checkpoint."""
    traj = load_trajectory(path)
    return path_input(traj, recorded, states)


def path_input(traj: TrajectoryPoints, recorded: bool | None,
               states: Mapping[str, Mapping[str, Tensor]] | None = None) -> PathInput:
    """``recorded``: use the losses the checkpoints recorded (True), have the engine evaluate each
    checkpoint (False), or record where the weights are not at hand (None). ``states``: weights
    already in memory, by the checkpoint's name in the trajectory (those ``landscape run``'s
    trajectory stage read); the others are read from their files."""
    kept: list[dict[str, Tensor]] | None = []
    for name in traj.names:
        if states is not None and name in states:
            kept.append(dict(states[name]))  # type: ignore[union-attr]
            continue
        try:
            kept.append(load_checkpoint(name).state_dict)  # type: ignore[union-attr]
        except (LandscapeError, OSError):
            kept = None
            break
    use = recorded if recorded is not None else kept is None
    losses = np.asarray(traj.losses, dtype=np.float64) if use else np.full(len(traj.coords), np.nan)
    labels = [f"epoch {int(e)}" if e >= 0 else f"#{i}" for i, e in enumerate(traj.epochs)]
    variance = float(np.nansum(np.asarray(traj.explained_variance, dtype=np.float64)))
    return PathInput(np.asarray(traj.coords, dtype=np.float64), labels, losses, kept, variance)
