"""Flatness and curvature of a loss surface around its origin: pure numpy figures of merit.

α, β are the grid coordinates (filter-normalized units for the surfaces of ``landscape compare``).

Let ``L(α, β)`` be a metric on the 2D grid, ``L(α)`` the same metric on the 1D slice and
``L(0)`` its value at the trained model (the grid's origin, which must be a grid node).

- **mean increase within r** — the mean of ``L(α, β) − L(0)`` over the grid points with
  ``√(α² + β²) ≤ r`` (points within 1e-9·r outside the circle count, so that rounding of the grid
  coordinates does not drop points that lie on it). A diverged point in the disc makes it inf/NaN.
- **doubling radius** — along the 1D slice, on each side of the origin, the first ``|α|`` at
  which ``L(α) ≥ L(0) + max(L(0), ε)``, located by linear interpolation between the last grid
  point below that threshold and the first one at or above it (a non-finite point counts as
  above, at its own position); the smaller of the two sides is reported. When ``L(0) ≥ ε`` this
  is where the loss doubles; ``ε`` (``compare.floor``) keeps it meaningful when ``L(0) ≈ 0``
  (e.g. a hinge loss at zero), where it becomes the radius at which the loss first exceeds ``ε``.
  ``inf`` when the threshold is not reached inside the slice.
- **curvature at the centre** — the least-squares fit
  ``L ≈ a·α² + b·αβ + c·β² + d·α + e·β + f`` over the grid points within ``r`` (as above, finite
  values only); the Hessian of the fit is ``[[2a, b], [b, 2c]]``. Reported: its two eigenvalues
  ``λ_max ≥ λ_min`` and their mean ``(λ_max + λ_min) / 2 = a + c``.
- **relative loss** (common scale of the relative panels and the overlaid 1D slices) —
  ``1 + (L − L(0)) / max(L(0), ε)``: ``L / L(0)`` when ``L(0) ≥ ε``. It is unitless, so models
  trained with different criteria share one logarithmic colour scale, and it crosses 2 exactly
  at the doubling radius.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from landscape.errors import ConfigError, GridError

FloatArray = npt.NDArray[np.float64]

_ON_CIRCLE = 1e-9  # relative tolerance for points on the circle of radius r
_MIN_FIT_POINTS = 6  # unknowns of the quadratic fit


def origin_index(axis: npt.ArrayLike, name: str = "x") -> int:
    """Index of the grid node at 0 (within 1e-9 of the axis span); an error when there is none."""
    a = np.asarray(axis, dtype=np.float64)
    i = int(np.argmin(np.abs(a)))
    span = float(a.max() - a.min()) if a.size > 1 else 1.0
    if abs(a[i]) > 1e-9 * span:
        raise GridError(f"the {name} axis {a.min():g}:{a.max():g}:{a.size} has no node at 0: flatness is measured "
                        "around the trained model, so use an odd symmetric grid such as -1:1:31")
    return i


def _disc(x: FloatArray, y: FloatArray, radius: float) -> tuple[FloatArray, FloatArray, npt.NDArray[np.bool_]]:
    """Grid coordinates (len(x), len(y)) and the mask of points with √(α² + β²) ≤ r."""
    if not (math.isfinite(radius) and radius > 0):
        raise ConfigError(f"compare.radius must be a positive number, got {radius}")
    alpha, beta = np.meshgrid(x, y, indexing="ij")  # A[i, j] at (x[i], y[j])
    inside = np.hypot(alpha, beta) <= radius * (1.0 + _ON_CIRCLE)
    return alpha, beta, inside


def mean_increase(x: npt.ArrayLike, y: npt.ArrayLike, z: npt.ArrayLike, radius: float) -> float:
    """Mean of ``z − z(0)`` over the grid points within ``radius`` of the origin (see module docstring)."""
    xs, ys, zs = np.asarray(x, float), np.asarray(y, float), np.asarray(z, float)
    centre = zs[origin_index(xs, "x"), origin_index(ys, "y")]
    _, _, inside = _disc(xs, ys, radius)
    return float(np.mean(zs[inside] - centre))


def doubling_radius(x: npt.ArrayLike, z: npt.ArrayLike, floor: float = 1e-3) -> float:
    """Smallest ``|α|`` (over both sides) where ``z`` first reaches ``z(0) + max(z(0), floor)``.

    Linear interpolation between the grid points around the crossing; ``inf`` when neither side
    reaches the threshold, NaN when ``z(0)`` is not finite.
    """
    xs, zs = np.asarray(x, float), np.asarray(z, float)
    i0 = origin_index(xs, "x")
    centre = zs[i0]
    if not math.isfinite(centre):
        return math.nan
    threshold = centre + max(centre, floor)
    right = _first_crossing(np.abs(xs[i0:]), zs[i0:], threshold)
    left = _first_crossing(np.abs(xs[: i0 + 1][::-1]), zs[: i0 + 1][::-1], threshold)
    return min(right, left)


def _first_crossing(r: FloatArray, z: FloatArray, threshold: float) -> float:
    """First ``r`` (increasing from 0) where ``z`` reaches ``threshold``; ``r[0]`` is the origin."""
    for k in range(1, len(r)):
        if not math.isfinite(z[k]):
            return float(r[k])
        if z[k] >= threshold:
            below = z[k - 1]
            return float(r[k - 1] + (threshold - below) / (z[k] - below) * (r[k] - r[k - 1]))
    return math.inf


@dataclass(frozen=True)
class Curvature:
    """Quadratic fit ``a·α² + b·αβ + c·β² + d·α + e·β + f`` and its Hessian's eigenvalues."""

    coefficients: tuple[float, float, float, float, float, float]  # a, b, c, d, e, f
    eigenvalues: tuple[float, float]  # λ_max ≥ λ_min of [[2a, b], [b, 2c]]
    points: int  # grid points in the fit

    @property
    def mean(self) -> float:
        return 0.5 * (self.eigenvalues[0] + self.eigenvalues[1])

    @property
    def hessian(self) -> FloatArray:
        a, b, c = self.coefficients[:3]
        return np.array([[2 * a, b], [b, 2 * c]])


def curvature(x: npt.ArrayLike, y: npt.ArrayLike, z: npt.ArrayLike, radius: float) -> Curvature:
    """Least-squares quadratic fit over the finite grid points within ``radius`` (see module docstring)."""
    xs, ys, zs = np.asarray(x, float), np.asarray(y, float), np.asarray(z, float)
    alpha, beta, inside = _disc(xs, ys, radius)
    use = inside & np.isfinite(zs)
    if int(use.sum()) < _MIN_FIT_POINTS:
        raise GridError(f"only {int(use.sum())} finite grid points lie within r = {radius}; a quadratic fit needs "
                        f"{_MIN_FIT_POINTS}: raise compare.radius or refine the grid")
    a_, b_ = alpha[use], beta[use]
    design = np.stack([a_ * a_, a_ * b_, b_ * b_, a_, b_, np.ones_like(a_)], axis=1)  # (k, 6)
    coef, *_ = np.linalg.lstsq(design, zs[use], rcond=None)
    a, b, c = coef[:3]
    lam = np.linalg.eigvalsh(np.array([[2 * a, b], [b, 2 * c]]))  # ascending
    return Curvature(tuple(float(v) for v in coef), (float(lam[1]), float(lam[0])), int(use.sum()))  # type: ignore[arg-type]


def relative_loss(z: npt.ArrayLike, centre: float, floor: float = 1e-3) -> FloatArray:
    """``1 + (z − L(0)) / max(L(0), floor)``: ``z / L(0)`` unless ``L(0)`` is below ``floor``."""
    return np.asarray(1.0 + (np.asarray(z, float) - centre) / max(centre, floor), dtype=np.float64)
