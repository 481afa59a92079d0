"""One path from a resolved request to the evaluator of a surface, for ``landscape.surface`` and
``landscape surface`` alike: each door resolves its model, directions, data (each split a
:data:`~landscape.zoo.userdata.Prepared`) and loss, then :func:`surface_evaluator` picks the engine."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset

from landscape.engine.batchloss import BatchEngine, BatchSums, output_sums_of
from landscape.engine.directions import Directions
from landscape.engine.grid import Grid, auto_batch_size
from landscape.engine.losses import Metrics
from landscape.engine.progressive import ProgressiveEvaluator, ProgressiveOptions, chunk_size
from landscape.engine.surface import Evaluator, SurfaceEngine
from landscape.errors import ConfigError
from landscape.zoo.data import TensorSplit
from landscape.zoo.userdata import Streamed

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


def shuffled(splits: Mapping[str, TensorSplit | Iterable[Any]], seed: int) -> dict[str, TensorSplit | Iterable[Any]]:
    """Each split in one seeded random order, the same for every point of a progressive surface: the
    samples of tensors and of a streamed ``DataLoader`` over a map-style ``Dataset`` (rebuilt to read
    them in that order, whatever its own sampler), the batches of a cached list; any other stream as it
    comes (its own order, which must then be random and the same on every read)."""
    g = torch.Generator().manual_seed(seed)
    out: dict[str, TensorSplit | Iterable[Any]] = {}
    for name, split in splits.items():
        if isinstance(split, TensorSplit):
            perm = torch.randperm(len(split), generator=g).to(split.inputs.device)
            out[name] = TensorSplit(split.inputs[perm], split.targets[perm])
        elif isinstance(split, list):
            out[name] = [split[i] for i in torch.randperm(len(split), generator=g).tolist()]
        elif isinstance(split, Streamed) and isinstance(loader := split.source, DataLoader) and hasattr(loader.dataset, "__len__") \
                and not isinstance(loader.dataset, IterableDataset):
            order = torch.randperm(len(loader.dataset), generator=g).tolist()  # type: ignore[arg-type]
            again = DataLoader(loader.dataset, batch_size=loader.batch_size, sampler=order, collate_fn=loader.collate_fn,
                               num_workers=loader.num_workers, pin_memory=loader.pin_memory)
            out[name] = Streamed(again, split.device, split.dtype)
        else:
            out[name] = split
    return out


def surface_evaluator(model: nn.Module, directions: Directions, splits: Mapping[str, TensorSplit | Iterable[Any]],
                      metrics: Metrics | None = None, *, batch_loss: tuple[Sequence[str], BatchSums] | None = None,
                      options: EngineOptions, bn_data: TensorSplit | None = None,
                      device: torch.device | str = "cpu", moved: Callable[[str], bool] | None = None,
                      progressive: tuple[ProgressiveOptions, Grid] | None = None) -> Evaluator:
    """:class:`SurfaceEngine` for ``metrics`` of ``(output, target)`` on tensors (vectorized, set-up
    rewrites, BatchNorm re-estimated on ``bn_data``), else :class:`BatchEngine` for ``metrics`` or
    ``batch_loss`` (column names, ``(model, batch) -> (sums, n)``) read batch by batch.

    ``progressive`` (options, the grid): either engine reads the splits in
    one seeded random order, chunk by chunk, behind a :class:`ProgressiveEvaluator`."""
    if (metrics is None) == (batch_loss is None):
        raise ConfigError("give either output metrics or a batch loss, not both or neither")
    if progressive is not None:
        popts, grid = progressive
        sizes = [len(s) for s in splits.values() if isinstance(s, TensorSplit)]
        chunk = options.batch_size or chunk_size(min(sizes, default=0))
        base = surface_evaluator(model, directions, shuffled(splits, popts.seed), metrics, batch_loss=batch_loss,
                                 options=EngineOptions(chunk, max(1, options.points_per_call), options.bn, options.bn_batches),
                                 bn_data=bn_data, device=device, moved=moved)
        return ProgressiveEvaluator(base, grid, popts)  # type: ignore[arg-type]
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
