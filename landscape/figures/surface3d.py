"""A 2D surface as a 3D plot (``plot_surface`` on a real 3D axes), with a path drawn on top."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, cast

import numpy as np
import numpy.typing as npt
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from mpl_toolkits.mplot3d.axes3d import Axes3D

from landscape.errors import GridError
from landscape.figures._style import (
    _PATH_COLOUR,
    FloatArray,
    StyleOptions,
    _field,
    _figure_axes,
    _fmt_level,
    _limits,
    _note,
    _Style,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["surface3d"]

_MAX_FACETS_PER_SIDE = 120  # 3D surfaces are strided beyond this, to keep files small


def surface3d(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    z: npt.ArrayLike,
    trajectory: tuple[npt.ArrayLike, npt.ArrayLike, npt.ArrayLike] | None = None,
    *,
    done: npt.ArrayLike | None = None,
    elev: float = 30.0,
    azim: float = -60.0,
    ax: Axes3D | None = None,
    **options: Unpack[StyleOptions],
) -> Figure:
    """A 3D surface plot (``plot_surface`` on a real 3D axes), coloured by height.

    The labelled z axis gives the values, so there is no colourbar (it would only repeat it).

    Heights above ``vmax`` are clipped to ``vmax`` (a flat cap, noted); with ``log`` the
    height is ``log10`` of the metric. ``trajectory`` = (xs, ys, zs) in metric units is drawn
    on top of the surface as a line with markers. Masked points leave holes. The style keywords
    are those of every 2D plot (:class:`~landscape.figures._style.StyleOptions`); ``levels``,
    given as values, only sets the colour range. ``ax``: draw into this 3D axes
    (``fig.add_subplot(projection="3d")``) instead of a new figure.
    """
    style = _Style(**options)
    preset, vmin, vmax, log = style.preset, style.vmin, style.vmax, style.log
    field = _field(x, y, z, done, log)
    lo, hi = _limits([field], style)
    height = _height(field.zt.filled(np.nan), vmax, log)  # (ny, nx)
    h_lo, h_hi = _height(np.array([lo, hi]), None, log)
    fig, drawn_on = _figure_axes(preset, ax, three_d=True)
    ax = cast(Axes3D, drawn_on)
    note = field.note
    if np.isfinite(height).any():
        grid_x, grid_y = np.meshgrid(field.x, field.y)  # (ny, nx), like height
        stride = max(1, math.ceil(max(height.shape) / _MAX_FACETS_PER_SIDE))
        surface = ax.plot_surface(
            grid_x,
            grid_y,
            height,
            cmap=style.cmap,
            norm=Normalize(h_lo, h_hi),
            rstride=stride,
            cstride=stride,
            linewidth=0,
            antialiased=False,
            zorder=1,
        )
        surface.set_gid("landscape-surface")
        if vmax is not None and np.nanmax(field.zt.filled(np.nan)) > vmax:
            note = "\n".join(filter(None, [note, f"clipped at {_fmt_level(vmax)}"]))
    if vmax is not None:
        ax.set_zlim(h_lo if vmin is not None else float(np.nanmin(height)), h_hi)
    if trajectory is not None:
        _draw_path3d(ax, trajectory, vmax, log)
    _label3d(ax, style)
    ax.view_init(elev=elev, azim=azim)
    _note(ax, note, preset)
    return fig


def _height(values: FloatArray, vmax: float | None, log: bool) -> FloatArray:
    """Metric → surface height: clipped at ``vmax`` (raw units), then log10 when asked."""
    clipped = values if vmax is None else np.minimum(values, vmax)
    if not log:
        return clipped
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(clipped > 0, np.log10(np.where(clipped > 0, clipped, 1.0)), np.nan)


def _draw_path3d(
    ax: Axes3D,
    trajectory: tuple[npt.ArrayLike, npt.ArrayLike, npt.ArrayLike],
    vmax: float | None,
    log: bool,
) -> None:
    xs, ys, zs = (np.asarray(a, dtype=np.float64) for a in trajectory)
    if not (xs.ndim == ys.ndim == zs.ndim == 1 and xs.size == ys.size == zs.size):
        raise GridError(f"trajectory needs three 1D arrays of one length, got {xs.shape}, {ys.shape}, {zs.shape}")
    # computed_zorder=False on the axes: a higher zorder keeps the path above the surface.
    ax.plot(xs, ys, _height(zs, vmax, log), color=_PATH_COLOUR, lw=1.2, marker="o", ms=2.5, zorder=10)


def _label3d(ax: Axes3D, style: _Style) -> None:
    preset = style.preset
    ax.set_xlabel(style.x_label, fontsize=preset.label, labelpad=-3)
    ax.set_ylabel(style.y_label, fontsize=preset.label, labelpad=-3)
    z_label = f"log$_{{10}}$ {style.metric_label}" if style.log else style.metric_label
    ax.set_zlabel(z_label, fontsize=preset.label, labelpad=-3)
    ticks = 4 if preset.width < 5 else 6  # 3D tick labels crowd quickly
    for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
        axis.set_major_locator(MaxNLocator(ticks, steps=[1, 2, 2.5, 5, 10]))
    ax.tick_params(axis="both", labelsize=preset.tick, pad=-2)
    # Constrained layout does not see the projected z label: shrink the box to make room.
    ax.set_box_aspect(None, zoom=0.9)
    if style.title:
        ax.set_title(style.title, fontsize=preset.title)
