"""1D figures: a slice of the landscape (loss and accuracy on twin axes), several slices
overlaid, and training curves against epoch."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, TypedDict

import numpy as np
import numpy.typing as npt
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullFormatter

from landscape.errors import ConfigError, GridError
from landscape.figures._style import (
    BoolArray,
    FloatArray,
    Width,
    _axis,
    _computed,
    _figure,
    _figure_axes,
    _fmt_level,
    _masks,
    _nice,
    _note,
    _note_text,
    _plural,
    _Preset,
    _preset,
)

if TYPE_CHECKING:
    from typing_extensions import Unpack

__all__ = ["BAND_GID", "BAND_LABEL", "line", "lines_overlay", "training_curves"]

BAND_GID = "landscape-stderr-band"
"""``gid`` of the ±2 standard-error bands of a progressive surface's curves."""
BAND_LABEL = "±2 s.e."

_LOSS_COLOURS = ("C0", "C2", "C4", "C6", "C8")  # left axis of `line`
_ACC_COLOURS = ("C3", "C1", "C5", "C7", "C9")  # right (accuracy) axis of `line`


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
    errors: Mapping[str, npt.ArrayLike],
) -> tuple[list[Line2D], BoolArray, BoolArray]:
    """Draw each curve with NaN where it cannot be shown, and a light ±2 standard-error band in its
    colour where ``errors`` has its name; returns the lines and the masks."""
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
        if name in errors:
            band = 2.0 * _curve(errors[name], f"errors of {name}", x.size)
            where = np.isfinite(shown) & np.isfinite(band)
            ax.fill_between(x, shown - band, shown + band, where=where, color=colour, alpha=0.18, lw=0,
                            gid=BAND_GID, zorder=1.5)
    return handles, diverged, hidden


def _value_axis(ax: Axes, label: str, log: bool, preset: _Preset) -> None:
    """Label the y axis; on a log scale tick it at round values written plainly (0.2, 5)."""
    ax.set_ylabel(label, fontsize=preset.label)
    if log:
        ax.set_yscale("log")
        values = np.concatenate([np.ravel(line.get_ydata()) for line in ax.get_lines()])
        values = values[np.isfinite(values) & (values > 0)]
        if values.size and values.max() > values.min():
            ax.yaxis.set_major_locator(FixedLocator(_nice(float(values.min()), float(values.max()), True, 5).tolist()))
            ax.yaxis.set_major_formatter(FuncFormatter(_fmt_level))
            ax.yaxis.set_minor_formatter(NullFormatter())
    ax.tick_params(which="both", labelsize=preset.tick)


def _legend_above(fig: Figure, handles: Sequence[Artist], preset: _Preset, title: str | None = None) -> None:
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


class CurveOptions(TypedDict, total=False):
    """The keywords of the 1D slice plots, each optional (defaults in brackets).

    ``done``: a mask of computed points (all); ``metric_label`` ("loss"); ``x_label`` ("α");
    ``log``: a log loss axis (False); ``endpoints``: positions marked A, B, ... (None);
    ``width``: ``"single"`` or ``"double"`` column; ``title`` (None); ``ax``: draw into these
    axes (their figure is returned; the legend goes inside them) instead of a new figure (None);
    ``errors``: curve name → standard errors (same length), drawn as a light ±2 s.e. band in the
    curve's colour with one legend entry "±2 s.e." (None: no bands).
    """

    done: npt.ArrayLike | None
    metric_label: str
    x_label: str
    log: bool
    endpoints: Sequence[float] | None
    width: Width
    title: str | None
    ax: Axes | None
    errors: Mapping[str, npt.ArrayLike] | None


def line(
    x: npt.ArrayLike,
    curves: Mapping[str, npt.ArrayLike],
    *,
    acc_curves: Mapping[str, npt.ArrayLike] | None = None,
    acc_label: str = "accuracy",
    **options: Unpack[CurveOptions],
) -> Figure:
    """A 1D slice (random direction or interpolation): loss on the left, accuracy on the right.

    Curves named ``train*`` are solid and ``test*`` dashed; curves of one metric share a
    colour. ``log`` puts the loss axis on a log scale. ``endpoints`` (e.g. ``[0, 1]`` for an
    interpolation between two checkpoints) get vertical lines labelled A, B, ...
    Non-finite and uncomputed points are left out and counted in a note.
    """
    return _slice(x, curves, acc_curves, acc_label, _LOSS_COLOURS, **options)


def lines_overlay(x: npt.ArrayLike, curves: Mapping[str, npt.ArrayLike], **options: Unpack[CurveOptions]) -> Figure:
    """Several 1D curves on one axis, one colour each (e.g. the same slice under several losses).

    Line styles follow the names as in :func:`line` (``train*`` solid, ``test*`` dashed).
    """
    return _slice(x, curves, None, "", None, **options)


def _slice(
    x: npt.ArrayLike,
    curves: Mapping[str, npt.ArrayLike],
    acc_curves: Mapping[str, npt.ArrayLike] | None,
    acc_label: str,
    palette: Sequence[str] | None,
    *,
    done: npt.ArrayLike | None = None,
    metric_label: str = "loss",
    x_label: str = "α",
    log: bool = False,
    endpoints: Sequence[float] | None = None,
    width: Width = "single",
    title: str | None = None,
    ax: Axes | None = None,
    errors: Mapping[str, npt.ArrayLike] | None = None,
) -> Figure:
    """:func:`line` and :func:`lines_overlay`: ``palette`` colours the curves by metric, or None: one colour each."""
    preset = _preset(width)
    xs = _axis(x, "x")
    computed = _computed(done, xs.shape)
    own = ax is None
    unknown = sorted(set(errors or {}) - set(curves) - set(acc_curves or {}))
    if unknown:
        raise ConfigError(f"errors names {unknown} that are not among the curves {[*curves, *(acc_curves or {})]}")
    fig, ax = _figure_axes(preset, ax)
    handles: list[Artist] = []
    diverged, hidden = np.zeros_like(computed), np.zeros_like(computed)
    groups = [(curves, palette)] if palette is not None else [({n: v}, [f"C{k % 10}"]) for k, (n, v) in enumerate(curves.items())]
    for group, colours in groups:
        more, bad, nonpositive = _plot_curves(ax, xs, group, computed, log, colours, errors or {})
        handles += more
        diverged |= bad
        hidden |= nonpositive
    _position_axis(ax, xs, x_label, preset)
    _value_axis(ax, metric_label, log, preset)
    if acc_curves:
        twin = ax.twinx()
        more, bad, _ = _plot_curves(twin, xs, acc_curves, computed, False, _ACC_COLOURS, errors or {})
        handles += more
        diverged |= bad
        _value_axis(twin, acc_label, False, preset)
        twin.yaxis.label.set_color(_ACC_COLOURS[0])
        ax.yaxis.label.set_color(_LOSS_COLOURS[0])
    _mark_endpoints(ax, endpoints, preset)
    if any(name in (errors or {}) for name in [*curves, *(acc_curves or {})]):  # what the bands mean, once
        handles.append(Patch(facecolor="0.5", alpha=0.35, lw=0, label=BAND_LABEL))
    if own:
        _legend_above(fig, handles, preset, title)
    else:  # the caller's figure may hold other axes: the legend stays inside these
        ax.legend(handles=handles, fontsize=preset.tick, title=title, title_fontsize=preset.title)
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
