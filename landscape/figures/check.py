"""Figures of ``landscape check``: the planes of other seeds, and a path with the checkpoints that leave its plane."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure


def seeds_figure(x: npt.ArrayLike, y: npt.ArrayLike, planes: Mapping[str, npt.ArrayLike], *, log: bool = False,
                 x_label: str = "", y_label: str = "") -> Figure:
    """Small multiples of the drawn plane and the planes of other seeds on one coarse grid: one shared
    colour scale (log10 of the loss when ``log``) with iso-lines at shared levels, one row, the drawn plane first.

    Drawn without a layout engine (fixed margins) and with as few artists as reads well, as it is
    written at every check: panels not shared (a shared axis lays out every panel's ticks), y ticks
    on the first panel only, titles at a fixed height (no search for the tick labels' extent), and
    one α label under the row.
    """
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    zs = {k: np.asarray(v, dtype=np.float64) for k, v in planes.items()}
    shown = {k: np.log10(np.where(v > 0, v, np.nan)) if log else v for k, v in zs.items()}
    finite = np.concatenate([v[np.isfinite(v)] for v in shown.values()])
    lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    levels = np.linspace(lo, hi if hi > lo else lo + 1.0, 13)
    n = len(zs)
    width = 1.9 * n + 0.9
    fig = Figure(figsize=(width, 2.3))
    fig.subplots_adjust(left=0.7 / width, right=1 - 0.8 / width, bottom=0.2, top=0.8, wspace=0.12)
    axes = fig.subplots(1, n, squeeze=False)[0]
    drawn = None
    for i, (ax, (name, v)) in enumerate(zip(axes, shown.items(), strict=True)):
        # (len(x), len(y)) → rows y; colours interpolated between the nodes, then the shared iso-lines
        drawn = ax.pcolormesh(xs, ys, v.T, shading="gouraud", cmap="viridis", vmin=levels[0], vmax=levels[-1])
        ax.contour(xs, ys, v.T, levels=levels, colors="white", linewidths=0.5, alpha=0.7, negative_linestyles="solid")
        ax.set_xlim(xs[0], xs[-1])
        ax.set_ylim(ys[0], ys[-1])
        ax.set_xticks(np.linspace(xs[0], xs[-1], 5)[1:-1])  # no tick at the ends: neighbours' labels would touch
        ax.set_yticks(np.linspace(ys[0], ys[-1], 5) if i == 0 else [])
        ax.plot([0], [0], marker="+", color="white", markersize=7)
        ax.set_title(name, fontsize=8, y=1.0, pad=4)
        ax.tick_params(labelsize=6)
    axes[0].set_ylabel(y_label or "β", fontsize=7)
    if drawn is not None:
        bar = fig.colorbar(drawn, ax=list(axes), fraction=0.03, pad=0.02)
        bar.set_label("log10 loss" if log else "loss", fontsize=7)
        bar.ax.tick_params(labelsize=6)
    left, right = axes[0].get_position().x0, axes[-1].get_position().x1  # (after the colour bar took its room)
    fig.text((left + right) / 2, 0.05, x_label or "α", ha="center", va="bottom", fontsize=7)
    fig.suptitle("the drawn plane among planes of other seeds (check: seeds)", fontsize=9)
    return fig


def path_figure(x: npt.ArrayLike, y: npt.ArrayLike, z: npt.ArrayLike, path: npt.ArrayLike, flagged: Sequence[int],
                labels: Sequence[str], *, log: bool = False, x_label: str = "", y_label: str = "") -> Figure:
    """The trajectory over the contours (the levels of the run's contour figures); the checkpoints whose
    own loss disagrees with the surface under them by more than a contour step circled in red and named.

    Drawn without a layout engine (fixed margins), like :func:`seeds_figure`.
    """
    from landscape.figures._style import _levels, _Style

    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    zs = np.asarray(z, dtype=np.float64)
    points = np.asarray(path, dtype=np.float64)
    shown = np.where(np.isfinite(zs) & (zs > 0), zs, np.nan) if log else np.where(np.isfinite(zs), zs, np.nan)
    fig = Figure(figsize=(4.6, 3.6))
    fig.subplots_adjust(left=0.14, right=0.97, bottom=0.13, top=0.9)
    ax = fig.subplots()
    if np.isfinite(shown).any() and np.nanmax(shown) > np.nanmin(shown):
        levels = _levels(_Style(log=log), float(np.nanmin(shown)), float(np.nanmax(shown)), filled=False)
        lines = ax.contour(xs, ys, shown.T, levels=levels, cmap="viridis", linewidths=0.8,
                           norm=LogNorm() if log else None)
        ax.clabel(lines, list(lines.levels)[::2], fontsize=6, fmt="%.3g")
    ax.plot(points[:, 0], points[:, 1], "-o", color="tab:red", markersize=3, linewidth=1.2, label="path")
    ax.plot(points[-1, 0], points[-1, 1], "k*", markersize=9, label="end")
    for i in flagged:
        ax.plot(points[i, 0], points[i, 1], "o", markersize=13, markerfacecolor="none", markeredgecolor="red",
                markeredgewidth=1.6)
        ax.annotate(labels[i], points[i], textcoords="offset points", xytext=(8, 6), fontsize=7, color="darkred")
    if flagged:
        ax.plot([], [], "o", markersize=10, markerfacecolor="none", markeredgecolor="red", label="leaves its plane")
    ax.legend(loc="best", fontsize=7, framealpha=0.85)
    ax.set_xlabel(x_label or "PC1", fontsize=8)
    ax.set_ylabel(y_label or "PC2", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.set_title("the path against its plane (check: trajectory)", fontsize=9)
    return fig


def contour_levels(values: npt.ArrayLike, log: bool, levels: int = 12) -> npt.NDArray[np.float64]:
    """The levels a contour figure of ``values`` draws (about ``levels`` round values over the finite range,
    as the run's contour and trajectory figures choose them), in the figure's units: ``log10`` of the
    levels on a log scale, the metric's own units otherwise. Empty when the values do not span a range."""
    from landscape.figures._style import _levels, _Style

    v = np.asarray(values, dtype=np.float64).ravel()
    v = v[np.isfinite(v) & (v > 0)] if log else v[np.isfinite(v)]
    if v.size < 2 or not float(v.max()) > float(v.min()):
        return np.empty(0, dtype=np.float64)
    drawn = np.asarray(_levels(_Style(log=log, levels=levels), float(v.min()), float(v.max()), filled=False),
                       dtype=np.float64)
    return np.log10(drawn) if log else drawn


def contour_spacing(values: npt.ArrayLike, log: bool, levels: int = 12) -> float:
    """Mean spacing of the levels a contour figure of ``values`` draws (:func:`contour_levels`), in the
    figure's units: decades on a log scale, the metric's own units otherwise. 0 when the values do not span a range."""
    u = contour_levels(values, log, levels)
    return float((u[-1] - u[0]) / (len(u) - 1)) if len(u) > 1 else 0.0
