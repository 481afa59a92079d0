"""The trajectory file: a direction file (the two PCA directions) plus group ``trajectory`` with the path.

Row i of ``trajectory/coords`` is checkpoint i, oldest first; the last is the origin (θ_final).
Written atomically; read without a model (the path) or, through
:func:`landscape.engine.directions.load_directions`, as directions for a model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from torch import nn

from landscape.atomic import atomic_path
from landscape.engine.directions import Directions, model_fingerprint, plain_attr, write_directions
from landscape.engine.pca import pca_axis_label
from landscape.errors import DirectionError
from landscape.version import __version__


@dataclass(frozen=True, eq=False)
class TrajectoryPoints:
    """The path in the PCA plane, one row per checkpoint, oldest first; the last one is the origin."""

    coords: np.ndarray  # (n, 2) float64: (α, β) of each checkpoint
    epochs: np.ndarray  # (n,) int64, -1 where unknown
    steps: np.ndarray  # (n,) int64, -1 where unknown
    losses: np.ndarray  # (n,) float64: training loss recorded with the checkpoint, NaN where unknown
    names: tuple[str, ...]  # the checkpoint files
    explained_variance: np.ndarray  # (2,) ratios λ_k / Σλ of the two directions
    meta: dict[str, Any]  # kind, dir_type, ignore, center, origin, origin_sha256, source, ...

    @property
    def axis_labels(self) -> tuple[str, str]:
        center = self.meta.get("center")
        which = None if center is None else bool(center)
        return pca_axis_label(0, self.explained_variance[0], which), pca_axis_label(1, self.explained_variance[1], which)


@dataclass(frozen=True, eq=False)
class Trajectory(TrajectoryPoints):
    """:class:`TrajectoryPoints` plus the two unit directions and what they were made for.

    ``directions`` x = PC1 and y = PC2; ``spectrum`` (n,) every explained-variance ratio λ_k / Σλ,
    descending; ``fingerprint`` the model's state-dict names → shapes (checked when the directions
    are used on a model).
    """

    directions: Directions  # x = v_1, y = v_2 (unit norm, zero on excluded tensors)
    spectrum: np.ndarray  # (n,) every explained-variance ratio, descending
    fingerprint: dict[str, list[int]]  # the model's state-dict names and shapes


def save_trajectory(path: str | Path, traj: Trajectory, model: nn.Module | None = None) -> None:
    """Write the trajectory file (a direction file plus group ``trajectory``) atomically.

    The model fingerprint is ``model``'s when given, else the one recorded in ``traj``.
    """
    fp = model_fingerprint(model) if model is not None else traj.fingerprint
    with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
        write_directions(f, traj.directions, fp)
        f.attrs["explained_variance_all"] = np.asarray(traj.spectrum, dtype=np.float64)
        f.attrs["landscape_version"] = __version__
        g = f.create_group("trajectory")
        g.create_dataset("coords", data=np.asarray(traj.coords, dtype=np.float64))
        g.create_dataset("epoch", data=np.asarray(traj.epochs, dtype=np.int64))
        g.create_dataset("step", data=np.asarray(traj.steps, dtype=np.int64))
        g.create_dataset("loss", data=np.asarray(traj.losses, dtype=np.float64))
        g.create_dataset("checkpoint", data=list(traj.names), dtype=h5py.string_dtype())
        g.attrs["convention"] = ("row i is checkpoint i, oldest first, the last is the origin; coords[i] = (α, β), "
                                 "the least-squares projection of θ_i − θ_final onto (x, y)")


def load_trajectory(path: str | Path) -> TrajectoryPoints:
    """Read the path of a trajectory file (coordinates, epochs, steps, losses, explained variance).

    The directions are not read: :func:`landscape.engine.directions.load_directions` does that for a model.
    """
    p = Path(path)
    if not p.is_file():
        raise DirectionError(f"trajectory file {str(p)!r} does not exist")
    try:
        with h5py.File(p, "r") as f:
            if "trajectory" not in f:
                raise DirectionError(f"{str(p)!r} is not a trajectory file (no group 'trajectory'); "
                                     "make one with `landscape trajectory`")
            t = f["trajectory"]
            coords = np.asarray(t["coords"][()], dtype=np.float64)
            epochs = np.asarray(t["epoch"][()], dtype=np.int64)
            steps = np.asarray(t["step"][()], dtype=np.int64)
            losses = np.asarray(t["loss"][()], dtype=np.float64)
            names = tuple(str(s) for s in t["checkpoint"].asstr()[()])
            meta = {k: plain_attr(v) for k, v in f.attrs.items() if k not in ("model_fingerprint", "fingerprint", "format")}
    except (OSError, KeyError) as err:
        raise DirectionError(f"trajectory file {str(p)!r} is unreadable or incomplete: {err}") from err
    ev = np.asarray(meta.get("explained_variance", [math.nan, math.nan]), dtype=np.float64)
    return TrajectoryPoints(coords, epochs, steps, losses, names, ev, meta)


def stored_coords(path: Path) -> np.ndarray | None:
    """The path's (n, 2) coordinates when ``path`` is a trajectory file, else None."""
    try:
        with h5py.File(path, "r") as f:
            if "trajectory" not in f or "coords" not in f["trajectory"]:
                return None
            return np.asarray(f["trajectory"]["coords"][()], dtype=np.float64)
    except OSError:
        return None  # missing or not HDF5: the direction loader reports it
