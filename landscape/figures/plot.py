"""Paper-ready figures of loss landscapes (Li et al. 2018), drawn from plain arrays.

Every public function takes numpy arrays and returns a :class:`matplotlib.figure.Figure`
built with the object-oriented API: no pyplot state, no global ``rcParams`` change, so it runs
headless and the caller decides where the figure goes (:func:`save_figure`). Fonts are set
per artist from a width preset (``"single"`` column ≈ 3.4 in, ``"double"`` ≈ 7.0 in), so the
figure reads well at the size it is printed.

Array convention (docs/CONTRACTS.md): a 2D metric ``z`` has shape ``(len(x), len(y))`` and
``z[i, j]`` is the value at ``(x[i], y[j])``. Matplotlib indexes rows by y, so the data is
transposed exactly once, in :func:`_field`. Points that diverged (NaN/inf) or are not computed
yet (``done`` False) are masked, never drawn, and counted in a small note inside the axes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal, cast

import matplotlib
import numpy as np
import numpy.typing as npt
from matplotlib import patheffects
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Colormap, ListedColormap, LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullFormatter
from mpl_toolkits.mplot3d.axes3d import Axes3D

from landscape.errors import ConfigError, GridError

__all__ = [
    "PanelKind",
    "Width",
    "contour",
    "filled_contour",
    "heatmap",
    "line",
    "lines_overlay",
    "panels",
    "save_figure",
    "surface3d",
    "training_curves",
    "trajectory",
]

Width = Literal["single", "double"]
PanelKind = Literal["contour", "filled", "heatmap"]
Levels = int | Sequence[float] | None
CmapLike = str | Colormap
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]
_DrawKind = Literal["lines", "filled", "heatmap"]

NOTE_GID = "landscape-note"
"""``gid`` of the note text that counts masked points (lets callers and tests find it)."""
MISSING_GID = "landscape-missing"
"""``gid`` of the shading under masked cells: grey not yet computed, pink diverged."""

_FORMATS = ("pdf", "png", "svg")
# No timestamps in the files, so re-running a figure script gives identical bytes.
_METADATA: dict[str, dict[str, Any]] = {
    "pdf": {"CreationDate": None},
    "svg": {"Date": None},
    "png": {},
}
_LOSS_COLOURS = ("C0", "C2", "C4", "C6", "C8")  # left axis of `line`
_ACC_COLOURS = ("C3", "C1", "C5", "C7", "C9")  # right (accuracy) axis of `line`
_PATH_COLOUR = "tab:red"
_MISSING_COLOURS = ListedColormap(["0.88", "#f5cccc"])  # pending, diverged
_MAX_FACETS_PER_SIDE = 120  # 3D surfaces are strided beyond this, to keep files small
_PANEL_COLUMNS = 4
_MIN_CLABEL_WIDTH = 2.2  # inches; narrower panels get no inline labels (they would pile up)
# Default level counts (about; levels are rounded to 1-2-2.5-5 steps).
_LINE_LEVELS = 12
_FILLED_LEVELS = 20
_BAR_TICKS = 6


@dataclass(frozen=True)
class _Preset:
    """Sizes for one printed width; fonts in points, lengths in inches."""

    width: float  # figure width: one journal column or the full text width
    aspect: float  # height / width of a one-panel 2D figure
    aspect3d: float  # height / width of a 3D figure
    label: float  # axis labels, colourbar labels, legends, panel titles
    tick: float  # tick labels, contour labels, point labels, notes
    title: float
    max_point_labels: int  # epoch labels along a trajectory


_PRESETS: dict[str, _Preset] = {
    "single": _Preset(3.4, 0.80, 0.85, label=8.0, tick=7.0, title=9.0, max_point_labels=7),
    "double": _Preset(7.0, 0.62, 0.62, label=10.0, tick=9.0, title=11.0, max_point_labels=12),
}


@dataclass(frozen=True)
class _Style:
    """The keyword options shared by the 2D plots, validated once."""

    preset: _Preset
    metric_label: str
    x_label: str
    y_label: str
    levels: Levels
    vmin: float | None
    vmax: float | None
    log: bool
    cmap: CmapLike
    title: str | None


@dataclass(frozen=True)
class _Field:
    """A 2D metric ready for matplotlib."""

    x: FloatArray  # (nx,)
    y: FloatArray  # (ny,)
    zt: np.ma.MaskedArray[Any, Any]  # (ny, nx): transposed, masked where not drawable
    missing: npt.NDArray[np.int8]  # (ny, nx): 0 drawn, 1 not computed, 2 diverged or hidden
    note: str | None


# ----------------------------------------------------------------------------- validation


def _preset(width: str) -> _Preset:
    if width not in _PRESETS:
        raise ConfigError(f"width must be one of {sorted(_PRESETS)}, got {width!r}")
    return _PRESETS[width]


def _style(
    width: str,
    metric_label: str,
    x_label: str,
    y_label: str,
    levels: Levels,
    vmin: float | None,
    vmax: float | None,
    log: bool,
    cmap: CmapLike,
    title: str | None,
) -> _Style:
    if vmin is not None and vmax is not None and not vmin < vmax:
        raise ConfigError(f"vmin must be below vmax, got vmin={vmin}, vmax={vmax}")
    if log and vmin is not None and vmin <= 0:
        raise ConfigError(f"a log colour scale needs vmin > 0, got vmin={vmin}")
    if log and vmax is not None and vmax <= 0:
        raise ConfigError(f"a log colour scale needs vmax > 0, got vmax={vmax}")
    _explicit_levels(levels, log)  # fail early on malformed levels
    return _Style(_preset(width), metric_label, x_label, y_label, levels, vmin, vmax, log, cmap, title)


def _axis(values: npt.ArrayLike, name: str, min_len: int = 2) -> FloatArray:
    """A grid axis: 1D, finite, strictly increasing."""
    axis = np.asarray(values, dtype=np.float64)
    if axis.ndim != 1 or axis.size < min_len:
        raise GridError(f"{name} must be 1D with at least {min_len} points, got shape {axis.shape}")
    if not np.all(np.isfinite(axis)) or np.any(np.diff(axis) <= 0):
        raise GridError(f"{name} must be finite and strictly increasing, got {axis}")
    return axis


def _path(path: npt.ArrayLike, name: str = "path") -> FloatArray:
    """A trajectory in plot coordinates: (n, 2), finite."""
    points = np.asarray(path, dtype=np.float64)
    if points.ndim != 2 or points.shape[1] != 2 or points.shape[0] == 0:
        raise GridError(f"{name} must have shape (n, 2) with n >= 1, got {points.shape}")
    if not np.all(np.isfinite(points)):
        raise GridError(f"{name} has non-finite coordinates")
    return points


def _explicit_levels(levels: Levels, log: bool) -> FloatArray | None:
    """The sorted levels when a sequence is given, None for a count or the default."""
    if levels is None:
        return None
    if isinstance(levels, int):
        if levels < 2:
            raise ConfigError(f"levels must be at least 2 when given as a count, got {levels}")
        return None
    explicit = np.asarray(levels, dtype=np.float64)
    if explicit.ndim != 1 or explicit.size < 2 or np.any(np.diff(explicit) <= 0):
        raise ConfigError(f"levels must be at least 2 strictly increasing values, got {levels}")
    if log and explicit[0] <= 0:
        raise ConfigError(f"log-spaced levels must be positive, got {levels}")
    return explicit


# ------------------------------------------------------------------------- masks and notes


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def _note_text(computed: BoolArray, diverged: BoolArray, hidden: BoolArray) -> str | None:
    """One line per reason a point is missing from the figure."""
    lines = []
    if not computed.all():
        lines.append(f"{int(computed.sum())}/{computed.size} points computed")
    if diverged.any():
        lines.append(f"{_plural(int(diverged.sum()), 'point')} diverged (NaN/inf), masked")
    if hidden.any():
        lines.append(f"{_plural(int(hidden.sum()), 'point')} ≤ 0 not shown (log scale)")
    return "\n".join(lines) or None


def _computed(done: npt.ArrayLike | None, shape: tuple[int, ...]) -> BoolArray:
    if done is None:
        return np.ones(shape, dtype=bool)
    computed = np.asarray(done, dtype=bool)
    if computed.shape != shape:
        raise GridError(f"done has shape {computed.shape}, expected {shape}")
    return computed


def _masks(values: FloatArray, computed: BoolArray, log: bool) -> tuple[BoolArray, BoolArray]:
    """(diverged, hidden): computed points that are non-finite, or non-positive on a log scale."""
    finite = np.isfinite(values)
    diverged = computed & ~finite
    hidden = computed & finite & (values <= 0) if log else np.zeros_like(computed)
    return diverged, hidden


def _field(x: npt.ArrayLike, y: npt.ArrayLike, z: npt.ArrayLike, done: npt.ArrayLike | None, log: bool) -> _Field:
    """Validate a surface and turn it into a masked, transposed (ny, nx) array with its note."""
    xs, ys = _axis(x, "x"), _axis(y, "y")
    values = np.asarray(z, dtype=np.float64)
    if values.shape != (xs.size, ys.size):
        raise GridError(f"z has shape {values.shape}, expected (len(x), len(y)) = {(xs.size, ys.size)}")
    computed = _computed(done, values.shape)
    diverged, hidden = _masks(values, computed, log)
    masked = ~computed | diverged | hidden
    drawable = np.where(masked, np.nan, values)
    missing = np.where(~computed, 1, np.where(diverged | hidden, 2, 0)).astype(np.int8)
    # z[i, j] is at (x[i], y[j]); matplotlib wants Z[j, i], hence the transposes.
    zt = np.ma.masked_array(drawable.T, mask=masked.T)
    return _Field(xs, ys, zt, missing.T, _note_text(computed, diverged, hidden))


def _note(ax: Axes, text: str | None, preset: _Preset) -> None:
    """Small boxed text saying what is masked: lower left, or upper left on a 3D axes."""
    if text is None:
        return
    style: dict[str, Any] = {
        "transform": ax.transAxes,
        "fontsize": preset.tick - 1,
        "ha": "left",
        "va": "bottom",
        "gid": NOTE_GID,
        "zorder": 6,
        "bbox": {"boxstyle": "round,pad=0.25", "fc": "white", "ec": "0.6", "lw": 0.4, "alpha": 0.85},
    }
    if isinstance(ax, Axes3D):  # the lower left holds the x axis label there
        ax.text2D(0.0, 1.0, text, **{**style, "va": "top"})
    else:
        ax.text(0.02, 0.02, text, **style)


# ----------------------------------------------------------------------- levels and colours


def _limits(fields: Sequence[_Field], style: _Style) -> tuple[float, float]:
    """Colour limits: the given vmin/vmax, else the explicit levels, else the data range."""
    data = np.concatenate([f.zt.compressed() for f in fields])
    explicit = _explicit_levels(style.levels, style.log)
    if explicit is not None:
        lo, hi = float(explicit[0]), float(explicit[-1])
    elif data.size:
        lo, hi = float(data.min()), float(data.max())
    else:
        lo, hi = (1.0, 10.0) if style.log else (0.0, 1.0)
    lo = lo if style.vmin is None else style.vmin
    hi = hi if style.vmax is None else style.vmax
    if hi <= lo:  # flat data, or one bound given beyond the data: widen around it
        if style.log:
            lo, hi = min(lo, hi) / 2.0, max(lo, hi) * 2.0
        else:
            pad = 0.05 * abs(lo) or 0.5
            lo, hi = min(lo, hi) - pad, max(lo, hi) + pad
    return lo, hi


_LOG_SUBS: tuple[tuple[float, ...], ...] = (
    (1.0,),
    (1.0, 3.0),
    (1.0, 2.0, 5.0),
    (1.0, 1.5, 2.0, 3.0, 5.0, 7.0),
    (1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0),
)


def _nice(lo: float, hi: float, log: bool, count: int) -> FloatArray:
    """About ``count`` round values in [lo, hi], for levels and colourbar ticks.

    Linear: steps of 1, 2, 2.5 or 5 times a power of ten. Log: 1, 1-3, 1-2-5, ... per decade,
    the coarsest set that gives ``count`` values. Ranges too narrow for two round values fall
    back to evenly spaced ones.
    """
    tol = 1e-9 * max(abs(lo), abs(hi), hi - lo)
    ticks: FloatArray
    if log:
        decades = 10.0 ** np.arange(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)
        for subs in _LOG_SUBS:
            ticks = (decades[:, None] * np.asarray(subs)).ravel()
            ticks = ticks[(ticks >= lo - tol) & (ticks <= hi + tol)]
            if ticks.size >= count - 1:
                break
        if ticks.size < max(4, count // 2):  # less than a decade: round linear values read better
            linear = np.asarray(MaxNLocator(nbins=count, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi), dtype=np.float64)
            linear = linear[(linear >= lo - tol) & (linear <= hi + tol) & (linear > 0)]
            ticks = linear if linear.size > ticks.size else ticks
    else:
        locator = MaxNLocator(nbins=count, steps=[1, 2, 2.5, 5, 10])
        ticks = np.asarray(locator.tick_values(lo, hi), dtype=np.float64)
        ticks = ticks[(ticks >= lo - tol) & (ticks <= hi + tol)]
    if ticks.size >= 2:
        return ticks
    return np.geomspace(lo, hi, count) if log else np.linspace(lo, hi, count)


def _levels(style: _Style, lo: float, hi: float, filled: bool) -> FloatArray:
    """Contour levels: the explicit values, or about ``levels`` round values in [lo, hi].

    Filled contours also get ``lo`` and ``hi`` themselves, so the bands cover the whole colour
    range; a round value too close to either end is dropped rather than leave a sliver band.
    """
    explicit = _explicit_levels(style.levels, style.log)
    if explicit is not None:
        return explicit
    default = _FILLED_LEVELS if filled else _LINE_LEVELS
    count = default if style.levels is None else int(style.levels)  # type: ignore[arg-type]
    nice = _nice(lo, hi, style.log, count)
    if not filled:
        return nice
    scale = np.log10 if style.log else np.asarray
    position = (scale(nice) - scale(lo)) / (scale(hi) - scale(lo))  # 0 at lo, 1 at hi
    gap = 0.3 / count
    inner = nice[(position > gap) & (position < 1.0 - gap)]
    return np.concatenate([[lo], inner, [hi]])


def _norm(lo: float, hi: float, log: bool) -> Normalize:
    return LogNorm(vmin=lo, vmax=hi) if log else Normalize(vmin=lo, vmax=hi)


def _extend(data: FloatArray, levels: FloatArray) -> Literal["neither", "min", "max", "both"]:
    """Which ends of a filled contour need an open-ended band for values outside the levels."""
    below, above = bool(data.min() < levels[0]), bool(data.max() > levels[-1])
    if below and above:
        return "both"
    return "min" if below else "max" if above else "neither"


def _edges(centres: FloatArray) -> FloatArray:
    """Cell edges around possibly non-uniform centres: midpoints, mirrored at both ends."""
    mids = 0.5 * (centres[:-1] + centres[1:])
    first = centres[0] - (mids[0] - centres[0])
    last = centres[-1] + (centres[-1] - mids[-1])
    return np.concatenate([[first], mids, [last]])


def _fmt_level(value: float, _position: float | None = None) -> str:
    """Compact value text for contour labels and ticks: 0.25, 1.5, 20, 1e+03."""
    return f"{value:.3g}"


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


def _figure(preset: _Preset, height: float | None = None) -> Figure:
    size = (preset.width, preset.width * preset.aspect if height is None else height)
    return Figure(figsize=size, layout="constrained")


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


def _colorbar(
    fig: Figure,
    mappable: ScalarMappable,
    axes: Axes | list[Axes],
    label: str,
    preset: _Preset,
    *,
    log: bool,
    ticks: int = _BAR_TICKS,
    **options: Any,
) -> None:
    """A colourbar labelled with the metric, ticked at a few round values."""
    bar = fig.colorbar(mappable, ax=axes, **options)
    bar.set_label(label, fontsize=preset.label)
    norm = mappable.norm
    lo, hi = float(norm.vmin), float(norm.vmax)  # type: ignore[arg-type]
    bar.set_ticks(_nice(lo, hi, log, ticks).tolist())
    bar.ax.yaxis.set_major_formatter(FuncFormatter(_fmt_level))
    bar.minorticks_off()
    bar.ax.tick_params(labelsize=preset.tick)


def _label(ax: Axes, style: _Style, *, x: bool = True, y: bool = True) -> None:
    preset = style.preset
    if x:
        ax.set_xlabel(style.x_label, fontsize=preset.label)
    if y:
        ax.set_ylabel(style.y_label, fontsize=preset.label)
    ax.tick_params(labelsize=preset.tick, labelbottom=x, labelleft=y)


def _plane(
    kind: _DrawKind,
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    z: npt.ArrayLike,
    done: npt.ArrayLike | None,
    style: _Style,
) -> tuple[Figure, Axes]:
    """One surface in one axes with its colourbar, labels, title and note."""
    field = _field(x, y, z, done, style.log)
    lo, hi = _limits([field], style)
    levels = _levels(style, lo, hi, filled=kind != "lines")
    norm = _norm(lo, hi, style.log)
    fig = _figure(style.preset)
    ax = fig.add_subplot()
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
    metric_label: str = "loss",
    x_label: str = "α",
    y_label: str = "β",
    levels: Levels = None,
    vmin: float | None = None,
    vmax: float | None = None,
    log: bool = False,
    cmap: CmapLike = "viridis",
    width: Width = "single",
    title: str | None = None,
) -> Figure:
    """Iso-loss lines of a 2D surface, every other line labelled, with a colourbar.

    ``z`` has shape ``(len(x), len(y))``; ``done`` (same shape) marks computed points.
    ``levels`` is explicit values, or about that many round values (default 12) in
    ``[vmin, vmax]`` (1-2-5 per decade when ``log``). Diverged and uncomputed points are
    masked, shaded (pink, grey) and counted in a note.
    """
    style = _style(width, metric_label, x_label, y_label, levels, vmin, vmax, log, cmap, title)
    return _plane("lines", x, y, z, done, style)[0]


def filled_contour(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    z: npt.ArrayLike,
    *,
    done: npt.ArrayLike | None = None,
    metric_label: str = "loss",
    x_label: str = "α",
    y_label: str = "β",
    levels: Levels = None,
    vmin: float | None = None,
    vmax: float | None = None,
    log: bool = False,
    cmap: CmapLike = "viridis",
    width: Width = "single",
    title: str | None = None,
) -> Figure:
    """Filled contour bands (about 20 levels) with thin iso-lines and a colourbar.

    Values beyond ``vmin``/``vmax`` fall in open-ended bands shown as arrows on the colourbar.
    Same array convention and masking as :func:`contour`.
    """
    style = _style(width, metric_label, x_label, y_label, levels, vmin, vmax, log, cmap, title)
    return _plane("filled", x, y, z, done, style)[0]


def heatmap(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    z: npt.ArrayLike,
    *,
    done: npt.ArrayLike | None = None,
    metric_label: str = "loss",
    x_label: str = "α",
    y_label: str = "β",
    levels: Levels = None,
    vmin: float | None = None,
    vmax: float | None = None,
    log: bool = False,
    cmap: CmapLike = "viridis",
    width: Width = "single",
    title: str | None = None,
) -> Figure:
    """One coloured cell per grid point (``pcolormesh``), with a colourbar.

    Each cell is centred on its grid point, edges half-way to the neighbours, so non-uniform
    and non-square grids are drawn where they are. ``levels`` is accepted so every 2D kind
    takes the same options; it only sets the colour limits when given as values.
    """
    style = _style(width, metric_label, x_label, y_label, levels, vmin, vmax, log, cmap, title)
    return _plane("heatmap", x, y, z, done, style)[0]


def trajectory(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    z: npt.ArrayLike,
    path: npt.ArrayLike,
    *,
    labels: Sequence[str] | None = None,
    done: npt.ArrayLike | None = None,
    metric_label: str = "loss",
    x_label: str = "PC1",
    y_label: str = "PC2",
    levels: Levels = None,
    vmin: float | None = None,
    vmax: float | None = None,
    log: bool = False,
    cmap: CmapLike = "viridis",
    width: Width = "single",
    title: str | None = None,
) -> Figure:
    """An optimisation path (``path`` (n, 2), e.g. PCA coordinates) over the loss contours.

    Start and end are marked distinctly (legend "start"/"end"); when ``labels`` (one per
    point, e.g. epochs) are given, every k-th point is labelled, skipping labels that would
    overlap. Pass the explained variance in the axis labels, e.g. ``"PC1 (61.2 %)"``.
    """
    style = _style(width, metric_label, x_label, y_label, levels, vmin, vmax, log, cmap, title)
    fig, ax = _plane("lines", x, y, z, done, style)
    _draw_path(ax, path, labels, style.preset, legend=True)
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
    metric_label: str = "loss",
    x_label: str = "α",
    y_label: str = "β",
    levels: Levels = None,
    vmin: float | None = None,
    vmax: float | None = None,
    log: bool = False,
    cmap: CmapLike = "viridis",
    width: Width = "double",
    title: str | None = None,
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
    style = _style(width, metric_label, x_label, y_label, levels, vmin, vmax, log, cmap, title)
    draw_kind: _DrawKind = "lines" if kind == "contour" else kind
    fields = {name: _field(x, y, z, (dones or {}).get(name), log) for name, z in zs.items()}
    columns = min(len(fields), _PANEL_COLUMNS)
    # Many narrow panels read like single-column figures: use that preset's fonts.
    preset = style.preset if columns < 3 else _panel_fonts(style.preset)
    style = replace(style, preset=preset)
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
        mappables.append(drawn if drawn is not None else ScalarMappable(norm=norm, cmap=cmap))
        if not shared:
            _colorbar(fig, mappables[-1], ax, style.metric_label, preset, log=log, ticks=4)
        last_row = index + _PANEL_COLUMNS >= len(fields)  # nothing drawn below this one
        _label(ax, style, x=last_row, y=index % _PANEL_COLUMNS == 0)
        ax.set_title(name, fontsize=preset.label)
        if paths is not None and name in paths:
            first = next(iter(paths)) == name
            _draw_path(ax, paths[name], None, preset, legend=first)
        _note(ax, field.note, preset)
    if shared:
        _colorbar(fig, mappables[0], axes, style.metric_label, preset, log=log, shrink=0.9)
    if title:
        fig.suptitle(title, fontsize=preset.title)
    return fig


def _panel_fonts(preset: _Preset) -> _Preset:
    single = _PRESETS["single"]
    return replace(
        preset, label=single.label, tick=single.tick, title=single.title, max_point_labels=single.max_point_labels
    )


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


def surface3d(
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    z: npt.ArrayLike,
    trajectory: tuple[npt.ArrayLike, npt.ArrayLike, npt.ArrayLike] | None = None,
    *,
    done: npt.ArrayLike | None = None,
    metric_label: str = "loss",
    x_label: str = "α",
    y_label: str = "β",
    levels: Levels = None,
    vmin: float | None = None,
    vmax: float | None = None,
    log: bool = False,
    cmap: CmapLike = "viridis",
    width: Width = "single",
    title: str | None = None,
    elev: float = 30.0,
    azim: float = -60.0,
) -> Figure:
    """A 3D surface plot (``plot_surface`` on a real 3D axes), coloured by height.

    The labelled z axis gives the values, so there is no colourbar (it would only repeat it).

    Heights above ``vmax`` are clipped to ``vmax`` (a flat cap, noted); with ``log`` the
    height is ``log10`` of the metric. ``trajectory`` = (xs, ys, zs) in metric units is drawn
    on top of the surface as a line with markers. Masked points leave holes. ``levels`` is
    accepted for a uniform signature; given as values, it only sets the colour range.
    """
    style = _style(width, metric_label, x_label, y_label, levels, vmin, vmax, log, cmap, title)
    preset = style.preset
    field = _field(x, y, z, done, log)
    lo, hi = _limits([field], style)
    height = _height(field.zt.filled(np.nan), vmax, log)  # (ny, nx)
    h_lo, h_hi = _height(np.array([lo, hi]), None, log)
    fig = Figure(figsize=(preset.width, preset.width * preset.aspect3d), layout="constrained")
    ax = cast(Axes3D, fig.add_subplot(projection="3d", computed_zorder=False))
    note = field.note
    if np.isfinite(height).any():
        grid_x, grid_y = np.meshgrid(field.x, field.y)  # (ny, nx), like height
        stride = max(1, math.ceil(max(height.shape) / _MAX_FACETS_PER_SIDE))
        surface = ax.plot_surface(
            grid_x,
            grid_y,
            height,
            cmap=cmap,
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


def _z_label(metric_label: str, log: bool) -> str:
    return f"log$_{{10}}$ {metric_label}" if log else metric_label


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
    ax.set_zlabel(_z_label(style.metric_label, style.log), fontsize=preset.label, labelpad=-3)
    ticks = 4 if preset.width < 5 else 6  # 3D tick labels crowd quickly
    for axis in (ax.xaxis, ax.yaxis, ax.zaxis):
        axis.set_major_locator(MaxNLocator(ticks, steps=[1, 2, 2.5, 5, 10]))
    ax.tick_params(axis="both", labelsize=preset.tick, pad=-2)
    # Constrained layout does not see the projected z label: shrink the box to make room.
    ax.set_box_aspect(None, zoom=0.9)
    if style.title:
        ax.set_title(style.title, fontsize=preset.title)


# ----------------------------------------------------------------------------- 1D figures


def _linestyle(name: str) -> str:
    """Test curves dashed; training curves, and curves of no split, solid."""
    return "--" if name.lower().startswith("test") else "-"


def _family(name: str) -> str:
    """The metric a curve shows, without its split: train_loss and test_loss share a colour."""
    lowered = name.lower()
    for split in ("train", "test"):
        if lowered.startswith(split):
            return lowered[len(split) :].strip("_- ") or split
    return lowered


def _curve(values: npt.ArrayLike, name: str, size: int) -> FloatArray:
    curve = np.asarray(values, dtype=np.float64)
    if curve.shape != (size,):
        raise GridError(f"curve {name!r} has shape {curve.shape}, expected ({size},)")
    return curve


def _plot_curves(
    ax: Axes,
    x: FloatArray,
    curves: Mapping[str, npt.ArrayLike],
    computed: BoolArray,
    log: bool,
    palette: Sequence[str],
) -> tuple[list[Line2D], BoolArray, BoolArray]:
    """Draw each curve with NaN where it cannot be shown; returns the lines and the masks."""
    families = list(dict.fromkeys(_family(name) for name in curves))
    diverged = np.zeros_like(computed)
    hidden = np.zeros_like(computed)
    handles = []
    for name, values in curves.items():
        curve = _curve(values, name, x.size)
        bad, nonpositive = _masks(curve, computed, log)
        diverged |= bad
        hidden |= nonpositive
        shown = np.where(computed & ~bad & ~nonpositive, curve, np.nan)
        colour = palette[families.index(_family(name)) % len(palette)]
        handles += ax.plot(x, shown, color=colour, ls=_linestyle(name), lw=1.3, label=name)
    return handles, diverged, hidden


def _value_axis(ax: Axes, label: str, log: bool, preset: _Preset) -> None:
    """Label the y axis; on a log scale tick it at round values written plainly (0.2, 5)."""
    ax.set_ylabel(label, fontsize=preset.label)
    if log:
        ax.set_yscale("log")
        values = np.concatenate([np.ravel(line.get_ydata()) for line in ax.get_lines()])
        values = values[np.isfinite(values) & (values > 0)]
        if values.size and values.max() > values.min():
            _log_ticks(ax.yaxis, float(values.min()), float(values.max()))
    ax.tick_params(which="both", labelsize=preset.tick)


def _log_ticks(axis: Axis, lo: float, hi: float) -> None:
    axis.set_major_locator(FixedLocator(_nice(lo, hi, True, 5).tolist()))
    axis.set_major_formatter(FuncFormatter(_fmt_level))
    axis.set_minor_formatter(NullFormatter())


def _legend_above(fig: Figure, handles: Sequence[Line2D], preset: _Preset, title: str | None = None) -> None:
    """Legend above the axes, outside the data, so it never hides a curve.

    A figure title goes in the legend's own title: as an axes title it would sit between the
    legend and the axes, and a suptitle is laid out on top of an outside legend.
    """
    count = len(handles)
    columns = count if count <= 3 else 2 if count == 4 else 3  # four entries: a 2 × 2 block
    fig.legend(
        handles=list(handles),
        loc="outside upper center",
        ncols=columns,
        fontsize=preset.tick,
        frameon=False,
        handlelength=2.2,
        title=title,
        title_fontsize=preset.title,
    )


def _position_axis(ax: Axes, x: FloatArray, label: str, preset: _Preset) -> None:
    """The x axis of a 1D slice: tight to the grid, a few round ticks that never touch."""
    ax.set_xlim(x[0], x[-1])
    bins = 5 if preset.width < 5 else 9
    ax.xaxis.set_major_locator(MaxNLocator(nbins=bins, steps=[1, 2, 2.5, 5, 10]))
    ax.set_xlabel(label, fontsize=preset.label)


def _mark_endpoints(ax: Axes, endpoints: Sequence[float] | None, preset: _Preset) -> None:
    """Vertical dotted lines at the checkpoints, labelled A, B, C, ... on a top axis.

    The letters sit outside the data area, so they never collide with a curve that peaks at
    a checkpoint (accuracy usually does).
    """
    if not endpoints:
        return
    if len(endpoints) > 26:
        raise ConfigError(f"at most 26 endpoints can be labelled, got {len(endpoints)}")
    letters = [chr(ord("A") + k) for k in range(len(endpoints))]
    for position in endpoints:
        ax.axvline(position, color="0.35", lw=0.8, ls=":", zorder=1)
    top = ax.secondary_xaxis("top")
    top.set_xticks(list(endpoints), labels=letters)
    top.tick_params(labelsize=preset.label, length=2, pad=1)
    for text in top.get_xticklabels():
        text.set_fontweight("bold")


def line(
    x: npt.ArrayLike,
    curves: Mapping[str, npt.ArrayLike],
    *,
    acc_curves: Mapping[str, npt.ArrayLike] | None = None,
    done: npt.ArrayLike | None = None,
    metric_label: str = "loss",
    acc_label: str = "accuracy",
    x_label: str = "α",
    log: bool = False,
    endpoints: Sequence[float] | None = None,
    width: Width = "single",
    title: str | None = None,
) -> Figure:
    """A 1D slice (random direction or interpolation): loss on the left, accuracy on the right.

    Curves named ``train*`` are solid and ``test*`` dashed; curves of one metric share a
    colour. ``log`` puts the loss axis on a log scale. ``endpoints`` (e.g. ``[0, 1]`` for an
    interpolation between two checkpoints) get vertical lines labelled A, B, ...
    Non-finite and uncomputed points are left out and counted in a note.
    """
    preset = _preset(width)
    xs = _axis(x, "x")
    computed = _computed(done, xs.shape)
    fig = _figure(preset)
    ax = fig.add_subplot()
    handles, diverged, hidden = _plot_curves(ax, xs, curves, computed, log, _LOSS_COLOURS)
    _position_axis(ax, xs, x_label, preset)
    _value_axis(ax, metric_label, log, preset)
    if acc_curves:
        twin = ax.twinx()
        more, bad, _ = _plot_curves(twin, xs, acc_curves, computed, False, _ACC_COLOURS)
        handles += more
        diverged |= bad
        _value_axis(twin, acc_label, False, preset)
        twin.yaxis.label.set_color(_ACC_COLOURS[0])
        ax.yaxis.label.set_color(_LOSS_COLOURS[0])
    _mark_endpoints(ax, endpoints, preset)
    _legend_above(fig, handles, preset, title)
    _note(ax, _note_text(computed, diverged, hidden), preset)
    return fig


def lines_overlay(
    x: npt.ArrayLike,
    curves: Mapping[str, npt.ArrayLike],
    *,
    done: npt.ArrayLike | None = None,
    metric_label: str = "loss",
    x_label: str = "α",
    log: bool = False,
    endpoints: Sequence[float] | None = None,
    width: Width = "single",
    title: str | None = None,
) -> Figure:
    """Several 1D curves on one axis, one colour each (e.g. the same slice under several losses).

    Line styles follow the names as in :func:`line` (``train*`` solid, ``test*`` dashed).
    """
    preset = _preset(width)
    xs = _axis(x, "x")
    computed = _computed(done, xs.shape)
    fig = _figure(preset)
    ax = fig.add_subplot()
    palette = [f"C{k}" for k in range(10)]
    handles = []
    diverged, hidden = np.zeros_like(computed), np.zeros_like(computed)
    for k, (name, values) in enumerate(curves.items()):
        more, bad, nonpositive = _plot_curves(ax, xs, {name: values}, computed, log, [palette[k % 10]])
        handles += more
        diverged |= bad
        hidden |= nonpositive
    _position_axis(ax, xs, x_label, preset)
    _value_axis(ax, metric_label, log, preset)
    _mark_endpoints(ax, endpoints, preset)
    _legend_above(fig, handles, preset, title)
    _note(ax, _note_text(computed, diverged, hidden), preset)
    return fig


def training_curves(
    curves: Mapping[str, tuple[npt.ArrayLike, npt.ArrayLike]],
    *,
    metric_label: str = "loss",
    x_label: str = "epoch",
    log: bool = False,
    width: Width = "single",
    title: str | None = None,
) -> Figure:
    """Value against epoch for each run or loss, on one axis (``curves``: name → (epochs, values)).

    Short curves (≤ 30 points) get markers. Non-finite values are left out and counted.
    """
    preset = _preset(width)
    fig = _figure(preset)
    ax = fig.add_subplot()
    handles: list[Line2D] = []
    dropped = 0
    for k, (name, (epochs, values)) in enumerate(curves.items()):
        xs = np.asarray(epochs, dtype=np.float64)
        if xs.ndim != 1:
            raise GridError(f"epochs of {name!r} must be 1D, got shape {xs.shape}")
        ys = _curve(values, name, xs.size)
        shown = np.isfinite(ys) & (ys > 0 if log else True)
        dropped += int((~shown).sum())
        handles += ax.plot(
            xs,
            np.where(shown, ys, np.nan),
            color=f"C{k % 10}",
            ls=_linestyle(name),
            lw=1.3,
            marker="o" if xs.size <= 30 else "",
            ms=2.5,
            label=name,
        )
    ax.set_xlabel(x_label, fontsize=preset.label)
    _value_axis(ax, metric_label, log, preset)
    if handles:
        _legend_above(fig, handles, preset, title)
    elif title:
        ax.set_title(title, fontsize=preset.title)
    if dropped:
        _note(ax, f"{_plural(dropped, 'value')} not finite{' or ≤ 0' if log else ''}, masked", preset)
    return fig


# ---------------------------------------------------------------------------------- saving


def save_figure(
    fig: Figure,
    path_without_suffix: Path | str,
    formats: Sequence[str] = ("pdf", "png"),
    dpi: int = 200,
) -> list[Path]:
    """Write ``fig`` once per format (pdf, png, svg) next to each other; returns the paths.

    ``figure.pdf`` is appended to the name, not substituted for a suffix, so names containing
    dots (``surface_lr0.1``) survive. PDFs embed TrueType fonts (Type 42), as journals ask,
    and no file carries a timestamp, so re-running a figure script is byte-reproducible.
    Parent folders are created. Nothing is closed: figures made with ``Figure()`` need no
    closing.
    """
    unknown = [f for f in formats if f not in _FORMATS]
    if unknown:
        raise ConfigError(f"unknown figure formats {unknown}; choose from {list(_FORMATS)}")
    stem = Path(path_without_suffix)
    stem.parent.mkdir(parents=True, exist_ok=True)
    written = []
    # A local rc_context: restored on exit, so the caller's settings are untouched.
    with matplotlib.rc_context({"pdf.fonttype": 42, "svg.hashsalt": "landscape"}):
        for fmt in dict.fromkeys(formats):
            target = stem.with_name(f"{stem.name}.{fmt}")
            fig.savefig(target, format=fmt, dpi=dpi, metadata=_METADATA[fmt])
            written.append(target)
    return written
