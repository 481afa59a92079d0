"""What a progressive surface (``--tolerance``, ``--refine``) adds to its figures: error bands, hatching, notes.

The values of a progressive surface file are estimates, each with its standard error
(``<column>_stderr``, docs/FORMATS.md). Its figures say how settled they are; an exact file's
figures are left exactly as they were (none of these functions draws anything for it):

- 1D lines: a light band of ±2 standard errors around each curve whose errors are not all zero,
  in the curve's colour (drawn by :func:`landscape.figures.curves.line` from its ``errors``), and
  a legend entry "±2 s.e.";
- 2D contour, filled-contour and heatmap figures: hatched cells where the picture is not settled,
  i.e. where a point's standard error exceeds its column's tolerance T (``attrs["tolerance"]``).
  A contour interpolates between grid points, so a cell between four points is hatched when any
  corner is; a heatmap cell is hatched when its own point is. A point that stopped above the
  figure's range (``above``) is settled: it is drawn above the range whatever its exact value. A
  column without a tolerance (accuracy) is never hatched. A note says "hatched: s.e. > T";
- refined surfaces (``--refine``): the points filled by interpolation (``computed`` False) are
  marked with small dots and a note says "N % of points computed".

:func:`progressive_summary` gives the numbers ``landscape info`` and a run's index page print.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.collections import PolyCollection

from landscape.engine.progressive import tolerance_at
from landscape.figures._style import BoolArray, FloatArray, _boxed, _edges
from landscape.io.surface_file import SurfaceFile

__all__ = ["ESTIMATE_GID", "HATCH_GID", "INTERPOLATED_GID", "computed_share", "draw_plane_marks", "estimate_note",
           "interpolated", "progressive_summary", "share_line", "stderr_of", "tolerance_of", "unsettled"]

HATCH_GID = "landscape-stderr-hatch"
"""``gid`` of the hatched cells of a 2D figure whose standard error exceeds the tolerance."""
INTERPOLATED_GID = "landscape-interpolated"
"""``gid`` of the dots on the points a refined surface filled by interpolation."""
ESTIMATE_GID = "landscape-estimate-note"
"""``gid`` of the note saying what the hatching means and how many points were computed."""
_HATCH_COLOUR = (0.0, 0.0, 0.0, 0.4)  # light: the contours stay readable under it


def stderr_of(sf: SurfaceFile, column: str) -> FloatArray | None:
    """The standard errors of ``column`` (NaN where not done), or None when the file has none or
    they are all zero (an exact file, or a progressive one that read every sample)."""
    err = sf.extra.get(f"{column}_stderr")
    if err is None:
        return None
    err = np.where(sf.done, np.asarray(err, dtype=np.float64), np.nan)
    known = err[np.isfinite(err)]
    return err if bool((known > 0).any()) else None


def tolerance_of(sf: SurfaceFile, column: str) -> FloatArray | None:
    """The tolerance T of ``column`` at every point (loss columns only), or None: the absolute T, or for a
    percent of the contour step T of each point's value (:func:`~landscape.engine.progressive.tolerance_at`)."""
    table = sf.attrs.get("tolerance")
    if not isinstance(table, dict) or column not in table:
        return None
    relative = (sf.attrs.get("tolerance_relative") or {}).get(column)
    return tolerance_at(sf.values[column], float(table[column]), None if relative is None else (relative[0], relative[1]))


def unsettled(sf: SurfaceFile, column: str) -> BoolArray | None:
    """Done points whose standard error exceeds T and that did not stop above the range; None when
    ``column`` has no tolerance or no errors."""
    err, tol = stderr_of(sf, column), tolerance_of(sf, column)
    if err is None or tol is None:
        return None
    above = np.asarray(sf.extra.get("above", np.zeros(sf.grid.shape, dtype=bool)), dtype=bool)
    with np.errstate(invalid="ignore"):
        return np.asarray(sf.done & (err > tol) & ~above, dtype=bool)


def interpolated(sf: SurfaceFile) -> BoolArray | None:
    """Done points a refined surface filled by interpolation; None for a file that was not refined."""
    if not sf.attrs.get("refine") or "computed" not in sf.extra:
        return None
    return np.asarray(sf.done & ~np.asarray(sf.extra["computed"], dtype=bool), dtype=bool)


def computed_share(sf: SurfaceFile) -> float | None:
    """Share of the points computed rather than interpolated (the ``computed_share`` attribute, else
    the ``computed`` mask over the done points); None for a file that was not refined."""
    if not sf.attrs.get("refine"):
        return None
    if isinstance(sf.attrs.get("computed_share"), int | float):
        return float(sf.attrs["computed_share"])
    filled = interpolated(sf)
    done = int(sf.done.sum())
    return None if filled is None or done == 0 else 1.0 - int(filled.sum()) / done


def progressive_summary(sf: SurfaceFile) -> dict[str, Any] | None:
    """What a progressive surface's estimates are worth (None for an exact file).

    ``tolerance_spec`` as given and ``tolerance`` T per loss column (a percent of the contour step: the
    linear figure's T, smaller at low values, :func:`tolerance_of`); ``max_stderr`` the largest standard
    error per loss column over the done points, leaving out those that stopped above the figure's range
    (they stop early by design), and ``max_stderr_in_T`` the largest ratio of a point's error to its T;
    ``data_read_percent`` per split: the samples read over the done computed points as a percent
    of all the samples those points would read (N each); ``above`` how many points stopped above
    the range; with ``--refine``, ``computed_percent``: the share of points computed, not interpolated.
    """
    if not sf.attrs.get("progressive"):
        return None
    tolerance = {c: float(t) for c, t in (sf.attrs.get("tolerance") or {}).items()}
    above = sf.done & np.asarray(sf.extra.get("above", np.zeros(sf.grid.shape, dtype=bool)), dtype=bool)
    computed = sf.done & np.asarray(sf.extra.get("computed", np.ones(sf.grid.shape, dtype=bool)), dtype=bool)
    largest: dict[str, float | None] = {}
    in_t: dict[str, float | None] = {}
    for column in tolerance:
        err = np.asarray(sf.extra.get(f"{column}_stderr", np.full(sf.grid.shape, np.nan)), dtype=np.float64)
        keep = sf.done & ~above & np.isfinite(err)
        largest[column] = float(err[keep].max()) if keep.any() else None
        t = tolerance_of(sf, column)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = err[keep] / t[keep] if t is not None else np.zeros(0)
        in_t[column] = float(np.max(ratio)) if ratio.size and np.isfinite(ratio).all() else None
    read: dict[str, float | None] = {}
    for split, total in (sf.attrs.get("samples_total") or {}).items():
        samples = np.asarray(sf.extra.get(f"{split}_samples", np.zeros(sf.grid.shape, dtype=np.int64)), dtype=np.int64)
        points = int(computed.sum())
        read[split] = 100.0 * int(samples[computed].sum()) / (int(total) * points) if points and total else None
    out: dict[str, Any] = {
        "tolerance_spec": sf.attrs.get("tolerance_spec"), "tolerance": tolerance, "max_stderr": largest,
        "max_stderr_in_T": in_t,
        "data_read_percent": read, "above": int(above.sum()), "sample_seed": sf.attrs.get("sample_seed")}
    share = computed_share(sf)
    if share is not None:
        out["computed_percent"] = 100.0 * share
    return out


def _cells(x: FloatArray, y: FloatArray, marked: BoolArray, centred: bool) -> list[FloatArray]:
    """Rectangles (4, 2) of the marked cells: around each marked point (``centred``, a heatmap), or
    between grid points where any of the four corners is marked (a contour)."""
    if centred:
        xe, ye, cells = _edges(x), _edges(y), marked
    else:
        xe, ye = x, y
        cells = marked[:-1, :-1] | marked[1:, :-1] | marked[:-1, 1:] | marked[1:, 1:]
    return [np.array([[xe[i], ye[j]], [xe[i + 1], ye[j]], [xe[i + 1], ye[j + 1]], [xe[i], ye[j + 1]]])
            for i, j in zip(*np.nonzero(cells), strict=True)]


def estimate_note(ax: Axes, lines: Sequence[str], fontsize: float) -> None:
    """The boxed note in the lower right corner (the masked-points note holds the lower left)."""
    if lines:
        _boxed(ax, (0.98, 0.02), "\n".join(lines), fontsize=fontsize, ha="right", va="bottom", gid=ESTIMATE_GID,
               zorder=6)


def share_line(sf: SurfaceFile, dots: bool) -> list[str]:
    """"refine: N % of points computed" for a refined file (and what the dots are, when drawn)."""
    share = computed_share(sf)
    if share is None:
        return []
    return [f"refine: {100 * share:.0f} % of points computed" + (" (· interpolated)" if dots else "")]


def draw_plane_marks(ax: Axes, sf: SurfaceFile, column: str, *, centred: bool, fontsize: float) -> None:
    """Hatch the unsettled cells of ``column`` and dot the interpolated points of a 2D figure; the note.

    Draws nothing for an exact file.
    """
    assert sf.grid.y is not None
    x, y = np.asarray(sf.grid.x, dtype=np.float64), np.asarray(sf.grid.y, dtype=np.float64)
    lines: list[str] = []
    bad = unsettled(sf, column)
    cells = [] if bad is None else _cells(x, y, bad, centred)
    if cells:
        # the hatch takes the edge colour (matplotlib ≥ 3.7); the edges themselves have no width
        hatch = PolyCollection(cells, facecolors="none", edgecolors=[_HATCH_COLOUR], linewidths=0.0, hatch="///",
                               zorder=2.5, gid=HATCH_GID)
        if hasattr(hatch, "set_hatch_linewidth"):  # matplotlib ≥ 3.10: thinner than the default 1 pt
            hatch.set_hatch_linewidth(0.6)
        ax.add_collection(hatch, autolim=False)
        tol = tolerance_of(sf, column)
        assert tol is not None
        spread = np.nanmin(tol[sf.done]), np.nanmax(tol[sf.done])
        lines.append(f"hatched: s.e. > T = {spread[1]:.3g}" if spread[0] == spread[1] else
                     f"hatched: s.e. > T ({spread[0]:.2g} to {spread[1]:.2g})")
    filled = interpolated(sf)
    dots = filled is not None and bool(filled.any())
    if filled is not None and dots:
        xx, yy = np.meshgrid(x, y, indexing="ij")  # (len(x), len(y)), as the mask
        ax.plot(xx[filled], yy[filled], ls="none", marker=".", ms=1.0, color="0.25", alpha=0.35, zorder=2.6,
                gid=INTERPOLATED_GID)
    lines += share_line(sf, dots)
    estimate_note(ax, lines, fontsize)
