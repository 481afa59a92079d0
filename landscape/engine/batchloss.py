"""Losses given as objects or callables, and the engine that evaluates any batch with any loss.

Two kinds of user loss:

* output losses ``fn(output, target) -> Tensor`` (a torch criterion such as
  ``nn.CrossEntropyLoss()``): :class:`OutputMetrics` gives them the registry's interface, so
  (inputs, targets) data keep every fast path of :class:`~landscape.engine.surface.SurfaceEngine`;
* batch losses ``fn(model, batch) -> Tensor`` (the model's own loss, dict batches, anything):
  evaluated by :class:`BatchEngine`, one forward per batch and point.

Either may return per-sample values ``(n,)`` (or ``(n, ...)``, averaged over the rest) or a batch
mean (a 0-d tensor), which is then weighted by the batch's ``n`` samples. So a metric is always
``Σ_batches Σ_samples / N``: the same number whatever the batching.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from landscape.engine.directions import Directions, check_directions
from landscape.engine.losses import correct
from landscape.engine.moved import MovedTensors, moved_names, working_copy
from landscape.errors import LandscapeError, ModelError

OutputFn = Callable[[Tensor, Tensor], Tensor]
BatchFn = Callable[[nn.Module, Any], Tensor]
BatchSums = Callable[[nn.Module, Any], tuple[Tensor, int]]  # (model, batch) -> (sums (m,) float64, samples)


def weighted_sum(value: Tensor, n: int, what: str) -> Tensor:
    """Σ over a batch of ``n`` samples from per-sample values or a batch mean, as a float64 scalar."""
    if not isinstance(value, Tensor):
        raise ModelError(f"{what} returned a {type(value).__name__}, not a tensor")
    if value.ndim == 0:
        return value.to(torch.float64) * n
    if value.shape[0] != n:
        raise ModelError(f"{what} returned shape {tuple(value.shape)}: expected per-sample values ({n},) or a batch mean ()")
    return value.reshape(n, -1).to(torch.float64).mean(dim=1).sum()


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


def batch_sums_of(fns: Sequence[tuple[str, BatchFn]], size_of: Callable[[Any], int]) -> BatchSums:
    """Batch losses ``fn(model, batch)`` as one (model, batch) → (sums, n) function."""

    def sums(model: nn.Module, batch: Any) -> tuple[Tensor, int]:
        n = size_of(batch)
        return torch.stack([weighted_sum(fn(model, batch), n, f"loss {name!r}") for name, fn in fns]), n

    return sums


def output_sums_of(metrics: Any) -> BatchSums:
    """A registry :class:`MetricSet` or :class:`OutputMetrics` on (inputs, targets, ...) batches."""

    def sums(model: nn.Module, batch: Any) -> tuple[Tensor, int]:
        x, y = batch[0], batch[1]
        return metrics.batch_sums(model(x), y), int(y.shape[0])

    return sums


def samples_in(batch: Any) -> int:
    """Samples in a batch: the leading size of a tensor, or of the first tensor in a dict/tuple."""
    if isinstance(batch, Tensor):
        return int(batch.shape[0]) if batch.ndim else 1
    values = batch.values() if isinstance(batch, Mapping) else batch if isinstance(batch, tuple | list) else ()
    for v in values:
        if isinstance(v, Tensor) and v.ndim:
            return int(v.shape[0])
    raise ModelError(f"cannot tell how many samples a batch of type {type(batch).__name__} holds: "
                     "it needs a tensor with a leading batch dimension")


class BatchLossModel(nn.Module):
    """``model`` with a batch loss as its forward: per-sample losses (n,), a batch mean repeated n
    times. Its parameters are the model's, named ``inner.<name>`` (for the Hessian's functional calls)."""

    def __init__(self, model: nn.Module, fn: BatchFn) -> None:
        super().__init__()
        self.inner = model
        self.fn = fn

    def forward(self, batch: Any) -> Tensor:
        n = samples_in(batch)
        value = self.fn(self.inner, batch)
        if not isinstance(value, Tensor):
            raise ModelError(f"the batch loss returned a {type(value).__name__}, not a tensor")
        return value.expand(n) if value.ndim == 0 else value.reshape(n, -1).mean(dim=1)


class BatchEngine:
    """Metrics at points of the plane for data given as batches (cached on the device or streamed).

    The caller's model is never touched: a private copy on ``device`` (eval mode, no gradients)
    that owns only its moved tensors and buffers is moved, point by point, with fused ``_foreach``
    writes from the origin; the origin aliases the caller's tensors where it can, so the peak
    holds the model, its moved tensors once more and the directions.
    Each point reads every batch of every split once: ``Σ sums / Σ n`` per split.
    """

    points_per_call = 1

    def __init__(self, model: nn.Module, directions: Directions, splits: Mapping[str, Iterable[Any]],
                 names: Sequence[str], sums: BatchSums, *, device: torch.device | str = "cpu",
                 moved: Callable[[str], bool] | None = None) -> None:
        check_directions(directions, model)
        self.device = torch.device(device)
        # owns its moved tensors and buffers (a user's loss may switch the model to training mode)
        self.model = working_copy(model, moved_names(directions, moved), self.device, own_buffers=True)
        self.moved = MovedTensors.build(self.model, directions, self.device, pristine=model, moved=moved)
        self.splits = dict(splits)
        self.sums = sums
        self.columns = [f"{split}_{m}" for split in self.splits for m in names]
        self._check_first_batch()

    def _check_first_batch(self) -> None:
        for name, split in self.splits.items():
            for batch in split:
                try:
                    with torch.inference_mode():
                        self.sums(self.model, batch)
                except LandscapeError:
                    raise
                except Exception as err:  # the user's loss or forward: one line naming it
                    first = str(err).splitlines()[0] if str(err) else ""
                    raise ModelError(f"the loss fails on the first {name} batch: {type(err).__name__}: {first}") from err
                break

    def _row(self) -> Tensor:
        cols = []
        for split in self.splits.values():
            total: Tensor | None = None
            count = 0
            for batch in split:
                s, n = self.sums(self.model, batch)
                total = s if total is None else total + s
                count += n
            assert total is not None
            cols.append(total / max(count, 1))
        return torch.cat(cols)

    def evaluate(self, coords: np.ndarray) -> np.ndarray:
        """Metric values at each (α, β) row of ``coords``: (k, len(columns)) float64 on the host."""
        coords = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
        out = torch.empty(len(coords), len(self.columns), dtype=torch.float64, device=self.device)
        try:
            for k, (a, b) in enumerate(coords):
                self.moved.set_point(float(a), float(b))
                with torch.inference_mode():
                    out[k] = self._row()
        finally:
            with contextlib.suppress(RuntimeError):
                self.moved.reset()
        return out.cpu().numpy()

    def calibrate(self, coords: np.ndarray) -> tuple[np.ndarray, int]:
        return np.empty((0, len(self.columns))), 0
