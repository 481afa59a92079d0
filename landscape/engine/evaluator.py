"""One path from a resolved request to the evaluator of a surface, for ``landscape.surface`` and
``landscape surface`` alike: each door resolves its model, directions, data (each split a
:data:`~landscape.zoo.userdata.Prepared`) and loss, then :func:`surface_evaluator` picks the engine."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from landscape.engine.batchloss import BatchEngine, BatchSums, output_sums_of
from landscape.engine.directions import Directions
from landscape.engine.grid import auto_batch_size
from landscape.engine.losses import Metrics
from landscape.engine.surface import Evaluator, SurfaceEngine
from landscape.errors import ConfigError
from landscape.zoo.data import TensorSplit

BNMode = Literal["keep", "recompute"]


@dataclass(frozen=True)
class EngineOptions:
    """How the points are evaluated: samples per forward and points per call (0: chosen), BatchNorm
    statistics ``keep`` (as trained) or re-estimated at each point from ``bn_batches`` batches (``recompute``).
    No defaults here: both doors take them from the config's ``[surface]`` section."""

    batch_size: int
    points_per_call: int
    bn: BNMode
    bn_batches: int

    def __post_init__(self) -> None:
        if self.bn not in ("keep", "recompute") or min(self.batch_size, self.points_per_call, self.bn_batches - 1) < 0:
            raise ConfigError(f"bn must be 'keep' or 'recompute', batch_size and points_per_call ≥ 0 and bn_batches ≥ 1, "
                              f"got {self.bn!r}, {self.batch_size}, {self.points_per_call} and {self.bn_batches}")


def tensor_batches(split: TensorSplit, batch_size: int = 0) -> list[tuple[Any, Any]]:
    """``split`` cut into ``(inputs, targets)`` batches of ``batch_size`` samples (0 chooses)."""
    bs = batch_size or auto_batch_size(split)
    return [(split.inputs[i : i + bs], split.targets[i : i + bs]) for i in range(0, len(split), bs)]


def surface_evaluator(model: nn.Module, directions: Directions, splits: Mapping[str, TensorSplit | Iterable[Any]],
                      metrics: Metrics | None = None, *, batch_loss: tuple[Sequence[str], BatchSums] | None = None,
                      options: EngineOptions, bn_data: TensorSplit | None = None,
                      device: torch.device | str = "cpu", moved: Callable[[str], bool] | None = None) -> Evaluator:
    """:class:`SurfaceEngine` for ``metrics`` of ``(output, target)`` on tensors (vectorized, set-up
    rewrites, BatchNorm re-estimated on ``bn_data``), else :class:`BatchEngine` for ``metrics`` or
    ``batch_loss`` (column names, ``(model, batch) -> (sums, n)``) read batch by batch."""
    if (metrics is None) == (batch_loss is None):
        raise ConfigError("give either output metrics or a batch loss, not both or neither")
    if metrics is not None and all(isinstance(s, TensorSplit) for s in splits.values()):
        tensors = {k: s for k, s in splits.items() if isinstance(s, TensorSplit)}
        return SurfaceEngine(model, directions, tensors, metrics, device=device, batch_size=options.batch_size,
                             bn=options.bn, bn_data=bn_data, bn_batches=options.bn_batches,
                             points_per_call=options.points_per_call, moved=moved)
    if options.bn != "keep":
        raise ConfigError("bn = 'recompute' needs (inputs, targets) data in memory and a loss of (output, target)")
    names, sums = (metrics.names, output_sums_of(metrics)) if metrics is not None else batch_loss  # type: ignore[misc]
    read = {k: tensor_batches(s.to(device), options.batch_size) if isinstance(s, TensorSplit) else s for k, s in splits.items()}
    return BatchEngine(model, directions, read, list(names), sums, device=device, moved=moved,
                       points_per_call=options.points_per_call)
