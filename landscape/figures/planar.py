"""Figures of a 2D surface seen from above: contour lines, filled contours, a heatmap,
an optimisation path over the contours, and side-by-side panels (Li et al. 2018, Figs. 1-6).

Every function takes numpy arrays and returns a :class:`matplotlib.figure.Figure`; the style
keywords (:class:`landscape.figures._style.StyleOptions`) and masking are shared through
:mod:`landscape.figures._style`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from matplotlib import patheffects
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import ListedColormap, Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from landscape.errors import ConfigError, GridError
from landscape.figures._style import (
    _PATH_COLOUR,
    _PRESETS,
    MISSING_GID,
    CmapLike,
    FloatArray,
    PanelKind,
    StyleOptions,
    _colorbar,
    _DrawKind,
    _edges,
    _extend,
    _Field,
    _field,
    _figure,
    _figure_axes,
    _fmt_level,
    _label,
    _levels,
    _limits,
    _norm,
    _note,
    _path,
    _Preset,
    _Style,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["contour", "filled_contour", "heatmap", "panels", "trajectory"]

_MISSING_COLOURS = ListedColormap(["0.88", "#f5cccc"])  # pending, diverged
_PANEL_COLUMNS = 4
_MIN_CLABEL_WIDTH = 2.2  # inches; narrower panels get no inline labels (they would pile up)


def _shade_missing(ax: Axes, field: _Field, *, centred: bool) -> None:
    """Shade what is masked (grey: not computed yet, pink: diverged) under the surface.

    A heatmap (``centred``) misses whole cells around the points. A contour plot interpolates
    between points, so it misses every grid square with a masked corner: shade those, with
    their corners on the grid points, so no white gap is left between data and shading.
    """
    if not field.missing.any():
        return
    if centred:
        xe, ye, codes = _edges(field.x), _edges(field.y), field.missing
    else:
        m = field.missing  # (ny, nx); a square takes the worst of its four corners
        codes = np.maximum(np.maximum(m[:-1, :-1], m[1:, :-1]), np.maximum(m[:-1, 1:], m[1:, 1:]))
        xe, ye = field.x, field.y
    ax.pcolormesh(
        xe,
        ye,
        np.ma.masked_equal(codes, 0),
        cmap=_MISSING_COLOURS,
        norm=Normalize(1, 2),
        shading="flat",
        zorder=0,
        rasterized=True,
        gid=MISSING_GID,
    )



# -------------------------------------------------------------------------- drawing blocks


def _draw(
    ax: Axes,
    field: _Field,
    kind: _DrawKind,
    levels: FloatArray,
    norm: Normalize,
    cmap: CmapLike,
    preset: _Preset,
    *,
    clabel: bool = True,
) -> ScalarMappable | None:
    """Draw one surface on ``ax``; returns the artist a colourbar should follow, if any."""
    ax.set_xlim(field.x[0], field.x[-1])
    ax.set_ylim(field.y[0], field.y[-1])
    _shade_missing(ax, field, centred=kind == "heatmap")
    data = field.zt.compressed()
    if data.size == 0:
        return None
    if kind == "heatmap":
        xe, ye = _edges(field.x), _edges(field.y)
        ax.set_xlim(xe[0], xe[-1])
        ax.set_ylim(ye[0], ye[-1])
        return ax.pcolormesh(xe, ye, field.zt, norm=norm, cmap=cmap, shading="flat", rasterized=True)
    # contour() warns when no level lies strictly inside the data range: skip the lines then.
    interior = bool(np.any((levels > data.min()) & (levels < data.max())))
    if kind == "filled":
        filled = ax.contourf(
            field.x,
            field.y,
            field.zt,
            levels=levels,
            norm=norm,
            cmap=cmap,
            extend=_extend(data, levels),
        )
        if interior:
            ax.contour(field.x, field.y, field.zt, levels=levels, colors="k", linewidths=0.3, alpha=0.5)
        return filled
    if not interior:
        return None
    lines = ax.contour(field.x, field.y, field.zt, levels=levels, norm=norm, cmap=cmap, linewidths=0.9)
    if clabel:
        # Label every other line: enough to read values off, few enough to stay legible.
        ax.clabel(lines, np.asarray(lines.levels)[::2], inline=True, fontsize=preset.tick - 1, fmt=_fmt_level)
    return lines


def _plane(
    kind: _DrawKind,
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    z: npt.ArrayLike,
    done: npt.ArrayLike | None,
    style: _Style,
    ax: Axes | None = None,
) -> tuple[Figure, Axes]:
    """One surface in one axes (a new figure's, or ``ax``) with its colourbar, labels, title and note."""
    field = _field(x, y, z, done, style.log)
    lo, hi = _limits([field], style)
    levels = _levels(style, lo, hi, filled=kind != "lines")
    norm = _norm(lo, hi, style.log)
    fig, ax = _figure_axes(style.preset, ax)
    drawn = _draw(ax, field, kind, levels, norm, style.cmap, style.preset)
    bar = drawn if drawn is not None else ScalarMappable(norm=norm, cmap=style.cmap)
    _colorbar(fig, bar, ax, style.metric_label, style.preset, log=style.log)
    _label(ax, style)
    if style.title:
        ax.set_title(style.title, fontsize=style.preset.title)
    _note(ax, field.note, style.preset)
    return fig, ax


def _include(ax: Axes, points: FloatArray, margin: float = 0.03) -> None:
    """Widen the axes limits (never shrink them) so every point is inside."""
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    lo, hi = points.min(axis=0), points.max(axis=0)
    pad = margin * np.array([x1 - x0, y1 - y0])
    if lo[0] < x0 or hi[0] > x1:
        ax.set_xlim(min(x0, lo[0] - pad[0]), max(x1, hi[0] + pad[0]))
    if lo[1] < y0 or hi[1] > y1:
        ax.set_ylim(min(y0, lo[1] - pad[1]), max(y1, hi[1] + pad[1]))


def _label_points(ax: Axes, points: FloatArray, labels: Sequence[str], preset: _Preset) -> None:
    """Label every k-th point, dropping any label that would sit on top of a placed one."""
    count = len(points)
    step = max(1, math.ceil(count / preset.max_point_labels))
    # First and last are placed first, so they win over their neighbours.
    order = [0, count - 1] + [k for k in range(step, count - 1, step)]
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    # Spacing is judged in axes fractions, i.e. as it looks, whatever the data ranges.
    seen = (points - [x0, y0]) / [x1 - x0, y1 - y0]
    placed: list[int] = []
    for k in dict.fromkeys(order):
        if all(np.hypot(*(seen[k] - seen[m])) >= 0.07 for m in placed):
            placed.append(k)
            ax.annotate(
                labels[k],
                points[k],
                xytext=(3, 3),
                textcoords="offset points",
                fontsize=preset.tick - 1,
                zorder=5,
                path_effects=[patheffects.withStroke(linewidth=2.0, foreground="white")],
            )


def _draw_path(
    ax: Axes,
    path: npt.ArrayLike,
    labels: Sequence[str] | None,
    preset: _Preset,
    *,
    legend: bool,
) -> None:
    """A trajectory over a contour: a line with small markers, start and end marked apart."""
    points = _path(path)
    if labels is not None and len(labels) != len(points):
        raise GridError(f"labels has {len(labels)} entries but path has {len(points)} points")
    ax.plot(points[:, 0], points[:, 1], color=_PATH_COLOUR, lw=1.1, marker="o", ms=2.0, zorder=3)
    start = ax.plot(
        points[:1, 0],
        points[:1, 1],
        ls="none",
        marker="o",
        ms=5.5,
        mfc="white",
        mec="k",
        mew=0.9,
        zorder=4,
        label="start",
    )[0]
    end = ax.plot(
        points[-1:, 0],
        points[-1:, 1],
        ls="none",
        marker="*",
        ms=9.0,
        mfc="k",
        mec="white",
        mew=0.6,
        zorder=4,
        label="end",
    )[0]
    _include(ax, points)
    if labels is not None:
        _label_points(ax, points, labels, preset)
    if legend:
        ax.legend(handles=[start, end], loc="best", fontsize=preset.tick, framealpha=0.85)


# ----------------------------------------------------------------------- 2D public functions


def contour(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    z: npt.ArrayLike,
    *,
    done: npt.ArrayLike | None = None,
    ax: Axes | None = None,
    **options: Unpack[StyleOptions],
) -> Figure:
    """Iso-loss lines of a 2D surface, every other line labelled, with a colourbar.

    ``z`` has shape ``(len(x), len(y))``; ``done`` (same shape) marks computed points.
    ``levels`` is explicit values, or about that many round values (default 12) in
    ``[vmin, vmax]`` (1-2-5 per decade when ``log``). Diverged and uncomputed points are
    masked, shaded (pink, grey) and counted in a note. ``ax``: draw into these axes (their
    figure is returned, with a colourbar beside them) instead of a new figure; every 2D kind
    but :func:`panels` takes it.
    """
    return _plane("lines", x, y, z, done, _Style(**options), ax)[0]


def filled_contour(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    z: npt.ArrayLike,
    *,
    done: npt.ArrayLike | None = None,
    ax: Axes | None = None,
    **options: Unpack[StyleOptions],
) -> Figure:
    """Filled contour bands (about 20 levels) with thin iso-lines and a colourbar.

    Values beyond ``vmin``/``vmax`` fall in open-ended bands shown as arrows on the colourbar.
    Same array convention and masking as :func:`contour`.
    """
    return _plane("filled", x, y, z, done, _Style(**options), ax)[0]


def heatmap(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    z: npt.ArrayLike,
    *,
    done: npt.ArrayLike | None = None,
    ax: Axes | None = None,
    **options: Unpack[StyleOptions],
) -> Figure:
    """One coloured cell per grid point (``pcolormesh``), with a colourbar.

    Each cell is centred on its grid point, edges half-way to the neighbours, so non-uniform
    and non-square grids are drawn where they are. ``levels`` is accepted so every 2D kind
    takes the same options; it only sets the colour limits when given as values.
    """
    return _plane("heatmap", x, y, z, done, _Style(**options), ax)[0]


def trajectory(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    z: npt.ArrayLike,
    path: npt.ArrayLike,
    *,
    labels: Sequence[str] | None = None,
    done: npt.ArrayLike | None = None,
    ax: Axes | None = None,
    **options: Unpack[StyleOptions],
) -> Figure:
    """An optimisation path (``path`` (n, 2), e.g. PCA coordinates) over the loss contours.

    Start and end are marked distinctly (legend "start"/"end"); when ``labels`` (one per
    point, e.g. epochs) are given, every k-th point is labelled, skipping labels that would
    overlap. Pass the explained variance in the axis labels, e.g. ``"PC1 (61.2 %)"``.
    """
    options.setdefault("x_label", "PC1")
    options.setdefault("y_label", "PC2")
    style = _Style(**options)
    fig, drawn_on = _plane("lines", x, y, z, done, style, ax)
    _draw_path(drawn_on, path, labels, style.preset, legend=True)
    return fig


def panels(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    zs: Mapping[str, npt.ArrayLike],
    *,
    shared: bool = True,
    kind: PanelKind = "contour",
    paths: Mapping[str, npt.ArrayLike] | None = None,
    dones: Mapping[str, npt.ArrayLike] | None = None,
    **options: Unpack[StyleOptions],
) -> Figure:
    """Side-by-side panels on one grid, one per entry of ``zs``, each titled with its name.

    Up to four panels per row, wrapping to more rows. ``shared=True`` gives every panel the
    same levels and colour limits and one colourbar, so the panels can be compared by eye;
    ``shared=False`` gives each its own. ``paths`` (name → (n, 2)) are drawn over their panel;
    ``dones`` (name → mask) marks computed points of partial surfaces.
    """
    if kind not in ("contour", "filled", "heatmap"):
        raise ConfigError(f"kind must be one of ['contour', 'filled', 'heatmap'], got {kind!r}")
    if not zs:
        raise ConfigError("panels needs at least one surface")
    for extra, what in ((paths or {}, "paths"), (dones or {}, "dones")):
        unknown = sorted(set(extra) - set(zs))
        if unknown:
            raise ConfigError(f"{what} names {unknown} that are not among the surfaces {list(zs)}")
    options.setdefault("width", "double")
    style = _Style(**options)
    draw_kind: _DrawKind = "lines" if kind == "contour" else kind
    fields = {name: _field(x, y, z, (dones or {}).get(name), style.log) for name, z in zs.items()}
    columns = min(len(fields), _PANEL_COLUMNS)
    # Many narrow panels read like single-column figures: use that preset's fonts.
    single = _PRESETS["single"]
    preset = style.preset if columns < 3 else replace(style.preset, label=single.label, tick=single.tick,
                                                      title=single.title, max_point_labels=single.max_point_labels)
    fig, axes = _panel_grid(preset, len(fields), shared)
    clabel = preset.width / columns >= _MIN_CLABEL_WIDTH
    if not clabel:  # narrow panels: few x ticks, or labels of neighbours touch
        axes[0].xaxis.set_major_locator(MaxNLocator(nbins=3, steps=[1, 2, 2.5, 5, 10]))
    mappables: list[ScalarMappable] = []
    for index, ((name, field), ax) in enumerate(zip(fields.items(), axes, strict=True)):
        lo, hi = _limits(list(fields.values()) if shared else [field], style)
        levels_used = _levels(style, lo, hi, filled=draw_kind != "lines")
        norm = _norm(lo, hi, style.log)
        drawn = _draw(ax, field, draw_kind, levels_used, norm, style.cmap, preset, clabel=clabel)
        mappables.append(drawn if drawn is not None else ScalarMappable(norm=norm, cmap=style.cmap))
        if not shared:
            _colorbar(fig, mappables[-1], ax, style.metric_label, preset, log=style.log, ticks=4)
        last_row = index + _PANEL_COLUMNS >= len(fields)  # nothing drawn below this one
        _label(ax, style, x=last_row, y=index % _PANEL_COLUMNS == 0, preset=preset)
        ax.set_title(name, fontsize=preset.label)
        if paths is not None and name in paths:
            first = next(iter(paths)) == name
            _draw_path(ax, paths[name], None, preset, legend=first)
        _note(ax, field.note, preset)
    if shared:
        _colorbar(fig, mappables[0], axes, style.metric_label, preset, log=style.log, shrink=0.9)
    if style.title:
        fig.suptitle(style.title, fontsize=preset.title)
    return fig


def _panel_grid(preset: _Preset, count: int, shared: bool) -> tuple[Figure, list[Axes]]:
    """A figure with ``count`` panels sharing x and y, four per row; spare cells removed."""
    columns = min(count, _PANEL_COLUMNS)
    rows = math.ceil(count / columns)
    # Panels are roughly square; a colourbar per panel needs a little more height.
    panel = preset.width / columns * (0.95 if shared else 0.8)
    height = max(rows * panel + 0.45, preset.width * 0.3)
    fig = _figure(preset, height=height)
    grid = fig.subplots(rows, columns, sharex=True, sharey=True, squeeze=False)
    cells = list(grid.ravel())
    for spare in cells[count:]:
        fig.delaxes(spare)
    return fig, cells[:count]
