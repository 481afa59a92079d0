"""How far apart the contour lines of two surfaces are: the symmetric Hausdorff distance, in grid cells.

The lines are matplotlib's own (its contour generator, ``contourpy``, linear interpolation along the
grid's edges), traced in grid-index units (one cell = 1 along either axis) so the distance reads in
cells whatever the plane's range. Used by ``scripts/bench_progressive.py`` to say whether a progressive
surface draws the same figure as the exact one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import contourpy
import numpy as np
import numpy.typing as npt

# the directed distance is the largest distance from points sampled along one polyline to the other:
# sampling every STEP cells misses at most STEP / 2 of the true supremum (distance is 1-Lipschitz)
STEP = 0.02


def contour_lines(values: npt.ArrayLike, level: float) -> list[np.ndarray]:
    """The polylines (each (n, 2), in grid indices) where ``values`` (a 2D grid) crosses ``level``.

    Non-finite values (diverged points, points not computed) are masked: no line enters their cells.
    """
    z = np.ma.masked_invalid(np.asarray(values, dtype=np.float64))
    generator = contourpy.contour_generator(z=z, line_type="Separate")
    return [np.asarray(line, dtype=np.float64) for line in generator.lines(float(level)) if len(line)]


def _segments(lines: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Start and end points (k, 2) of every segment of ``lines``; a one-point line is a zero-length segment."""
    starts = [line[:-1] if len(line) > 1 else line for line in lines]
    ends = [line[1:] if len(line) > 1 else line for line in lines]
    return np.concatenate(starts), np.concatenate(ends)


def _sampled(lines: Sequence[np.ndarray], step: float) -> np.ndarray:
    """Points along ``lines`` no more than ``step`` apart (every vertex included)."""
    points = []
    for a, b in zip(*_segments(lines), strict=True):
        pieces = max(1, int(np.ceil(np.hypot(*(b - a)) / step)))
        t = np.linspace(0.0, 1.0, pieces + 1)[:, None]
        points.append(a + t * (b - a))
    return np.concatenate(points)


def _to_segments(points: np.ndarray, starts: np.ndarray, ends: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Distance from each of ``points`` (m, 2) to the nearest of the segments ``starts[k]``–``ends[k]``."""
    d = ends - starts  # (k, 2)
    length2 = np.maximum((d * d).sum(axis=1), 1e-300)  # zero-length segments: t is then 0, the start point
    out = np.empty(len(points))
    for lo in range(0, len(points), chunk):
        p = points[lo:lo + chunk, None, :]  # (m, 1, 2)
        t = np.clip(((p - starts) * d).sum(axis=2) / length2, 0.0, 1.0)  # (m, k): the foot on each segment
        nearest = starts + t[:, :, None] * d
        out[lo:lo + chunk] = np.sqrt(((p - nearest) ** 2).sum(axis=2)).min(axis=1)
    return out


def directed_distance(a: Sequence[np.ndarray], b: Sequence[np.ndarray], step: float = STEP) -> float:
    """sup over points p of the polylines ``a`` of the distance from p to the polylines ``b``
    (sampled every ``step``: at most ``step / 2`` below the supremum). 0 when ``a`` is empty,
    inf when only ``b`` is."""
    if not a:
        return 0.0
    if not b:
        return float("inf")
    starts, ends = _segments(b)
    return float(_to_segments(_sampled(a, step), starts, ends).max())


def hausdorff_by_level(u: npt.ArrayLike, v: npt.ArrayLike, levels: Iterable[float], step: float = STEP) -> list[float]:
    """Per level, the symmetric Hausdorff distance max(directed(u→v), directed(v→u)) between the contour
    lines of ``u`` and ``v`` (same 2D grid), in grid cells: inf where the level is drawn in one surface
    only (a contour appeared or vanished), 0 where in neither."""
    u, v = np.asarray(u, dtype=np.float64), np.asarray(v, dtype=np.float64)
    if u.shape != v.shape or u.ndim != 2:
        raise ValueError(f"the two surfaces must be 2D grids of one shape, got {u.shape} and {v.shape}")
    distances = []
    for level in levels:
        lu, lv = contour_lines(u, level), contour_lines(v, level)
        distances.append(max(directed_distance(lu, lv, step), directed_distance(lv, lu, step)))
    return distances


def hausdorff(u: npt.ArrayLike, v: npt.ArrayLike, levels: Iterable[float], step: float = STEP) -> float:
    """Symmetric Hausdorff distance between the contour lines of ``u`` and ``v`` at ``levels``, in grid
    cells: the largest of :func:`hausdorff_by_level` (0 without levels)."""
    return max(hausdorff_by_level(u, v, levels, step), default=0.0)
