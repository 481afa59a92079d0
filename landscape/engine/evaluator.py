"""One path from a resolved request to the evaluator of a surface, for the API and the CLI alike.

Both doors resolve their inputs first (the API from a notebook's objects, ``landscape surface``
from a checkpoint and a config) into the same pieces: the model, its directions, each split's
data as a :data:`~landscape.zoo.userdata.Prepared` (``(inputs, targets)`` tensors on the device,
a list of cached batches, or a :class:`~landscape.zoo.userdata.Streamed` source), the loss as
output metrics or as batch sums, and :class:`EngineOptions`. :func:`surface_evaluator` then picks
the engine: :class:`~landscape.engine.surface.SurfaceEngine` (vectorized, set-up rewrites,
BatchNorm re-estimation) when every split is tensors and the loss compares outputs with targets,
else :class:`~landscape.engine.batchloss.BatchEngine` (batch by batch, several points per read).
"""

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

BNMode = Literal["fixed", "recompute"]


@dataclass(frozen=True)
class EngineOptions:
    """How the points are evaluated, not what they are (only ``bn`` changes the values).

    ``batch_size``: samples per forward on tensor data (0 chooses from the activations' size);
    ``points_per_call``: grid points per vectorized call (0 calibrates on the first points);
    ``bn``: ``fixed`` keeps BatchNorm's running statistics, ``recompute`` re-estimates them at every
    point from ``bn_batches`` training batches. No defaults here: both doors take theirs from the
    config's ``[surface]`` section (:class:`landscape.config.SurfaceConfig`), the one place they live.
    """

    batch_size: int
    points_per_call: int
    bn: BNMode
    bn_batches: int

    def __post_init__(self) -> None:
        if self.bn not in ("fixed", "recompute"):
            raise ConfigError(f"bn = {self.bn!r} is not allowed; choose 'fixed' or 'recompute'")
        if self.batch_size < 0 or self.points_per_call < 0 or self.bn_batches < 1:
            raise ConfigError(f"batch_size and points_per_call must be ≥ 0 and bn_batches ≥ 1, got "
                              f"{self.batch_size}, {self.points_per_call} and {self.bn_batches}")


def tensor_batches(split: TensorSplit, batch_size: int = 0) -> list[tuple[Any, Any]]:
    """``split`` cut into ``(inputs, targets)`` batches of ``batch_size`` samples (0 chooses)."""
    bs = batch_size or auto_batch_size(split)
    return [(split.inputs[i : i + bs], split.targets[i : i + bs]) for i in range(0, len(split), bs)]


def surface_evaluator(model: nn.Module, directions: Directions, splits: Mapping[str, TensorSplit | Iterable[Any]],
                      metrics: Metrics | None = None, *, batch_loss: tuple[Sequence[str], BatchSums] | None = None,
                      options: EngineOptions, bn_data: TensorSplit | None = None,
                      device: torch.device | str = "cpu", moved: Callable[[str], bool] | None = None) -> Evaluator:
    """The evaluator of ``metrics`` (``fn(output, target)`` side) or of ``batch_loss`` (column names
    and ``(model, batch) -> (sums, n)``) on every split, at any point of the ``directions``' plane.

    ``bn_data``: the training data BatchNorm statistics are re-estimated on with ``bn = "recompute"``
    (needs tensors and ``metrics``). ``moved``: a predicate on names; the other tensors stay at θ*.
    """
    if (metrics is None) == (batch_loss is None):
        raise ConfigError("give either output metrics or a batch loss, not both or neither")
    if metrics is not None and all(isinstance(s, TensorSplit) for s in splits.values()):
        tensors = {k: s for k, s in splits.items() if isinstance(s, TensorSplit)}
        return SurfaceEngine(model, directions, tensors, metrics, device=device, batch_size=options.batch_size,
                             bn=options.bn, bn_data=bn_data, bn_batches=options.bn_batches,
                             points_per_call=options.points_per_call, moved=moved)
    if options.bn != "fixed":
        raise ConfigError("bn = 'recompute' needs (inputs, targets) data in memory and a loss of (output, target); "
                          "use bn = 'fixed'")
    names, sums = (metrics.names, output_sums_of(metrics)) if metrics is not None else batch_loss  # type: ignore[misc]
    read = {k: tensor_batches(s.to(device), options.batch_size) if isinstance(s, TensorSplit) else s for k, s in splits.items()}
    return BatchEngine(model, directions, read, list(names), sums, device=device, moved=moved,
                       points_per_call=options.points_per_call)
