"""Figures from files: a surface file (and optionally a trajectory file) → PDF/PNG/SVG files.

The layer between the HDF5 files and the pure array functions of :mod:`landscape.figures.plot`. It
reads a surface (:func:`landscape.io.surface_file.read_surface`) and a trajectory
(:func:`landscape.io.trajectory_file.load_trajectory`), decides which kinds of figure apply to them,
labels the axes from the files' own attributes, and saves each figure as
``<out_dir>/<stem>_<kind>.<fmt>``.

Kinds (:data:`KINDS`):

- ``contour``, ``filled``, ``heatmap``, ``surface3d``: one 2D metric; ``surface3d`` also draws
  the optimizer path on the surface when a trajectory is given;
- ``trajectory``: the path of a trajectory file over the contours of its PCA plane;
- ``line``: a 1D slice, loss and accuracy on twin axes (train solid, test dashed), the two
  models marked when the slice is an interpolation;
- ``panels``: one panel per criterion when the file holds several losses, each with its own
  colour scale (values of different criteria are not comparable).

Array convention (docs/CONTRACTS.md): ``A[i, j]`` is the value at ``(x[i], y[j])``; the plot
functions transpose for matplotlib. Diverged (NaN/inf) and not yet computed points are masked
there, given the file's ``done`` mask.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from landscape.config import PlotConfig
from landscape.errors import ConfigError, GridError, LandscapeError
from landscape.figures import estimates, plot, views
from landscape.figures._style import _boxed, _preset
from landscape.io.surface_file import SurfaceFile, read_surface
from landscape.io.trajectory_file import TrajectoryPoints, load_trajectory

__all__ = [
    "FORMATS",
    "KINDS",
    "PARTIAL_GID",
    "applicable_kinds",
    "applicable_kinds_of",
    "draw",
    "export_surface_file",
    "plot_surface_file",
    "plot_training_curves",
    "surface_figures",
]

PARTIAL_GID = "landscape-partial"
"""``gid`` of the "partial: N of M points" mark on figures of a file still being computed."""
KINDS = ("contour", "filled", "heatmap", "surface3d", "line", "trajectory", "panels")
FORMATS = ("pdf", "png", "svg")


@dataclass(frozen=True)
class _Job:
    """Everything one figure needs: the surface, the chosen metric, the path, the style."""

    sf: SurfaceFile
    metric: str
    path: TrajectoryPoints | None
    style: dict[str, Any]  # keyword options shared by the plot functions
    ax: Axes | None = None  # draw into the caller's axes (landscape.plot(..., ax=...)); None: a new figure

    @property
    def x(self) -> np.ndarray:
        return self.sf.grid.x

    @property
    def y(self) -> np.ndarray:
        assert self.sf.grid.y is not None  # only 2D kinds ask
        return self.sf.grid.y

    @property
    def z(self) -> np.ndarray:
        return self.sf.values[self.metric]

    def plane(self) -> dict[str, Any]:
        """Options of the 2D plot functions: labels from the file, masks from ``done``."""
        return {"done": self.sf.done, "metric_label": views.metric_label(self.metric), "x_label": self.sf.attrs.get("x_label") or "α",
                "y_label": self.sf.attrs.get("y_label") or "β", "ax": self.ax, **self.style}


# --- which kinds apply ------------------------------------------------------------------------------


def applicable_kinds(sf: SurfaceFile, metric: str, has_trajectory: bool) -> dict[str, str | None]:
    """For every kind: None when it applies to this file, else why not (for error messages)."""
    dims = 1 if sf.grid.y is None else 2
    two_d = None if dims == 2 else f"needs a 2D surface, and {str(sf.path)!r} is 1D (use --kind line)"
    found = views.criteria(sf, views.split_of(metric))
    return {
        **dict.fromkeys(("contour", "filled", "heatmap", "surface3d"), two_d),
        "line": None if dims == 1 else f"needs a 1D surface, and {str(sf.path)!r} is 2D",
        "trajectory": two_d or (None if has_trajectory else "needs a trajectory file (--trajectory FILE.h5)"),
        "panels": two_d or (None if len(found) > 1 else
                            f"needs a surface evaluated under several losses (surface --loss a,b); "
                            f"{str(sf.path)!r} holds {', '.join(sf.columns)}"),
    }


def applicable_kinds_of(surface: str | Path, metric: str = "train_loss", has_trajectory: bool = False) -> list[str]:
    """The kinds that apply to a surface file (for messages and callers that want all of them)."""
    sf = read_surface(surface)
    reasons = applicable_kinds(sf, views.resolve_metric(sf.columns, metric, repr(str(surface))), has_trajectory)
    return [k for k in KINDS if reasons[k] is None]


def _choose(kinds: Sequence[str] | None, reasons: dict[str, str | None], lenient: bool) -> list[str]:
    """The kinds to draw: those asked for (all when None) that apply; an explicit misfit raises."""
    asked = list(dict.fromkeys(KINDS if kinds is None else kinds))
    unknown = [k for k in asked if k not in KINDS]
    if unknown:
        raise ConfigError(f"unknown figure kind {unknown[0]!r}; choose from {', '.join(KINDS)}")
    if kinds is not None and not lenient:
        for kind in asked:
            if reasons[kind] is not None:
                raise LandscapeError(f"figure kind {kind!r} {reasons[kind]}")
    return [k for k in asked if reasons[k] is None]


# --- partial files -------------------------------------------------------------------------------------


def _mark_partial(figure: Figure, text: str) -> None:
    """The partial mark, boxed, in the upper right corner of the first axes."""
    _boxed(figure.axes[0], (0.98, 0.98), text, xy3d=(1.0, 1.0), edge="darkred", fontsize=6, ha="right", va="top",
           gid=PARTIAL_GID, zorder=7, color="darkred")


# --- one function per kind ------------------------------------------------------------------------------


def _estimates(job: _Job, figure: Figure, *, centred: bool = False) -> Figure:
    """A progressive surface's marks on a 2D figure (:mod:`landscape.figures.estimates`); none for an exact file."""
    ax = job.ax if job.ax is not None else figure.axes[0]
    estimates.draw_plane_marks(ax, job.sf, job.metric, centred=centred, fontsize=_preset(job.style["width"]).tick - 1)
    return figure


def _from_above(draw: Callable[..., Figure], job: _Job, centred: bool = False) -> Figure:
    """``contour``, ``filled`` and ``heatmap``: the plane seen from above, with a progressive surface's marks."""
    return _estimates(job, draw(job.x, job.y, job.z, **job.plane()), centred=centred)


def _surface3d(job: _Job) -> Figure:
    p = job.path
    path = None if p is None else (p.coords[:, 0], p.coords[:, 1], views.path_heights(job.sf, job.metric, p))
    return plot.surface3d(job.x, job.y, job.z, path, **job.plane())


def _trajectory(job: _Job) -> Figure:
    assert job.path is not None
    x_label, y_label = views.path_labels(job.sf, job.path)
    options = {**job.plane(), "x_label": x_label, "y_label": y_label}
    return _estimates(job, plot.trajectory(job.x, job.y, job.z, job.path.coords, labels=views.epoch_labels(job.path), **options))


def _line(job: _Job) -> Figure:
    """Loss (left) and accuracy (right) of both splits along the slice; ±2 s.e. bands of a progressive surface."""
    what = job.metric.partition("_")[2]
    family = "loss" if what == "acc" else what
    names = [f"{s}_{family}" for s in views.SPLIT_WORDS if f"{s}_{family}" in job.sf.values]
    acc_names = [f"{s}_acc" for s in views.SPLIT_WORDS if f"{s}_acc" in job.sf.values]
    curves = {views.legend_label(c): job.sf.values[c] for c in names}
    accs = {views.legend_label(c): job.sf.values[c] for c in acc_names}
    errors = {views.legend_label(c): err for c in names + acc_names if (err := estimates.stderr_of(job.sf, c)) is not None}
    endpoints = [0.0, 1.0] if job.sf.attrs.get("directions", {}).get("kind") == "target" else None
    label = "loss" if family == "loss" else family.replace("_", " ")
    figure = plot.line(job.x, curves, acc_curves=accs or None, done=job.sf.done, metric_label=label,
                       x_label=job.sf.attrs.get("x_label") or "α", log=job.style["log"], endpoints=endpoints,
                       width=job.style["width"], title=job.style["title"], ax=job.ax, errors=errors or None)
    estimates.estimate_note(job.ax if job.ax is not None else figure.axes[0], estimates.share_line(job.sf, False),
                            _preset(job.style["width"]).tick - 1)
    return figure


def _panels(job: _Job) -> Figure:
    """One panel per criterion, each with its own levels and colourbar."""
    if job.ax is not None:
        raise ConfigError("kind 'panels' lays out its own grid of axes: leave ax out (or draw each criterion with kind='contour')")
    columns = views.criteria(job.sf, views.split_of(job.metric))
    prefix = f"{views.split_of(job.metric)}_"
    zs = {c[len(prefix):].replace("_", " "): job.sf.values[c] for c in columns}
    dones = dict.fromkeys(zs, job.sf.done)
    options = {**job.plane(), "metric_label": f"{views.SPLIT_WORDS[views.split_of(job.metric)]} loss", "width": "double"}
    del options["done"], options["ax"]
    figure = plot.panels(job.x, job.y, zs, shared=False, kind="contour", dones=dones, **options)
    for ax, column in zip(figure.axes, columns, strict=False):  # the panels come first, their colourbars after
        estimates.draw_plane_marks(ax, job.sf, column, centred=False, fontsize=_preset("single").tick - 1)
    return figure


_DRAW: dict[str, Callable[[_Job], Figure]] = {
    "contour": functools.partial(_from_above, plot.contour),
    "filled": functools.partial(_from_above, plot.filled_contour),
    "heatmap": functools.partial(_from_above, plot.heatmap, centred=True),
    "surface3d": _surface3d,
    "line": _line,
    "trajectory": _trajectory,
    "panels": _panels,
}


# --- the public entry point --------------------------------------------------------------------------------


def draw(sf: SurfaceFile, kind: str, metric: str, path: TrajectoryPoints | None, style: dict[str, Any],
         ax: Axes | None = None) -> Figure:
    """One figure ``kind`` of column ``metric`` (``style``: levels, vmin, vmax, log, cmap, width, title)."""
    return _DRAW[kind](_Job(sf, metric, path, style, ax))


def _prepare(surface: str | Path, options: PlotConfig, trajectory: str | Path | None, kinds: Sequence[str] | None,
             lenient: bool) -> tuple[_Job, list[str], str | None]:
    """Read and check everything the figures of one surface file need; returns the job, the kinds
    to draw, and the "partial" mark of a file still being computed (None when complete)."""
    unknown = [f for f in options.formats if f not in FORMATS]
    if unknown or not options.formats:
        raise ConfigError(f"unknown figure format {unknown[0] if unknown else '(none given)'!r}; "
                          f"choose from {', '.join(FORMATS)}")
    if options.levels is not None and options.levels < 2:
        raise ConfigError(f"levels must be at least 2, got {options.levels}")
    if options.dpi < 10:
        raise ConfigError(f"dpi must be at least 10, got {options.dpi}")
    sf, partial = views.coarse_view(read_surface(surface))
    chosen = views.resolve_metric(sf.columns, options.metric, repr(str(surface)))
    path = load_trajectory(trajectory) if trajectory is not None else None
    selected = _choose(kinds, applicable_kinds(sf, chosen, path is not None), lenient)
    if trajectory is not None and ({"trajectory", "surface3d"} & set(selected)):
        views.check_same_plane(sf, Path(trajectory))
    log = options.log
    if log is None:
        log = views.auto_log(chosen, sf.values[chosen][sf.done])
    vmax = options.vmax
    top = (sf.attrs.get("top") or {}).get(chosen) if sf.attrs.get("progressive") else None
    if vmax is None and top is not None and bool(np.any(sf.values[chosen][sf.done] > top)):
        vmax = float(top)  # above the top an estimate stopped early (or was filled): drawn as "above the range"
    style = {"levels": options.levels, "vmin": options.vmin, "vmax": vmax, "log": log, "cmap": options.cmap,
             "width": options.width, "title": views.figure_title(sf, options.title)}
    return _Job(sf, chosen, path, style), selected, partial


def surface_figures(
    surface: str | Path,
    options: PlotConfig = PlotConfig(),
    *,
    trajectory: str | Path | None = None,
    kinds: Sequence[str] | None = None,
    lenient: bool = False,
) -> dict[str, Figure]:
    """The figures of a surface file, by kind, unsaved (for a notebook); arguments as :func:`plot_surface_file`."""
    job, selected, partial = _prepare(surface, options, trajectory, kinds, lenient)
    figures = {kind: _DRAW[kind](job) for kind in selected}
    if partial is not None:
        for figure in figures.values():
            _mark_partial(figure, partial)
    return figures


def plot_surface_file(
    surface: str | Path,
    out_dir: str | Path,
    options: PlotConfig = PlotConfig(),
    *,
    trajectory: str | Path | None = None,
    kinds: Sequence[str] | None = None,
    lenient: bool = False,
) -> list[Path]:
    """Draw the figures of a surface file; returns the files written, ``<out_dir>/<stem>_<kind>.<fmt>``.

    ``kinds`` None draws every kind that applies to the file (2D kinds for a 2D surface,
    ``line`` for a 1D one, ``trajectory`` with a trajectory file, ``panels`` for several
    losses); ``options.kinds`` is not consulted, pass it as ``kinds`` to use it. A kind named in
    ``kinds`` that does not apply raises :class:`LandscapeError`, unless ``lenient`` (for a
    list of defaults meant for any file): then it is skipped. ``options`` is the ``[plot]``
    section: ``metric`` is a column of the file (``train_loss``, ``test_acc``, ...); the format
    ``html`` writes the interactive page ``<stem>_interactive.html`` of a 2D surface (needs plotly,
    the ``interactive`` extra; a 1D surface is an error unless ``lenient`` with other formats);
    ``title`` True gives "<model> on <data>", False none; ``log`` None chooses a log scale for
    a positive loss spanning more than a decade (round linear levels would leave the basin
    around a trained model without a single contour), linear otherwise. A partial file is
    drawn at its finest complete coarse level and marked "partial: N of M points" (:func:`coarse_view`).
    """
    if "html" in options.formats:  # the interactive page (landscape.figures.interactive), beside the static figures
        from landscape.figures.interactive import write_interactive

        static = tuple(f for f in options.formats if f != "html")
        page = write_interactive(surface, out_dir, trajectory=trajectory, metric=options.metric, log=options.log,
                                 title=options.title, skip_1d=lenient and bool(static))
        return page + (plot_surface_file(surface, out_dir, replace(options, formats=static), trajectory=trajectory,
                                         kinds=kinds, lenient=lenient) if static else [])
    job, selected, partial = _prepare(surface, options, trajectory, kinds, lenient)
    stem = Path(out_dir) / Path(surface).stem
    written: list[Path] = []
    for kind in selected:  # drawn and saved one at a time: a failing kind keeps the files before it
        figure = _DRAW[kind](job)
        if partial is not None:
            _mark_partial(figure, partial)
        written += plot.save_figure(figure, stem.with_name(f"{stem.name}_{kind}"), options.formats, options.dpi)
    return written


def loss_curves(run_json: Mapping[str, Any]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Train and test loss against epoch from a run manifest (``run.json``; epoch checkpoints only), by legend label."""
    epochs = [c for c in run_json.get("checkpoints", []) if c.get("kind") == "epoch"]
    if not epochs:
        raise GridError("the run lists no epoch checkpoints to draw")
    x = np.array([c["epoch"] for c in epochs], dtype=np.float64)
    return {views.legend_label(name): (x, np.array([c.get(name, math.nan) for c in epochs], dtype=np.float64))
            for name in ("train_loss", "test_loss") if any(name in c for c in epochs)}


def plot_training_curves(run_json: dict[str, Any], out_stem: Path, options: PlotConfig = PlotConfig(), *,
                         title: str | None = None) -> list[Path]:
    """Loss against epoch for both splits, from a run manifest (``run.json``); returns the files.

    Of ``options`` (the ``[plot]`` section), ``formats``, ``width`` and ``dpi`` apply.
    """
    figure = plot.training_curves(loss_curves(run_json), width=options.width, title=title, log=True)
    return plot.save_figure(figure, out_stem, options.formats, options.dpi)


# --- export ------------------------------------------------------------------------------------------------

EXPORT_FORMATS = ("vtp", "csv", "npz")


def export_surface_file(surface: str | Path, fmt: str, out: str | Path | None = None, *, metric: str | None = None,
                        log: bool = False, zmax: float | None = None) -> Path:
    """Write a surface file as ``vtp`` (one metric as a height field), ``csv`` or ``npz``; returns the path.

    ``csv`` and ``npz`` hold every metric (or only ``metric``) as stored in the file, plus a
    ``done`` column (1 computed, 0 not yet), so a diverged point (NaN, done) and a missing one
    (NaN, not done) stay apart; a progressive surface adds the metrics' ``<column>_stderr``, their
    splits' ``<split>_samples`` and its ``above`` and ``computed`` masks (1/0). ``vtp`` draws ``metric`` (default ``train_loss``) with
    not-computed points left as holes; ``log`` and ``zmax`` shape its heights (vtp only).
    The default ``out`` is the surface file with the format's suffix.
    """
    from landscape.io.export import to_csv, to_npz, to_vtp

    if fmt not in EXPORT_FORMATS:
        raise ConfigError(f"unknown export format {fmt!r}; choose from {', '.join(EXPORT_FORMATS)}")
    sf = read_surface(surface)
    target = Path(out) if out is not None else Path(surface).with_suffix(f".{fmt}")
    source = repr(str(surface))
    if fmt == "vtp":
        if sf.grid.y is None:
            raise GridError(f"{source} is a 1D surface; vtp needs a 2D one (use csv or npz)")
        name = views.resolve_metric(sf.columns, metric or "train_loss", source)
        z = np.where(sf.done, sf.values[name], np.nan)
        return to_vtp(target, sf.grid.x, sf.grid.y, z, log=log, zmax=zmax, name=name)
    if log or zmax is not None:
        raise ConfigError(f"--log and --zmax shape the heights of a vtp surface; they do not apply to {fmt}")
    names = [views.resolve_metric(sf.columns, metric, source)] if metric else sf.columns
    arrays = {**{n: sf.values[n] for n in names}, "done": sf.done.astype(np.float64)}
    # a progressive surface: the errors and samples of these columns, and the masks (1/0); not the running sums
    wanted = [f"{n}_stderr" for n in names] + [f"{s}_samples" for s in dict.fromkeys(n.split("_", 1)[0] for n in names)]
    arrays |= {k: np.asarray(sf.extra[k], dtype=np.float64) for k in [*wanted, "above", "computed"] if k in sf.extra}
    writer = to_csv if fmt == "csv" else to_npz
    return writer(target, sf.grid.x, sf.grid.y, arrays)
