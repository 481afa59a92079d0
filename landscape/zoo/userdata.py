"""The user's own data in any of the shapes PyTorch code keeps it: adapters to what the engine reads.

Accepted for one split: an ``(inputs, targets)`` pair of tensors or arrays, a map-style torch
``Dataset`` of ``(input, target)`` items (or dict items), a ``DataLoader``, or any re-iterable of
batches (tuples/lists or dicts of tensors). Two splits: a ``(train, test)`` tuple of those, or a
mapping with keys ``train`` and/or ``test``.

:func:`prepare` turns each split into one of three things, whatever it came as:

* a :class:`~landscape.zoo.data.TensorSplit` — tuple batches whose total size fits the memory
  budget, concatenated once on the device (the surface engine's fast paths apply);
* a list of batches cached on the device — dict batches (or tuples of more than two tensors)
  that fit the budget;
* a :class:`Streamed` source — anything larger: re-iterated at every grid point, one batch on
  the device at a time (bounded memory).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from landscape.errors import DataError
from landscape.zoo.data import TensorSplit

Batch = Any  # a tuple/list or dict of tensors (and possibly non-tensor extras)
DEFAULT_MEMORY_BUDGET = 2 << 30  # bytes of data cached on the device (2 GiB)
DATASET_BATCH = 256  # batch size used to read a Dataset given without a loader


@dataclass(frozen=True)
class Streamed:
    """A re-iterable source of batches read anew at every grid point (data over the memory budget)."""

    source: Iterable[Batch]
    device: torch.device

    def __iter__(self) -> Iterator[Batch]:
        for batch in self.source:
            yield batch_to(batch, self.device)


Prepared = TensorSplit | list[Batch] | Streamed


def _is_tensorish(v: object) -> bool:
    return isinstance(v, Tensor | np.ndarray)


def _is_pair(obj: object) -> bool:
    return isinstance(obj, tuple | list) and len(obj) == 2 and all(_is_tensorish(v) for v in obj)


def _is_source(obj: object) -> bool:
    """One split's data (not a (train, test) pair of them)."""
    return _is_pair(obj) or isinstance(obj, Dataset | DataLoader) or (
        isinstance(obj, Iterable) and not isinstance(obj, str | bytes | Mapping | Tensor))


def splits_of(data: object) -> dict[str, object]:
    """Name the splits of ``data``: ``{"train": ...}`` or ``{"train": ..., "test": ...}``."""
    if isinstance(data, Mapping) and data and set(data) <= {"train", "test"}:
        return {k: data[k] for k in ("train", "test") if k in data}
    if isinstance(data, tuple) and len(data) == 2 and not _is_pair(data) and all(
            _is_pair(d) or isinstance(d, Dataset | DataLoader) for d in data):
        return {"train": data[0], "test": data[1]}
    if _is_source(data):
        return {"train": data}
    raise DataError(f"data must be an (inputs, targets) pair, a (train, test) pair of them, a Dataset, a DataLoader "
                    f"or an iterable of batches; got {type(data).__name__}")


def batch_to(batch: Batch, device: torch.device) -> Batch:
    """The batch with every tensor on ``device`` (non-blocking where the source is pinned)."""
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, np.ndarray):
        return torch.as_tensor(batch).to(device)
    if isinstance(batch, Mapping):
        return {k: batch_to(v, device) for k, v in batch.items()}
    if isinstance(batch, tuple | list):
        return type(batch)(batch_to(v, device) for v in batch) if not hasattr(batch, "_fields") else batch
    if hasattr(batch, "to") and callable(batch.to):  # e.g. a transformers BatchEncoding
        return batch.to(device)
    return batch


def batch_size_of(batch: Batch) -> int:
    """Samples in a batch: the leading size of its first tensor."""
    if isinstance(batch, Tensor):
        return int(batch.shape[0]) if batch.ndim else 1
    values: Iterable[Any] = batch.values() if isinstance(batch, Mapping) else batch if isinstance(batch, tuple | list) else ()
    for v in values:
        if isinstance(v, Tensor | np.ndarray) and v.ndim:
            return int(v.shape[0])
    raise DataError(f"cannot tell how many samples a batch of type {type(batch).__name__} holds: "
                    "it needs a tensor with a leading batch dimension")


def _nbytes(batch: Batch) -> int:
    if isinstance(batch, Tensor):
        return batch.numel() * batch.element_size()
    if isinstance(batch, np.ndarray):
        return int(batch.nbytes)
    if isinstance(batch, Mapping):
        return sum(_nbytes(v) for v in batch.values())
    if isinstance(batch, tuple | list):
        return sum(_nbytes(v) for v in batch)
    return 0


def _batches(source: object, name: str) -> Iterable[Batch]:
    """Batches of one split: a pair is one batch, a Dataset is read with a plain loader."""
    if _is_pair(source):
        x, y = (torch.as_tensor(v) for v in source)  # type: ignore[attr-defined]
        if x.shape[0] != y.shape[0]:
            raise DataError(f"{name} data: {x.shape[0]} inputs but {y.shape[0]} targets")
        return [(x, y)]
    if isinstance(source, Dataset) and not isinstance(source, Iterable):
        if not hasattr(source, "__len__"):
            raise DataError(f"{name} data: a Dataset without __len__ needs a DataLoader around it")
        return DataLoader(source, batch_size=DATASET_BATCH, shuffle=False)
    if isinstance(source, Iterable):
        if iter(source) is source:  # type: ignore[comparison-overlap]
            raise DataError(f"{name} data is a one-shot iterator ({type(source).__name__}); every grid point reads the "
                            "data again: pass a list, a Dataset, a DataLoader or another re-iterable")
        return source
    raise DataError(f"{name} data must be a pair, Dataset, DataLoader or iterable of batches, got {type(source).__name__}")


def _as_split(cached: Sequence[Batch]) -> TensorSplit | None:
    """Tuple batches of exactly (inputs, targets) tensors, concatenated; None for other batches."""
    if not all(isinstance(b, tuple | list) and len(b) == 2 and all(isinstance(v, Tensor) for v in b) for b in cached):
        return None
    xs, ys = [b[0] for b in cached], [b[1] for b in cached]
    if any(x.shape[1:] != xs[0].shape[1:] for x in xs) or any(y.shape[1:] != ys[0].shape[1:] for y in ys):
        return None
    split = TensorSplit(torch.cat(xs).contiguous(), torch.cat(ys).contiguous())
    if split.inputs.shape[0] != split.targets.shape[0]:
        raise DataError(f"{split.inputs.shape[0]} inputs but {split.targets.shape[0]} targets")
    return split


def prepare(data: object, device: torch.device, memory_budget: int = DEFAULT_MEMORY_BUDGET, *,
            tensors: bool = True) -> dict[str, Prepared]:
    """Each split of ``data`` cached on ``device`` when all splits together fit ``memory_budget``
    bytes, else streamed. ``tensors``: concatenate (inputs, targets) batches into a TensorSplit.

    The data are read once here to measure them; a source over the budget is then re-read at
    every point.
    """
    out: dict[str, Prepared] = {}
    used = 0
    for name, source in splits_of(data).items():
        batches = _batches(source, name)
        cached: list[Batch] | None = []
        for batch in batches:
            used += _nbytes(batch)
            if used > memory_budget:
                cached = None
                break
            assert cached is not None
            cached.append(batch_to(batch, device))
        if cached is None:
            out[name] = Streamed(batches, device)
            continue
        if not cached:
            raise DataError(f"{name} data hold no batches")
        split = _as_split(cached) if tensors else None
        out[name] = split if split is not None else cached
    if not out:
        raise DataError("no data given")
    return out


def first_batch(prepared: Prepared) -> Batch:
    """A small first batch of a prepared split (for checks and shape discovery)."""
    if isinstance(prepared, TensorSplit):
        return (prepared.inputs[:2], prepared.targets[:2])
    for batch in prepared:
        return batch
    raise DataError("the data hold no batches")
