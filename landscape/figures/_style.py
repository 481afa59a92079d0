"""Shared look of the loss-landscape figures: width presets, option checks, masks, levels, colours.

Fonts are set per artist from a width preset (``"single"`` column ≈ 3.4 in, ``"double"`` ≈
7.0 in), so a figure reads well at the size it is printed. Array convention
(docs/CONTRACTS.md): a 2D metric ``z`` has shape ``(len(x), len(y))`` and ``z[i, j]`` is the
value at ``(x[i], y[j])``. Matplotlib indexes rows by y, so the data is transposed exactly
once, in :func:`_field`. Points that diverged (NaN/inf) or are not computed yet (``done``
False) are masked, never drawn, and counted in a small note inside the axes (:func:`_note`).
Levels and colourbar ticks are round values (:func:`_nice`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypedDict

import numpy as np
import numpy.typing as npt
from matplotlib.axes import Axes
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Colormap, LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator
from mpl_toolkits.mplot3d.axes3d import Axes3D

from landscape.errors import ConfigError, GridError

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

_PATH_COLOUR = "tab:red"
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


class StyleOptions(TypedDict, total=False):
    """The style keywords every 2D plot takes, each optional (defaults of :class:`_Style` in brackets).

    ``metric_label`` ("loss"), ``x_label`` ("α"), ``y_label`` ("β"): axis and colourbar labels;
    ``levels``: explicit values, or about that many round values (None: automatic); ``vmin``,
    ``vmax``: colour limits (None: from the data); ``log``: a log colour scale (False);
    ``cmap`` ("viridis"); ``width``: ``"single"`` or ``"double"`` column; ``title`` (None).
    """

    metric_label: str
    x_label: str
    y_label: str
    levels: Levels
    vmin: float | None
    vmax: float | None
    log: bool
    cmap: CmapLike
    width: Width
    title: str | None


@dataclass(frozen=True)
class _Style:
    """The :class:`StyleOptions` of one plot, with their defaults, checked once; ``preset``: the ``width``'s sizes."""

    width: str = "single"
    metric_label: str = "loss"
    x_label: str = "α"
    y_label: str = "β"
    levels: Levels = None
    vmin: float | None = None
    vmax: float | None = None
    log: bool = False
    cmap: CmapLike = "viridis"
    title: str | None = None

    def __post_init__(self) -> None:
        vmin, vmax = self.vmin, self.vmax
        if vmin is not None and vmax is not None and not vmin < vmax:
            raise ConfigError(f"vmin must be below vmax, got vmin={vmin}, vmax={vmax}")
        for name, value in (("vmin", vmin), ("vmax", vmax)):
            if self.log and value is not None and value <= 0:
                raise ConfigError(f"a log colour scale needs {name} > 0, got {name}={value}")
        _explicit_levels(self.levels, self.log)  # fail early on malformed levels
        _preset(self.width)

    @property
    def preset(self) -> _Preset:
        return _PRESETS[self.width]


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


def _boxed(ax: Axes, xy: tuple[float, float], text: str, *, xy3d: tuple[float, float] | None = None, edge: str = "0.6",
           **style: Any) -> None:
    """Small boxed text at ``xy`` in axes coordinates; at ``xy3d`` on a 3D axes (its lower left holds the x label)."""
    box = {"boxstyle": "round,pad=0.25", "fc": "white", "ec": edge, "lw": 0.4, "alpha": 0.85}
    if isinstance(ax, Axes3D):
        ax.text2D(*(xy3d or xy), text, transform=ax.transAxes, bbox=box, **style)
    else:
        ax.text(*xy, text, transform=ax.transAxes, bbox=box, **style)


def _note(ax: Axes, text: str | None, preset: _Preset) -> None:
    """Small boxed text saying what is masked: lower left, or upper left on a 3D axes."""
    if text is not None:
        _boxed(ax, (0.02, 0.02), text, xy3d=(0.0, 1.0), fontsize=preset.tick - 1, ha="left",
               va="top" if isinstance(ax, Axes3D) else "bottom", gid=NOTE_GID, zorder=6)


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


# ------------------------------------------------------------------- shared drawing blocks


def _figure(preset: _Preset, height: float | None = None) -> Figure:
    size = (preset.width, preset.width * preset.aspect if height is None else height)
    return Figure(figsize=size, layout="constrained")


def _figure_axes(preset: _Preset, ax: Axes | None, three_d: bool = False) -> tuple[Figure, Axes]:
    """A new figure with one axes, or ``ax`` (the caller's, e.g. one panel of their figure) and its figure."""
    if ax is None:
        fig = _figure(preset) if not three_d else Figure(figsize=(preset.width, preset.width * preset.aspect3d),
                                                          layout="constrained")
        return fig, fig.add_subplot(projection="3d", computed_zorder=False) if three_d else fig.add_subplot()
    if not isinstance(ax, Axes):
        raise ConfigError(f"ax must be matplotlib Axes, got {type(ax).__name__}")
    if three_d != (ax.name == "3d"):
        want = "a 3D axes (fig.add_subplot(projection='3d'))" if three_d else "2D axes, not a 3D one"
        raise ConfigError(f"this plot draws into {want}; got a {ax.name!r} axes")
    root = ax.get_figure(root=True)
    assert isinstance(root, Figure)
    return root, ax


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


def _label(ax: Axes, style: _Style, *, x: bool = True, y: bool = True, preset: _Preset | None = None) -> None:
    preset = preset or style.preset
    if x:
        ax.set_xlabel(style.x_label, fontsize=preset.label)
    if y:
        ax.set_ylabel(style.y_label, fontsize=preset.label)
    ax.tick_params(labelsize=preset.tick, labelbottom=x, labelleft=y)
