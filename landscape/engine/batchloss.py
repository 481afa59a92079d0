"""Losses given as objects or callables, and the engine that evaluates any batch with any loss.

Two kinds of user loss:

* output losses ``fn(output, target) -> Tensor`` (a torch criterion such as
  ``nn.CrossEntropyLoss()``): :class:`OutputMetrics` gives them the registry's interface, so
  (inputs, targets) data keep every fast path of :class:`~landscape.engine.surface.SurfaceEngine`;
* batch losses ``fn(model, batch) -> Tensor`` (the model's own loss, dict batches, anything):
  evaluated by :class:`BatchEngine`, one forward per batch and point, several points per read of the data.

Either may return per-sample values ``(n,)`` (or ``(n, ...)``, averaged over the rest) or a batch
mean (a 0-d tensor), which is then weighted by the batch's ``n`` samples. So a metric is always
``Σ_batches Σ_samples / N``: the same number whatever the batching.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from landscape.engine.directions import Directions, check_directions, uses_effective
from landscape.engine.losses import correct, diverged_as_nan, moments
from landscape.engine.moved import MovedTensors, moved_names, working_copy
from landscape.errors import ConfigError, LandscapeError, ModelError
from landscape.zoo.userdata import batch_size_of

OutputFn = Callable[[Tensor, Tensor], Tensor]
BatchFn = Callable[[nn.Module, Any], Tensor]
BatchSums = Callable[[nn.Module, Any], tuple[Tensor, int]]  # (model, batch) -> (sums (m,) float64, samples)


def per_sample(value: Tensor, n: int, what: str) -> Tensor:
    """Per-sample values ``(n,)`` (or ``(n, ...)``, averaged over the rest): what a standard error needs.

    A batch mean (a 0-d tensor) is refused: the spread of the samples cannot be read from it.
    """
    if not isinstance(value, Tensor):
        raise ModelError(f"{what} returned a {type(value).__name__}, not a tensor")
    if value.ndim == 0:
        raise ModelError(f"{what} returns a batch mean: a progressive surface (tolerance) needs one value per sample "
                         "(e.g. reduction='none'); or evaluate exactly")
    if value.shape[0] != n:
        raise ModelError(f"{what} returned shape {tuple(value.shape)}: expected per-sample values ({n},)")
    return value.reshape(n, -1).to(torch.float64).mean(dim=1)


def weighted_sum(value: Tensor, n: int, what: str) -> Tensor:
    """Σ over a batch of ``n`` samples from per-sample values (:func:`per_sample`) or a batch mean, in float64."""
    if isinstance(value, Tensor) and value.ndim == 0:
        return value.to(torch.float64) * n
    return per_sample(value, n, what).sum()


class OutputMetrics:
    """Named output losses ``fn(output, target)`` behind the registry's :class:`MetricSet` interface.

    Accuracy (``acc``) is added when ``acc`` is set (class-index targets: argmax; one logit: > 0).
    """

    def __init__(self, fns: Sequence[tuple[str, OutputFn]], acc: bool = False) -> None:
        if not fns:
            raise ModelError("at least one loss is needed")
        self.fns = list(fns)
        self.has_acc = acc
        self.names = [n for n, _ in self.fns] + (["acc"] if acc else [])

    def batch_sums(self, output: Tensor, target: Tensor) -> Tensor:
        n = int(target.shape[0])
        sums = [weighted_sum(fn(output, target), n, f"loss {name!r}") for name, fn in self.fns]
        if self.has_acc:
            sums.append((correct(output, target).sum() + output.sum() * 0).to(torch.float64))
        return torch.stack(sums)

    def batch_moments(self, output: Tensor, target: Tensor) -> Tensor:
        """Σv and Σv² over the batch of each loss's per-sample values (and accuracy): (2, len(names))."""
        n = int(target.shape[0])
        cols = [per_sample(fn(output, target), n, f"loss {name!r}") for name, fn in self.fns]
        if self.has_acc:
            cols.append((correct(output, target) + diverged_as_nan(output)).to(torch.float64))
        return moments(torch.stack(cols, dim=1))

    def per_sample(self, output: Tensor, target: Tensor) -> Tensor:
        """The first loss as per-sample values (a batch mean repeated n times): for the Hessian."""
        value = self.fns[0][1](output, target)
        n = int(target.shape[0])
        return value.expand(n) if value.ndim == 0 else value.reshape(n, -1).mean(dim=1)

    def check(self, output: Tensor, target: Tensor) -> None:
        if not isinstance(output, Tensor):
            raise ModelError(f"the model returns a {type(output).__name__}, not a tensor: with a loss of (output, target) "
                             "the forward must return what the loss compares (or pass loss=lambda model, batch: ...)")
        try:
            self.batch_sums(output, target)
        except LandscapeError:
            raise
        except Exception as err:  # the user's loss on the user's outputs
            raise ModelError(f"the loss fails on the model's output {tuple(output.shape)} and targets "
                             f"{tuple(target.shape)}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}") from err


class LossSums:
    """Batch losses ``fn(model, batch)`` as one (model, batch) → (sums, n) function; :meth:`moments`
    gives (Σv, Σv²) of per-sample losses instead (progressive surfaces)."""

    def __init__(self, fns: Sequence[tuple[str, BatchFn]], size_of: Callable[[Any], int]) -> None:
        self.fns = list(fns)
        self.size_of = size_of

    def __call__(self, model: nn.Module, batch: Any) -> tuple[Tensor, int]:
        n = self.size_of(batch)
        return torch.stack([weighted_sum(fn(model, batch), n, f"loss {name!r}") for name, fn in self.fns]), n

    def moments(self, model: nn.Module, batch: Any) -> tuple[Tensor, int]:
        n = self.size_of(batch)
        return moments(torch.stack([per_sample(fn(model, batch), n, f"loss {name!r}") for name, fn in self.fns], dim=1)), n


class OutputSums:
    """A registry :class:`MetricSet` or :class:`OutputMetrics` on (inputs, targets, ...) batches, as :class:`LossSums`."""

    def __init__(self, metrics: Any) -> None:
        self.metrics = metrics

    def __call__(self, model: nn.Module, batch: Any) -> tuple[Tensor, int]:
        return self.metrics.batch_sums(model(batch[0]), batch[1]), int(batch[1].shape[0])

    def moments(self, model: nn.Module, batch: Any) -> tuple[Tensor, int]:
        return self.metrics.batch_moments(model(batch[0]), batch[1]), int(batch[1].shape[0])


def batch_sums_of(fns: Sequence[tuple[str, BatchFn]], size_of: Callable[[Any], int]) -> LossSums:
    """Batch losses ``fn(model, batch)`` as one (model, batch) → (sums, n) function."""
    return LossSums(fns, size_of)


def output_sums_of(metrics: Any) -> OutputSums:
    """A registry :class:`MetricSet` or :class:`OutputMetrics` on (inputs, targets, ...) batches."""
    return OutputSums(metrics)


def on_first_batch(call: Callable[[], object], what: str) -> None:
    """``call()`` (the user's loss or forward on a first batch) under inference mode; any failure but ours
    becomes one :class:`ModelError` line, ``what: <error>``."""
    try:
        with torch.inference_mode():
            call()
    except LandscapeError:
        raise
    except Exception as err:  # the user's loss or forward: one line naming it
        raise ModelError(f"{what}: {type(err).__name__}: {(str(err).splitlines() or [''])[0]}") from err


class BatchLossModel(nn.Module):
    """``model`` with a batch loss as its forward: per-sample losses (n,), a batch mean repeated n
    times. Its parameters are the model's, named ``inner.<name>`` (for the Hessian's functional calls)."""

    def __init__(self, model: nn.Module, fn: BatchFn) -> None:
        super().__init__()
        self.inner = model
        self.fn = fn

    def forward(self, batch: Any) -> Tensor:
        n = batch_size_of(batch)
        value = self.fn(self.inner, batch)
        if not isinstance(value, Tensor):
            raise ModelError(f"the batch loss returned a {type(value).__name__}, not a tensor")
        return value.expand(n) if value.ndim == 0 else value.reshape(n, -1).mean(dim=1)


# calibration of points per pass: reading the data (the loader's collation, transforms, workers,
# disk, the copy to the device) may take at most this share of a pass, up to this many points
READ_SHARE = 0.1
MAX_POINTS_PER_PASS = 64
_END = object()


class BatchEngine:
    """Metrics at points of the plane for data given as batches (cached on the device or streamed).

    The caller's model is never touched: a private copy on ``device`` (eval mode, no gradients)
    that owns only its moved tensors and buffers is moved with fused ``_foreach`` writes from the
    origin; the origin aliases the caller's tensors where it can, so the peak holds the model, its
    moved tensors once more and the directions.

    Several points per pass: :meth:`evaluate` reads every batch of every split once for all the
    k points it is given and, batch by batch, moves the copy to each point in turn and adds the
    batch's sums into that point's float64 row (``Σ sums / Σ n`` per split). Data re-read from a
    loader (streamed) then cost one read per k points instead of one per point; each point's sums
    are added in the same batch order as a pass of its own, so the values do not depend on k.
    :meth:`calibrate` times a first pass and sets ``points_per_call`` (the smallest piece the
    callers ask for) so that reading is at most :data:`READ_SHARE` of a pass.
    """

    def __init__(self, model: nn.Module, directions: Directions, splits: Mapping[str, Iterable[Any]],
                 names: Sequence[str], sums: BatchSums, *, device: torch.device | str = "cpu",
                 moved: Callable[[str], bool] | None = None, points_per_call: int = 0) -> None:
        check_directions(directions, model)
        if points_per_call < 0:
            raise ConfigError(f"points_per_call must be ≥ 0 (0 calibrates), got {points_per_call}")
        self.device = torch.device(device)
        # owns its moved tensors and buffers (a user's loss may switch the model to training mode)
        self.model = working_copy(model, moved_names(directions, moved), self.device, effective=uses_effective(model, directions))
        self.moved = MovedTensors.build(self.model, directions, self.device, pristine=model, moved=moved)
        self.splits = dict(splits)
        self.sums = sums
        self.width = len(names)
        self.columns = [f"{split}_{m}" for split in self.splits for m in names]
        self.points_per_call = points_per_call
        self.passes = 0  # passes over the data so far (each reads every batch of every split once)
        self.read_seconds = 0.0  # of which spent getting batches from the splits
        self._chunk_sizes: dict[str, list[int]] | None = None
        self._streams: dict[str, tuple[Iterator[Any], int]] = {}  # a streamed split's reader and its next batch
        self._check_first_batch()

    def _check_first_batch(self) -> None:
        for name, split in self.splits.items():
            for batch in split:
                on_first_batch(functools.partial(self.sums, self.model, batch), f"the loss fails on the first {name} batch")
                break

    def _batches(self, split: Iterable[Any]) -> Iterator[Any]:
        """The split's batches, the time spent getting each one added to :attr:`read_seconds`."""
        it = iter(split)
        while True:
            t0 = time.perf_counter()
            batch = next(it, _END)
            self.read_seconds += time.perf_counter() - t0
            if batch is _END:
                return
            yield batch

    def _pass(self, coords: np.ndarray) -> Tensor:
        """One read of the data for every (α, β) row of ``coords``: (k, len(columns)) float64."""
        k = len(coords)
        out = torch.empty(k, len(self.columns), dtype=torch.float64, device=self.device)
        points = [(float(a), float(b)) for a, b in coords]
        if k == 1:
            self.moved.set_point(*points[0])
        for j, split in enumerate(self.splits.values()):
            total = torch.zeros(k, self.width, dtype=torch.float64, device=self.device)
            count = 0
            for batch in self._batches(split):
                n = 0
                for i, point in enumerate(points):
                    if k > 1:
                        self.moved.set_point(*point)
                    s, n = self.sums(self.model, batch)
                    total[i] += s
                count += n
            out[:, j * self.width : (j + 1) * self.width] = total / max(count, 1)
        self.passes += 1
        return out

    def evaluate(self, coords: np.ndarray) -> np.ndarray:
        """Metric values at each (α, β) row of ``coords``, all in one pass over the data: (k, len(columns)) float64."""
        coords = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
        if not len(coords):
            return np.empty((0, len(self.columns)))
        try:
            with torch.inference_mode():
                out = self._pass(coords)
        finally:
            with contextlib.suppress(RuntimeError):
                self.moved.reset()
        return out.cpu().numpy()

    def chunk_sizes(self) -> dict[str, list[int]]:
        """Samples in each batch of each split, in reading order (a streamed split is read once to count)."""
        if self._chunk_sizes is None:
            size_of = getattr(self.sums, "size_of", None) or batch_size_of
            self._chunk_sizes = {k: [size_of(b) for b in self._batches(split)] for k, split in self.splits.items()}
        return self._chunk_sizes

    def _chunk(self, split: str, index: int) -> Any:
        """Batch ``index`` of ``split``: by position in a list; a streamed split is read on from where
        the last request left it (restarted when asked for an earlier batch)."""
        source = self.splits[split]
        if isinstance(source, Sequence):
            return source[index]
        it, position = self._streams.get(split, (None, 0))
        if it is None or index < position:
            it, position = self._batches(source), 0
        for _ in range(index - position):
            next(it)
        self._streams[split] = (it, index + 1)
        return next(it)

    def moments(self, coords: np.ndarray, split: str, chunk: int) -> np.ndarray:
        """Σv and Σv² of each loss's per-sample values over batch ``chunk`` of ``split`` at each (α, β) row:
        (k, 2, len(names)) float64 (progressive evaluation, :mod:`landscape.engine.progressive`)."""
        fn = getattr(self.sums, "moments", None)
        if fn is None:
            raise ConfigError("this loss gives batch sums only; a progressive surface needs per-sample losses")
        batch = self._chunk(split, chunk)
        out = np.empty((len(coords), 2, self.width))
        try:
            with torch.inference_mode():
                for i, (a, b) in enumerate(np.asarray(coords, dtype=np.float64).reshape(-1, 2)):
                    self.moved.set_point(float(a), float(b))
                    out[i] = fn(self.model, batch)[0].cpu().numpy()
        finally:
            with contextlib.suppress(RuntimeError):
                self.moved.reset()
        return out

    def calibrate(self, coords: np.ndarray) -> tuple[np.ndarray, int]:
        """Points per pass from a timed first pass over (up to) two points, whose values it returns.

        With reading ``r`` seconds and evaluating ``c`` seconds per point, k points cost
        ``r + k·c``; the smallest k with ``r ≤ READ_SHARE·(r + k·c)`` is taken (at most
        :data:`MAX_POINTS_PER_PASS`): 1 for data cached on the device, more for a slow loader.
        """
        if self.points_per_call:
            return np.empty((0, len(self.columns))), 0
        first = np.asarray(coords, dtype=np.float64).reshape(-1, 2)[:2]
        read0, t0 = self.read_seconds, time.perf_counter()
        vals = self.evaluate(first)
        read = self.read_seconds - read0
        per_point = max(time.perf_counter() - t0 - read, 1e-9) / max(len(first), 1)
        self.points_per_call = max(1, min(MAX_POINTS_PER_PASS, math.ceil(read * (1 - READ_SHARE) / (READ_SHARE * per_point))))
        return vals, len(first)
