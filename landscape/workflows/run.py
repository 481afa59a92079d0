"""The main job, ``landscape run CONFIG --out DIR``: train → trajectory → surfaces → figures.

Every stage resumes instead of redoing, so re-running the same command after an interruption
(or after raising ``train.epochs``) does only what is missing:

- **train** resumes from ``run.json`` (:func:`landscape.workflows.train.train`); a finished run with the
  asked number of epochs is not touched;
- **trajectory** (the PCA plane of the run, Li et al. §7) is recomputed only when it was made
  from other checkpoints or with other direction settings;
- **surfaces** resume from their ``done`` mask; a surface made around another final checkpoint
  (the run was trained further) is computed afresh (the rules: :mod:`landscape.workflows._steps`);
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
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from torch import Tensor

from landscape.config import Config, apply_overrides, config_from_dict, config_to_dict, save_config
from landscape.engine.grid import Grid
from landscape.figures.files import plot_surface_file, plot_training_curves
from landscape.figures.index_page import write_run_index
from landscape.figures.interactive import write_views
from landscape.io.checkpoint import Checkpoint, load_checkpoint
from landscape.io.run_folder import RunFolder, run_checkpoints
from landscape.workflows._steps import check_trajectory_epochs, ensure_surface, ensure_trained, ensure_trajectory
from landscape.workflows.check import check_stage
from landscape.workflows.surface import DirectionSource
from landscape.workflows.trajectory import default_grid_overrides

TRAJECTORY = "trajectory.h5"
# The most checkpoint weights (bytes) kept in memory from the trajectory stage for the check stage,
# through the surfaces: the check holds them all at once anyway; past this, it reads them again.
KEEP_BYTES = 1 << 28


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


# --- train ------------------------------------------------------------------------------------------


def _train(cfg: Config, out: Path, overwrite: bool) -> tuple[str, str]:
    tcfg = training_config(cfg)
    result = ensure_trained(tcfg, out, overwrite)
    if result is None:
        return "skipped", f"finished run of {tcfg.train.epochs} epochs"
    last = result.manifest["checkpoints"][-1]
    return "done", (f"{tcfg.model.name} on {tcfg.data.name}, {tcfg.train.epochs} epochs: "
                    f"train loss {last['train_loss']:.4f}" + (f", test acc {last['test_acc']:.4f}" if "test_acc" in last else ""))


# --- trajectory -------------------------------------------------------------------------------------


class KeptStates:
    """Reads checkpoints as :func:`~landscape.io.checkpoint.load_checkpoint` does and keeps each one's
    weights, by the name the trajectory records, while they total at most ``limit`` bytes: the
    trajectory stage reads every checkpoint of the run, and the check stage needs their weights again
    (each one's distance from the PCA plane), so it takes them from here instead of reading the files twice."""

    def __init__(self, limit: int = KEEP_BYTES) -> None:
        self.states: dict[str, dict[str, Tensor]] = {}
        self.limit, self.size = limit, 0

    def __call__(self, path: str | Path, **kwargs: Any) -> Checkpoint:
        ckpt = load_checkpoint(path, **kwargs)
        size = sum(t.numel() * t.element_size() for t in ckpt.state_dict.values())
        if not kwargs.get("prefix") and self.size + size <= self.limit:  # (a prefix reads only part of the weights)
            self.states[str(path)] = ckpt.state_dict
            self.size += size
        return ckpt


def _trajectory(cfg: Config, out: Path, load: Callable[..., Checkpoint] = load_checkpoint) -> tuple[str, str]:
    traj = ensure_trajectory(out / TRAJECTORY, out, cfg.directions, center=cfg.run.pca_center, load=load)
    if traj is None:
        return "skipped", f"{TRAJECTORY} was made from the run's {len(run_checkpoints(out))} checkpoints"
    pc1, pc2 = traj.axis_labels
    return "done", f"{len(traj.coords)} checkpoints, {pc1}, {pc2}"


# --- surfaces ---------------------------------------------------------------------------------------


def _with_grid(cfg: Config, **surface: Any) -> Config:
    return dataclasses.replace(cfg, surface=dataclasses.replace(cfg.surface, **surface))


def surface_jobs(cfg: Config, out: Path) -> list[SurfaceJob]:
    """The three surfaces of the job; the PCA grid covers the projected path (needs the trajectory)."""
    r = cfg.run
    pca_grid = default_grid_overrides(out / TRAJECTORY, num=r.pca_grid, margin=r.pca_margin)
    pca = config_from_dict(apply_overrides(config_to_dict(cfg), pca_grid))
    return [
        SurfaceJob("random_2d", _with_grid(cfg, x=r.random_x, y=r.random_y), DirectionSource(), False),
        SurfaceJob("random_1d", _with_grid(cfg, x=r.line_x, y="", split="both"), DirectionSource(), False),
        SurfaceJob("pca_2d", pca, DirectionSource(file=out / TRAJECTORY), True),
    ]


def _surface(job: SurfaceJob, out: Path, final: Path, overwrite: bool) -> tuple[str, str]:
    step = ensure_surface(final, out / "surfaces" / f"{job.name}.h5", job.config, job.source, overwrite)
    if step is None or step.result.summary is None or not step.result.computed:
        grid = "×".join(str(n) for n in Grid.parse(job.config.surface.x, job.config.surface.y).shape)
        return "skipped", f"{grid} grid, every point already done"
    summary = step.result.summary
    grid = "×".join(str(n) for n in summary["grid"])
    again = "recomputed around the new final checkpoint, " if step.replaced else ""
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
    manifest = RunFolder(out).manifest() or {}
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
    check_trajectory_epochs(cfg.train.epochs)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    stages: list[Stage] = []

    def step(name: str, work: Callable[[], tuple[str, str]]) -> None:
        start = time.perf_counter()
        action, detail = work()
        stages.append(Stage(name, action, detail, time.perf_counter() - start))
        if report is not None:
            report(stages[-1])

    step("train", lambda: _train(cfg, out, overwrite))
    save_config(cfg, out / "run_config.toml")
    kept = KeptStates() if cfg.check.enabled else None
    step("trajectory", lambda: _trajectory(cfg, out, kept if kept is not None else load_checkpoint))
    final = run_checkpoints(out)[-1]
    jobs = surface_jobs(cfg, out)
    for job in jobs:
        step(job.name, functools.partial(_surface, job, out, final, overwrite))
    step("check", lambda: check_stage(cfg, out, {j.name: out / "surfaces" / f"{j.name}.h5" for j in jobs}, out / TRAJECTORY,
                                      "pca_2d", kept.states if kept is not None else None))
    step("figures", lambda: _figures(cfg, out, jobs))
    return stages


def format_stage(stage: Stage) -> str:
    """One line per stage: name, what it did, how long it took."""
    return f"{stage.name:<11} {stage.action:<8} {stage.detail} ({stage.seconds:.1f} s)"
