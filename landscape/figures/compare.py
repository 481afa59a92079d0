"""The figures of ``landscape compare``: every loss's landscape side by side, on shared scales where
the panels are comparable (one criterion, accuracy, relative loss) and on their own where not.

:func:`make_figures` draws them all from the files each loss produced, read back as
:class:`LossResult` (:func:`landscape.workflows.compare.load_results`); the workflow saves them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from matplotlib.figure import Figure

from landscape.config import Config
from landscape.engine.flatness import origin_index, relative_loss
from landscape.errors import GridError
from landscape.figures import plot
from landscape.figures.views import spans_decades
from landscape.io.surface_file import SurfaceFile
from landscape.io.trajectory_file import TrajectoryPoints

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class LossResult:
    """What one loss produced, read back from its files."""

    loss: str
    manifest: dict[str, Any]
    trajectory: TrajectoryPoints
    surface_2d: SurfaceFile
    slice_1d: SurfaceFile
    surface_pca: SurfaceFile


def path_radius(traj: TrajectoryPoints) -> float:
    """``R``: the largest distance of a checkpoint from the final one in the PCA plane."""
    return float(np.max(np.hypot(traj.coords[:, 0], traj.coords[:, 1])))


def _prefix(sf: SurfaceFile) -> str:
    """The split whose columns measure flatness: train unless only test was evaluated."""
    return "test" if sf.attrs["settings"].get("split") == "test" else "train"


def column(sf: SurfaceFile, criterion: str | None = None) -> str:
    """Dataset holding ``criterion`` (None: the run's own loss) in a compare surface file."""
    prefix = _prefix(sf)
    if criterion is None or len(sf.attrs["settings"]["losses"]) == 1:
        return f"{prefix}_loss"
    return f"{prefix}_{criterion}"


# --- the figures ----------------------------------------------------------------------------------


def _loss_scale(zs: dict[str, FloatArray], label: str, floor: float) -> tuple[dict[str, FloatArray], bool, str]:
    """(values, log, label) for panels of losses that together span decades.

    Positive values get a log colour scale. A loss that reaches exactly 0 (a hinge beyond its
    margin) cannot, so it is shown as ``log10 max(L, ε)`` on a linear scale instead.
    """
    finite = np.concatenate([v[np.isfinite(v)] for v in zs.values()])
    if spans_decades(*zs.values()) or not finite.size or float(finite.min()) < 0 or float(finite.max()) < 10 * floor:
        return zs, spans_decades(*zs.values()), label
    with np.errstate(invalid="ignore"):
        return {k: np.log10(np.maximum(v, floor)) for k, v in zs.items()}, False, f"log$_{{10}}$ max({label}, ε)"


def _relative(sf: SurfaceFile, floor: float) -> FloatArray:
    """The run's own loss as :func:`relative_loss` around its value at the surface's origin."""
    col, i = column(sf), origin_index(sf.grid.x, "x")
    at_origin = sf.values[col][i] if sf.grid.y is None else sf.values[col][i, origin_index(sf.grid.y, "y")]
    return relative_loss(sf.values[col], float(at_origin), floor)


def trajectory_figure(results: Sequence[LossResult], floor: float = 1e-3) -> Figure:
    """One panel per loss: its PCA-plane surface (own loss, own colour scale) with its path on top.

    Each loss has its own PCA plane and path radius ``R`` (the farthest checkpoint from the final
    one, in parameter units since the PCA directions have unit norm, given in the panel title);
    coordinates are divided by ``R`` so that every path fills its panel.
    """
    radius = path_radius(results[0].trajectory)
    first = results[0].surface_pca
    if first.grid.y is None:
        raise GridError(f"{first.path} is a 1D surface; the PCA plane needs the 2D one")
    zs: dict[str, FloatArray] = {}
    paths: dict[str, FloatArray] = {}
    dones: dict[str, npt.NDArray[np.bool_]] = {}
    for r in results:
        ev = 100 * np.asarray(r.trajectory.explained_variance)
        name = f"{r.loss}\nR = {path_radius(r.trajectory):.3g}, PCs {ev[0]:.0f} + {ev[1]:.0f} %"
        zs[name] = r.surface_pca.values[column(r.surface_pca)]
        paths[name] = r.trajectory.coords / path_radius(r.trajectory)
        dones[name] = r.surface_pca.done
    zs, log, label = _loss_scale(zs, "train loss (own)", floor)
    return plot.panels(first.grid.x / radius, first.grid.y / radius, zs, shared=False, kind="contour", paths=paths,
                       dones=dones, metric_label=label, x_label="PC1 / R", y_label="PC2 / R", log=log,
                       title="Optimizer paths in each run's PCA plane")


def _random_panels(results: Sequence[LossResult], zs: Mapping[str, FloatArray], **options: Any) -> Figure:
    sf = results[0].surface_2d
    if sf.grid.y is None:
        raise GridError(f"{sf.path} is a 1D surface; the panels need the 2D one")
    return plot.panels(sf.grid.x, sf.grid.y, zs, x_label=str(sf.attrs.get("x_label", "α")),
                       y_label=str(sf.attrs.get("y_label", "β")), **options)


def raw_figure(results: Sequence[LossResult], floor: float = 1e-3) -> Figure:
    """Random-direction surfaces under each run's own loss, each panel with its own colour scale."""
    zs, log, label = _loss_scale({r.loss: r.surface_2d.values[column(r.surface_2d)] for r in results},
                                 "train loss (own)", floor)
    return _random_panels(results, zs, shared=False, kind="contour", metric_label=label, log=log,
                          title="Each run under its own loss (own scales)")


def relative_figure(results: Sequence[LossResult], floor: float) -> Figure:
    """The same surfaces as :func:`raw_figure` as relative loss, on one shared log scale."""
    zs = {r.loss: _relative(r.surface_2d, floor) for r in results}
    return _random_panels(results, zs, shared=True, kind="filled", log=spans_decades(*zs.values()),
                          metric_label="1 + (L − L(0)) / max(L(0), ε)",
                          title="Relative loss (L / L(0)), shared scale")


def accuracy_figure(results: Sequence[LossResult]) -> Figure:
    """Training accuracy around each final model, on the absolute scale [0, 1] shared by all panels."""
    zs = {r.loss: r.surface_2d.values[f"{_prefix(r.surface_2d)}_acc"] for r in results}
    return _random_panels(results, zs, shared=True, kind="filled", vmin=0.0, vmax=1.0,
                          metric_label="train accuracy", title="Accuracy, shared scale")


def criterion_figure(results: Sequence[LossResult], criterion: str, floor: float = 1e-3) -> Figure:
    """Every model evaluated under one ``criterion``: same units, so one shared scale."""
    zs, log, label = _loss_scale({f"trained with {r.loss}": r.surface_2d.values[column(r.surface_2d, criterion)]
                                  for r in results}, f"train {criterion}", floor)
    return _random_panels(results, zs, shared=True, kind="filled", log=log, metric_label=label,
                          title=f"Every model under {criterion}")


def slices_figure(results: Sequence[LossResult], floor: float) -> Figure:
    """The 1D slices overlaid as relative loss (log scale); the dotted line at 2 marks doubling."""
    sf = results[0].slice_1d
    curves = {r.loss: _relative(r.slice_1d, floor) for r in results}
    fig = plot.lines_overlay(sf.grid.x, curves, metric_label="1 + (L − L(0)) / max(L(0), ε)", log=True,
                             x_label=str(sf.attrs.get("x_label", "α")), width="single")
    fig.axes[0].axhline(2.0, color="0.4", lw=0.8, ls=":", zorder=1)
    return fig


def slices_accuracy_figure(results: Sequence[LossResult]) -> Figure:
    sf = results[0].slice_1d
    curves = {r.loss: r.slice_1d.values[f"{_prefix(r.slice_1d)}_acc"] for r in results}
    return plot.lines_overlay(sf.grid.x, curves, metric_label="train accuracy",
                              x_label=str(sf.attrs.get("x_label", "α")), width="single")


def _history(manifest: Mapping[str, Any], key: str) -> tuple[FloatArray, FloatArray]:
    """(epochs, values) over the saved checkpoints; step checkpoints at fractional epochs."""
    checkpoints = manifest["checkpoints"]
    per_epoch = next((c["step"] / c["epoch"] for c in checkpoints if c["kind"] == "epoch" and c["epoch"] > 0), 1.0)
    epochs = np.array([c["step"] / per_epoch for c in checkpoints], dtype=np.float64)
    return epochs, np.array([c.get(key, math.nan) for c in checkpoints], dtype=np.float64)


def training_loss_figure(results: Sequence[LossResult]) -> Figure:
    """Training loss of each run divided by its value at initialization (criteria differ in units)."""
    curves = {}
    for r in results:
        epochs, loss = _history(r.manifest, "train_loss")
        curves[r.loss] = (epochs, loss / loss[0])
    return plot.training_curves(curves, metric_label="train loss / initial", log=True, width="single")


def training_accuracy_figure(results: Sequence[LossResult], target: float) -> Figure:
    """Test accuracy of each run (comparable across losses); the dotted line is the target."""
    curves = {r.loss: _history(r.manifest, "test_acc") for r in results}
    fig = plot.training_curves(curves, metric_label="test accuracy", width="single")
    fig.axes[0].axhline(target, color="0.4", lw=0.8, ls=":", zorder=1)
    return fig


def make_figures(results: Sequence[LossResult], config: Config) -> dict[str, Figure]:
    """Every comparison figure by file name (without suffix)."""
    floor = config.compare.floor
    figures = {"trajectories": trajectory_figure(results, floor), "surfaces_raw": raw_figure(results, floor),
               "surfaces_relative": relative_figure(results, floor), "slices": slices_figure(results, floor),
               "training_loss": training_loss_figure(results)}
    if f"{_prefix(results[0].surface_2d)}_acc" in results[0].surface_2d.columns:
        figures |= {"surfaces_accuracy": accuracy_figure(results), "slices_accuracy": slices_accuracy_figure(results),
                    "training_accuracy": training_accuracy_figure(results, config.compare.target_acc)}
    if len(results) > 1:
        for crit in results[0].surface_2d.attrs["settings"]["losses"]:
            figures[f"surfaces_under_{crit}"] = criterion_figure(results, crit, floor)
    return figures
