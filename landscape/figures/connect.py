"""Figures of ``landscape connect``: values along every path, and the plane through A, B and the bend.

:func:`paths_figure` and :func:`plane_figure` take arrays and return a Figure (the caller saves
it); :func:`plot_connect_file` draws both from ``connect.h5`` (and ``plane.h5`` beside it) as
Garipov et al. (2018) do in their figure 1: the loss over the plane with the straight line and
the trained curve drawn on it and the endpoints marked.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt
from matplotlib.figure import Figure

from landscape.engine.connect import coefficients
from landscape.errors import GridError
from landscape.figures import plot
from landscape.io.connect_file import read_connect

PATH_STYLE = {"line": ("line", "C0"), "aligned_line": ("aligned line", "C2"), "curve": ("curve", "C3")}
_SPLIT_STYLE = {"train": "-", "test": "--"}


def paths_figure(t: npt.ArrayLike, values: Mapping[str, Mapping[str, npt.ArrayLike]], *,
                 title: str | None = None) -> Figure:
    """Loss (left) and error in % (right) along t for every path; train solid, test dashed.

    ``values[path][column]`` has one value per t; columns are ``<split>_loss`` and
    ``<split>_acc`` (the error is 100·(1 − acc)). Dotted verticals mark the models at t = 0, 1.
    """
    tt = np.asarray(t, dtype=np.float64)
    has_acc = any(c.endswith("_acc") for v in values.values() for c in v)
    fig = Figure(figsize=(7.0 if has_acc else 3.6, 2.8), layout="constrained")
    axes = fig.subplots(1, 2 if has_acc else 1, squeeze=False)[0]
    for ax, metric, label in zip(axes, ("loss", "acc"), ("loss", "error (%)"), strict=False):
        for path, cols in values.items():
            name, colour = PATH_STYLE.get(path, (path, "k"))
            for split, ls in _SPLIT_STYLE.items():
                col = f"{split}_{metric}"
                if col not in cols:
                    continue
                v = np.asarray(cols[col], dtype=np.float64)
                ax.plot(tt, 100.0 * (1.0 - v) if metric == "acc" else v, ls=ls, color=colour, lw=1.3,
                        label=f"{name}, {split}")
        for x in (0.0, 1.0):
            ax.axvline(x, color="0.6", lw=0.7, ls=":")
        ax.set_xlabel("t (0 = A, 1 = B)")
        ax.set_ylabel(label)
        if metric == "loss":
            finite = np.concatenate([np.asarray(c[k], dtype=np.float64).ravel() for c in values.values() for k in c
                                     if k.endswith("_loss")] or [np.ones(1)])
            finite = finite[np.isfinite(finite)]
            if finite.size and finite.min() > 0 and finite.max() / finite.min() > 30:
                ax.set_yscale("log")
    axes[0].legend(fontsize=7, loc="best", framealpha=0.85)
    if title:
        fig.suptitle(title, fontsize=9)
    return fig


def plane_figure(x: npt.ArrayLike, y: npt.ArrayLike | None, z: npt.ArrayLike, *, done: npt.ArrayLike | None,
                 paths: Mapping[str, npt.ArrayLike], points: Mapping[str, Sequence[float]], metric_label: str = "train loss",
                 x_label: str = "α", y_label: str = "β", log: bool = True, title: str | None = None) -> Figure:
    """Filled contours of a 2D surface with paths (each (n, 2) in plane coordinates) and labelled points."""
    if y is None:
        raise GridError("the plane figure needs a 2D surface")
    fig = plot.filled_contour(x, y, z, done=done, metric_label=metric_label, x_label=x_label, y_label=y_label,
                              log=log, width="double", title=title)
    ax = fig.axes[0]
    for path, xy in paths.items():
        name, colour = PATH_STYLE.get(path, (path, "k"))
        pts = np.asarray(xy, dtype=np.float64)
        ax.plot(pts[:, 0], pts[:, 1], color="white", lw=3.2, zorder=4)
        ax.plot(pts[:, 0], pts[:, 1], color=colour, lw=1.8, zorder=5, label=name)
    for label, (px, py) in points.items():
        ax.plot([px], [py], marker="o" if label != "bend" else "s", ms=6, mfc="white", mec="k", zorder=6, ls="none")
        ax.annotate(label, (px, py), xytext=(5, 5), textcoords="offset points", fontsize=8, zorder=7,
                    bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8})
    ax.legend(fontsize=7, loc="upper right", framealpha=0.85)
    return fig


def plot_connect_file(path: str | Path, out_dir: str | Path, *, formats: Sequence[str] = ("pdf", "png"),
                      dpi: int = 200, plane: str | Path | None = None) -> list[Path]:
    """Draw ``connect_paths`` (and ``connect_plane`` when ``plane.h5`` lies beside the file) into ``out_dir``."""
    cf = read_connect(path)
    out = Path(out_dir)
    shown = {p: {c: np.where(cf.done[p], v, np.nan) for c, v in cols.items()} for p, cols in cf.values.items()}
    written = plot.save_figure(paths_figure(cf.t, shown), out / "connect_paths", formats, dpi)
    plane_path = Path(plane) if plane is not None else Path(path).with_name("plane.h5")
    curve = str(cf.attrs["settings"].get("curve", "line"))
    if plane_path.exists() and len(cf.bends) == 1:
        from landscape.io.surface_file import read_surface

        sf = read_surface(plane_path)
        inside = cf.t[(cf.t >= 0) & (cf.t <= 1)]
        curve_xy = np.asarray([[c[2], c[1]] for c in (coefficients(curve, float(s), 1) for s in inside)])
        line_xy = np.stack([inside, np.zeros_like(inside)], axis=1)
        col = "train_loss" if "train_loss" in sf.columns else sf.columns[0]
        fig = plane_figure(sf.grid.x, sf.grid.y, sf.values[col], done=sf.done, paths={"line": line_xy, "curve": curve_xy},
                           points={"A": (0.0, 0.0), "B": (1.0, 0.0), "bend": (0.0, 1.0)},
                           metric_label=col.replace("_", " "), x_label=str(sf.attrs.get("x_label", "α")),
                           y_label=str(sf.attrs.get("y_label", "β")))
        written += plot.save_figure(fig, out / "connect_plane", formats, dpi)
    return written
