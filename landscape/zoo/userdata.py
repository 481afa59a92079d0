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

from landscape.config import DataConfig
from landscape.errors import ConfigError, DataError
from landscape.zoo.data import DataBundle, Task, TensorSplit, call_data_fn, load_data
from landscape.zoo.registry import is_user_spec

Batch = Any  # a tuple/list or dict of tensors (and possibly non-tensor extras)
DEFAULT_MEMORY_BUDGET = 2 << 30  # bytes of data cached on the device (2 GiB)
DATASET_BATCH = 256  # batch size used to read a Dataset given without a loader


@dataclass(frozen=True)
class Streamed:
    """A re-iterable source of batches read anew at every grid point (data over the memory budget)."""

    source: Iterable[Batch]
    device: torch.device
    dtype: torch.dtype | None = None  # floating inputs cast to it (the model's dtype)

    def __iter__(self) -> Iterator[Batch]:
        for batch in self.source:
            yield batch_to(batch, self.device, self.dtype)


Prepared = TensorSplit | list[Batch] | Streamed


def _is_pair(obj: object) -> bool:
    return isinstance(obj, tuple | list) and len(obj) == 2 and all(isinstance(v, Tensor | np.ndarray) for v in obj)


def splits_of(data: object) -> dict[str, object]:
    """Name the splits of ``data``: ``{"train": ...}`` or ``{"train": ..., "test": ...}``."""
    if isinstance(data, Mapping) and data and set(data) <= {"train", "test"}:
        return {k: data[k] for k in ("train", "test") if k in data}
    if isinstance(data, tuple) and len(data) == 2 and not _is_pair(data) and all(
            _is_pair(d) or isinstance(d, Dataset | DataLoader) for d in data):
        return {"train": data[0], "test": data[1]}
    if _is_pair(data) or isinstance(data, Dataset | DataLoader) or (  # one split's data
            isinstance(data, Iterable) and not isinstance(data, str | bytes | Mapping | Tensor)):
        return {"train": data}
    raise DataError(f"data must be an (inputs, targets) pair, a (train, test) pair of them, a Dataset, a DataLoader "
                    f"or an iterable of batches; got {type(data).__name__}")


def batch_to(batch: Batch, device: torch.device, dtype: torch.dtype | None = None) -> Batch:
    """The batch with every tensor on ``device`` (non-blocking where the source is pinned).

    ``dtype`` (the model's floating dtype): floating inputs are cast to it — a bare tensor, the
    first item of a tuple (the targets stay as they are) and every floating tensor of a dict;
    integer inputs such as token ids are left alone.
    """
    if isinstance(batch, Tensor):
        cast = dtype if dtype is not None and batch.is_floating_point() else None
        return batch.to(device, cast, non_blocking=True)
    if isinstance(batch, np.ndarray):
        return batch_to(torch.as_tensor(batch), device, dtype)
    if isinstance(batch, Mapping):
        return {k: batch_to(v, device, dtype) for k, v in batch.items()}
    if isinstance(batch, tuple | list):
        if hasattr(batch, "_fields"):
            return batch
        return type(batch)(batch_to(v, device, dtype if i == 0 else None) for i, v in enumerate(batch))
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
            tensors: bool = True, dtype: torch.dtype | None = None) -> dict[str, Prepared]:
    """Each split of ``data`` cached on ``device`` when all splits together fit ``memory_budget``
    bytes, else streamed. ``tensors``: concatenate (inputs, targets) batches into a TensorSplit.
    ``dtype``: the model's floating dtype, which floating inputs are cast to (:func:`batch_to`).

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
            cached.append(batch_to(batch, device, dtype))
        if cached is None:
            out[name] = Streamed(batches, device, dtype)
            continue
        if not cached:
            raise DataError(f"{name} data hold no batches")
        split = _as_split(cached) if tensors else None
        out[name] = split if split is not None else cached
    if not out:
        raise DataError("no data given")
    return out


def first_batch(prepared: Prepared | Iterable[Batch], what: str = "the data") -> Batch:
    """A small first batch of a prepared split or a source of batches (for checks and shape discovery)."""
    if isinstance(prepared, TensorSplit):
        return (prepared.inputs[:2], prepared.targets[:2])
    for batch in prepared:
        return batch
    raise DataError(f"{what} hold no batches")


# --- the CLI's user data over the memory budget -------------------------------------------------------------


@dataclass(frozen=True)
class Converted:
    """(inputs, targets) batches of one split as :func:`~landscape.zoo.data.load_data` would hold them.

    Float inputs; targets as the task needs them (class labels int64; binary 0/1 and regression
    float32 as (n, 1); the inputs themselves for reconstruction); only the first ``limit``
    samples when ``limit`` > 0 (reading stops there).
    """

    source: Iterable[Batch]
    name: str
    target: str  # "label" (class labels), "binary", "float", "input"
    limit: int = 0

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        left = self.limit
        for batch in self.source:
            if self.limit and left <= 0:
                return
            x, y = pair_of(batch, self.name)
            if self.limit:
                x, y = x[:left], y[:left]
                left -= int(x.shape[0])
            yield self.convert(x, y)

    def convert(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        x = x.float()
        if self.target == "input":
            return x, x
        if self.target == "label":
            return x, y.long()
        if self.target == "binary":
            return x, y.float().unsqueeze(1)
        y = y.float()
        return x, y.unsqueeze(1) if y.ndim == 1 else y

    def limited(self, n: int) -> Converted:
        """The first ``n`` samples (0: as it is)."""
        return self if n <= 0 else Converted(self.source, self.name, self.target, min(n, self.limit) if self.limit else n)


def pair_of(batch: Batch, name: str) -> tuple[Tensor, Tensor]:
    """The (inputs, targets) tensors of a tuple batch."""
    if not (isinstance(batch, tuple | list) and len(batch) >= 2):
        raise DataError(f"{name}: a {type(batch).__name__} batch among (inputs, targets) tuples; the batches of a split "
                        "must all be tuples, or all of another shape (dicts) read by a batch loss --loss file.py:fn")
    x, y = torch.as_tensor(batch[0]), torch.as_tensor(batch[1])
    if x.shape[0] != y.shape[0]:
        raise DataError(f"{name}: a batch of {x.shape[0]} inputs but {y.shape[0]} targets")
    return x, y


@dataclass(frozen=True)
class UserStreams:
    """User data over the memory budget: a stand-in bundle (a first batch per split, giving the model
    its shapes and the losses their task and classes) and each split as a stream of batches."""

    bundle: DataBundle
    splits: dict[str, Converted]
    nbytes: int  # bytes of the data (estimated from the first batch when the loader has a length)


def _estimate(batches: Iterable[Batch]) -> int | None:
    """Bytes of a source with a length (batches × the first batch's bytes); None without one."""
    try:
        n = len(batches)  # type: ignore[arg-type]
    except TypeError:
        return None
    for batch in batches:
        return n * _nbytes(batch)
    return 0


@dataclass(frozen=True)
class UserBatches:
    """User data whose batches are not (inputs, targets) tuples (dicts, single tensors, ...).

    Only a batch loss ``fn(model, batch)`` can read them; nothing here knows their shapes or task.
    :meth:`placed` caches them on the device when they fit the memory budget, else streams them.
    """

    name: str  # the data spec, file.py:fn
    sources: dict[str, Iterable[Batch]]  # re-iterable batches per split, as the function gave them
    kind: str  # the type of the first batch, for messages (dict, Tensor, ...)

    def placed(self, names: Sequence[str], device: torch.device, memory_budget: int,
               dtype: torch.dtype | None = None) -> dict[str, list[Batch] | Streamed]:
        """The splits ``names``: each a list of batches on ``device`` when together they fit
        ``memory_budget`` bytes, else a :class:`Streamed` source (:func:`prepare`, without tensors);
        floating inputs cast to ``dtype``, the model's."""
        prepared = prepare({n: self.sources[n] for n in names}, device, memory_budget, tensors=False, dtype=dtype)
        return {n: p for n, p in prepared.items() if not isinstance(p, TensorSplit)}


def _batch_data(cfg: DataConfig, sources: dict[str, Iterable[Batch]], kind: str) -> UserBatches:
    """Checks the data settings that only apply to (inputs, targets) data, then :class:`UserBatches`."""
    unusable = [k for k, v in (("data.resize", cfg.resize), ("data.classes", cfg.classes), ("data.binary", cfg.binary),
                               ("data.max_train", cfg.max_train), ("data.max_test", cfg.max_test),
                               ("data.target = 'input'", cfg.target == "input")) if v]
    if unusable:
        raise ConfigError(f"{', '.join(unusable)} apply to (inputs, targets) data; {cfg.name!r} gives {kind} batches: "
                          "resize, select or cut them in your data function")
    return UserBatches(cfg.name, sources, kind)


def user_data(cfg: DataConfig, memory_budget: int) -> DataBundle | UserStreams | UserBatches | None:
    """The user's data (``cfg.name`` a ``file.py:fn``, called once) as streams when they do not fit
    ``memory_budget`` bytes, else loaded by :func:`~landscape.zoo.data.load_data` as always; None
    for registry data. Batches that are not (inputs, targets) tuples (dicts, ...) come back as
    :class:`UserBatches`, for a batch loss, whatever their size.

    Only what the function returns as Datasets, DataLoaders or other iterables can stream: tensors
    it returns are in memory already. Sources with a length are measured from their first batch;
    others are read once. Streamed data are read once more here for the classes, the label
    range and NaN checks.
    """
    if not is_user_spec(cfg.name):
        return None
    result = call_data_fn(cfg)
    if not (isinstance(result, tuple | list) and len(result) == 2) or all(_is_pair(r) for r in result):
        return load_data(cfg, result)  # tensors are in memory already (or load_data says what is wrong)
    sources = {name: _batches(r, f"{cfg.name} {name} split") for name, r in zip(("train", "test"), result, strict=True)}
    first = next(iter(sources["train"]), None)
    if first is not None and not (isinstance(first, tuple | list) and len(first) >= 2):  # not what pair_of reads
        return _batch_data(cfg, sources, type(first).__name__)
    total = 0
    for source in sources.values():
        size = _estimate(source)
        if size is None:
            size = 0
            for batch in source:
                size += _nbytes(batch)
                if total + size > memory_budget:
                    break
        total += size
    if total <= memory_budget:
        return load_data(cfg, result)
    return _streams(cfg, sources, total, memory_budget)


def _streams(cfg: DataConfig, sources: dict[str, Iterable[Batch]], nbytes: int, budget: int) -> UserStreams:
    if cfg.resize or cfg.classes:
        raise ConfigError(f"data.resize and data.classes are applied to data held in memory; {cfg.name!r} is "
                          f"{nbytes:,} bytes, over surface.memory_budget = {budget:,}: resize or select in your "
                          "loader, or raise --memory-budget")
    first = {name: pair_of(first_batch(src, f"{name} data"), f"{cfg.name} {name} split")
             for name, src in sources.items()}
    labels = not first["train"][1].is_floating_point()
    target = "input" if cfg.target == "input" else "label" if labels else "float"
    low, high = 0, -1
    for name, src in sources.items():  # one read: NaN checks and the label range
        what = f"{cfg.name} {name} split"
        for batch in src:
            x, y = pair_of(batch, what)
            if x.is_floating_point() and not bool(torch.isfinite(x).all()):
                raise DataError(f"dataset {cfg.name!r} has NaN or inf inputs ({name} split)")
            if labels and y.numel():
                if y.ndim != 1:
                    raise DataError(f"class labels must be one number per sample, got shape {tuple(y.shape)}")
                if y.is_floating_point():
                    raise DataError(f"{what}: float targets in a batch after class labels in the first")
                low, high = min(low, int(y.min())), max(high, int(y.max()))
            elif y.is_floating_point() and not bool(torch.isfinite(y).all()):
                raise DataError(f"dataset {cfg.name!r} has NaN or inf targets ({name} split)")
    if low < 0:
        raise DataError(f"dataset {cfg.name!r} has negative class labels")
    task: Task = "reconstruction" if target == "input" else "classification" if labels else "regression"
    num_classes = high + 1 if task == "classification" else 0
    if task == "classification" and cfg.binary:
        if num_classes != 2:
            raise DataError(f"data.binary needs exactly 2 classes, {cfg.name!r} has {num_classes}; set data.classes = [a, b]")
        task, target = "binary", "binary"
    limits = {"train": cfg.max_train, "test": cfg.max_test}
    splits = {name: Converted(src, f"{cfg.name} {name} split", target, limits[name]) for name, src in sources.items()}
    probe = {name: TensorSplit(*splits[name].convert(*first[name])) for name in splits}
    bundle = DataBundle(cfg.name, probe["train"], probe["test"], task, num_classes)
    return UserStreams(bundle, splits, nbytes)


@dataclass(frozen=True)
class Paired:
    """Batches as ``(batch, None)`` pairs, for the Hessian's (inputs, targets) loop over a batch loss
    (the whole batch is the wrapped model's input); re-iterable when ``source`` is."""

    source: Iterable[Batch]

    def __iter__(self) -> Iterator[tuple[Batch, None]]:
        return ((b, None) for b in self.source)
