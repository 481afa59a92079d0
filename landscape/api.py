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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import h5py
import numpy as np
import torch
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from torch import Tensor, nn

from landscape.engine import directions as _dirs
from landscape.engine.batchloss import (
    BatchEngine,
    BatchFn,
    OutputMetrics,
    batch_sums_of,
    output_sums_of,
)
from landscape.engine.directions import Directions
from landscape.engine.grid import MAX_POINTS, Grid, auto_batch_size
from landscape.engine.losses import ALIASES, LOSSES, Metrics, MetricSet, canonical_loss_name
from landscape.engine.moved import ParamSelector, selector, working_copy
from landscape.engine.progress import bar
from landscape.engine.surface import Evaluator, SurfaceEngine
from landscape.errors import ConfigError, DataError, GridError, LandscapeError, ModelError
from landscape.integrations.notebook import SurfaceDisplay
from landscape.zoo.data import Task, TensorSplit
from landscape.zoo.modules import floating_dtype, plain_module

if TYPE_CHECKING:
    from landscape.figures.interactive import InteractiveFigure
from landscape.zoo.userdata import DEFAULT_MEMORY_BUDGET, Prepared, Streamed, batch_size_of, first_batch, prepare

AxisSpec = tuple[float, float, int] | Sequence[float] | np.ndarray
LossSpec = str | Sequence[str] | nn.Module | Callable[[nn.Module, Any], Tensor]
DirectionsSpec = Directions | str | Path | tuple[Mapping[str, Tensor], Mapping[str, Tensor] | None] | Any | None
_DEFAULT_AXIS: tuple[float, float, int] = (-1.0, 1.0, 51)


# --- directions ---------------------------------------------------------------------------------------------


def random_directions(model: nn.Module, dims: int = 2, seed: int = 0, *, norm: str = "filter", ignore: str = "biasbn",
                      dir_type: str = "weights") -> Directions:
    """The paper's random directions: Gaussian, filter-normalized, biases and BatchNorm zeroed.

    Args:
        model: the network (any ``nn.Module``); only its parameter names, shapes and values are read.
        dims: 1 or 2 directions (a line or a plane).
        seed: seed of the CPU generator; the same seed gives the same directions bit for bit.
        norm: ``filter`` (Li et al.), ``layer``, ``weight`` or ``none``: each direction's filter
            (slice along dim 0) is rescaled to the norm of the weights' filter.
        ignore: ``biasbn`` gives tensors with ndim ≤ 1 a zero direction; ``none`` gives each the
            tensor itself (the paper's code); ``random1d`` a Gaussian rescaled to the tensor's norm.
        dir_type: ``weights`` (parameters) or ``states`` (state-dict floats, BatchNorm statistics included).

    Returns:
        :class:`Directions` with ``x`` (and ``y``): dicts name → float32 CPU tensor shaped like the parameter.
    """
    if dims not in (1, 2):
        raise ConfigError(f"dims must be 1 or 2, got {dims}")
    model = plain_module(model)  # torch.compile / DataParallel: the module inside
    cfg = _dirs.DirectionOptions(dir_type=dir_type, norm=norm, ignore=ignore, seed=seed)
    if ignore not in ("biasbn", "none", "random1d"):
        raise ConfigError(f"unknown ignore {ignore!r}; choose 'biasbn', 'none' or 'random1d'")
    return _dirs.random_directions(model, cfg, dims)


def _resolve_directions(spec: DirectionsSpec, model: nn.Module, dims: int) -> Directions:
    if spec is None:
        return random_directions(model, dims)
    if isinstance(spec, Directions):
        dirs = spec
    elif isinstance(spec, str | Path):
        dirs = _dirs.load_directions(spec, model)
    elif isinstance(getattr(spec, "directions", None), Directions):  # a trajectory's PCA plane
        dirs = spec.directions  # type: ignore[union-attr]
    elif isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], Mapping):
        x = {k: torch.as_tensor(v).detach().float().cpu() for k, v in spec[0].items()}
        y = {k: torch.as_tensor(v).detach().float().cpu() for k, v in spec[1].items()} if spec[1] is not None else None
        dirs = Directions(x, y, {"kind": "user", "dir_type": "weights", "norm": "none", "ignore": "none", "seed": -1})
    else:
        raise ConfigError(f"directions must be Directions, a direction file or a (dx, dy) pair of dicts, got {type(spec).__name__}")
    _dirs.check_directions(dirs, model)
    return dirs


# --- the grid ---------------------------------------------------------------------------------------------------


def _axis(spec: AxisSpec, name: str) -> np.ndarray:
    """``(lo, hi, num)`` → ``linspace`` (an odd symmetric axis holds 0 exactly); any other sequence as given."""
    if isinstance(spec, tuple) and len(spec) == 3 and isinstance(spec[2], int | np.integer) and not isinstance(spec[2], bool):
        lo, hi, num = float(spec[0]), float(spec[1]), int(spec[2])
        if num < 2 or not lo < hi or not (np.isfinite(lo) and np.isfinite(hi)):
            raise GridError(f"{name}={spec!r} must be (MIN, MAX, NUM) with finite MIN < MAX and NUM ≥ 2")
        axis = np.linspace(lo, hi, num)
        if lo == -hi and num % 2 == 1:
            axis[num // 2] = 0.0
        return axis
    axis = np.asarray(spec, dtype=np.float64).reshape(-1)
    if len(axis) < 2 or not np.all(np.isfinite(axis)) or not np.all(np.diff(axis) > 0):
        raise GridError(f"{name} must be (MIN, MAX, NUM) or at least 2 increasing finite coordinates")
    return axis


def _spec_text(axis: np.ndarray) -> str:
    return f"{axis[0]:g}:{axis[-1]:g}:{len(axis)}"


# --- losses ------------------------------------------------------------------------------------------------------


def _infer_task(targets: Tensor, losses: Sequence[str], output: Tensor) -> tuple[Task, int]:
    """The task (and classes) registry losses see: integer targets are classes, floats regression
    unless the loss does not apply to it (then binary 0/1 targets, else reconstruction)."""
    if not targets.is_floating_point():
        return "classification", int(output.shape[1]) if output.ndim == 2 else int(targets.max()) + 1
    tasks = [LOSSES.get(canonical_loss_name(n)).tasks if canonical_loss_name(n) in LOSSES else frozenset() for n in losses]
    if all("regression" in t for t in tasks):
        return "regression", 0
    if targets.ndim <= 2 and (targets.ndim == 1 or targets.shape[-1] == 1) and bool(((targets == 0) | (targets == 1)).all()):
        return "binary", 0
    return "reconstruction", 0


def _origin_output(model: nn.Module, x: Any) -> Tensor:
    """The model's output on a couple of samples, from a copy that reads the caller's parameters
    and owns its buffers, so a forward that writes them leaves the caller's model as it was."""
    try:
        device = next(iter(model.parameters())).device
    except StopIteration:
        device = torch.device("cpu")
    with torch.inference_mode():
        out = working_copy(model, (), device)(x.to(device))
    if not isinstance(out, Tensor):
        raise ModelError(f"the model returns a {type(out).__name__}, not a tensor: with a loss named or given as a "
                         "criterion the forward must return the outputs; else pass loss=lambda model, batch: ...")
    return out


@dataclass
class _Loss:
    """What a loss spec resolves to: output metrics for (x, y) data or batch metrics for any data."""

    names: list[str]
    output: Metrics | None = None  # fn(output, target) side
    per_sample: Callable[[Tensor, Tensor], Tensor] | None = None  # for the Hessian
    batch: list[tuple[str, BatchFn]] = field(default_factory=list)  # fn(model, batch) side
    label: str = ""


def _resolve_loss(loss: LossSpec, metrics: Mapping[str, Callable[..., Tensor]] | None, model: nn.Module,
                  prepared: dict[str, Prepared]) -> tuple[_Loss, dict[str, Prepared]]:
    metrics = dict(metrics or {})
    if callable(loss) and not isinstance(loss, nn.Module):
        fns: list[tuple[str, BatchFn]] = [("loss", loss), *metrics.items()]
        return _Loss([n for n, _ in fns], batch=fns, label=getattr(loss, "__name__", "callable")), prepared
    batch = first_batch(next(iter(prepared.values())))
    if not (isinstance(batch, tuple | list) and len(batch) >= 2 and isinstance(batch[0], Tensor) and isinstance(batch[1], Tensor)):
        raise DataError(f"a loss {'named' if isinstance(loss, str) else 'criterion'} compares outputs with targets, so batches "
                        f"must be (inputs, targets, ...) tuples; got {type(batch).__name__} batches: pass "
                        "loss=lambda model, batch: ... for other batches")
    output = _origin_output(model, batch[0][:2])
    prepared = {k: _match_targets(v, output) for k, v in prepared.items()}
    y = first_batch(next(iter(prepared.values())))[1]
    if isinstance(loss, nn.Module):
        acc = not y.is_floating_point() and output.ndim == 2
        out_fns: list[tuple[str, Callable[[Tensor, Tensor], Tensor]]] = [("loss", loss), *metrics.items()]
        om = OutputMetrics(out_fns, acc=acc)
        om.check(output, y[: output.shape[0]].to(output.device))
        return _Loss(om.names, output=om, per_sample=om.per_sample, label=type(loss).__name__), prepared
    names = [loss] if isinstance(loss, str) else list(loss)
    if not names or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"loss must be a registry name, a list of them, a criterion or a callable, got {loss!r}")
    task, num_classes = _infer_task(y, names, output)
    ms = MetricSet(names, task, num_classes)
    ms.check(output, y[: output.shape[0]].to(output.device))
    criterion = ms.criteria[0]

    def per_sample(out: Tensor, target: Tensor) -> Tensor:
        return criterion.fn(out, target, num_classes)

    if not metrics:
        return _Loss(list(ms.names), output=ms, per_sample=per_sample, label=",".join(c.name for c in ms.criteria)), prepared
    fns_named = [("loss" if i == 0 else c.name, _bind(c.fn, num_classes)) for i, c in enumerate(ms.criteria)]
    om = OutputMetrics([*fns_named, *metrics.items()], acc=ms.has_acc)
    om.check(output, y[: output.shape[0]].to(output.device))
    return _Loss(om.names, output=om, per_sample=per_sample, label=",".join(c.name for c in ms.criteria)), prepared


def _bind(fn: Callable[[Tensor, Tensor, int], Tensor], num_classes: int) -> Callable[[Tensor, Tensor], Tensor]:
    def bound(output: Tensor, target: Tensor) -> Tensor:
        return fn(output, target, num_classes)

    return bound


def _match_targets(p: Prepared, output: Tensor) -> Prepared:
    """1-D float targets against one output column become (n, 1), as the CLI's data loading does."""
    if (isinstance(p, TensorSplit) and p.targets.ndim == 1 and p.targets.is_floating_point()
            and output.ndim == 2 and output.shape[1] == 1):
        return TensorSplit(p.inputs, p.targets.unsqueeze(1))
    return p


def _slices(split: TensorSplit) -> list[tuple[Tensor, Tensor]]:
    bs = auto_batch_size(split)
    return [(split.inputs[i : i + bs], split.targets[i : i + bs]) for i in range(0, len(split), bs)]


def _as_batches(p: Prepared) -> Iterable[Any]:
    return _slices(p) if isinstance(p, TensorSplit) else p


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
    :func:`surface`; a partial file from an interrupted CLI run has False where it stopped).
    """

    x: np.ndarray
    y: np.ndarray | None
    values: dict[str, np.ndarray]
    directions: Directions | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    done: np.ndarray | None = None

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
        from landscape import __version__
        from landscape.io.surface_file import exclusive_lock, open_surface

        if self.directions is None:
            raise ConfigError("this surface has no directions to embed; it cannot be saved as a surface file")
        p = Path(path)
        grid = self.grid
        settings = {**self.attrs.get("settings", {}), "x": _spec_text(self.x), "y": _spec_text(self.y) if self.y is not None else "",
                    "directions": {**{k: v for k, v in self.directions.meta.items() if isinstance(v, str | int | float)},
                                   "fingerprint": self.directions.fingerprint()}}
        attrs = {"landscape_version": __version__, "checkpoint": "", "checkpoint_sha256": "", **self.axis_labels()}
        model_fp = self.attrs.get("model_fingerprint") or {k: list(v.shape) for k, v in self.directions.x.items()}
        with exclusive_lock(p):
            sf = open_surface(p, grid, self.columns, settings, attrs, self.directions, model_fp, overwrite=True)
            done = self.done if self.done is not None else np.ones(grid.shape, dtype=bool)
            idx = np.flatnonzero(done.reshape(-1))
            sf.record(idx, np.stack([self.values[c].reshape(-1)[idx] for c in self.columns], axis=1))
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
            dirs = _dirs.read_directions_group(f["directions"])
    return Surface(sf.grid.x, sf.grid.y, dict(sf.values), dirs, {**sf.attrs, "path": str(sf.path)}, sf.done)


def surface(
    model: nn.Module,
    data: Any,
    loss: LossSpec = "cross_entropy",
    directions: DirectionsSpec = None,
    x: AxisSpec = _DEFAULT_AXIS,
    y: AxisSpec | None = _DEFAULT_AXIS,
    *,
    metrics: Mapping[str, Callable[..., Tensor]] | None = None,
    params: ParamSelector = None,
    device: str | torch.device | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    batch_size: int = 0,
    max_points: int = MAX_POINTS,
    progress: bool = True,
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
            ``(dx, dy)`` pair of name → tensor dicts; None: random, paper defaults, seed 0.
        x: α axis, ``(min, max, num)`` or the coordinates (units of the direction's length); left at
            the default with a trajectory as ``directions``, a grid that holds its whole path.
        y: β axis likewise; None (or 1D directions) for a 1D line.
        metrics: more columns, name → fn; each takes what the loss takes (``(output, target)``
            for a named or criterion loss, ``(model, batch)`` for a callable) and returns
            per-sample values or a batch mean.
        params: which tensors the directions move: glob patterns on names (``"layer3.*"``) or a
            predicate ``name -> bool``; the rest stay bit-identical at θ*.
        device: ``"cpu"``, ``"cuda"``, ``"cuda:N"``; None: the model's own device.
        memory_budget: bytes of data that may be cached on the device (default 2 GiB).
        batch_size: samples per forward for cached ``(inputs, targets)`` data; 0 chooses.
        max_points: larger grids are refused (a guard against typos).
        progress: show a progress bar (also silenced by ``LANDSCAPE_QUIET=1``).

    Returns:
        :class:`Surface`: ``s.x`` (nx,), ``s.y`` (ny,) or None, ``s["train_loss"]`` (nx, ny) float64.
    """
    model = plain_module(model)  # torch.compile / DataParallel: the module inside
    dev = _device(model, device)
    plane_axes = getattr(directions, "axes", None)
    if callable(plane_axes) and x is _DEFAULT_AXIS and y is _DEFAULT_AXIS:
        x, y = plane_axes(num=_DEFAULT_AXIS[2])  # a trajectory's plane: a grid that holds the whole path
    xs = _axis(x, "x")
    dirs0 = directions if directions is not None else None
    ys = None if y is None else _axis(y, "y")
    dirs = _resolve_directions(dirs0, model, 1 if ys is None else 2)
    if dirs.y is None:
        ys = None if (y is _DEFAULT_AXIS or y is None) else ys
        if ys is not None:
            raise GridError("a 2D grid needs two directions; these directions are 1D (pass y=None)")
    grid = Grid(xs, ys)
    if grid.size > max_points:
        raise GridError(f"the grid has {grid.size:,} points (more than {max_points:,}); pass max_points=N if you mean it")
    moved = selector(params)
    prepared = prepare(data, dev, memory_budget, dtype=floating_dtype(model))  # float inputs in the model's dtype
    spec, prepared = _resolve_loss(loss, metrics, model, prepared)
    engine: Evaluator
    if spec.output is not None and all(isinstance(p, TensorSplit) for p in prepared.values()):
        splits = {k: p for k, p in prepared.items() if isinstance(p, TensorSplit)}
        engine = SurfaceEngine(model, dirs, splits, spec.output, device=dev, batch_size=batch_size, moved=moved)
    else:
        sums = output_sums_of(spec.output) if spec.output is not None else batch_sums_of(spec.batch, batch_size_of)
        engine = BatchEngine(model, dirs, {k: _as_batches(p) for k, p in prepared.items()}, spec.names, sums,
                             device=dev, moved=moved)
    flat = _run(engine, grid.coords(), progress)
    values = {c: flat[:, i].reshape(grid.shape) for i, c in enumerate(engine.columns)}
    streamed = [k for k, p in prepared.items() if isinstance(p, Streamed)]
    settings = {"source": "python", "losses": [spec.label], "split": "both" if len(prepared) > 1 else next(iter(prepared)),
                "max_samples": 0, "bn": "fixed", "params": None if params is None else (params if isinstance(params, str | list) else "predicate")}
    attrs = {"settings": settings, "model_fingerprint": _dirs.model_fingerprint(model), "streamed": streamed,
             **({"trajectory": directions} if callable(plane_axes) else {})}  # its path: drawn in notebooks
    return Surface(grid.x, grid.y, values, dirs, attrs, np.ones(grid.shape, dtype=bool))


def _device(model: nn.Module, device: str | torch.device | None) -> torch.device:
    from landscape.workflows._experiment import resolve_device

    if device is None:
        try:
            return next(iter(model.parameters())).device
        except StopIteration:
            return torch.device("cpu")
    return resolve_device(str(device))


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


# --- figures ---------------------------------------------------------------------------------------------------------


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
    from landscape.figures import files
    from landscape.io.surface_file import SurfaceFile

    if not isinstance(s, Surface):
        s = load_surface(s)
    if kind == "interactive":
        from landscape.figures.interactive import interactive_figure

        if ax is not None:
            raise ConfigError("kind='interactive' draws its own page: leave ax out")
        return interactive_figure(s, trajectory, metric=metric, log=log, title=title)
    if kind not in files.KINDS:
        raise ConfigError(f"unknown figure kind {kind!r}; choose from {', '.join(files.KINDS)}")
    chosen = files.resolve_metric(s.columns, metric, "the surface")
    done = s.done if s.done is not None else np.ones(s.shape, dtype=bool)
    sf = SurfaceFile(Path(str(s.attrs.get("path", "surface"))), s.grid, s.columns, s.values, done,
                     {k: v for k, v in s.attrs.items() if k in ("settings", "directions")} | s.axis_labels()
                     | ({"directions": dict(s.directions.meta)} if s.directions is not None else {}))
    path = None
    if trajectory is not None:
        from landscape.io.trajectory_file import load_trajectory
        path = load_trajectory(trajectory) if isinstance(trajectory, str | Path) else trajectory
    reason = files.applicable_kinds(sf, chosen, path is not None)[kind]
    if reason is not None:
        raise LandscapeError(f"figure kind {kind!r} {reason}")
    if log is None:
        log = files.spans_decades(sf.values[chosen][done]) and not chosen.endswith(("_acc", "_eig_ratio", "_eig_converged"))
    style = {"levels": levels, "vmin": vmin, "vmax": vmax, "log": log, "cmap": cmap, "width": width, "title": title}
    return files._DRAW[kind](files._Job(sf, chosen, path, style, ax))


def dataset(name: str = "digits", **options: Any) -> tuple[tuple[Tensor, Tensor], tuple[Tensor, Tensor]]:
    """A built-in dataset as ``((train_inputs, train_targets), (test_inputs, test_targets))`` tensors.

    Args:
        name: a registry name: ``digits`` (8×8 images (n, 1, 8, 8) in [0, 1], labels (n,) int64;
            shipped with the package), ``linreg``, ``blobs``, ``spirals``, ``mnist``, ... .
        options: the builder's keywords (e.g. ``seed=0``; ``root=``, ``download=`` for image sets).

    Returns:
        two ``(inputs, targets)`` pairs, ready for :func:`surface` as they are.
    """
    from landscape.zoo.data import DATASETS

    try:
        result = DATASETS.get(name)(**options)
    except TypeError as err:
        raise DataError(f"dataset {name!r} rejected options {options}: {err}") from err
    train, test = result
    return (train[0], train[1]), (test[0], test[1])


def losses() -> list[str]:
    """The registry's loss names (and aliases) accepted by ``loss=``."""
    return [*LOSSES.names(), *ALIASES]
