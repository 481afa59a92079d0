"""The main job, ``landscape run CONFIG --out DIR``: train → trajectory → surfaces → figures.

Every stage resumes instead of redoing, so re-running the same command after an interruption
(or after raising ``train.epochs``) does only what is missing:

- **train** resumes from ``run.json`` (:func:`landscape.workflows.train.train`); a finished run with the
  asked number of epochs is not touched;
- **trajectory** (the PCA plane of the run, Li et al. §7) is recomputed only when its file is
  missing, older than the run's final checkpoint, or made with other direction settings;
- **surfaces** resume from their ``done`` mask (:func:`landscape.workflows.surface.run_surface`); a surface
  made around another final checkpoint (the run was trained further) is computed afresh;
- **figures** are cheap and always redrawn, so a change in ``[plot]`` shows at once.

Layout of DIR::

    DIR/config.toml, run.json, checkpoints/   the training run (data, model and train sections)
    DIR/run_config.toml                        the whole resolved config of the job
    DIR/trajectory.h5                          PCA directions of the run and the path in their plane
    DIR/surfaces/random_2d.h5                  2D, two random filter-normalized directions
    DIR/surfaces/random_1d.h5                  1D slice along the first of them, train and test
    DIR/surfaces/pca_2d.h5                     2D, in the plane of the trajectory
    DIR/figures/<surface>_<kind>.<fmt>         every figure that applies, plus training_curves
    DIR/interactive/<surface>_interactive.html the 2D surfaces as interactive pages (when plotly is installed;
                                               plot.formats with "html": required)
    DIR/index.html                             one page linking all of it, with the settings and the numbers
"""

from __future__ import annotations

import dataclasses
import functools
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import h5py

from landscape.config import Config, apply_overrides, config_changes, config_from_dict, config_to_dict, save_config
from landscape.errors import ConfigError, SurfaceFileError
from landscape.figures.files import plot_surface_file, plot_training_curves
from landscape.figures.index_page import write_run_index
from landscape.figures.interactive import write_views
from landscape.io.checkpoint import sha256_file
from landscape.workflows.surface import DirectionSource, run_surface
from landscape.workflows.train import train
from landscape.workflows.trajectory import (
    default_grid_overrides,
    load_trajectory,
    run_checkpoints,
    save_trajectory,
    trajectory_from_run,
)

TRAJECTORY = "trajectory.h5"


@dataclass(frozen=True)
class Stage:
    """What one stage did: ``action`` is "done" or "skipped"; ``detail`` says what and why."""

    name: str
    action: str
    detail: str
    seconds: float


@dataclass(frozen=True)
class SurfaceJob:
    """One surface of the job: its file stem, its config and where its directions come from."""

    name: str
    config: Config
    source: DirectionSource
    with_trajectory: bool  # overlay the optimizer path on its figures


def training_config(cfg: Config) -> Config:
    """Only what determines the weights: changing a grid or a plot option must not invalidate training."""
    return Config(data=cfg.data, model=cfg.model, train=cfg.train)


def _timed(name: str, work: Callable[[], tuple[str, str]]) -> Stage:
    start = time.perf_counter()
    action, detail = work()
    return Stage(name, action, detail, time.perf_counter() - start)


# --- train ------------------------------------------------------------------------------------------


def _finished(out: Path, cfg: Config) -> bool:
    """The run in ``out`` is finished, has ``train.epochs`` epochs and the same settings."""
    try:
        manifest = json.loads((out / "run.json").read_text())
    except (OSError, json.JSONDecodeError):
        return False
    epochs = [c["epoch"] for c in manifest.get("checkpoints", []) if c.get("kind") == "epoch"]
    return (manifest.get("status") == "finished" and bool(epochs) and epochs[-1] == cfg.train.epochs
            and not config_changes(manifest.get("config", {}), cfg))


def _train(cfg: Config, out: Path, overwrite: bool) -> tuple[str, str]:
    tcfg = training_config(cfg)
    if _finished(out, tcfg):
        return "skipped", f"finished run of {tcfg.train.epochs} epochs"
    result = train(tcfg, out, overwrite=overwrite)
    last = result.manifest["checkpoints"][-1]
    return "done", (f"{tcfg.model.name} on {tcfg.data.name}, {tcfg.train.epochs} epochs: "
                    f"train loss {last['train_loss']:.4f}" + (f", test acc {last['test_acc']:.4f}" if "test_acc" in last else ""))


# --- trajectory -------------------------------------------------------------------------------------


def _trajectory_current(path: Path, final: Path, cfg: Config) -> bool:
    if not path.is_file() or path.stat().st_mtime < final.stat().st_mtime:
        return False
    meta = load_trajectory(path).meta
    return (meta.get("dir_type") == cfg.directions.dir_type and meta.get("ignore") == cfg.directions.ignore
            and bool(meta.get("center", False)) == cfg.run.pca_center)  # files without it were uncentred


def _trajectory(cfg: Config, out: Path) -> tuple[str, str]:
    path, final = out / TRAJECTORY, run_checkpoints(out)[-1]
    if _trajectory_current(path, final, cfg):
        return "skipped", f"{path.name} is newer than {final.name}"
    traj = trajectory_from_run(out, dir_type=cfg.directions.dir_type, ignore=cfg.directions.ignore,
                               center=cfg.run.pca_center)
    save_trajectory(path, traj)
    pc1, pc2 = traj.axis_labels
    return "done", f"{len(traj.coords)} checkpoints, {pc1}, {pc2}"


# --- surfaces ---------------------------------------------------------------------------------------


def _with_grid(cfg: Config, **surface: Any) -> Config:
    return dataclasses.replace(cfg, surface=dataclasses.replace(cfg.surface, **surface))


def surface_jobs(cfg: Config, out: Path) -> list[SurfaceJob]:
    """The three surfaces of the job; the PCA grid covers the projected path (needs the trajectory)."""
    r = cfg.run
    pca_grid = default_grid_overrides(out / TRAJECTORY, True, num=r.pca_grid, margin=r.pca_margin)
    pca = config_from_dict(apply_overrides(config_to_dict(cfg), pca_grid))
    return [
        SurfaceJob("random_2d", _with_grid(cfg, x=r.random_x, y=r.random_y), DirectionSource(), False),
        SurfaceJob("random_1d", _with_grid(cfg, x=r.line_x, y="", split="both"), DirectionSource(), False),
        SurfaceJob("pca_2d", pca, DirectionSource(file=out / TRAJECTORY), True),
    ]


def _made_elsewhere(path: Path, checkpoint_sha: str) -> bool:
    """The surface file was computed around another checkpoint (the run has been trained further)."""
    try:
        with h5py.File(path, "r") as f:
            recorded = f.attrs.get("checkpoint_sha256")
    except OSError:
        return False  # unreadable: run_surface says what is wrong with it
    recorded = recorded.decode() if isinstance(recorded, bytes) else recorded
    return recorded is not None and recorded != checkpoint_sha


def _surface(job: SurfaceJob, out: Path, final: Path, final_sha: str, overwrite: bool) -> tuple[str, str]:
    path = out / "surfaces" / f"{job.name}.h5"
    path.parent.mkdir(parents=True, exist_ok=True)
    stale = path.exists() and _made_elsewhere(path, final_sha)
    try:
        summary = run_surface(final, path, job.config, source=job.source, overwrite=stale)
    except SurfaceFileError:
        if not overwrite:
            raise
        summary = run_surface(final, path, job.config, source=job.source, overwrite=True)
    grid = "×".join(str(n) for n in summary["grid"])
    if not summary.get("computed"):
        return "skipped", f"{grid} grid, every point already done"
    again = "recomputed around the new final checkpoint, " if stale else ""
    return "done", (f"{again}{grid} grid, {summary['computed']} points ({summary['points_per_second']:.0f} points/s), "
                    f"{summary['diverged']} diverged")


# --- figures ----------------------------------------------------------------------------------------


def _figures(cfg: Config, out: Path, jobs: list[SurfaceJob]) -> tuple[str, str]:
    p = cfg.plot
    folder = out / "figures"
    formats = [f for f in p.formats if f != "html"]  # html: the interactive views, in DIR/interactive/
    written: list[Path] = []
    for job in jobs:
        trajectory = out / TRAJECTORY if job.with_trajectory else None
        written += plot_surface_file(out / "surfaces" / f"{job.name}.h5", folder, replace(p, formats=tuple(formats)),
                                     trajectory=trajectory, kinds=p.kinds, lenient=True) if formats else []
    manifest = json.loads((out / "run.json").read_text())
    written += plot_training_curves(manifest, folder / "training_curves", replace(p, formats=tuple(formats)))
    views = [(out / "surfaces" / f"{job.name}.h5", out / TRAJECTORY if job.with_trajectory else None, job.name) for job in jobs]
    written += write_views(views, out / "interactive", metric=p.metric, log=p.log, title=p.title, required="html" in p.formats)
    written.append(write_run_index(out, [out / "surfaces" / f"{job.name}.h5" for job in jobs]))
    return "done", f"{len(written)} files in {folder}, {out / 'interactive'} and {out / 'index.html'}"


# --- the job ----------------------------------------------------------------------------------------


def run_pipeline(cfg: Config, out: str | Path, *, overwrite: bool = False,
                 report: Callable[[Stage], None] | None = None) -> list[Stage]:
    """Train, compute the trajectory and the three surfaces, draw every figure; returns what each stage did.

    ``overwrite`` replaces results in ``out`` made with other settings (training included)
    instead of refusing. ``report`` is called after each stage (the CLI prints it).
    """
    if cfg.train.epochs < 2:
        raise ConfigError(f"the PCA plane of a trajectory needs at least 3 checkpoints: train.epochs must be ≥ 2, "
                          f"got {cfg.train.epochs}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stages: list[Stage] = []

    def step(name: str, work: Callable[[], tuple[str, str]]) -> None:
        stages.append(_timed(name, work))
        if report is not None:
            report(stages[-1])

    step("train", lambda: _train(cfg, out, overwrite))
    save_config(cfg, out / "run_config.toml")
    step("trajectory", lambda: _trajectory(cfg, out))
    final = run_checkpoints(out)[-1]
    final_sha = sha256_file(final)
    jobs = surface_jobs(cfg, out)
    for job in jobs:
        step(job.name, functools.partial(_surface, job, out, final, final_sha, overwrite))
    step("figures", lambda: _figures(cfg, out, jobs))
    return stages


def format_stage(stage: Stage) -> str:
    """One line per stage: name, what it did, how long it took."""
    return f"{stage.name:<11} {stage.action:<8} {stage.detail} ({stage.seconds:.1f} s)"
