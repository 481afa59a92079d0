"""What a view of a surface file shows, shared by the static figures and the interactive page.

:mod:`landscape.figures.files` (PDF/PNG/SVG), :mod:`landscape.figures.interactive` (HTML) and
the ``animate`` command read a surface file the same way through these helpers: metric names
and their labels, the automatic log scale, the optimizer path's height on the surface and its
labels, the check that a path lies in the surface's plane, and the part of a partial file that
is drawn (its finest complete coarse level).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import h5py
import numpy as np

from landscape.engine.directions import plain_attr
from landscape.engine.grid import Grid, finest_complete_level
from landscape.errors import ConfigError, GridError, LandscapeError
from landscape.io.surface_file import SurfaceFile
from landscape.io.trajectory_file import TrajectoryPoints

__all__ = ["SPLIT_WORDS", "auto_log", "bilinear", "check_same_plane", "coarse_view", "criteria", "epoch_labels", "figure_title",
           "legend_label", "metric_label", "path_heights", "path_labels", "resolve_metric", "spans_decades", "split_of"]

SPLIT_WORDS = {"train": "training", "test": "test"}
# an eig-ratio surface also holds <split>_max_eig, _min_eig, _eig_ratio, _eig_converged (landscape.workflows.hessian)
_METRIC_WORDS = {"loss": "loss", "acc": "accuracy", "max_eig": "λmax", "min_eig": "λmin", "eig_ratio": "|λmin/λmax|",
                 "eig_converged": "Lanczos converged (1/0)"}


def auto_log(column: str, *values: np.ndarray) -> bool:
    """The figures' automatic colour scale for a column: log when :func:`spans_decades`, never for the columns
    whose values are not a loss (accuracies, eigenvalue ratios, the Lanczos flag)."""
    return not column.endswith(("_acc", "_eig_ratio", "_eig_converged")) and spans_decades(*values)


def spans_decades(*values: np.ndarray) -> bool:
    """The rule for an automatic log scale: the finite values are all positive and span more than a decade (max/min > 10)."""
    finite = np.concatenate([np.asarray(v, dtype=np.float64).ravel() for v in values])
    finite = finite[np.isfinite(finite)]
    return bool(finite.size and finite.min() > 0 and finite.max() / finite.min() > 10)


# --- names and labels -------------------------------------------------------------------------------


def metric_label(name: str) -> str:
    """``train_loss`` → "training loss", ``test_acc`` → "test accuracy", ``train_mse`` → "training mse"."""
    split, _, what = name.partition("_")
    if split not in SPLIT_WORDS or not what:
        return name.replace("_", " ")
    return f"{SPLIT_WORDS[split]} {_METRIC_WORDS.get(what, what.replace('_', ' '))}"


def legend_label(name: str) -> str:
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


def split_of(metric: str) -> str:
    split = metric.partition("_")[0]
    return split if split in SPLIT_WORDS else "train"


def figure_title(sf: SurfaceFile, title: bool | str | None) -> str | None:
    """The figure title: the caller's text, none, or "<model> on <data>" from the file's settings."""
    if isinstance(title, str):
        return title or None
    if not title:
        return None
    settings = sf.attrs.get("settings", {})
    model = settings.get("model", {}).get("name")
    data = settings.get("data", {}).get("name")
    return f"{model} on {data}" if model and data else None


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


def check_same_plane(sf: SurfaceFile, trajectory: Path) -> None:
    """A path's coordinates mean something only in the plane of its own PCA directions."""
    try:
        with h5py.File(trajectory, "r") as f:
            theirs = plain_attr(f.attrs.get("fingerprint"))
    except OSError:
        theirs = None  # load_trajectory has already said what is wrong with the file
    ours = sf.attrs.get("directions_fingerprint")
    if ours and theirs and ours != theirs:
        raise LandscapeError(f"trajectory {str(trajectory)!r} was not computed in the plane of {str(sf.path)!r} "
                             "(their directions differ): compute the surface with "
                             f"`landscape surface CHECKPOINT --directions {trajectory}`")


def epoch_labels(path: TrajectoryPoints) -> list[str]:
    return [str(int(e)) if e >= 0 else str(k) for k, e in enumerate(path.epochs)]


def path_labels(sf: SurfaceFile, path: TrajectoryPoints) -> tuple[str, str]:
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
    extra = {name: v[np.ix_(*idx)] for name, v in sf.extra.items()}  # a progressive file's errors, samples, masks
    coarse = SurfaceFile(sf.path, grid, sf.columns, values, sf.done[np.ix_(*idx)], sf.attrs, extra=extra)
    return coarse, f"{mark}\n{'×'.join(str(len(i)) for i in idx)} level shown"
