"""``--refine``: an adaptive grid. Coarse levels first; a point of a finer level is computed only where
the coarser level's cells need it, and the others are filled by interpolation (marked not computed).

Levels: per axis the indices ``{0, s, 2s, …} ∪ {n − 1}`` for strides ``s = 2^k``, coarsest first, from the
largest stride that still gives :data:`MIN_INTERVALS` intervals down to 1 (each level holds the one
before it; the last interval may be shorter, which bilinear interpolation does not mind). A cell of a
level (the rectangle between neighbouring indices of both axes) needs its finer points computed when

* its corner values straddle a contour level of the figure — linear (``L(0) + k · step``, the step of
  its contours: :class:`~landscape.engine.progressive.ProgressiveEvaluator`) or log-scale (three per
  decade) — or reach the top of the range from below: the lines must be drawn where they are;
* its bilinear interpolation error, estimated from the level's second differences around it
  (``h²·|f''| / 8`` per axis), exceeds the tolerance T;
* a corner is not finite (diverged).

A cell entirely above the top of the range is never refined: it is drawn as "above the range" anyway
(this is where a plane with exploded corners saves most).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

MIN_INTERVALS = 8  # the coarsest level has at least this many intervals per axis


def axis_levels(n: int) -> list[np.ndarray]:
    """Per level (coarsest first), the sorted indices of one axis of ``n`` points."""
    stride = 1
    while (n - 1) // (2 * stride) >= MIN_INTERVALS:
        stride *= 2
    out = []
    while stride >= 1:
        out.append(np.union1d(np.arange(0, n, stride), [n - 1]))
        stride //= 2
    return out


def grid_levels(shape: tuple[int, ...]) -> list[tuple[np.ndarray, ...]]:
    """Per level, the index set of each axis; an axis with fewer levels stays at its coarsest until its turn."""
    per_axis = [axis_levels(n) for n in shape]
    depth = max(len(a) for a in per_axis)
    return [tuple(a[max(0, len(a) - depth + level)] for a in per_axis) for level in range(depth)]


def level_points(shape: tuple[int, ...], level: tuple[np.ndarray, ...]) -> np.ndarray:
    """Flat (C-order) indices of the points of one level."""
    mesh = np.meshgrid(*level, indexing="ij")
    flat: np.ndarray = np.ravel_multi_index(tuple(m.ravel() for m in mesh), shape)
    return flat


def _second_differences(v: np.ndarray, idx: np.ndarray, axis: int) -> np.ndarray:
    """|f''| per unit index² at each level point along ``axis`` (non-uniform spacing); an end takes its neighbour's."""
    out = np.zeros_like(v)
    if len(idx) < 3:
        return out
    w = np.moveaxis(v, axis, 0)
    h = np.diff(idx).astype(np.float64).reshape((-1,) + (1,) * (v.ndim - 1))
    h1, h2 = h[:-1], h[1:]
    d2 = np.abs(2 * ((w[2:] - w[1:-1]) / h2 - (w[1:-1] - w[:-2]) / h1) / (h1 + h2))
    o = np.moveaxis(out, axis, 0)  # a view: writes land in out
    o[1:-1] = d2
    o[0], o[-1] = d2[0], d2[-1]
    return out


def interpolate(values: np.ndarray, coarse: tuple[np.ndarray, ...], points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Multilinear interpolation of a grid-shaped array from the points of level ``coarse`` at ``points``
    (flat indices): the values and the corner values of each one's cell, (k,) and (k, 2^ndim)."""
    shape = values.shape
    idx = np.stack(np.unravel_index(points, shape), axis=1)
    lo, frac = [], []
    for a, c in enumerate(coarse):
        right = np.clip(np.searchsorted(c, idx[:, a], side="left"), 1, len(c) - 1)
        lo.append(right - 1)
        frac.append((idx[:, a] - c[right - 1]) / (c[right] - c[right - 1]))
    corners, weights = [], []
    for bits in np.ndindex(*(2,) * len(shape)):
        sel = tuple(coarse[a][lo[a] + bit] for a, bit in enumerate(bits))
        corners.append(values[sel])
        weights.append(np.prod([frac[a] if bit else 1 - frac[a] for a, bit in enumerate(bits)], axis=0))
    cvals, w = np.stack(corners, axis=1), np.stack(weights, axis=1)
    with np.errstate(invalid="ignore"):
        return (cvals * w).sum(axis=1), cvals


def refine_level(values: np.ndarray, coarse: tuple[np.ndarray, ...], fine: tuple[np.ndarray, ...], *,
                 tolerance: float | Callable[[np.ndarray], np.ndarray], origin: float, step: float,
                 top: float, log: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which new points of level ``fine`` to compute, from ``values`` (grid-shaped; only the points of level
    ``coarse`` are read).

    Returns ``(compute, fill, error)``: flat indices of the new points to compute, those to fill by
    interpolation (:func:`interpolate`), and the estimated interpolation error of each filled one.
    ``tolerance``: T, or T as a function of the (interpolated) values.
    """
    shape = values.shape
    new = np.setdiff1d(level_points(shape, fine), level_points(shape, coarse))
    if not len(new):
        return new, new, np.zeros(0)
    mesh = np.ix_(*coarse)
    v = values[mesh]
    smooth = np.where(np.isfinite(v), v, 0.0)
    guess, cvals = interpolate(values, coarse, new)
    tol = tolerance(guess) if callable(tolerance) else np.full(len(new), tolerance)
    error = np.zeros(len(new))
    for a, c in enumerate(coarse):  # per axis, the largest curvature at the cell's corners times h² / 8
        curv = np.zeros(shape)
        curv[mesh] = _second_differences(smooth, c, a)
        _, at = interpolate(curv, coarse, new)
        pos = np.unravel_index(new, shape)[a]
        right = np.clip(np.searchsorted(c, pos, side="left"), 1, len(c) - 1)
        error += at.max(axis=1) * (c[right] - c[right - 1]).astype(np.float64) ** 2 / 8
    cmin, cmax = np.min(cvals, axis=1), np.max(cvals, axis=1)
    diverged = ~np.isfinite(cvals).all(axis=1)
    above = cmin > top
    with np.errstate(invalid="ignore", divide="ignore"):  # the figure's levels: linear, or about three per decade
        band = np.floor(3 * np.log10(np.clip(cvals, 1e-12, top))) if log else np.floor((np.minimum(cvals, top) - origin) / step)
    straddle = (band.min(axis=1) != band.max(axis=1)) | (cmax > top)
    need = diverged | (~above & (straddle | (error > tol)))
    return new[need], new[~need], error[~need]


@dataclass(frozen=True)
class Scale:
    """What refinement reads the figure's column against: the tolerance T (or T of the values), the origin's
    value, the contour step, the top of the range and whether the figure is drawn on a log scale."""

    tolerance: float | Callable[[np.ndarray], np.ndarray]
    origin: float
    step: float
    top: float
    log: bool = False


def refine(shape: tuple[int, ...], done: np.ndarray, scale: Scale, values: Callable[[], np.ndarray],
           compute: Callable[[np.ndarray], None], fill: Callable[[np.ndarray, tuple[np.ndarray, ...], np.ndarray], None]) -> None:
    """Level by level: ``compute(flat indices)`` the points needed, ``fill(flat indices, coarse level,
    errors)`` the others by interpolation; ``values()`` is the figure's column as computed so far
    (grid-shaped). Points ``done`` already (a resumed file) are neither computed nor filled again."""
    levels = grid_levels(shape)
    d = done.reshape(-1)
    first = level_points(shape, levels[0])
    compute(first[~d[first]])
    for coarse, fine in itertools.pairwise(levels):
        todo, rest, error = refine_level(values(), coarse, fine, tolerance=scale.tolerance, origin=scale.origin,
                                         step=scale.step, top=scale.top, log=scale.log)
        keep = ~d[rest]
        fill(rest[keep], coarse, error[keep])
        compute(todo[~d[todo]])
