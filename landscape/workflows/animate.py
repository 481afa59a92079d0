"""``landscape animate RUN_DIR --out FILE.gif|.mp4``: a run folder of ``landscape run`` → an animation.

- ``path``, ``surface3d``: the run's trajectory (``trajectory.h5``) over the surface of its PCA
  plane (``surfaces/pca_2d.h5``), beside the loss curves of ``run.json``;
- ``evolution``: the landscape around every checkpoint (or ``frames`` of them, evenly spaced),
  each along the same seeded random directions, filter-normalized at that checkpoint (Li et al.
  2018, §4). The surfaces are cached in ``RUN_DIR/evolution/<checkpoint>.h5`` and resume like any
  surface file, so an interrupted animation, or another one of the same grid, computes only what
  is missing.

The drawing is :mod:`landscape.figures.animate`; this module finds the files and the numbers.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from landscape.config import Config, config_to_dict, layered_config, load_config
from landscape.engine.grid import Grid
from landscape.engine.progress import bar
from landscape.errors import AnimationError, CheckpointError, ConfigError
from landscape.figures.animate import (
    Frame,
    PlaneStyle,
    check_output,
    evolution_frames,
    path_frames,
    shared_scale,
    write_animation,
)
from landscape.figures.files import loss_curves
from landscape.figures.views import (
    auto_log,
    check_same_plane,
    coarse_view,
    metric_label,
    path_heights,
    resolve_metric,
)
from landscape.io.checkpoint import load_checkpoint
from landscape.io.run_folder import MANIFEST, RunFolder, run_checkpoints
from landscape.io.surface_file import SurfaceFile, read_surface
from landscape.io.trajectory_file import load_trajectory
from landscape.workflows.experiment import checkpoint_config
from landscape.workflows.surface import run_surface

Kind = Literal["path", "surface3d", "evolution"]
KINDS: tuple[Kind, ...] = ("path", "surface3d", "evolution")
EVOLUTION_DIR = "evolution"


@dataclass(frozen=True)
class AnimateOptions:
    """What to animate and how; ``frames`` 0 means 48 for a path, every checkpoint for an evolution."""

    kind: Kind = "path"
    fps: float = 8.0
    frames: int = 0
    dpi: int = 100
    metric: str = "train_loss"
    log: bool | None = None  # None: log scale for a positive loss spanning more than a decade
    turn: float = 90.0  # surface3d: degrees the camera turns over the animation
    x: str = "-1:1:21"  # evolution: the grid around each checkpoint
    y: str = "-1:1:21"
    max_samples: int = 0  # evolution: samples per split (0 = all)
    overwrite: bool = False  # evolution: recompute cached surfaces made with other settings
    config_file: Path | None = None  # evolution: a TOML config whose sections override the run's own
    settings: tuple[str, ...] = ()  # evolution: section.key=value overrides of the run's config (model, data, loss, device)

    def check(self) -> None:
        if self.kind not in KINDS:
            raise AnimationError(f"unknown animation kind {self.kind!r}; choose from {', '.join(KINDS)}")
        if not (self.fps > 0 and math.isfinite(self.fps)):
            raise AnimationError(f"--fps must be a number > 0, got {self.fps}")
        if self.frames != 0 and self.frames < 2:
            raise AnimationError(f"--frames must be at least 2 (or 0 for the default), got {self.frames}")
        if self.dpi < 10:
            raise AnimationError(f"--dpi must be at least 10, got {self.dpi}")
        if self.max_samples < 0:
            raise AnimationError(f"--max-samples must be ≥ 0, got {self.max_samples}")
        if (self.config_file is not None or self.settings) and self.kind != "evolution":
            raise AnimationError(f"--kind {self.kind} draws the run's saved surfaces; a config, --set, --model, --data, "
                                 "--loss or --device changes only the surfaces of --kind evolution")
        Grid.parse(self.x, self.y)  # a malformed evolution grid fails before anything is computed


def run_animation(run_dir: str | Path, out: str | Path, options: AnimateOptions = AnimateOptions()) -> dict[str, Any]:
    """Write the animation of the run in ``run_dir`` to ``out``; returns a summary (frames, file size, notes)."""
    start = time.perf_counter()
    options.check()
    run, target = Path(run_dir), Path(out)
    check_output(target)  # no ffmpeg for an MP4: say so before computing anything
    manifest = _manifest(run)
    curves = loss_curves(manifest)
    if options.kind == "evolution":
        frames, total, notes = _evolution(run, options, curves, manifest)
    else:
        frames, total, notes = _path(run, options, curves)
    count = write_animation(frames, target, fps=options.fps, dpi=options.dpi, total=total)
    return {"file": str(target), "kind": options.kind, "frames": count, "bytes": target.stat().st_size,
            "seconds": time.perf_counter() - start, "notes": notes}


def format_animation(summary: dict[str, Any]) -> str:
    lines = [f"{summary['file']}: {summary['kind']}, {summary['frames']} frames, "
             f"{summary['bytes'] / 1e6:.2f} MB ({summary['seconds']:.1f} s)"]
    return "\n".join(lines + [f"note: {n}" for n in summary["notes"]])


# --- the run's files ---------------------------------------------------------------------------------


def _manifest(run: Path) -> dict[str, Any]:
    folder = RunFolder(run)
    try:
        manifest = folder.manifest()
    except (OSError, ConfigError) as err:
        raise AnimationError(f"{str(folder.manifest_path)!r} is not a readable run manifest: {err}") from err
    if manifest is None:
        raise AnimationError(f"{str(run)!r} is not a run folder (no {MANIFEST}): make one with "
                             f"`landscape run CONFIG --out {run}`")
    return manifest


def _needed(path: Path, what: str, run: Path) -> Path:
    if not path.is_file():
        raise AnimationError(f"{str(run)!r} has no {path.relative_to(run)} ({what}): make it with "
                             f"`landscape run CONFIG --out {run}`")
    return path


def _auto_log(values: np.ndarray, metric: str, log: bool | None) -> bool:
    """The caller's choice, else a log scale for a positive loss spanning more than a decade."""
    if log is not None:
        return log
    return auto_log(metric, values)


# --- path and surface3d ----------------------------------------------------------------------------------


def _path(run: Path, options: AnimateOptions, curves: dict[str, tuple[np.ndarray, np.ndarray]]) -> tuple[Iterator[Frame], int, list[str]]:
    traj_file = _needed(run / "trajectory.h5", "the optimizer's path", run)
    surface_file = _needed(run / "surfaces" / "pca_2d.h5", "the surface of the path's plane", run)
    full = read_surface(surface_file)
    check_same_plane(full, traj_file)
    sf, partial = coarse_view(full)
    path = load_trajectory(traj_file)
    metric = resolve_metric(sf.columns, options.metric, repr(str(surface_file)))
    z = sf.values[metric]
    log = _auto_log(z[sf.done], metric, options.log)
    scale = shared_scale([z], [sf.done], log)
    x_label, y_label = path.axis_labels
    style = PlaneStyle(metric_label(metric), x_label, y_label)
    epochs = np.where(path.epochs >= 0, path.epochs, np.arange(len(path.epochs))).astype(np.float64)
    heights = path_heights(sf, metric, path) if options.kind == "surface3d" else None
    count = options.frames or 48
    frames = path_frames(sf.grid.x, _y(sf), z, sf.done, path.coords, epochs, curves, frames=count, scale=scale,
                         style=style, kind=options.kind, heights=heights, turn=options.turn)
    notes = [f"{surface_file.name} is {partial.splitlines()[0]}: its finest complete level is drawn"] if partial else []
    return frames, count, notes


def _y(sf: SurfaceFile) -> np.ndarray:
    if sf.grid.y is None:
        raise AnimationError(f"{str(sf.path)!r} is 1D; an animation needs a 2D surface")
    return sf.grid.y


# --- evolution ------------------------------------------------------------------------------------------


def evolution_config(run: Path, options: AnimateOptions) -> Config:
    """The run's own config (``run_config.toml``, else the final checkpoint's) with the evolution grid."""
    saved = run / "run_config.toml"
    cfg = load_config(saved) if saved.is_file() else checkpoint_config(load_checkpoint(run_checkpoints(run)[-1]))
    if cfg is None:
        raise CheckpointError(f"the final checkpoint of {str(run)!r} records no config")
    if options.config_file is not None or options.settings:
        cfg = layered_config(config_to_dict(cfg), options.config_file, options.settings)
    surface = dataclasses.replace(cfg.surface, x=options.x, y=options.y, split="train", max_samples=options.max_samples,
                                  metric="loss")
    return dataclasses.replace(cfg, surface=surface)


def choose_checkpoints(checkpoints: list[Path], frames: int) -> list[Path]:
    """Every checkpoint (``frames`` 0), or ``frames`` of them evenly spaced, the first and last included."""
    if frames == 0 or frames == len(checkpoints):
        return checkpoints
    if frames > len(checkpoints):
        raise AnimationError(f"--frames {frames}: an evolution has one frame per checkpoint, and the run has "
                             f"{len(checkpoints)}")
    picks = np.unique(np.round(np.linspace(0, len(checkpoints) - 1, frames)).astype(int))
    return [checkpoints[i] for i in picks]


def evolution_surfaces(run: Path, options: AnimateOptions) -> list[tuple[Path, Path]]:
    """Compute (or resume) the surface around each chosen checkpoint; returns (checkpoint, surface file) pairs."""
    cfg = evolution_config(run, options)
    chosen = choose_checkpoints(run_checkpoints(run), options.frames)
    folder = run / EVOLUTION_DIR
    files = []
    with bar(len(chosen), "evolution", unit="ckpt") as pbar:
        for ckpt in chosen:
            target = folder / f"{ckpt.stem}.h5"
            run_surface(ckpt, target, cfg, overwrite=options.overwrite)
            files.append((ckpt, target))
            pbar.update(1)
    return files


def _evolution(run: Path, options: AnimateOptions, curves: dict[str, tuple[np.ndarray, np.ndarray]],
               manifest: dict[str, Any]) -> tuple[Iterator[Frame], int, list[str]]:
    pairs = evolution_surfaces(run, options)
    surfaces = [read_surface(f) for _, f in pairs]
    metric = resolve_metric(surfaces[0].columns, options.metric, repr(str(pairs[0][1])))
    zs, dones = [s.values[metric] for s in surfaces], [s.done for s in surfaces]
    log = _auto_log(np.concatenate([z[d] for z, d in zip(zs, dones, strict=True)]), metric, options.log)
    scale = shared_scale(zs, dones, log)
    first = surfaces[0]
    style = PlaneStyle(metric_label(metric), first.attrs.get("x_label") or "α", first.attrs.get("y_label") or "β")
    epoch_of = {(run / c["file"]).resolve(): float(c["epoch"]) for c in manifest["checkpoints"] if "epoch" in c}
    epochs = [epoch_of.get(ckpt.resolve(), float(k)) for k, (ckpt, _) in enumerate(pairs)]
    frames = evolution_frames(first.grid.x, _y(first), zs, dones, epochs, curves, scale=scale, style=style)
    return frames, len(pairs), [f"surfaces cached in {run / EVOLUTION_DIR}"]
