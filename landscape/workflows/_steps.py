"""The steps ``run`` and ``compare`` share: train, trace the trajectory, compute a surface.

Each step does its work only when its result is missing or stale, and staleness is decided by
content, never by modification times:

- a **training** is reused when :func:`landscape.workflows.train.is_finished` says so
  (finished, the asked epochs, the same training settings); otherwise it starts or resumes;
- a **trajectory** is reused when it was made from as many checkpoints as the run lists, around
  a final checkpoint with the same sha256, and with the same direction rule (``dir_type``,
  ``ignore``);
- a **surface** is left untouched when it is complete and was made with exactly the settings
  the config gives (checkpoint sha256, data, model, directions, grid, ...); otherwise it resumes
  from its ``done`` mask, is computed afresh when it was made around another checkpoint (the
  run was trained further), and is an error when made with other settings, unless ``overwrite``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import h5py

from landscape.config import Config, DirectionsConfig
from landscape.engine.directions import plain_attr
from landscape.errors import ConfigError, LandscapeError, SurfaceFileError
from landscape.io.checkpoint import Checkpoint, load_checkpoint, sha256_file
from landscape.io.run_folder import RunFolder, diff_settings, run_checkpoints
from landscape.io.surface_file import read_surface
from landscape.io.trajectory_file import Trajectory, load_trajectory, save_trajectory
from landscape.workflows.experiment import experiment_from_checkpoint
from landscape.workflows.surface import DirectionSource, SurfaceResult, make_directions, run_surface, surface_settings
from landscape.workflows.train import RunResult, is_finished, train
from landscape.workflows.trajectory import trajectory_from_run

Log = Callable[[str], None]


def check_trajectory_epochs(epochs: int) -> None:
    """A PCA plane needs three checkpoints (the initial weights and two epochs)."""
    if epochs < 2:
        raise ConfigError(f"the PCA plane of a trajectory needs at least 3 checkpoints: train.epochs must be ≥ 2, got {epochs}")


def ensure_trained(cfg: Config, run: Path, overwrite: bool = False, log: Log = lambda _: None) -> RunResult | None:
    """Train (or resume) ``cfg`` in ``run`` unless it is finished there; None when it was."""
    if is_finished(RunFolder(run), cfg):
        return None
    log(f"training with {cfg.train.loss} in {run}")
    return train(cfg, run, overwrite=overwrite)


def trajectory_is_current(path: Path, checkpoints: Sequence[Path], directions: DirectionsConfig, center: bool = True) -> bool:
    """``path`` was made from ``checkpoints`` (count and final sha256) with the same direction rule and
    the same PCA (centred or not; a file that does not say was uncentred)."""
    if not path.is_file():
        return False
    try:
        meta = load_trajectory(path).meta
    except LandscapeError:
        return False
    return (meta.get("num_checkpoints") == len(checkpoints) and meta.get("origin_sha256") == sha256_file(checkpoints[-1])
            and meta.get("dir_type") == directions.dir_type and meta.get("ignore") == directions.ignore
            and bool(meta.get("center", False)) == center)


def ensure_trajectory(path: Path, run: Path, directions: DirectionsConfig, log: Log = lambda _: None, *,
                      center: bool = True, load: Callable[..., Checkpoint] = load_checkpoint) -> Trajectory | None:
    """Compute and save the run's trajectory unless ``path`` is current; None when it was.

    ``center``: the mean-centred PCA of the paper's code (sklearn), or the uncentred plane; ``load``
    reads each checkpoint (:func:`~landscape.workflows.trajectory.compute_trajectory`)."""
    if trajectory_is_current(path, run_checkpoints(run), directions, center):
        return None
    log(f"trajectory {path}")
    traj = trajectory_from_run(run, dir_type=directions.dir_type, ignore=directions.ignore, center=center, load=load)
    save_trajectory(path, traj)
    return traj


def _made_elsewhere(path: Path, checkpoint_sha: str) -> bool:
    """The surface file was computed around another checkpoint (the run has been trained further)."""
    try:
        with h5py.File(path, "r") as f:
            recorded = plain_attr(f.attrs.get("checkpoint_sha256"))
    except OSError:
        return False  # unreadable: run_surface says what is wrong with it
    return recorded is not None and recorded != checkpoint_sha


def surface_is_current(out: Path, checkpoint: Path, cfg: Config, source: DirectionSource) -> bool:
    """``out`` is complete and was computed with exactly the settings ``cfg`` gives around ``checkpoint``."""
    try:
        sf = read_surface(out)
    except LandscapeError:
        return False  # missing or unreadable: run_surface creates it or says what is wrong with it
    if not sf.done.all():
        return False
    exp = experiment_from_checkpoint(load_checkpoint(checkpoint), cfg)
    dims = 2 if cfg.surface.y else 1
    settings = surface_settings(cfg, sha256_file(checkpoint), make_directions(exp, cfg, source, dims),
                                (cfg.surface.x, cfg.surface.y))
    return not diff_settings(sf.attrs["settings"], settings)


@dataclass(frozen=True)
class SurfaceStep:
    """What :func:`ensure_surface` did: the surface job's result, and whether an old file was replaced."""

    result: SurfaceResult
    replaced: bool  # the file was made around another checkpoint and was computed afresh


def ensure_surface(checkpoint: Path, out: Path, cfg: Config, source: DirectionSource, overwrite: bool = False,
                   log: Log = lambda _: None) -> SurfaceStep | None:
    """Compute or resume the surface ``out`` around ``checkpoint``; None when it is current (see the module docstring)."""
    if surface_is_current(out, checkpoint, cfg, source):
        return None
    log(f"surface {out} ({cfg.surface.x}{' × ' + cfg.surface.y if cfg.surface.y else ''})")
    stale = out.exists() and _made_elsewhere(out, sha256_file(checkpoint))
    try:
        result = run_surface(checkpoint, out, cfg, source=source, overwrite=stale)
    except SurfaceFileError:
        if not overwrite:
            raise
        result = run_surface(checkpoint, out, cfg, source=source, overwrite=True)
    return SurfaceStep(result, stale)
