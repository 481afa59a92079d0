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


def auto_batch_size(split: TensorSplit, budget: int = 1 << 21) -> int:
    """Whole split when its inputs are small (≤ ``budget`` floats), else a slice of that size."""
    per = max(1, int(np.prod(split.inputs.shape[1:])))
    return max(1, min(len(split), max(64, budget // per)))
