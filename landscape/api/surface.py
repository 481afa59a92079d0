"""The Python API: loss surfaces, directions, plots and the Hessian of any ``nn.Module`` in memory.

Everything here is the CLI's engine behind a notebook-sized door: the same surface engine (fast
paths for ``(inputs, targets)`` data and registry or criterion losses), the same HDF5 surface
file, the same figures, the same matrix-free Hessian. The caller's model is never written to:
the engines work on a private copy that owns only the moved tensors (the origin and every
other tensor alias the caller's, read only), so a surface holds the model, its moved tensors
once more and the two directions.
"""

from __future__ import annotations

import contextlib
import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import Tensor, nn

from landscape.api.inputs import (
    DEFAULT_AXIS,
    AxisSpec,
    DirectionsSpec,
    LossSpec,
    axis,
    model_device,
    resolve_directions,
    resolve_loss,
    spec_text,
)
from landscape.config import SurfaceConfig
from landscape.engine import directions as dirs_
from landscape.engine.batchloss import batch_sums_of
from landscape.engine.directions import Directions
from landscape.engine.evaluator import BNMode, EngineOptions, surface_evaluator
from landscape.engine.flat import flat_message, is_flat
from landscape.engine.grid import MAX_POINTS, Grid
from landscape.engine.moved import ParamSelector, params_label, selector
from landscape.engine.progress import bar
from landscape.engine.progressive import ProgressiveEvaluator, ProgressiveOptions, Tolerance
from landscape.engine.refine import refine
from landscape.engine.surface import Evaluator
from landscape.errors import ConfigError, FlatSurfaceWarning, GridError, LandscapeError
from landscape.integrations.notebook import SurfaceDisplay
from landscape.io.surface_file import extra_names
from landscape.zoo.data import TensorSplit
from landscape.zoo.modules import floating_dtype, plain_module
from landscape.zoo.userdata import Streamed, batch_size_of, prepare

if TYPE_CHECKING:
    from landscape.figures.interactive import InteractiveFigure

_SURFACE = SurfaceConfig()  # the CLI's [surface] defaults: one place for both doors


# --- the surface ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Surface(SurfaceDisplay):
    """A computed loss surface: ``s.x``, ``s.y`` and ``s["train_loss"]`` etc., ``A[i, j]`` at ``(x[i], y[j])``.

    ``values`` maps each column (``<split>_<metric>``: ``train_loss``, ``train_acc``, ``test_loss``...)
    to a float64 array of shape ``(len(x),)`` (1D) or ``(len(x), len(y))`` (2D).

    Fields: ``x`` (nx,) α coordinates and ``y`` (ny,) β coordinates or None (1D), in units of the
    directions' lengths; ``values`` as above (loss units; ``_acc`` columns a fraction in [0, 1]);
    ``directions`` the :class:`Directions` the grid moves along (None if a file held none);
    ``attrs`` settings and provenance (``settings``, ``model_fingerprint``, ``streamed``, labels);
    ``done`` a bool array shaped like a column: the points computed (all True from
    :func:`surface`; a partial file from an interrupted CLI run has False where it stopped);
    ``extra`` a progressive surface's grid-shaped extras (``train_loss_stderr``, ``train_samples``,
    ``above``, ``computed``..., docs/FORMATS.md), empty for an exact one.
    """

    x: np.ndarray
    y: np.ndarray | None
    values: dict[str, np.ndarray]
    directions: Directions | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    done: np.ndarray | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    def figure(self) -> Figure:
        """The figure a notebook shows: the contour of ``train_loss`` (the path over it when the surface
        was computed over a trajectory's plane), or its curve in 1D."""
        metric = "train_loss" if "train_loss" in self.columns else self.columns[0]
        path = self.attrs.get("trajectory")
        kind = "line" if self.y is None else "trajectory" if path is not None else "contour"
        return plot(self, kind, metric=metric, trajectory=path)  # type: ignore[return-value]

    def __getitem__(self, column: str) -> np.ndarray:
        if column not in self.values:
            raise KeyError(f"no metric {column!r}; available: {', '.join(self.values)}")
        return self.values[column]

    def __contains__(self, column: object) -> bool:
        return column in self.values

    @property
    def columns(self) -> list[str]:
        return list(self.values)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.x),) if self.y is None else (len(self.x), len(self.y))

    @property
    def grid(self) -> Grid:
        return Grid(self.x, self.y)

    def __repr__(self) -> str:
        return f"Surface({'×'.join(map(str, self.shape))} grid, columns {', '.join(self.values)})"

    def axis_labels(self) -> dict[str, str]:
        """``x_label``/``y_label`` for figures: the surface's own, else from its directions (``PC1 (91.8 %)``, ``α``)."""
        from landscape.workflows.surface import axis_label

        def label(axis: str) -> str:
            if self.attrs.get(f"{axis}_label"):
                return str(self.attrs[f"{axis}_label"])
            if self.directions is None or (axis == "y" and self.y is None):
                return ""
            return axis_label(self.directions, axis)  # type: ignore[arg-type]
        return {"x_label": label("x"), "y_label": label("y")}

    def save(self, path: str | Path) -> Path:
        """Write the surface in the CLI's HDF5 surface-file format (``landscape plot`` reads it); returns the path."""
        from landscape.io.surface_file import PROGRESSIVE_ATTRS, exclusive_lock, open_surface
        from landscape.version import __version__

        if self.directions is None:
            raise ConfigError("this surface has no directions to embed; it cannot be saved as a surface file")
        p = Path(path)
        grid = self.grid
        settings = {**self.attrs.get("settings", {}), "x": spec_text(self.x), "y": spec_text(self.y) if self.y is not None else "",
                    "directions": {**{k: v for k, v in self.directions.meta.items() if isinstance(v, str | int | float)},
                                   "fingerprint": self.directions.fingerprint()}}
        attrs = {"landscape_version": __version__, "checkpoint": "", "checkpoint_sha256": "", **self.axis_labels()}
        model_fp = self.attrs.get("model_fingerprint") or {k: list(v.shape) for k, v in self.directions.x.items()}
        with exclusive_lock(p):
            sf = open_surface(p, grid, self.columns, settings, attrs, self.directions, model_fp, overwrite=True)
            done = self.done if self.done is not None else np.ones(grid.shape, dtype=bool)
            idx = np.flatnonzero(done.reshape(-1))
            sf.record(idx, np.stack([self.values[c].reshape(-1)[idx] for c in self.columns], axis=1))
            sf.attrs.update({k: self.attrs[k] for k in PROGRESSIVE_ATTRS if k in self.attrs})  # a progressive surface's
            sf.extra.update({k: np.asarray(v) for k, v in self.extra.items()})  # attributes and extras, as written by the CLI
            sf.flush()
        return p


def load_surface(path: str | Path) -> Surface:
    """Read a surface file written by ``landscape surface`` or :meth:`Surface.save`.

    Args:
        path: the HDF5 surface file.

    Returns:
        :class:`Surface` with the file's grid, metric arrays (uncomputed points NaN), ``done``
        mask, attributes and embedded directions.
    """
    from landscape.io.surface_file import read_surface

    sf = read_surface(path)
    dirs = None
    with contextlib.suppress(OSError, KeyError, ValueError), h5py.File(sf.path, "r") as f:
        if "directions" in f and "x" in f["directions"]:
            dirs = dirs_.read_directions_group(f["directions"])
    return Surface(sf.grid.x, sf.grid.y, dict(sf.values), dirs, {**sf.attrs, "path": str(sf.path)}, sf.done, dict(sf.extra))


def surface(
    model: nn.Module,
    data: Any,
    loss: LossSpec = "cross_entropy",
    directions: DirectionsSpec = None,
    x: AxisSpec = DEFAULT_AXIS,
    y: AxisSpec | None = DEFAULT_AXIS,
    *,
    metrics: Mapping[str, Callable[..., Tensor]] | None = None,
    params: ParamSelector = None,
    device: str | torch.device | None = None,
    memory_budget: int = _SURFACE.memory_budget,
    batch_size: int = _SURFACE.batch_size,
    points_per_call: int = _SURFACE.points_per_call,
    bn: BNMode = _SURFACE.bn,
    bn_batches: int = _SURFACE.bn_batches,
    max_points: int = MAX_POINTS,
    progress: bool = True,
    tolerance: float | str | None = None,
    refine: bool = False,
    sample_seed: int = _SURFACE.sample_seed,
    vmax: float | None = None,
    start: Surface | None = None,
) -> Surface:
    """The loss (and metrics) at every point ``θ* + α·δ + β·η`` of a grid around ``model``.

    Args:
        model: any ``nn.Module`` at its trained weights θ*; never written to (parameters,
            buffers, train/eval mode and ``requires_grad`` stay as they are, also on errors).
        data: ``(inputs, targets)`` tensors (n, ...) and (n, ...); a ``(train, test)`` tuple of
            those; a map-style ``Dataset``; a ``DataLoader``; any re-iterable of batches (tuples or
            dicts); or ``{"train": ..., "test": ...}``. Cached on ``device`` when it fits
            ``memory_budget``, else streamed batch by batch at every point.
        loss: a registry name (``"cross_entropy"``, ``"mse"``, ... or a list of them), a torch
            criterion (``nn.CrossEntropyLoss()``: ``(output, target)``), or a callable
            ``loss(model, batch) -> Tensor`` returning per-sample losses (n,) or a batch mean ().
        directions: from :func:`random_directions` or a trajectory, a direction file path
            (ours, a surface file, the paper's ``xdirection/ydirection`` layout), or a
            ``(dx, dy)`` pair of name → tensor dicts; None: random, paper defaults, seed 123 (as
            ``landscape surface``: the same model and data give the same plane and values through both doors).
        x: α axis, ``(min, max, num)`` or the coordinates (units of the direction's length); left at
            the default with a trajectory as ``directions``, a grid that holds its whole path.
        y: β axis likewise; None (or 1D directions) for a 1D line.
        metrics: more columns, name → fn; each takes what the loss takes (``(output, target)``
            for a named or criterion loss, ``(model, batch)`` for a callable) and returns
            per-sample values or a batch mean.
        params: which tensors the directions move: glob patterns on names (``"layer3.*"``) or a
            predicate ``name -> bool``; the rest stay bit-identical at θ*. The surface's
            directions then hold only these tensors (and the patterns), so saving and reusing
            them moves the same subset.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"``; None: the model's own device.
        memory_budget: bytes of data that may be cached on the device (default 2 GiB).
        batch_size: samples per forward for cached ``(inputs, targets)`` data; 0 chooses.
        points_per_call: grid points per vectorized call; 0 calibrates on the first points.
        bn: ``"keep"`` (BatchNorm running statistics as trained, the paper's) or ``"recompute"``
            (re-estimated at every point from ``bn_batches`` batches of the ``train`` data; needs
            ``(inputs, targets)`` data in memory and a named or criterion loss).
        max_points: larger grids are refused (a guard against typos).
        progress: show a progress bar (also silenced by ``LANDSCAPE_QUIET=1``).
        tolerance: None (exact, the default), or a progressive surface: each point's samples are read
            in one random order (``sample_seed``) until the standard error of every loss is at most
            this, in the loss's units (``0.01``) or a percent of the contour step (``"2%"``: 12
            levels over the range of the grid's coarsest level, read first, capped at the top
            ``vmax``; smaller at low values, as a log-scale figure's contours are). The surface then holds ``s.extra["train_loss_stderr"]``, ``s.extra["train_samples"]``...
            and the tolerance in ``s.attrs`` (docs/SPEED.md).
        refine: with ``tolerance``: compute finer levels only where the contours need them, the rest
            interpolated (``s.extra["computed"]`` marks the points computed).
        sample_seed: the seed of the one random order the samples are read in (``tolerance`` only).
        vmax: the top of the figure's range (``tolerance`` only): a point above it by more than 3
            standard errors stops early; None: 100 × max(origin's loss, 0.1).
        start: a progressive surface of the same grid, directions and data to go on from: every point
            continues from the samples it has read (a smaller ``tolerance`` reads on, a larger one is
            already met, ``tolerance=0`` reads on to every sample), in its sample order and scale.

    Returns:
        :class:`Surface`: ``s.x`` (nx,), ``s.y`` (ny,) or None, ``s["train_loss"]`` (nx, ny) float64.

    Warns:
        :class:`~landscape.errors.FlatSurfaceWarning` when every point equals the origin to
        rounding (the directions do not change the loss: the figure would show nothing).
    """
    model = plain_module(model)  # torch.compile / DataParallel: the module inside
    dev = model_device(model, device)
    tol = Tolerance.parse(tolerance)
    if refine and tol is None:
        raise ConfigError("refine=True needs a tolerance: it is what interpolation between computed points must meet")
    options = EngineOptions(batch_size=batch_size, points_per_call=points_per_call, bn=bn, bn_batches=bn_batches)
    dirs, grid = plane_grid(directions, model, x, y, max_points, "pass max_points=N if you mean it")
    moved = selector(params)
    if moved is not None:  # the directions hold only what moves, so a saved surface or direction file reuses the subset
        dirs = dirs_.only(dirs, moved, params_label(params))
    prepared = prepare(data, dev, memory_budget, dtype=floating_dtype(model))  # float inputs in the model's dtype
    spec, prepared = resolve_loss(loss, metrics, model, prepared)
    train = prepared.get("train")
    if start is not None:
        tol, sample_seed = _check_start(start, grid, dirs, tol)
    popts = None if tol is None else ProgressiveOptions(tol, seed=sample_seed, vmax=vmax, refine=refine)
    engine = surface_evaluator(model, dirs, prepared, spec.output,
                               batch_loss=None if spec.output is not None else (spec.names, batch_sums_of(spec.batch, batch_size_of)),
                               options=options, bn_data=train if bn == "recompute" and isinstance(train, TensorSplit) else None,
                               device=dev, moved=moved, progressive=None if popts is None else (popts, grid))
    done = np.zeros(grid.size, dtype=bool)
    if isinstance(engine, ProgressiveEvaluator) and start is not None:  # on from the samples read
        engine.state = engine.sums_of(start.extra)
        engine.apply_scale(start.attrs["scale"])
        done = engine.settled_points()
    if isinstance(engine, ProgressiveEvaluator) and engine.options.refine:
        flat = _run_refined(engine, progress, done)
    elif isinstance(engine, ProgressiveEvaluator):
        todo = np.flatnonzero(~done)
        _run(engine, grid.coords(todo), progress)
        flat = engine.rows(np.arange(grid.size))
    else:
        flat = _run(engine, grid.coords(), progress)
    values = {c: flat[:, i].reshape(grid.shape) for i, c in enumerate(engine.columns)}
    extra, pattrs = progressive_extras(engine, flat, grid) if isinstance(engine, ProgressiveEvaluator) else ({}, {})
    streamed = [k for k, p in prepared.items() if isinstance(p, Streamed)]
    settings = {"source": "python", "losses": [spec.label], "split": "both" if len(prepared) > 1 else next(iter(prepared)),
                "max_samples": 0, "bn": bn, "params": None if params is None else (params if isinstance(params, str | list) else "predicate")}
    attrs = {"settings": settings, "model_fingerprint": dirs_.model_fingerprint(model), "streamed": streamed, **pattrs,
             **({"trajectory": directions} if callable(getattr(directions, "axes", None)) else {})}  # its path: drawn in notebooks
    if is_flat(values):
        warnings.warn(FlatSurfaceWarning(flat_message(params or dirs.meta.get("params"))), stacklevel=2)
    return Surface(grid.x, grid.y, values, dirs, attrs, np.ones(grid.shape, dtype=bool), extra)


def plane_grid(directions: DirectionsSpec, model: nn.Module, x: AxisSpec, y: AxisSpec | None, max_points: int,
               advice: str) -> tuple[Directions, Grid]:
    """The directions and the grid of a surface request: a trajectory's plane takes a grid that holds its
    whole path when ``x`` and ``y`` are left at their defaults; 1D directions with the default ``y`` give a
    line. ``advice``: what the error for a grid over ``max_points`` suggests."""
    plane_axes = getattr(directions, "axes", None)
    if callable(plane_axes) and x is DEFAULT_AXIS and y is DEFAULT_AXIS:
        x, y = plane_axes(num=DEFAULT_AXIS[2])  # a trajectory's plane: a grid that holds the whole path
    xs, ys = axis(x, "x"), None if y is None else axis(y, "y")
    dirs = resolve_directions(directions, model, 1 if ys is None else 2)
    if dirs.y is None:
        ys = None if (y is DEFAULT_AXIS or y is None) else ys
        if ys is not None:
            raise GridError("a 2D grid needs two directions; these directions are 1D (pass y=None)")
    grid = Grid(xs, ys)
    if grid.size > max_points:
        raise GridError(f"the grid has {grid.size:,} points (more than {max_points:,}); {advice}")
    return dirs, grid


def progressive_extras(engine: ProgressiveEvaluator, flat: np.ndarray, grid: Grid) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """A progressive surface's extras (named as in its file) and attributes, from the evaluator's rows."""
    attrs = engine.attrs()
    names = extra_names(engine.columns, attrs)
    extra = {name: flat[:, len(engine.columns) + i].reshape(grid.shape) for i, name in enumerate(names)}
    for name in names:
        if name.endswith("_samples"):
            extra[name] = extra[name].astype(np.int64)
        elif name in ("above", "computed"):
            extra[name] = extra[name] > 0
    if engine.options.refine:
        attrs["computed_share"] = float(extra["computed"].mean())
    return extra, attrs


def _check_start(start: Surface, grid: Grid, dirs: Directions, tol: Tolerance | None) -> tuple[Tolerance, int]:
    """The tolerance (0 without one: on to every sample) and sample seed to go on from ``start`` with."""
    if not start.attrs.get("progressive") or "scale" not in start.attrs:
        raise ConfigError("start= goes on from a progressive surface (computed with tolerance=); this one is exact")
    same_y = (start.y is None and grid.y is None) or (start.y is not None and grid.y is not None and np.array_equal(start.y, grid.y))
    if start.shape != grid.shape or not (np.array_equal(start.x, grid.x) and same_y):
        raise GridError(f"start= is a {'×'.join(map(str, start.shape))} surface on another grid; pass its own x and y")
    if start.directions is not None and start.directions.fingerprint() != dirs.fingerprint():
        raise ConfigError("start= was computed along other directions; pass directions=start.directions")
    return (tol if tol is not None else Tolerance(0.0)), int(start.attrs["sample_seed"])


def _run_refined(engine: ProgressiveEvaluator, progress: bool, done: np.ndarray) -> np.ndarray:
    """``refine``: level by level (:func:`~landscape.engine.refine.refine`), the points needed computed, the rest
    interpolated; points ``done`` already (a ``start``) stay as they are."""
    grid = engine.grid
    flat = np.full((grid.size, engine.width), np.nan)
    flat[done] = engine.rows(np.flatnonzero(done))
    column, scale = engine.scale()
    c = engine.columns.index(column)

    def compute(idx: np.ndarray) -> None:
        if len(idx):
            flat[idx] = _run(engine, grid.coords(idx), progress)

    def fill(idx: np.ndarray, coarse: tuple[np.ndarray, ...], error: np.ndarray) -> None:
        if len(idx):
            columns = [flat[:, k].reshape(grid.shape) for k in range(len(engine.columns))]
            flat[idx] = engine.filled_rows(columns, coarse, idx, error, column)

    refine(grid.shape, done.reshape(grid.shape), scale, lambda: flat[:, c].reshape(grid.shape), compute, fill)
    return flat


def _run(engine: Evaluator, coords: np.ndarray, progress: bool) -> np.ndarray:
    """Every point, calibrated first (points per call), in pieces of about a second, with a bar."""
    rows: list[np.ndarray] = []
    with bar(len(coords) if progress else 0, "surface", unit="pt") as pbar:
        vals, used = engine.calibrate(coords)
        rows.append(vals)
        pbar.update(used)
        start, rate = used, 1.0
        while start < len(coords):  # pieces of about a second of work, as the CLI's claim loop sizes them
            piece = max(engine.points_per_call, min(1024, int(rate)))
            t0 = time.perf_counter()
            part = engine.evaluate(coords[start : start + piece])
            rate = len(part) / max(time.perf_counter() - t0, 1e-9)
            rows.append(part)
            pbar.update(len(part))
            start += len(part)
    return np.concatenate(rows) if rows else np.empty((0, 0))


# --- figures ----------------------------------------------------------------------------------------------


def plot(s: Surface | str | Path, kind: str = "contour", *, metric: str = "train_loss", ax: Axes | None = None,
         trajectory: Any = None, levels: int | None = None, vmin: float | None = None, vmax: float | None = None,
         log: bool | None = None, cmap: str = "viridis", width: str = "single", title: str | None = None,
         ) -> Figure | InteractiveFigure:
    """One figure of a surface, as ``landscape plot`` draws it.

    Args:
        s: a :class:`Surface` or the path of a surface file.
        kind: ``contour``, ``filled``, ``heatmap``, ``surface3d``, ``trajectory``, ``panels`` (2D) or ``line`` (1D);
            ``interactive`` (2D, needs the ``interactive`` extra): a plotly view that displays inline in
            Jupyter and saves to one self-contained HTML file with ``.save(path)``.
        metric: the column drawn (``train_loss``, ``test_acc``, ...).
        ax: draw into these axes (a 3D axes for ``surface3d``; every kind but ``panels`` and
            ``interactive``); None: a new figure.
        trajectory: for ``trajectory``/``surface3d``: a trajectory file path or what
            :func:`landscape.trajectory` returns (points with ``coords`` (n, 2)).
        levels: about this many contour levels; vmin, vmax: colour limits (metric units).
        log: log colour scale; None chooses (a positive loss spanning more than a decade).
        cmap: a matplotlib colour map name. width: ``single`` or ``double`` column.
        title: a title, or None.

    Returns:
        the matplotlib ``Figure`` (``ax.figure`` when ``ax`` is given); for ``interactive`` an
        :class:`~landscape.figures.interactive.InteractiveFigure`.
    """
    from landscape.figures import files, views
    from landscape.io.surface_file import PROGRESSIVE_ATTRS, SurfaceFile

    if not isinstance(s, Surface):
        s = load_surface(s)
    if kind == "interactive":
        from landscape.figures.interactive import interactive_figure

        if ax is not None:
            raise ConfigError("kind='interactive' draws its own page: leave ax out")
        return interactive_figure(s, trajectory, metric=metric, log=log, title=title)
    if kind not in files.KINDS:
        raise ConfigError(f"unknown figure kind {kind!r}; choose from {', '.join(files.KINDS)}")
    chosen = views.resolve_metric(s.columns, metric, "the surface")
    done = s.done if s.done is not None else np.ones(s.shape, dtype=bool)
    sf = SurfaceFile(Path(str(s.attrs.get("path", "surface"))), s.grid, s.columns, s.values, done,
                     {k: v for k, v in s.attrs.items() if k in ("settings", "directions", *PROGRESSIVE_ATTRS)} | s.axis_labels()
                     | ({"directions": dict(s.directions.meta)} if s.directions is not None else {}), extra=dict(s.extra))
    path = None
    if trajectory is not None:
        from landscape.io.trajectory_file import load_trajectory
        path = load_trajectory(trajectory) if isinstance(trajectory, str | Path) else trajectory
    reason = files.applicable_kinds(sf, chosen, path is not None)[kind]
    if reason is not None:
        raise LandscapeError(f"figure kind {kind!r} {reason}")
    if log is None:
        log = views.auto_log(chosen, sf.values[chosen][done])
    style = {"levels": levels, "vmin": vmin, "vmax": vmax, "log": log, "cmap": cmap, "width": width, "title": title}
    return files.draw(sf, kind, chosen, path, style, ax)


