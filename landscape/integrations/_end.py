"""What both callbacks do when training ends: the recorded path's PCA plane, the surface over it,
their figures, all written into the callback's folder (then logged by the callback).

``<out_dir>/trajectory.h5`` (a trajectory file, also a direction file), ``<out_dir>/surface.h5``
(a surface file: ``landscape plot`` reads it) and ``<out_dir>/figures/{trajectory,contour}.png``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from torch import nn

from landscape.errors import ConfigError
from landscape.io.recorder import Recorder

GridSpec = int | tuple[Any, Any]


@dataclass(frozen=True)
class EndResult:
    """The trajectory, the surface and the figure files one callback wrote at the end of training."""

    trajectory: Any  # landscape.Trajectory
    surface: Any  # landscape.Surface
    figures: dict[str, Path]


def check_grid(grid: GridSpec) -> GridSpec:
    """``grid``: an int ≥ 3 (num × num points holding the whole path) or an ``(x, y)`` pair of axes."""
    square = isinstance(grid, int) and not isinstance(grid, bool) and grid >= 3
    if not (square or (isinstance(grid, Sequence) and len(grid) == 2)):
        raise ConfigError(f"grid must be an int ≥ 3 (points per axis around the path) or an (x, y) pair of axes, got {grid!r}")
    return grid


def _with_origin(axis: tuple[float, float, int]) -> np.ndarray:
    """``linspace(*axis)`` with its node nearest 0 set to exactly 0: the path's axes put the final
    weights on a node, but linspace's rounding leaves ~1e-17 there (not the origin bit for bit)."""
    coords = np.linspace(axis[0], axis[1], axis[2])
    coords[int(np.argmin(np.abs(coords)))] = 0.0
    return coords


def open_recorder(out_dir: Path, resume: bool, global_step: int) -> Recorder:
    """The callback's Recorder; a resumed run must continue the recorded steps, not start over."""
    recorder = Recorder(out_dir, resume=resume)
    if global_step < recorder.count:
        raise ConfigError(f"the trainer starts at global step {global_step} but {str(out_dir)!r} already records "
                          f"step {recorder.count}: resume the training itself (from its checkpoint), or choose another folder")
    return recorder


def trajectory_and_surface(out_dir: Path, model: nn.Module, data: Any, loss: Any, grid: GridSpec, *,
                           progress: bool = True) -> EndResult:
    """PCA plane of the checkpoints recorded in ``out_dir`` (Li et al. 2018, §7), the loss surface of
    ``model`` (the final weights) on ``data`` over that plane, and their figures as PNG files."""
    from landscape.api.surface import plot, surface
    from landscape.api.trajectory import trajectory
    from landscape.figures.save import save_figure

    traj = trajectory(out_dir)
    traj.save(out_dir / "trajectory.h5")
    x, y = (_with_origin(a) for a in traj.axes(num=grid)) if isinstance(grid, int) else grid
    s = surface(model, data, loss, directions=traj, x=x, y=y, progress=progress)
    s.save(out_dir / "surface.h5")
    figures: dict[str, Figure] = {
        "trajectory": plot(s, "trajectory", trajectory=traj),  # type: ignore[dict-item]
        "contour": plot(s, "contour"),  # type: ignore[dict-item]
    }
    paths = {name: save_figure(fig, out_dir / "figures" / name, formats=("png",), dpi=100)[0] for name, fig in figures.items()}
    return EndResult(traj, s, paths)
