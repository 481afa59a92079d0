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

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from mpl_toolkits.mplot3d.axes3d import Axes3D

from landscape.config import PlotConfig
from landscape.engine.grid import Grid, finest_complete_level
from landscape.errors import ConfigError, GridError, LandscapeError
from landscape.figures import plot
from landscape.io.surface_file import SurfaceFile, read_surface
from landscape.io.trajectory_file import TrajectoryPoints, load_trajectory

__all__ = [
    "FORMATS",
    "KINDS",
    "PARTIAL_GID",
    "applicable_kinds",
    "applicable_kinds_of",
    "bilinear",
    "check_same_plane",
    "coarse_view",
    "export_surface_file",
    "path_heights",
    "plot_surface_file",
    "plot_training_curves",
    "resolve_metric",
    "spans_decades",
    "surface_figures",
]

PARTIAL_GID = "landscape-partial"
"""``gid`` of the "partial: N of M points" mark on figures of a file still being computed."""
KINDS = ("contour", "filled", "heatmap", "surface3d", "line", "trajectory", "panels")
FORMATS = ("pdf", "png", "svg")
_SPLIT_WORDS = {"train": "training", "test": "test"}
_METRIC_WORDS = {"loss": "loss", "acc": "accuracy"}


def spans_decades(*values: np.ndarray) -> bool:
    """The rule for an automatic log scale: the finite values are all positive and span more than a decade (max/min > 10)."""
    finite = np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in values])
    finite = finite[np.isfinite(finite)]
    return bool(finite.size and finite.min() > 0 and finite.max() / finite.min() > 10)


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
        return {"done": self.sf.done, "metric_label": metric_label(self.metric), "x_label": self.sf.attrs.get("x_label") or "α",
                "y_label": self.sf.attrs.get("y_label") or "β", "ax": self.ax, **self.style}


# --- names and labels -------------------------------------------------------------------------------


def metric_label(name: str) -> str:
    """``train_loss`` → "training loss", ``test_acc`` → "test accuracy", ``train_mse`` → "training mse"."""
    split, _, what = name.partition("_")
    if split not in _SPLIT_WORDS or not what:
        return name.replace("_", " ")
    return f"{_SPLIT_WORDS[split]} {_METRIC_WORDS.get(what, what.replace('_', ' '))}"


def _legend_label(name: str) -> str:
    """``train_loss`` → "train loss": short, and starting with the split (plot.line styles by it)."""
    return metric_label(name).replace("training ", "train ", 1)


def resolve_metric(columns: Sequence[str], metric: str, source: str = "the file") -> str:
    """``metric`` when ``columns`` hold it; otherwise a :class:`ConfigError` listing what they hold."""
    if metric not in columns:
        raise ConfigError(f"{source} has no metric {metric!r}; available: {', '.join(columns)}")
    return metric


def criteria(sf: SurfaceFile, split: str) -> list[str]:
    """The per-criterion columns of one split (``train_cross_entropy``, ``train_mse``, ...).

    A file evaluated under several losses holds ``<split>_loss`` (the first criterion again),
    one column per criterion and ``<split>_acc``; a single-loss file holds no such columns.
    """
    prefix = f"{split}_"
    return [c for c in sf.columns if c.startswith(prefix) and c[len(prefix):] not in ("loss", "acc")]


def _split_of(metric: str) -> str:
    split = metric.partition("_")[0]
    return split if split in _SPLIT_WORDS else "train"


def _title(sf: SurfaceFile, title: bool | str | None) -> str | None:
    """The figure title: the caller's text, none, or "<model> on <data>" from the file's settings."""
    if isinstance(title, str):
        return title or None
    if not title:
        return None
    settings = sf.attrs.get("settings", {})
    model = settings.get("model", {}).get("name")
    data = settings.get("data", {}).get("name")
    return f"{model} on {data}" if model and data else None


# --- which kinds apply ------------------------------------------------------------------------------


def applicable_kinds(sf: SurfaceFile, metric: str, has_trajectory: bool) -> dict[str, str | None]:
    """For every kind: None when it applies to this file, else why not (for error messages)."""
    dims = 1 if sf.grid.y is None else 2
    two_d = None if dims == 2 else f"needs a 2D surface, and {str(sf.path)!r} is 1D (use --kind line)"
    found = criteria(sf, _split_of(metric))
    return {
        "contour": two_d,
        "filled": two_d,
        "heatmap": two_d,
        "surface3d": two_d,
        "line": None if dims == 1 else f"needs a 1D surface, and {str(sf.path)!r} is 2D",
        "trajectory": two_d or (None if has_trajectory else "needs a trajectory file (--trajectory FILE.h5)"),
        "panels": two_d or (None if len(found) > 1 else
                            f"needs a surface evaluated under several losses (surface --loss a,b); "
                            f"{str(sf.path)!r} holds {', '.join(sf.columns)}"),
    }


def applicable_kinds_of(surface: str | Path, metric: str = "train_loss", has_trajectory: bool = False) -> list[str]:
    """The kinds that apply to a surface file (for messages and callers that want all of them)."""
    sf = read_surface(surface)
    reasons = applicable_kinds(sf, resolve_metric(sf.columns, metric, repr(str(surface))), has_trajectory)
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


# --- the path on the plane ----------------------------------------------------------------------------


def bilinear(x: np.ndarray, y: np.ndarray, z: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Bilinear interpolation of the grid values ``z`` (len(x), len(y)) at ``points`` (n, 2).

    Returns (n,) float64: NaN outside the grid, and wherever a corner of the enclosing cell is
    NaN (a diverged or uncomputed point). Exact for any function linear in x and y.
    """
    px, py = points[:, 0], points[:, 1]
    i = np.clip(np.searchsorted(x, px, side="right") - 1, 0, len(x) - 2)  # cell [x[i], x[i+1]]
    j = np.clip(np.searchsorted(y, py, side="right") - 1, 0, len(y) - 2)
    tx = (px - x[i]) / (x[i + 1] - x[i])  # (n,) in [0, 1] inside the grid
    ty = (py - y[j]) / (y[j + 1] - y[j])
    value = ((1 - tx) * (1 - ty) * z[i, j] + tx * (1 - ty) * z[i + 1, j]
             + (1 - tx) * ty * z[i, j + 1] + tx * ty * z[i + 1, j + 1])
    inside = (px >= x[0]) & (px <= x[-1]) & (py >= y[0]) & (py <= y[-1])
    return np.where(inside, value, np.nan)


def path_heights(sf: SurfaceFile, metric: str, path: TrajectoryPoints) -> np.ndarray:
    """Height of each checkpoint on the surface (n,): its recorded loss, or the surface interpolated there.

    The trajectory file records each checkpoint's training loss over the whole training set;
    it is used when the figure shows exactly that (``train_loss`` of a surface evaluated on the
    whole split). Otherwise, and for checkpoints without a record, the surface is interpolated
    at the checkpoint's projected coordinates.
    """
    if sf.grid.y is None:
        raise GridError(f"{str(sf.path)!r} is 1D: a path in a plane has no height on it")
    z = np.where(sf.done & np.isfinite(sf.values[metric]), sf.values[metric], np.nan)
    heights = bilinear(sf.grid.x, sf.grid.y, z, path.coords)
    if metric == "train_loss" and not sf.attrs.get("settings", {}).get("max_samples", 0):
        heights = np.where(np.isfinite(path.losses), path.losses, heights)
    return heights


def _directions_fingerprint(trajectory: Path) -> str | None:
    try:
        with h5py.File(trajectory, "r") as f:
            value = f.attrs.get("fingerprint")
    except OSError:
        return None  # load_trajectory has already said what is wrong with the file
    return value.decode() if isinstance(value, bytes) else (None if value is None else str(value))


def check_same_plane(sf: SurfaceFile, trajectory: Path) -> None:
    """A path's coordinates mean something only in the plane of its own PCA directions."""
    ours, theirs = sf.attrs.get("directions_fingerprint"), _directions_fingerprint(trajectory)
    if ours and theirs and ours != theirs:
        raise LandscapeError(f"trajectory {str(trajectory)!r} was not computed in the plane of {str(sf.path)!r} "
                             "(their directions differ): compute the surface with "
                             f"`landscape surface CHECKPOINT --directions {trajectory}`")


def _epoch_labels(path: TrajectoryPoints) -> list[str]:
    return [str(int(e)) if e >= 0 else str(k) for k, e in enumerate(path.epochs)]


def _path_labels(sf: SurfaceFile, path: TrajectoryPoints) -> tuple[str, str]:
    """Axis labels with the explained variance: the surface's own when they carry it."""
    x_label, y_label = sf.attrs.get("x_label", ""), sf.attrs.get("y_label", "")
    if str(x_label).startswith("PC") and str(y_label).startswith("PC"):
        return str(x_label), str(y_label)
    return path.axis_labels


# --- partial files -------------------------------------------------------------------------------------


def coarse_view(sf: SurfaceFile) -> tuple[SurfaceFile, str | None]:
    """What to draw of a file: itself when complete, else its finest complete coarse level; and the mark.

    ``landscape surface`` computes coarse levels first (:func:`landscape.engine.grid.coarse_to_fine`),
    so a partial file holds complete uniform sub-grids; the finest of them is drawn as it is, never
    filled in by interpolation. A file with no complete level (one made in row order by an older
    version) is drawn whole, its missing points masked. The mark reads "partial: N of M points".
    """
    if sf.done.all():
        return sf, None
    mark = f"partial: {int(sf.done.sum())} of {sf.done.size} points"
    idx = finest_complete_level(sf.done)
    if idx is None:
        return sf, mark
    grid = Grid(sf.grid.x[idx[0]], sf.grid.y[idx[1]] if sf.grid.y is not None else None)
    values = {c: v[np.ix_(*idx)] for c, v in sf.values.items()}
    coarse = SurfaceFile(sf.path, grid, sf.columns, values, sf.done[np.ix_(*idx)], sf.attrs)
    return coarse, f"{mark}\n{'×'.join(str(len(i)) for i in idx)} level shown"


def _mark_partial(figure: Figure, text: str) -> None:
    """The partial mark, boxed, in the upper right corner of the first axes."""
    ax = figure.axes[0]
    style: dict[str, Any] = {"transform": ax.transAxes, "fontsize": 6, "ha": "right", "va": "top", "gid": PARTIAL_GID,
                             "zorder": 7, "color": "darkred",
                             "bbox": {"boxstyle": "round,pad=0.25", "fc": "white", "ec": "darkred", "lw": 0.5, "alpha": 0.9}}
    if isinstance(ax, Axes3D):
        ax.text2D(1.0, 1.0, text, **style)
    else:
        ax.text(0.98, 0.98, text, **style)


# --- one function per kind ------------------------------------------------------------------------------


def _contour(job: _Job) -> Figure:
    return plot.contour(job.x, job.y, job.z, **job.plane())


def _filled(job: _Job) -> Figure:
    return plot.filled_contour(job.x, job.y, job.z, **job.plane())


def _heatmap(job: _Job) -> Figure:
    return plot.heatmap(job.x, job.y, job.z, **job.plane())


def _surface3d(job: _Job) -> Figure:
    path = None
    if job.path is not None:
        path = (job.path.coords[:, 0], job.path.coords[:, 1], path_heights(job.sf, job.metric, job.path))
    return plot.surface3d(job.x, job.y, job.z, path, **job.plane())


def _trajectory(job: _Job) -> Figure:
    assert job.path is not None
    x_label, y_label = _path_labels(job.sf, job.path)
    options = {**job.plane(), "x_label": x_label, "y_label": y_label}
    return plot.trajectory(job.x, job.y, job.z, job.path.coords, labels=_epoch_labels(job.path), **options)


def _line(job: _Job) -> Figure:
    """Loss (left) and accuracy (right) of both splits along the slice."""
    what = job.metric.partition("_")[2]
    family = "loss" if what == "acc" else what
    curves = {_legend_label(f"{s}_{family}"): job.sf.values[f"{s}_{family}"]
              for s in _SPLIT_WORDS if f"{s}_{family}" in job.sf.values}
    accs = {_legend_label(f"{s}_acc"): job.sf.values[f"{s}_acc"] for s in _SPLIT_WORDS if f"{s}_acc" in job.sf.values}
    endpoints = [0.0, 1.0] if job.sf.attrs.get("directions", {}).get("kind") == "target" else None
    label = "loss" if family == "loss" else family.replace("_", " ")
    return plot.line(job.x, curves, acc_curves=accs or None, done=job.sf.done, metric_label=label,
                     x_label=job.sf.attrs.get("x_label") or "α", log=job.style["log"], endpoints=endpoints,
                     width=job.style["width"], title=job.style["title"], ax=job.ax)


def _panels(job: _Job) -> Figure:
    """One panel per criterion, each with its own levels and colourbar."""
    if job.ax is not None:
        raise ConfigError("kind 'panels' lays out its own grid of axes: leave ax out (or draw each criterion with kind='contour')")
    columns = criteria(job.sf, _split_of(job.metric))
    prefix = f"{_split_of(job.metric)}_"
    zs = {c[len(prefix):].replace("_", " "): job.sf.values[c] for c in columns}
    dones = dict.fromkeys(zs, job.sf.done)
    options = {**job.plane(), "metric_label": f"{_SPLIT_WORDS[_split_of(job.metric)]} loss", "width": "double"}
    del options["done"], options["ax"]
    return plot.panels(job.x, job.y, zs, shared=False, kind="contour", dones=dones, **options)


_DRAW: dict[str, Callable[[_Job], Figure]] = {
    "contour": _contour,
    "filled": _filled,
    "heatmap": _heatmap,
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


def _check_options(formats: Sequence[str], levels: int | None, dpi: int) -> None:
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise ConfigError(f"unknown figure format {unknown[0] if unknown else '(none given)'!r}; choose from {', '.join(FORMATS)}")
    if levels is not None and levels < 2:
        raise ConfigError(f"levels must be at least 2, got {levels}")
    if dpi < 10:
        raise ConfigError(f"dpi must be at least 10, got {dpi}")


def _prepare(surface: str | Path, options: PlotConfig, trajectory: str | Path | None, kinds: Sequence[str] | None,
             lenient: bool) -> tuple[_Job, list[str], str | None]:
    """Read and check everything the figures of one surface file need; returns the job, the kinds
    to draw, and the "partial" mark of a file still being computed (None when complete)."""
    _check_options(options.formats, options.levels, options.dpi)
    sf, partial = coarse_view(read_surface(surface))
    chosen = resolve_metric(sf.columns, options.metric, repr(str(surface)))
    path = load_trajectory(trajectory) if trajectory is not None else None
    selected = _choose(kinds, applicable_kinds(sf, chosen, path is not None), lenient)
    if trajectory is not None and ({"trajectory", "surface3d"} & set(selected)):
        check_same_plane(sf, Path(trajectory))
    log = options.log
    if log is None:
        log = spans_decades(sf.values[chosen][sf.done]) and not chosen.endswith(("_acc", "_eig_ratio", "_eig_converged"))
    style = {"levels": options.levels, "vmin": options.vmin, "vmax": options.vmax, "log": log, "cmap": options.cmap,
             "width": options.width, "title": _title(sf, options.title)}
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


def plot_training_curves(run_json: dict[str, Any], out_stem: Path, options: PlotConfig = PlotConfig(), *,
                         title: str | None = None) -> list[Path]:
    """Loss against epoch for both splits, from a run manifest (``run.json``); returns the files.

    Of ``options`` (the ``[plot]`` section), ``formats``, ``width`` and ``dpi`` apply.
    """
    epochs = [c for c in run_json.get("checkpoints", []) if c.get("kind") == "epoch"]
    if not epochs:
        raise GridError("the run lists no epoch checkpoints to draw")
    x = np.array([c["epoch"] for c in epochs], dtype=np.float64)
    curves = {_legend_label(name): (x, np.array([c.get(name, math.nan) for c in epochs]))
              for name in ("train_loss", "test_loss") if any(name in c for c in epochs)}
    figure = plot.training_curves(curves, width=options.width, title=title, log=True)
    return plot.save_figure(figure, out_stem, options.formats, options.dpi)


# --- curvature maps (landscape surface --metric eig_ratio) --------------------------------------------

# An eig-ratio surface holds <split>_max_eig, _min_eig, _eig_ratio, _eig_converged (landscape.workflows.hessian).
_METRIC_WORDS.update({"max_eig": "λmax", "min_eig": "λmin", "eig_ratio": "|λmin/λmax|",
                      "eig_converged": "Lanczos converged (1/0)"})


# --- export ------------------------------------------------------------------------------------------------

EXPORT_FORMATS = ("vtp", "csv", "npz")


def export_surface_file(surface: str | Path, fmt: str, out: str | Path | None = None, *, metric: str | None = None,
                        log: bool = False, zmax: float | None = None) -> Path:
    """Write a surface file as ``vtp`` (one metric as a height field), ``csv`` or ``npz``; returns the path.

    ``csv`` and ``npz`` hold every metric (or only ``metric``) as stored in the file, plus a
    ``done`` column (1 computed, 0 not yet), so a diverged point (NaN, done) and a missing one
    (NaN, not done) stay apart. ``vtp`` draws ``metric`` (default ``train_loss``) with
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
        name = resolve_metric(sf.columns, metric or "train_loss", source)
        z = np.where(sf.done, sf.values[name], np.nan)
        return to_vtp(target, sf.grid.x, sf.grid.y, z, log=log, zmax=zmax, name=name)
    if log or zmax is not None:
        raise ConfigError(f"--log and --zmax shape the heights of a vtp surface; they do not apply to {fmt}")
    names = [resolve_metric(sf.columns, metric, source)] if metric else sf.columns
    arrays = {**{n: sf.values[n] for n in names}, "done": sf.done.astype(np.float64)}
    writer = to_csv if fmt == "csv" else to_npz
    return writer(target, sf.grid.x, sf.grid.y, arrays)
