"""Surface jobs: checkpoint + directions + grid → a resumable HDF5 surface file.

This is the orchestration behind ``landscape surface``; the CLI only parses flags into a
:class:`~landscape.config.Config` and calls :func:`run_surface`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from landscape import __version__
from landscape.checkpoint import Checkpoint, load_checkpoint, sha256_file
from landscape.config import Config, config_to_dict
from landscape.data import TensorSplit
from landscape.directions import Directions, load_directions, model_fingerprint, random_directions, target_directions
from landscape.errors import ConfigError, DirectionError
from landscape.experiment import Experiment, experiment_from_checkpoint, resolve_device
from landscape.progress import bar
from landscape.surface import MAX_POINTS, Grid, SurfaceEngine
from landscape.surface_file import SurfaceFile, exclusive_lock, open_surface


@dataclass(frozen=True)
class DirectionSource:
    """Where the directions come from: random (default), a saved file, or target checkpoints."""

    file: Path | None = None
    target: Path | None = None
    target2: Path | None = None


def make_directions(exp: Experiment, cfg: Config, source: DirectionSource, dims: int, unsafe: bool = False) -> Directions:
    if source.file is not None:
        if source.target is not None:
            raise ConfigError("give either --directions or --target, not both")
        dirs = load_directions(source.file, exp.model)
    elif source.target is not None:
        b = load_checkpoint(source.target, unsafe=unsafe).state_dict
        c = load_checkpoint(source.target2, unsafe=unsafe).state_dict if source.target2 is not None else None
        dirs = target_directions(exp.model, b, c, cfg.directions.dir_type)
    else:
        if source.target2 is not None:
            raise ConfigError("--target2 needs --target")
        return random_directions(exp.model, cfg.directions, dims)
    if dirs.dims < dims:
        raise DirectionError(f"a 2D grid (--y) needs two directions; {source.file or source.target} gives one")
    return dirs if dirs.dims == dims else Directions(dirs.x, None, dirs.meta)


def axis_label(dirs: Directions, which: str) -> str:
    kind = dirs.meta.get("kind", "random")
    if kind == "pca":
        ev = dirs.meta.get("explained_variance", [float("nan")] * 2)
        i = 0 if which == "x" else 1
        return f"PC{i + 1} ({100 * float(ev[i]):.1f} %)"
    if kind == "target":
        return "α (0 = A, 1 = B)" if which == "x" else "β (0 = A, 1 = C)"
    if kind == "hessian":
        return f"{'α' if which == 'x' else 'β'} (Hessian eigenvector {1 if which == 'x' else 2})"
    norm = dirs.meta.get("norm", "filter")
    return f"{'α' if which == 'x' else 'β'} ({norm}-normalized)" if norm not in ("none", "as-saved") else ("α" if which == "x" else "β")


def _splits(exp: Experiment, cfg: Config) -> dict[str, TensorSplit]:
    names = ["train", "test"] if cfg.surface.split == "both" else [cfg.surface.split]
    return {n: exp.data.split(n).subset(cfg.surface.max_samples) for n in names}


def surface_settings(cfg: Config, ckpt_sha: str, dirs: Directions, grid_spec: tuple[str, str]) -> dict[str, Any]:
    """Everything that determines the values in the file (device and batch size do not)."""
    full = config_to_dict(cfg)
    s = cfg.surface
    return {
        "checkpoint_sha256": ckpt_sha,
        "data": full["data"],
        "model": full["model"],
        "losses": list(s.losses) or [cfg.train.loss],
        "split": s.split,
        "max_samples": s.max_samples,
        "bn": s.bn,
        "bn_batches": s.bn_batches if s.bn == "recompute" else 0,
        "directions": {**{k: v for k, v in dirs.meta.items() if isinstance(v, str | int | float)}, "fingerprint": dirs.fingerprint()},
        "x": grid_spec[0],
        "y": grid_spec[1],
    }


def run_surface(checkpoint: str | Path, out: str | Path, cfg: Config | None = None, *, source: DirectionSource = DirectionSource(),
                overwrite: bool = False, unsafe: bool = False, max_points: int = MAX_POINTS,
                checkpoint_obj: Checkpoint | None = None) -> dict[str, Any]:
    """Compute (or resume) the surface around ``checkpoint`` into ``out``; returns a summary.

    ``cfg`` defaults to the checkpoint's own config; its ``surface`` and ``directions`` sections
    choose the grid, metrics and directions.
    """
    t_start = time.perf_counter()
    ckpt = checkpoint_obj or load_checkpoint(checkpoint, unsafe=unsafe)
    exp = experiment_from_checkpoint(ckpt, cfg)
    cfg = cfg or exp.config
    s = cfg.surface
    grid = Grid.parse(s.x, s.y, max_points)
    dirs = make_directions(exp, cfg, source, 1 if grid.y is None else 2, unsafe)
    device = resolve_device(s.device)
    if s.max_samples < 0 or s.bn_batches < 1 or s.batch_size < 0 or s.points_per_call < 0:
        raise ConfigError("surface.max_samples, batch_size and points_per_call must be ≥ 0 and bn_batches ≥ 1")
    metrics = exp.metrics(s.losses)
    engine = SurfaceEngine(exp.model, dirs, _splits(exp, cfg), metrics, device=device, batch_size=s.batch_size,
                           bn=s.bn, bn_data=exp.data.train, bn_batches=s.bn_batches, points_per_call=s.points_per_call)
    out_path = Path(out)
    settings = surface_settings(cfg, sha256_file(ckpt.path), dirs, (s.x, s.y))
    attrs = {"landscape_version": __version__, "checkpoint": str(ckpt.path), "checkpoint_sha256": settings["checkpoint_sha256"],
             "x_label": axis_label(dirs, "x"), "y_label": axis_label(dirs, "y") if grid.y is not None else "",
             "config": str(config_to_dict(cfg))}
    with exclusive_lock(out_path):
        sf = open_surface(out_path, grid, engine.columns, settings, attrs, dirs, model_fingerprint(exp.model), overwrite)
        computed, seconds = _fill(sf, engine)
    return summarize(sf, computed=computed, seconds=seconds, total_seconds=time.perf_counter() - t_start,
                     points_per_call=engine.points_per_call, cosine=dirs.cosine())


def _fill(sf: SurfaceFile, engine: SurfaceEngine) -> tuple[int, float]:
    """Evaluate every pending point, flushing to disk every few seconds and at the end."""
    pending = sf.pending
    coords = sf.grid.coords(pending)
    t0 = time.perf_counter()
    with bar(len(pending), "surface", unit="pt") as pbar:
        try:
            vals, used = engine.calibrate(coords)
            if used:
                sf.record(pending[:used], vals)
                pbar.update(used)
            chunk = max(8, 4 * engine.points_per_call)
            for start in range(used, len(pending), chunk):
                sl = slice(start, start + chunk)
                sf.record(pending[sl], engine.evaluate(coords[sl]))
                pbar.update(len(coords[sl]))
                sf.maybe_flush()
        finally:
            sf.flush()  # on success, Ctrl-C or error: whatever was computed is on disk
    return len(pending), time.perf_counter() - t0


def summarize(sf: SurfaceFile, **extra: Any) -> dict[str, Any]:
    """Grid, done/total, diverged points, and the minimum of each loss with where it is."""
    out: dict[str, Any] = {"file": str(sf.path), "grid": list(sf.grid.shape), "done": int(sf.done.sum()),
                           "total": sf.grid.size, **extra}
    diverged = np.zeros(sf.grid.shape, dtype=bool)
    mins: dict[str, Any] = {}
    for name in sf.columns:
        v = np.where(sf.done, sf.values[name], np.nan)
        bad = sf.done & ~np.isfinite(sf.values[name])
        diverged |= bad
        finite = np.where(np.isfinite(v), v, np.nan)
        if np.isfinite(finite).any():
            idx = np.unravel_index(np.nanargmin(finite) if not name.endswith("_acc") else np.nanargmax(finite), sf.grid.shape)
            coord = [float(sf.grid.x[idx[0]])] + ([float(sf.grid.y[idx[1]])] if sf.grid.y is not None else [])
            mins[name] = {"best": float(finite[idx]), "at": coord}
    out["diverged"] = int(diverged.sum())
    out["best"] = mins
    if "seconds" in extra and extra.get("computed"):
        out["points_per_second"] = extra["computed"] / max(extra["seconds"], 1e-9)
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in out.items()}


def format_summary(summary: dict[str, Any]) -> str:
    """A few human-readable lines for the terminal."""
    grid = "×".join(str(n) for n in summary["grid"])
    lines = [f"{summary['file']}: {len(summary['grid'])}D grid {grid}, {summary['done']}/{summary['total']} points done, "
             f"{summary['diverged']} diverged (NaN/inf)"]
    if summary.get("computed"):
        lines.append(f"computed {summary['computed']} points in {summary['seconds']:.1f} s "
                     f"({summary['points_per_second']:.1f} points/s, {summary.get('points_per_call', 1)} per call)")
    elif "computed" in summary:
        lines.append("nothing to compute: every point was already done")
    if summary.get("cosine") is not None:
        lines.append(f"cosine between the two directions: {summary['cosine']:+.4f}")
    for name, best in summary.get("best", {}).items():
        word = "max" if name.endswith("_acc") else "min"
        at = ", ".join(f"{c:+.3g}" for c in best["at"])
        lines.append(f"{word} {name} = {best['best']:.6g} at ({at})")
    return "\n".join(lines)
