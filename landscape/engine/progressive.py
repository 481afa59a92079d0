"""Progressive surfaces: every point an estimate over the same random samples, with its standard
error, read until the figure is settled (``--tolerance``; docs/SPEED.md "Progressive surfaces").

Each split's samples are read in one seeded random order, chunk by chunk (the engine's batches), the
same order at every point: neighbouring points see the same samples, so their errors move together
and the *shape* of the surface settles long before the data run out (common random numbers). Per
point and column the running sum ``S1`` and sum of squares ``S2`` of the per-sample values over the
``n`` samples read of ``N`` give the estimate ``S1 / n`` and its standard error with the
finite-population correction, ``√(s² / n · (1 − n / N))`` with ``s² = (S2 − S1² / n) / (n − 1)``: it
reaches 0 when every sample is read, and the value is then the exact mean.

Points stop separately (each one's forward passes are what costs; a point that has settled reads no
more, while its neighbours go on), when for each split

* every loss column's standard error is at most its tolerance ``T`` (after at least
  :data:`MIN_SAMPLES` samples, so that the spread itself is estimated from enough of them), or
* the estimate of the split's first loss lies above the figure's top by more than
  :data:`ABOVE_SE` standard errors (an exploded corner, drawn as "above the range" anyway;
  recorded in ``above``), or
* the data run out (exact), or the sum is no longer finite (a diverged sample makes the exact mean
  non-finite too).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from landscape.engine.grid import Grid
from landscape.engine.refine import Scale, grid_levels, interpolate, level_points
from landscape.errors import ConfigError

MIN_SAMPLES = 1000  # a point's standard error is trusted only from this many samples (or all of them)
ABOVE_SE = 3.0  # a point this many standard errors above the figure's top needs no more samples
EXPLODE, FLOOR = 100.0, 0.1  # default top of the range: EXPLODE · max(|L(origin)|, FLOOR) (check's "exploded")
LEVELS = 12  # contour levels of the figures (plot.levels' default): their spacing is the contour step
LOG_SPACING = 10 ** (1 / 3) - 1  # a log-scale figure's contours (1-2-5 per decade) lie about this far apart, relative
ORIGIN_RTOL = 0.01  # the origin (the scale of the figure) is read to this relative standard error
MAX_CHUNK, MIN_CHUNK, CHUNKS = 1024, 64, 64  # samples per chunk: N / CHUNKS within [MIN_CHUNK, MAX_CHUNK]

TolFn = Callable[[np.ndarray], np.ndarray]  # the estimates (k, columns) -> the tolerated standard errors (k, columns)


def tolerance_at(values: np.ndarray, tolerance: float, relative: tuple[float, float] | None) -> np.ndarray:
    """The tolerance T at points of these values: ``tolerance``; or on a log-scale figure, for a percent of the
    contour step (``relative`` = (share × :data:`LOG_SPACING`, floor)), ``share · LOG_SPACING · max(value, floor)``:
    the contours of a log-scale figure lie that far apart there."""
    values = np.asarray(values, dtype=np.float64)
    if relative is None:
        return np.full(values.shape, tolerance)
    rel, floor = relative
    return rel * np.maximum(np.where(np.isnan(values), np.inf, values), floor)


class ChunkReader(Protocol):
    """What progressive evaluation needs from an engine (:class:`~landscape.engine.surface.SurfaceEngine`,
    :class:`~landscape.engine.batchloss.BatchEngine`): columns ``<split>_<metric>`` grouped by split,
    the samples of each chunk, and per-sample moments of one chunk at several points."""

    columns: list[str]

    def chunk_sizes(self) -> dict[str, list[int]]: ...

    def moments(self, coords: np.ndarray, split: str, chunk: int) -> np.ndarray: ...


def chunk_size(samples: int) -> int:
    """Samples per chunk for a split of ``samples``: fine enough that a point stops close to where its
    error meets the tolerance, large enough for efficient forward passes."""
    return max(MIN_CHUNK, min(MAX_CHUNK, samples // CHUNKS))


@dataclass(frozen=True)
class Tolerance:
    """``--tolerance``: an absolute standard error in the loss's units, or a percent of the contour step."""

    value: float
    percent: bool = False

    @classmethod
    def parse(cls, spec: str | float | None) -> Tolerance | None:
        """``0.01`` or ``"0.01"`` (absolute), ``"2%"`` (of the contour step); None or ``""``: exact evaluation."""
        if spec is None or (isinstance(spec, str) and not spec.strip()):
            return None
        text = str(spec).strip()
        percent = text.endswith("%")
        try:
            value = float(text[:-1] if percent else text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value >= 0):
            raise ConfigError(f"--tolerance {spec!r}: give a standard error ≥ 0 in the loss's units (0.01) or a percent of "
                              "the contour step (2%)")
        return cls(value, percent)

    @property
    def spec(self) -> str:
        return f"{self.value:g}%" if self.percent else f"{self.value:g}"


@dataclass(frozen=True)
class ProgressiveOptions:
    """How a progressive surface is read: the tolerance, the seed of the sample order, the figure's
    top (``plot.vmax``; None: :data:`EXPLODE` times the origin's loss) and contour levels, and
    ``refine`` (compute only where contours need it; :mod:`landscape.engine.refine`)."""

    tolerance: Tolerance
    seed: int = 0
    vmax: float | None = None
    levels: int = LEVELS
    refine: bool = False
    min_samples: int = MIN_SAMPLES


@dataclass
class Progress:
    """The running sums of every grid point (rows), plus one last row for the origin (the figure's scale).

    ``s1``, ``s2``: (P + 1, columns) Σv and Σv²; ``n``: (P + 1, splits) samples read; ``above``: (P + 1,).
    """

    s1: np.ndarray
    s2: np.ndarray
    n: np.ndarray
    above: np.ndarray

    @classmethod
    def empty(cls, points: int, columns: int, splits: int) -> Progress:
        return cls(np.zeros((points + 1, columns)), np.zeros((points + 1, columns)),
                   np.zeros((points + 1, splits), dtype=np.int64), np.zeros(points + 1, dtype=bool))


class ProgressiveEvaluator:
    """Estimates at grid points to a tolerance, from an engine that reads chunks (:class:`ChunkReader`).

    An :class:`~landscape.engine.surface.Evaluator` like the exact engines, so both doors' loops (and
    torchrun's shards) drive it unchanged: :meth:`evaluate` takes (α, β) rows of the grid and returns
    per point the columns' estimates, then the extras of a progressive surface file in the order of
    :func:`landscape.io.surface_file.extra_names` (standard errors, samples per split, Σv, Σv²,
    ``above``, and ``computed`` when refining). Its :attr:`state` may be replaced by sums read before
    (:meth:`sums_of` a resumed file's or ``start`` surface's extras).
    """

    def __init__(self, reader: ChunkReader, grid: Grid, options: ProgressiveOptions) -> None:
        self.reader = reader
        self.grid = grid
        self.options = options
        self.columns = list(reader.columns)
        self.points_per_call = 1
        sizes = reader.chunk_sizes()
        self.splits = list(sizes)
        self.ends = {k: np.cumsum(v) for k, v in sizes.items()}  # samples read after each chunk
        self.total = np.array([int(self.ends[k][-1]) if len(self.ends[k]) else 0 for k in self.splits], dtype=np.int64)
        self.split_of = np.array([self.splits.index(c.split("_", 1)[0]) for c in self.columns])
        self.losses = np.array([not c.endswith("_acc") for c in self.columns])
        self.state = Progress.empty(grid.size, len(self.columns), len(self.splits))
        self.origin = grid.size  # the state's last row
        self.tolerance: dict[str, float] = {}
        self.relative: dict[str, tuple[float, float]] = {}  # a percent tolerance on a log figure: tolerance_at's (share, floor)
        self.top: dict[str, float] = {}
        self.step: dict[str, float] = {}  # the figure's contour step
        self.lowest: dict[str, float] = {}  # the smallest value of the grid's coarsest level
        self.log: dict[str, bool] = {}  # whether the figure of that column is drawn on a log scale

    def sums_of(self, extra: Mapping[str, np.ndarray]) -> Progress:
        """The running sums a progressive surface holds (its file's or :class:`Surface`'s extras) as a state."""
        state = Progress.empty(self.grid.size, len(self.columns), len(self.splits))
        for c, name in enumerate(self.columns):
            state.s1[:-1, c] = np.asarray(extra[f"progressive/{name}_sum"]).reshape(-1)
            state.s2[:-1, c] = np.asarray(extra[f"progressive/{name}_sumsq"]).reshape(-1)
        for s, split in enumerate(self.splits):
            state.n[:-1, s] = np.asarray(extra[f"{split}_samples"]).reshape(-1)
        state.above[:-1] = np.asarray(extra["above"]).reshape(-1)
        return state

    # --- the figure's scale and the tolerance, from the origin ------------------------------------------

    def calibrate(self, coords: np.ndarray) -> tuple[np.ndarray, int]:
        """Resolve the tolerance and the figure's top from the origin's loss; evaluates no grid point."""
        self.resolve()
        return np.empty((0, self.width)), 0

    def resolve(self) -> None:
        """The figure's scale, read from the data before any point is finished.

        The origin, read until its loss is known to :data:`ORIGIN_RTOL`, sets the top of the range
        (``vmax``, else :data:`EXPLODE` times its loss). The coarsest level of the grid (refinement's
        first, :func:`~landscape.engine.refine.grid_levels`), each point read to ``min_samples`` (reads
        those points need anyway), sets the contour step: ``(min(largest, top) − smallest) / levels``; a
        percent tolerance is that share of it (and of a log figure's spacing at low values, :func:`tolerance_at`).
        """
        if self.tolerance:
            return
        o = self.options
        origin = np.array([self.origin])
        inf = np.full(len(self.columns), np.inf)
        self._settle(origin, lambda mean: ORIGIN_RTOL * np.maximum(np.abs(mean), FLOOR), inf)
        at_origin = self._mean(origin)[0]
        top = np.array([o.vmax if o.vmax is not None else EXPLODE * max(abs(float(v)), FLOOR) for v in at_origin])
        pilot = level_points(self.grid.shape, grid_levels(self.grid.shape)[0])
        self._settle(pilot, lambda mean: np.full(mean.shape, np.inf), np.where(self.losses, top, np.inf))
        estimates = self._mean(pilot)
        scale: dict[str, tuple[float, float, float, bool]] = {}
        for c, name in enumerate(self.columns):
            if not self.losses[c]:
                continue
            seen = np.append(estimates[:, c], at_origin[c])
            seen = seen[np.isfinite(seen)]
            lo = float(seen.min()) if seen.size else float(at_origin[c])
            step = (min(float(seen.max()) if seen.size else lo, float(top[c])) - lo) / o.levels
            if not step > 0:  # a flat coarse level: the step up to the top
                step = (float(top[c]) - lo) / o.levels
            log = o.vmax is None and bool(seen.size) and lo > 0 and float(seen.max()) / lo > 10  # the figures' rule
            scale[name] = (float(top[c]), step, lo, log)
        self.apply_scale(scale)

    def apply_scale(self, scale: Mapping[str, Sequence[float | bool]]) -> None:
        """Set the figure's scale per loss column, ``(top, contour step, smallest value, log scale)``
        (:meth:`resolve`'s, or a resumed file's: its points were read against it), and the tolerance from it:
        a percent of the contour step is that share of ``step`` (linear figure) or of the spacing of a log
        figure's contours at each point's value (:func:`tolerance_at`)."""
        o = self.options
        for name, (top, step, lo, log) in scale.items():
            if o.vmax is not None and top != o.vmax:
                raise ConfigError(f"the surface was read against the top of the range {top:g}, not --vmax {o.vmax:g}; "
                                  "pass the same --vmax, or --overwrite")
            if o.tolerance.percent and not step > 0:
                raise ConfigError(f"--tolerance {o.tolerance.spec} of the contour step: the top of the range ({top:g}) is not "
                                  f"above the {name} of the plane ({lo:g}); raise --vmax or give an absolute tolerance")
            self.top[name], self.step[name], self.lowest[name], self.log[name] = float(top), float(step), float(lo), bool(log)
            share = o.tolerance.value / 100
            self.tolerance[name] = share * step if o.tolerance.percent else o.tolerance.value
            if o.tolerance.percent and log:
                self.relative[name] = (share * LOG_SPACING, lo)
                self.tolerance[name] = share * LOG_SPACING * lo  # the smallest, at the lowest value

    def scale_table(self) -> dict[str, list[float]]:
        """The figure's scale as :meth:`apply_scale` takes it (for the file's ``scale`` attribute)."""
        return {k: [self.top[k], self.step[k], self.lowest[k], float(self.log[k])] for k in self.top}

    # --- evaluation --------------------------------------------------------------------------------------

    @property
    def width(self) -> int:
        return 4 * len(self.columns) + len(self.splits) + 1 + int(self.options.refine)

    def tolerance_of(self, column: str, values: np.ndarray) -> np.ndarray:
        """T at points of these values of ``column`` (:func:`tolerance_at`); infinite for a column without one."""
        return tolerance_at(values, self.tolerance.get(column, np.inf), self.relative.get(column))

    def _limits(self) -> tuple[TolFn, np.ndarray]:
        def tol_of(mean: np.ndarray) -> np.ndarray:
            return np.stack([self.tolerance_of(c, mean[:, k]) for k, c in enumerate(self.columns)], axis=1)
        return tol_of, np.array([self.top.get(c, np.inf) for c in self.columns])

    def settled_points(self) -> np.ndarray:
        """Which grid points (flat) need no more samples under the resolved tolerance (every split settled)."""
        self.resolve()
        rows = np.arange(self.grid.size)
        tol_of, top = self._limits()
        return np.asarray(np.logical_and.reduce([self._settled(rows, s, tol_of, top) for s in range(len(self.splits))]))

    def evaluate(self, coords: np.ndarray) -> np.ndarray:
        """Every (α, β) row of ``coords`` (grid points) read until settled: (k, :attr:`width`) rows."""
        self.resolve()
        rows = self.grid.flat_index(np.asarray(coords, dtype=np.float64).reshape(-1, 2))
        self._settle(rows, *self._limits())
        return self.rows(rows)

    def rows(self, rows: np.ndarray) -> np.ndarray:
        """What the file records for state ``rows``: estimates, standard errors, samples, Σv, Σv², above (, computed)."""
        st = self.state
        parts = [self._mean(rows), self._stderr(rows), st.n[rows].astype(np.float64), st.s1[rows], st.s2[rows],
                 st.above[rows, None].astype(np.float64)]
        if self.options.refine:
            parts.append(np.ones((len(rows), 1)))
        return np.concatenate(parts, axis=1)

    def scale(self) -> tuple[str, Scale]:
        """The figure's column (the first loss) and what ``--refine`` reads it against (:class:`~landscape.engine.refine.Scale`)."""
        self.resolve()
        column = next(iter(self.tolerance))
        origin = float(self._mean(np.array([self.origin]))[0, self.columns.index(column)])
        return column, Scale(lambda values: self.tolerance_of(column, values), origin, self.step[column], self.top[column],
                             self.log[column])

    def filled_rows(self, values: Sequence[np.ndarray], coarse: tuple[np.ndarray, ...], points: np.ndarray,
                    error: np.ndarray, column: str) -> np.ndarray:
        """Rows for ``points`` filled by interpolation (``--refine``): every column's grid-shaped ``values``
        interpolated from level ``coarse``, the estimated ``error`` as the standard error of every loss column,
        no samples, ``above`` from ``column``, and ``computed`` 0."""
        interpolated = np.stack([interpolate(v, coarse, points)[0] for v in values], axis=1)
        k, c = len(points), len(self.columns)
        stderr = np.where(self.losses, error[:, None], np.nan)
        above = interpolated[:, self.columns.index(column)] > self.top[column]
        return np.concatenate([interpolated, stderr, np.zeros((k, len(self.splits) + 2 * c)), above[:, None],
                               np.zeros((k, 1))], axis=1)

    def attrs(self) -> dict[str, Any]:
        """What a progressive surface records of how it was read (its file's and :class:`Surface`'s attributes)."""
        o = self.options
        return {"progressive": True, "refine": o.refine, "tolerance": dict(self.tolerance),
                "tolerance_relative": {k: list(v) for k, v in self.relative.items()}, "tolerance_spec": o.tolerance.spec,
                "sample_seed": o.seed, "top": dict(self.top), "scale": self.scale_table(),
                "samples_total": dict(zip(self.splits, self.total.tolist(), strict=True))}

    def _mean(self, rows: np.ndarray) -> np.ndarray:
        n = self.state.n[rows][:, self.split_of]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean: np.ndarray = self.state.s1[rows] / n
        return mean

    def _stderr(self, rows: np.ndarray) -> np.ndarray:
        """Standard error with the finite-population correction: 0 once every sample is read, NaN below 2."""
        st = self.state
        n = st.n[rows][:, self.split_of].astype(np.float64)
        big_n = self.total[self.split_of]
        with np.errstate(invalid="ignore", divide="ignore"):
            var = np.maximum(st.s2[rows] - st.s1[rows] ** 2 / n, 0.0) / (n - 1)
            se = np.sqrt(var / n * (1.0 - n / big_n))
        return np.where(n >= big_n, 0.0, np.where(n >= 2, se, np.nan))

    def _settled(self, rows: np.ndarray, s: int, tol_of: TolFn, top: np.ndarray) -> np.ndarray:
        """Which ``rows`` need no more of split ``s``; records which of them stop above the range."""
        st = self.state
        n, big_n = st.n[rows, s], self.total[s]
        cols = np.flatnonzero((self.split_of == s) & self.losses)
        if not len(cols):  # a split with accuracy only: read whole
            return np.asarray(n >= big_n)
        estimates = self._mean(rows)
        mean, se, tol = estimates[:, cols], self._stderr(rows)[:, cols], tol_of(estimates)[:, cols]
        enough = n >= min(big_n, self.options.min_samples)
        within = ((se <= tol) & (tol > 0)).all(axis=1)  # a tolerance of 0 reads everything
        above = enough & ~within & (n < big_n) & (mean[:, 0] - ABOVE_SE * se[:, 0] > top[cols[0]])
        st.above[rows] = above
        diverged = ~np.isfinite(st.s1[rows][:, cols]).all(axis=1)
        return np.asarray((n >= big_n) | diverged | (enough & (within | above)))

    def _settle(self, rows: np.ndarray, tol_of: TolFn, top: np.ndarray) -> None:
        """Read chunks at ``rows`` until each is settled in every split; points at the same chunk go together."""
        for s, split in enumerate(self.splits):
            ends = self.ends[split]
            cols = np.flatnonzero(self.split_of == s)
            active = rows[~self._settled(rows, s, tol_of, top)]
            while len(active):
                chunk = np.searchsorted(ends, self.state.n[active, s], side="right")
                group = active[chunk == chunk.min()]
                c = int(chunk.min())
                coords = np.zeros((len(group), 2))  # the origin's row (the last) is at (0, 0)
                on_grid = group < self.grid.size
                coords[on_grid] = self.grid.coords(group[on_grid])
                m = self.reader.moments(coords, split, c)  # (k, 2, metrics of the split)
                self.state.s1[np.ix_(group, cols)] += m[:, 0]
                self.state.s2[np.ix_(group, cols)] += m[:, 1]
                self.state.n[group, s] = ends[c]
                active = active[~self._settled(active, s, tol_of, top)]

