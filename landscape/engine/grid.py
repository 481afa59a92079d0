"""The grid of a surface: ``MIN:MAX:NUM`` axes, flat point indices and their (α, β) coordinates.

Array convention: results have shape ``(len(x),)`` or ``(len(x), len(y))`` and ``A[i, j]`` is the
value at ``(x[i], y[j])``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from landscape.errors import GridError
from landscape.zoo.data import TensorSplit

MAX_POINTS = 250_000  # larger grids need an explicit --max-points
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def parse_axis(spec: str, name: str = "x", max_num: int | None = None) -> np.ndarray:
    """``MIN:MAX:NUM`` → ``np.linspace(MIN, MAX, NUM)``; an odd symmetric grid contains 0 exactly.

    ``NUM`` above ``max_num`` is refused before the axis is allocated.
    """
    parts = spec.split(":")
    if len(parts) != 3:
        raise GridError(f"--{name} {spec!r} must look like MIN:MAX:NUM, e.g. -1:1:51")
    try:
        lo, hi = float(parts[0]), float(parts[1])
        num = int(parts[2])
    except ValueError:
        raise GridError(f"--{name} {spec!r}: MIN and MAX must be numbers and NUM an integer") from None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise GridError(f"--{name} {spec!r}: MIN and MAX must be finite")
    if max(abs(lo), abs(hi)) > _FLOAT32_MAX:  # the coordinates scale float32 weights
        raise GridError(f"--{name} {spec!r}: MIN and MAX must lie within ±{_FLOAT32_MAX:.3g} (float32)")
    if num < 2:
        raise GridError(f"--{name} {spec!r}: NUM must be at least 2 (got {num})")
    if max_num is not None and num > max_num:
        raise GridError(f"--{name} {spec!r}: {num:,} points is more than {max_num:,}; "
                        "pass --max-points N if you really mean it")
    if not lo < hi:
        raise GridError(f"--{name} {spec!r}: MIN must be smaller than MAX")
    axis = np.linspace(lo, hi, num)
    if lo == -hi and num % 2 == 1:
        axis[num // 2] = 0.0  # exact origin, whatever the rounding
    return axis


@dataclass(frozen=True)
class Grid:
    """Coordinates; results have shape ``(len(x),)`` or ``(len(x), len(y))``, ``A[i, j]`` at ``(x[i], y[j])``."""

    x: np.ndarray
    y: np.ndarray | None = None

    @classmethod
    def parse(cls, x: str, y: str = "", max_points: int = MAX_POINTS) -> Grid:
        grid = cls(parse_axis(x, "x", max_points), parse_axis(y, "y", max_points) if y else None)
        if grid.size > max_points:
            raise GridError(f"the grid has {grid.size:,} points (more than {max_points:,}); "
                            "pass --max-points N if you really mean it")
        return grid

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.x),) if self.y is None else (len(self.x), len(self.y))

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))

    def coords(self, flat_indices: np.ndarray | None = None) -> np.ndarray:
        """(k, 2) array of (α, β) for flat (C-order) indices; β = 0 in 1D."""
        idx = np.arange(self.size) if flat_indices is None else np.asarray(flat_indices)
        if self.y is None:
            return np.stack([self.x[idx], np.zeros(len(idx))], axis=1)
        i, j = np.unravel_index(idx, self.shape)
        return np.stack([self.x[i], self.y[j]], axis=1)

    def flat_index(self, coords: np.ndarray) -> np.ndarray:
        """Flat (C-order) indices of (α, β) rows that are grid points (the inverse of :meth:`coords`)."""
        coords = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
        i = np.searchsorted(self.x, coords[:, 0])
        j = np.zeros(len(coords), dtype=np.int64) if self.y is None else np.searchsorted(self.y, coords[:, 1])
        i, j = np.minimum(i, len(self.x) - 1), np.minimum(j, 0 if self.y is None else len(self.y) - 1)
        if not (np.array_equal(self.x[i], coords[:, 0]) and (self.y is None or np.array_equal(self.y[j], coords[:, 1]))):
            raise GridError("coordinates that are not points of this grid")
        return i if self.y is None else np.ravel_multi_index((i, j), self.shape)


def auto_batch_size(split: TensorSplit, budget: int = 1 << 21) -> int:
    """Whole split when its inputs are small (≤ ``budget`` floats), else a slice of that size."""
    per = max(1, int(np.prod(split.inputs.shape[1:])))
    return max(1, min(len(split), max(64, budget // per)))


# --- coarse-to-fine order ---------------------------------------------------------------------------


def axis_depth(n: int) -> int:
    """How many times an axis of ``n`` points can be halved into uniform coarse levels.

    Level strides are powers of two anchored at index 0, so the level of stride ``2^k`` is
    ``{0, 2^k, 2·2^k, ...}``. It spans the whole axis (both ends) exactly when ``2^k`` divides
    ``n − 1``, so the depth is the largest such ``k`` (41 points: 3, strides 8, 4, 2, 1; 51
    points: 1). When ``n − 1`` is odd no coarse level can hold both ends; the levels then stop
    short of the far end, down to the coarsest one with 2 points (50 points: 5, strides 32 … 1).
    """
    if n < 2:
        return 0
    span = n - 1
    k = (span & -span).bit_length() - 1  # the power of two in n − 1
    return k if k > 0 else span.bit_length() - 1


def level_strides(shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The stride of every axis at each level, coarsest first, ending with all ones.

    Level ``l`` halves each axis's stride ``l`` times from its own coarsest (:func:`axis_depth`),
    never below 1, so every level is a product of uniform axis sub-grids and contains the one
    before it.
    """
    depths = [axis_depth(n) for n in shape]
    return [tuple(1 << max(d - level, 0) for d in depths) for level in range(max(depths, default=0) + 1)]


def level_indices(shape: tuple[int, ...], strides: tuple[int, ...]) -> tuple[np.ndarray, ...]:
    """Per axis, the indices of the uniform sub-grid with these strides: ``arange(0, n, s)``."""
    return tuple(np.arange(0, n, s) for n, s in zip(shape, strides, strict=True))


def coarse_to_fine(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Flat (C-order) indices of every grid point, coarse levels first; and where each level ends.

    Returns ``(order, ends)``: ``order`` is a permutation of ``range(prod(shape))``; the points of
    level ``l`` not in level ``l − 1`` follow, in C order, the points of the levels before it, and
    ``order[:ends[l]]`` is exactly the sub-grid of level ``l`` (:func:`level_strides`). A pure
    function of the shape: every rank and every resumed run computes the same order.
    """
    size = int(np.prod(shape))
    rank = np.full(size, -1, dtype=np.int64)  # the level at which each point first appears
    for level, strides in reversed(list(enumerate(level_strides(shape)))):
        mesh = np.ix_(*level_indices(shape, strides))
        flat = np.ravel_multi_index(tuple(np.broadcast_arrays(*mesh)), shape).ravel()
        rank[flat] = level
    order = np.argsort(rank, kind="stable")  # stable: C order within a level
    ends = np.cumsum(np.bincount(rank, minlength=len(level_strides(shape))))
    return order, ends


def finest_complete_level(done: np.ndarray) -> tuple[np.ndarray, ...] | None:
    """Per axis, the indices of the finest level whose every point is done; None when none is."""
    best = None
    for strides in level_strides(done.shape):
        idx = level_indices(done.shape, strides)
        if not done[np.ix_(*idx)].all():
            break
        best = idx
    return best
