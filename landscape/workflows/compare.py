"""Compare loss landscapes across loss choices: why does one objective train better than another?

``landscape compare CONFIG --out DIR`` trains the config's model on its data once per loss in
``[compare] losses``, every run from the same initial weights (``train.seed`` seeds the
initialization, and the architecture does not depend on the loss) and with the same data order
(epoch ``e`` is a permutation seeded by ``(train.seed, e)``). For each loss it then computes

- the optimizer trajectory in its PCA plane (Li et al. 2018, §7) and the loss surface of that
  plane on ``±(1 + compare.pca_margin)·R`` along both components, ``R`` the largest distance of a
  checkpoint from the final model in that plane (``DIR/<loss>/surface_pca.h5``);
- the 2D surface around the final model along two filter-normalized random directions drawn
  with ``directions.seed`` — the same Gaussian draw for every loss (``DIR/<loss>/surface_2d.h5``);
- the 1D slice along the first of those directions (``DIR/<loss>/slice_1d.h5``).

Every surface is evaluated under the run's own training loss (dataset ``<split>_loss``), under
every compared criterion (``<split>_<name>``, so each model can also be judged by the others'
yardstick) and, for classification and binary tasks, the accuracy (``<split>_acc``). Re-running
resumes: finished trainings, trajectories and surfaces are checked against the config and reused,
and the tables and figures are rewritten only when the config or one of their input files changed.

Outputs: ``DIR/summary.csv`` and ``DIR/summary.md`` (one row per loss), ``DIR/flatness_by_criterion.csv``
(every model under every criterion), figures in ``DIR/figures/`` (PDF and PNG), the 2D surfaces as
interactive pages ``DIR/interactive/<loss>_surface_{2d,pca}_interactive.html`` when plotly is installed,
and ``DIR/index.html``, one page with the tables, every figure and the settings.

Figures of merit: :mod:`landscape.engine.flatness` defines the flatness and curvature measures, and
**steps (epochs) to target** is the training step (and ``step / steps per epoch``) of the first
saved checkpoint whose test accuracy is ``≥ compare.target_acc``; blank if none is. The
resolution is that of the checkpoints (every epoch, or ``train.save_every_steps``).
:data:`DEFINITIONS` holds the texts of all of them, keyed by the table's column names.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from landscape.atomic import write_json_atomic, write_text_atomic
from landscape.config import Config, config_to_dict, dumps_toml
from landscape.engine.flatness import (
    Curvature,
    curvature,
    doubling_radius,
    mean_increase,
    origin_index,
    relative_loss,
)
from landscape.engine.grid import Grid
from landscape.engine.losses import LOSSES, canonical_loss_name
from landscape.errors import ConfigError, GridError
from landscape.figures import compare as compare_figures
from landscape.figures import plot
from landscape.figures.compare import LossResult, column, make_figures, path_radius
from landscape.figures.index_page import Table, write_index
from landscape.figures.interactive import plotly_available, write_views
from landscape.io.run_folder import RunFolder, run_checkpoints
from landscape.io.surface_file import SurfaceFile, read_surface
from landscape.io.tables import markdown_table, write_csv
from landscape.io.trajectory_file import TrajectoryPoints, load_trajectory
from landscape.version import __version__
from landscape.workflows._steps import check_trajectory_epochs, ensure_surface, ensure_trained, ensure_trajectory
from landscape.workflows.check import check_compare
from landscape.workflows.run import training_config as run_training_config
from landscape.workflows.sharpness import sharpness_columns
from landscape.workflows.surface import DirectionSource

Log = Callable[[str], None]

DEFINITIONS: dict[str, str] = {
    "final_train_loss": "training loss of the final checkpoint under the run's own criterion (units differ between rows)",
    "final_test_loss": "test loss of the final checkpoint under the run's own criterion",
    "final_train_acc": "training accuracy of the final checkpoint",
    "final_test_acc": "test accuracy of the final checkpoint",
    "steps_to_target": "training steps until the first saved checkpoint with test accuracy ≥ target_acc (blank: never)",
    "epochs_to_target": "the same in epochs: step / steps per epoch",
    "loss_at_origin": "L(0): the metric at the trained model, the origin of the surfaces",
    "mean_increase": "mean of L(α, β) − L(0) over the 2D grid points with √(α² + β²) ≤ r",
    "doubling_radius": ("along the 1D slice, the smaller over both sides of the first |α| with "
                        "L(α) ≥ L(0) + max(L(0), ε), linearly interpolated between grid points; inf if never"),
    "curvature_mean": ("mean of the two eigenvalues of the Hessian [[2a, b], [b, 2c]] of the least-squares fit "
                       "a·α² + b·αβ + c·β² + d·α + e·β + f over the 2D grid points within r"),
    "curvature_max": "the larger eigenvalue of that Hessian",
    "curvature_min": "the smaller eigenvalue of that Hessian",
    "relative_loss": "1 + (L − L(0)) / max(L(0), ε), i.e. L / L(0) when L(0) ≥ ε (the common scale of the figures)",
}
"""Definitions of the figures of merit, keyed by the column names of ``summary.csv``."""


# --- one loss: its files, config and cached work ---------------------------------------------------


@dataclass(frozen=True)
class LossPaths:
    """Where the outputs of one loss live: ``DIR/<loss>/``."""

    run: Path

    @property
    def trajectory(self) -> Path:
        return self.run / "trajectory.h5"

    @property
    def surface_2d(self) -> Path:
        return self.run / "surface_2d.h5"

    @property
    def slice_1d(self) -> Path:
        return self.run / "slice_1d.h5"

    @property
    def surface_pca(self) -> Path:
        return self.run / "surface_pca.h5"


def compared_losses(config: Config) -> tuple[str, ...]:
    """``compare.losses`` with aliases resolved; unknown or repeated names are errors."""
    names = tuple(canonical_loss_name(n) for n in config.compare.losses)
    unknown = [n for n in names if n not in LOSSES]
    if unknown:
        raise ConfigError(f"compare.losses: unknown loss {unknown[0]!r}; known: {', '.join(LOSSES.names())}")
    if not names or len(set(names)) != len(names):
        raise ConfigError(f"compare.losses must name distinct losses, got {list(config.compare.losses)}")
    return names


def training_config(config: Config, loss: str) -> Config:
    """What a run depends on: data, model and recipe with ``train.loss`` replaced.

    Other sections are left at their defaults, so that changing a plotting or flatness setting
    never invalidates a finished training.
    """
    return run_training_config(dataclasses.replace(config, train=dataclasses.replace(config.train, loss=loss)))


def sharpness_config(config: Config, loss: str) -> Config:
    """The ``compare.sharpness`` measures of one run, under its own loss, with the compare's directions."""
    surface = dataclasses.replace(config.surface, losses=(loss,))
    sharp = dataclasses.replace(config.sharpness, measures=config.compare.sharpness)
    return dataclasses.replace(training_config(config, loss), surface=surface, directions=config.directions, sharpness=sharp)


def surface_config(config: Config, loss: str, x: str, y: str) -> Config:
    """The surface job's config: the run's own loss first (dataset ``<split>_loss``), then the others."""
    others = tuple(n for n in compared_losses(config) if n != loss)
    surface = dataclasses.replace(config.surface, x=x, y=y, losses=(loss, *others), metric="loss")
    return dataclasses.replace(training_config(config, loss), surface=surface, directions=config.directions)


def prepare_loss(config: Config, loss: str, out_dir: Path, overwrite: bool = False, log: Log = lambda _: None) -> list[str]:
    """Train, trace and survey one loss in ``out_dir/<loss>``: run, trajectory and three surfaces.

    Returns what was computed (empty when everything was already there).
    """
    paths = LossPaths(out_dir / loss)
    done: list[str] = []
    if ensure_trained(training_config(config, loss), paths.run, overwrite, log) is not None:
        done.append(f"train {loss}")
    if ensure_trajectory(paths.trajectory, paths.run, config.directions, log, center=config.run.pca_center) is not None:
        done.append(f"trajectory {loss}")
    cc = config.compare
    final = run_checkpoints(paths.run)[-1]
    grid = pca_grid(load_trajectory(paths.trajectory), cc.pca_grid, cc.pca_margin)
    for name, path, x, y, source in (("surface_2d", paths.surface_2d, cc.x, cc.y, DirectionSource()),
                                     ("slice_1d", paths.slice_1d, cc.line_x, "", DirectionSource()),
                                     ("surface_pca", paths.surface_pca, grid, grid, DirectionSource(file=paths.trajectory))):
        step = ensure_surface(final, path, surface_config(config, loss, x, y), source, overwrite, log)
        if step is not None and step.result.computed:
            done.append(f"{name} {loss}")
    return done


def pca_grid(traj: TrajectoryPoints, num: int, margin: float) -> str:
    """``MIN:MAX:NUM`` of both PCA axes: ``±(1 + margin)·R`` with ``num`` (odd) points, 0 on a node.

    Every loss gets the same grid in units of its own ``R``, so the panels of the trajectory
    figure share axes (``PC / R``) while each grid depends on its own path only.
    """
    radius = path_radius(traj)
    if not (math.isfinite(radius) and radius > 0):
        raise GridError(f"the path of {traj.meta.get('source', 'a run')} does not leave its final point: no PCA plane to draw")
    extent = (1.0 + margin) * radius
    return f"{-extent!r}:{extent!r}:{num}"


# --- the whole comparison ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CompareResult:
    out_dir: Path
    results: list[LossResult]
    rows: list[dict[str, Any]]  # summary.csv
    criterion_rows: list[dict[str, Any]]  # flatness_by_criterion.csv
    files: list[Path]
    work: list[str] = field(default_factory=list)  # what this call computed; empty when all was reused


def load_results(out_dir: str | Path, losses: Sequence[str]) -> list[LossResult]:
    """Read every loss's run manifest, trajectory and surfaces from ``out_dir``."""
    out: list[LossResult] = []
    for loss in losses:
        p = LossPaths(Path(out_dir) / loss)
        manifest = RunFolder(p.run).manifest() or {"checkpoints": []}
        out.append(LossResult(loss, manifest, load_trajectory(p.trajectory), read_surface(p.surface_2d),
                              read_surface(p.slice_1d), read_surface(p.surface_pca)))
    return out


def run_compare(config: Config, out_dir: str | Path, overwrite: bool = False, log: Log = lambda _: None) -> CompareResult:
    """Train every loss of ``config.compare.losses``, compute its surfaces, write the table and figures.

    Resumes: only what is missing or incomplete is computed (``CompareResult.work`` lists it);
    tables and figures (``plot.formats`` at ``plot.dpi``) are redrawn only when the config or an
    input file changed. ``overwrite`` replaces outputs made with other settings instead of stopping
    with an error.
    """
    out = Path(out_dir)
    losses = compared_losses(config)
    _check_settings(config)
    work: list[str] = []
    for loss in losses:
        work += prepare_loss(config, loss, out, overwrite, log)
    results = load_results(out, losses)
    rows = summary_rows(results, config)
    for row in rows if config.compare.sharpness else []:  # on request: sharpness of each final model, own loss
        row |= sharpness_columns(run_checkpoints(LossPaths(out / row["loss"]).run)[-1], sharpness_config(config, row["loss"]))
    criterion_rows = flatness_by_criterion(results, config)
    stamp = _stamp(out, losses, config)
    files = _unchanged_outputs(out, stamp)
    if files is None:  # something changed (or was never written): redraw
        files = write_tables(out, rows, criterion_rows, config) + check_compare(config, out, {n: surface_config(config, n, config.compare.x, config.compare.y) for n in losses}, log)  # check.json: index.html
        for name, fig in make_figures(results, config).items():
            files += plot.save_figure(fig, out / "figures" / name, formats=[f for f in config.plot.formats if f != "html"],
                                      dpi=config.plot.dpi)
        files += write_compare_index(out, config, losses, rows, criterion_rows)
        write_json_atomic(out / _STAMP, {"stamp": stamp, "files": [str(f.relative_to(out)) for f in files]})
    return CompareResult(out, results, rows, criterion_rows, files, work)


def write_compare_index(out: Path, config: Config, losses: Sequence[str], rows: Sequence[Mapping[str, Any]],
                        criterion_rows: Sequence[Mapping[str, Any]]) -> list[Path]:
    """The interactive views of every loss's 2D surfaces (when plotly is installed) and ``DIR/index.html``."""
    views = [view for loss in losses for view in ((LossPaths(out / loss).surface_2d, None, f"{loss}_surface_2d"),
             (LossPaths(out / loss).surface_pca, LossPaths(out / loss).trajectory, f"{loss}_surface_pca"))]
    p = config.plot
    written = write_views(views, out / "interactive", metric=p.metric, log=p.log, title=p.title, required="html" in p.formats)
    tables = [Table("Summary", rows, "One row per loss; definitions in summary.md."),
              Table("Every model under every criterion", criterion_rows)]
    others = [out / name for name in ("summary.md", "summary.csv", "flatness_by_criterion.csv")]
    title = f"landscape compare: {config.model.name} on {config.data.name}, {', '.join(losses)}"
    return [*written, write_index(out, title=title, settings=dumps_toml(config_to_dict(config)), tables=tables, files=others)]


_STAMP = ".compare_outputs.json"


def _stamp(out: Path, losses: Sequence[str], config: Config) -> str:
    """sha256 of what the tables and figures come from: config, input files (size, mtime), drawing code."""
    inputs = {}
    for loss in losses:
        p = LossPaths(out / loss)
        for f in (p.run / "run.json", p.trajectory, p.surface_2d, p.slice_1d, p.surface_pca):
            st = f.stat()
            inputs[str(f.relative_to(out))] = [st.st_size, st.st_mtime_ns]
    # the drawing code too, so that a changed figure function redraws even within one version
    code = [hashlib.sha256(Path(m).read_bytes()).hexdigest()
            for m in [Path(__file__), Path(compare_figures.__file__ or ""), *plot.source_files()]]
    text = json.dumps({"config": config_to_dict(config), "inputs": inputs, "version": __version__, "code": code,
                       "views": plotly_available()},  # installing plotly later writes the interactive views
                      sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _unchanged_outputs(out: Path, stamp: str) -> list[Path] | None:
    """The files written for ``stamp`` when they are all still there, else None."""
    try:
        record = json.loads((out / _STAMP).read_text())
    except (OSError, json.JSONDecodeError):
        return None
    files = [out / f for f in record.get("files", [])]
    return files if record.get("stamp") == stamp and files and all(f.is_file() for f in files) else None


def _check_settings(config: Config) -> None:
    """What the config dataclasses cannot check alone: enough epochs for a plane, grids with a node at 0."""
    check_trajectory_epochs(config.train.epochs)
    for spec in (config.compare.x, config.compare.y, config.compare.line_x):
        origin_index(Grid.parse(spec).x, "compare grid " + spec)


# --- the tables ------------------------------------------------------------------------------------


def steps_to_target(manifest: Mapping[str, Any], target: float) -> tuple[int, float] | None:
    """(step, epochs) of the first checkpoint with test accuracy ≥ ``target``; None if there is none."""
    checkpoints = manifest["checkpoints"]
    per_epoch = next((c["step"] / c["epoch"] for c in checkpoints if c["kind"] == "epoch" and c["epoch"] > 0), math.nan)
    for c in checkpoints:
        acc = c.get("test_acc")
        if acc is not None and acc >= target:
            return int(c["step"]), float(c["step"] / per_epoch) if c["step"] else 0.0
    return None


def flatness(surface_2d: SurfaceFile, slice_1d: SurfaceFile, col: str, radius: float, floor: float) -> dict[str, float]:
    """The flatness figures of one metric column (see :data:`DEFINITIONS`)."""
    x, y = surface_2d.grid.x, surface_2d.grid.y
    if y is None:
        raise GridError(f"{surface_2d.path} is a 1D surface; flatness needs the 2D one")
    z = surface_2d.values[col]
    fit = curvature(x, y, z, radius)
    return {
        "loss_at_origin": float(z[origin_index(x, "x"), origin_index(y, "y")]),
        "mean_increase": mean_increase(x, y, z, radius),
        "doubling_radius": doubling_radius(slice_1d.grid.x, slice_1d.values[col], floor),
        "curvature_mean": fit.mean,
        "curvature_max": fit.eigenvalues[0],
        "curvature_min": fit.eigenvalues[1],
    }


def summary_rows(results: Sequence[LossResult], config: Config) -> list[dict[str, Any]]:
    """One row per loss: final metrics, speed to the target accuracy, flatness under the own loss."""
    cc = config.compare
    rows = []
    for r in results:
        final = r.manifest["checkpoints"][-1]
        row: dict[str, Any] = {"loss": r.loss, "final_train_loss": final["train_loss"], "final_test_loss": final["test_loss"]}
        if "test_acc" in final:
            reached = steps_to_target(r.manifest, cc.target_acc)
            row |= {"final_train_acc": final["train_acc"], "final_test_acc": final["test_acc"],
                    "steps_to_target": reached[0] if reached else None, "epochs_to_target": reached[1] if reached else None}
        row |= flatness(r.surface_2d, r.slice_1d, column(r.surface_2d), cc.radius, cc.floor)
        rows.append(row)
    return rows


def flatness_by_criterion(results: Sequence[LossResult], config: Config) -> list[dict[str, Any]]:
    """Every trained model's flatness under every compared criterion (one unit per criterion)."""
    cc = config.compare
    return [{"trained_with": r.loss, "evaluated_with": crit,
             **flatness(r.surface_2d, r.slice_1d, column(r.surface_2d, crit), cc.radius, cc.floor)}
            for r in results for crit in r.surface_2d.attrs["settings"]["losses"]]


def write_tables(out: Path, rows: Sequence[Mapping[str, Any]], criterion_rows: Sequence[Mapping[str, Any]],
                 config: Config) -> list[Path]:
    """``summary.csv``, ``summary.md`` (both tables with their definitions) and ``flatness_by_criterion.csv``."""
    cc = config.compare
    write_csv(out / "summary.csv", rows)
    write_csv(out / "flatness_by_criterion.csv", criterion_rows)
    keys = [k for k in rows[0] if k in DEFINITIONS] + ["relative_loss"]
    notes = [f"- `{k}`: {DEFINITIONS[k]}" for k in keys]
    target = f", target accuracy = {cc.target_acc}" if "steps_to_target" in rows[0] else " (no accuracy: not a classification task)"
    text = [f"# Loss comparison: {config.model.name} on {config.data.name}", "",
            f"r = {cc.radius}, ε = {cc.floor}{target}; α, β in filter-normalized units; "
            "flatness under each run's own training loss.", "", *markdown_table(rows), "",
            "## Every model under every criterion", "", *markdown_table(criterion_rows), "", "## Definitions", "", *notes, ""]
    write_text_atomic(out / "summary.md", "\n".join(text))
    return [out / "summary.csv", out / "summary.md", out / "flatness_by_criterion.csv"]


def format_rows(rows: Sequence[Mapping[str, Any]]) -> str:
    """The summary as a Markdown table (what the CLI prints)."""
    return "\n".join(markdown_table(rows))


__all__ = [
    "DEFINITIONS", "CompareResult", "Curvature", "LossPaths", "LossResult", "curvature",
    "doubling_radius", "flatness", "load_results", "mean_increase", "relative_loss", "run_compare",
    "steps_to_target", "summary_rows",
]
