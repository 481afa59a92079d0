"""``landscape.check``: can this surface be trusted? The checks of ``landscape check`` on a model in memory.

The checks and their thresholds are :mod:`landscape.workflows.check` and docs/CHECKS.md; this
module only turns what a notebook holds (a model, data, a loss, a :class:`~landscape.api.Surface`
or its file, a trajectory) into their inputs, with the same data preparation, loss resolution
and engines as :func:`landscape.surface`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from landscape.api.inputs import (
    DEFAULT_AXIS,
    AxisSpec,
    DirectionsSpec,
    LossSpec,
    model_device,
    resolve_directions,
    resolve_loss,
)
from landscape.api.surface import Surface, _run, load_surface, plane_grid
from landscape.config import SurfaceConfig
from landscape.engine.batchloss import batch_sums_of, output_sums_of
from landscape.engine.check import CheckOptions
from landscape.engine.directions import Directions
from landscape.engine.evaluator import EngineOptions, surface_evaluator
from landscape.engine.grid import MAX_POINTS
from landscape.engine.surface import Evaluator
from landscape.errors import ConfigError
from landscape.io.trajectory_file import TrajectoryPoints, load_trajectory
from landscape.workflows import check as check_flow
from landscape.workflows import check_inputs
from landscape.zoo.data import TensorSplit
from landscape.zoo.modules import floating_dtype, plain_module
from landscape.zoo.userdata import DEFAULT_MEMORY_BUDGET, batch_size_of, prepare

CheckReport = check_flow.CheckReport


def check(
    model: nn.Module,
    data: Any,
    loss: LossSpec = "cross_entropy",
    directions: DirectionsSpec = None,
    surface: Surface | str | Path | None = None,
    trajectory: Any = None,
    *,
    x: AxisSpec = DEFAULT_AXIS,
    y: AxisSpec | None = DEFAULT_AXIS,
    metrics: Mapping[str, Callable[..., Tensor]] | None = None,
    device: str | torch.device | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    out: str | Path | None = None,
    progress: bool = True,
    log: bool | None = None,
    **thresholds: Any,
) -> CheckReport:
    """Check a loss surface of ``model``: seven verdicts, each with its value, threshold and advice.

    The checks (docs/CHECKS.md): ``origin`` (the surface at (0, 0) equals the model's own
    evaluation: eval mode, its own forward, float64 accumulation), ``bn_mode`` (BatchNorm running
    statistics against batch statistics), ``seeds`` (the plane among ``seeds`` planes of other
    seeds, same coarse grid), ``scale`` (exploded or flat range, basin off the plane), ``resolution``
    (the surface against its own coarse level), ``trajectory`` (the path on its plane) and
    ``numerics`` (non-finite points, float32 rounding).

    Args:
        model, data, loss, directions, x, y, metrics, device, memory_budget: as :func:`landscape.surface`,
            which computes the surface when ``surface`` is None.
        surface: a :class:`~landscape.api.Surface` or a surface file computed from this model and
            data (its directions are used unless ``directions`` is given).
        trajectory: what :func:`landscape.trajectory` returns, or a trajectory file: its path is
            checked against the plane (its checkpoint files, when they exist, give the weights).
            Without ``surface`` and ``directions`` its plane is the one computed.
        out: also write the report there as JSON (``check.json``), with the figures beside it.
        progress: a progress bar while the surface is computed.
        log: the scale of the figure the checks judge, as :func:`landscape.plot` takes it (True: log
            levels, False: linear, None: log when a positive loss spans more than a decade); the
            contour step is the spacing of that figure's levels.
        thresholds: any field of :class:`~landscape.engine.check.CheckOptions` (``seeds=5``,
            ``bn_rtol=0.1``, ...), as ``--set check.KEY=VALUE`` on the command line.

    Returns:
        :class:`~landscape.workflows.check.CheckReport`: ``report.status`` (the worst verdict),
        ``report["scale"]``, ``report.checks``, ``report.warnings()``, ``report.to_dict()``.
    """
    t0 = time.perf_counter()
    known = {f.name for f in fields(CheckOptions)} - {"enabled"}  # a call to check always checks
    unknown = sorted(set(thresholds) - known)
    if unknown:
        raise ConfigError(f"unknown check option {unknown[0]!r}; known: {', '.join(sorted(known))}")
    opts = CheckOptions(**thresholds)
    path = _path(trajectory)
    subject, engine = _subject(model, data, loss, metrics, device, memory_budget)  # the data prepared once, here
    if surface is None:
        surface = _computed(subject.model, engine, directions if directions is not None else trajectory, x, y, progress)
    elif not isinstance(surface, Surface):
        surface = load_surface(surface)
    dirs = resolve_directions(directions, model, 1 if surface.y is None else 2) if directions is not None \
        else surface.directions
    if dirs is None:
        raise ConfigError("this surface holds no directions: pass the directions it was computed with")
    column = next((c for c in surface.columns if c.endswith("_loss")), surface.columns[0])
    done = surface.done if surface.done is not None else np.ones(surface.shape, dtype=bool)
    labels = surface.axis_labels()
    view = check_inputs.View("surface", surface.x, surface.y, dict(surface.values), done, column, dirs,
                       check_inputs.bn_mode(surface.attrs.get("settings", {}).get("bn")), labels["x_label"], labels["y_label"],
                       **check_inputs.progressive_view(surface.columns, surface.extra, column), scale=log)
    # the checkpoints' own losses: the engine at their weights; recorded ones only where the files are gone
    path_in = check_inputs.path_input(path, None if column == "train_loss" else False) if path is not None else None
    run = check_flow.check_view(subject, view, opts, path=path_in)
    figures: list[Path] = []
    if out is not None:
        target = Path(out)
        figures = check_flow.write_figures([run], target.parent, target.stem)
    report = check_flow.report([run], time.perf_counter() - t0, figures)
    if out is not None:
        report.save(out)
    return report


def _path(trajectory: Any) -> TrajectoryPoints | None:
    if trajectory is None:
        return None
    if isinstance(trajectory, TrajectoryPoints):
        return trajectory
    if isinstance(trajectory, str | Path):
        return load_trajectory(trajectory)
    raise ConfigError(f"trajectory must be what landscape.trajectory returns or a trajectory file, got {type(trajectory).__name__}")


def _computed(model: nn.Module, engine: Callable[[Directions, int], Evaluator], plane: Any, x: AxisSpec,
              y: AxisSpec | None, progress: bool) -> Surface:
    """The surface :func:`landscape.surface` computes for ``(model, data, loss, plane, x, y)``, on the data
    :func:`_subject` prepared: its directions and grid resolved as there, its points by the same engine."""
    dirs, grid = plane_grid(plane, model, x, y, MAX_POINTS, "check a smaller grid")
    e = engine(dirs, 0)  # 0: calibrate the points per call, as landscape.surface does
    flat = _run(e, grid.coords(), progress)
    values = {c: flat[:, i].reshape(grid.shape) for i, c in enumerate(e.columns)}
    return Surface(grid.x, grid.y, values, dirs, {"settings": {"bn": "keep"}}, np.ones(grid.shape, dtype=bool))


def _subject(model: nn.Module, data: Any, loss: LossSpec, metrics: Mapping[str, Callable[..., Tensor]] | None,
             device: str | torch.device | None, memory_budget: int
             ) -> tuple[check_inputs.Subject, Callable[[Directions, int], Evaluator]]:
    """The model, data and loss as :func:`landscape.surface` resolves them (the data prepared once), the
    checks' engine factory, and the same engine with ``points_per_call`` for computing the surface."""
    model = plain_module(model)
    dev = model_device(model, device)
    prepared = prepare(data, dev, memory_budget, dtype=floating_dtype(model))
    spec, prepared = resolve_loss(loss, metrics, model, prepared)
    sums = output_sums_of(spec.output) if spec.output is not None else batch_sums_of(spec.batch, batch_size_of)
    batch_loss = None if spec.output is not None else (spec.names, sums)
    train = prepared.get("train", next(iter(prepared.values())))

    def engine(dirs: Directions, bn: str, points_per_call: int = 1) -> Evaluator:
        options = EngineOptions(batch_size=0, points_per_call=points_per_call, bn=bn,  # type: ignore[arg-type]
                                bn_batches=SurfaceConfig().bn_batches)
        return surface_evaluator(model, dirs, prepared, spec.output, batch_loss=batch_loss, options=options,
                                 bn_data=train if bn == "recompute" and isinstance(train, TensorSplit) else None, device=dev)
    return (check_inputs.Subject(model, dict(prepared), sums, list(spec.names), engine, dev),
            lambda dirs, per_call: engine(dirs, "keep", per_call))
