"""Loss registry: per-sample criteria for every task, and accuracy where it is defined.

Every criterion maps ``(output, target)`` to a per-sample loss of shape (n,), so one forward
pass yields every requested metric as a sum over samples (exact means over any batching).
Classification targets are class indices; MSE/L1/BCE compare the raw outputs with one-hot
targets (as in Hui & Belkin's square-loss comparisons), hinge is the multi-class margin loss.
Binary targets are 0/1 floats of shape (n, 1) against one logit.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from landscape.errors import ModelError, RegistryError
from landscape.zoo.data import Task
from landscape.zoo.registry import Registry

PerSample = Callable[[Tensor, Tensor, int], Tensor]

ALL_TASKS = frozenset({"classification", "binary", "regression", "reconstruction"})


@dataclass(frozen=True)
class Criterion:
    """A named per-sample loss and the tasks it applies to."""

    name: str
    fn: PerSample  # (output, target, num_classes) -> (n,)
    tasks: frozenset[str]
    description: str
    # Decision threshold on one binary output: 0 for logits and margins (bce, hinge); 0.5 for the
    # losses that regress the output onto the 0/1 target (mse, l1), whose midpoint decides.
    binary_threshold: float = 0.0


LOSSES: Registry[Criterion] = Registry("loss")


def _mean_rest(t: Tensor) -> Tensor:
    """Mean over every dim but the first: (n, ...) -> (n,)."""
    return t.reshape(t.shape[0], -1).mean(dim=1)


def _dense_target(output: Tensor, target: Tensor, num_classes: int) -> Tensor:
    """One-hot class indices so that pointwise losses apply; other targets pass through."""
    if target.dtype == torch.long:
        return F.one_hot(target, num_classes).to(output.dtype)
    return target.reshape(output.shape).to(output.dtype)


def _register(name: str, tasks: frozenset[str], description: str,
              binary_threshold: float = 0.0) -> Callable[[PerSample], PerSample]:
    def decorator(fn: PerSample) -> PerSample:
        LOSSES.add(name, Criterion(name, fn, tasks, description, binary_threshold))
        return fn

    return decorator


@_register("cross_entropy", frozenset({"classification", "binary"}), "softmax cross-entropy (BCE with logits for one binary logit)")
def _cross_entropy(out: Tensor, y: Tensor, c: int) -> Tensor:
    if y.dtype != torch.long:
        return _mean_rest(F.binary_cross_entropy_with_logits(out, y.reshape(out.shape), reduction="none"))
    return F.cross_entropy(out, y, reduction="none")


@_register("label_smoothing", frozenset({"classification"}), "cross-entropy with label smoothing 0.1")
def _label_smoothing(out: Tensor, y: Tensor, c: int) -> Tensor:
    return F.cross_entropy(out, y, reduction="none", label_smoothing=0.1)


@_register("mse", ALL_TASKS, "mean squared error (one-hot targets for classes)", binary_threshold=0.5)
def _mse(out: Tensor, y: Tensor, c: int) -> Tensor:
    return _mean_rest((out - _dense_target(out, y, c)) ** 2)


@_register("l1", ALL_TASKS, "mean absolute error (one-hot targets for classes)", binary_threshold=0.5)
def _l1(out: Tensor, y: Tensor, c: int) -> Tensor:
    return _mean_rest((out - _dense_target(out, y, c)).abs())


@_register("smooth_l1", ALL_TASKS, "Huber-style smooth L1 with beta 1 (one-hot targets for classes)", binary_threshold=0.5)
def _smooth_l1(out: Tensor, y: Tensor, c: int) -> Tensor:
    return _mean_rest(F.smooth_l1_loss(out, _dense_target(out, y, c), reduction="none"))


@_register("bce", frozenset({"classification", "binary", "reconstruction"}), "binary cross-entropy with logits (per class, per logit or per pixel)")
def _bce(out: Tensor, y: Tensor, c: int) -> Tensor:
    return _mean_rest(F.binary_cross_entropy_with_logits(out, _dense_target(out, y, c), reduction="none"))


@_register("hinge", frozenset({"classification", "binary"}), "multi-class margin (Weston–Watkins) hinge; max(0, 1 − y·f) for one logit")
def _hinge(out: Tensor, y: Tensor, c: int) -> Tensor:
    if y.dtype != torch.long:
        sign = 2.0 * y.reshape(out.shape) - 1.0
        return _mean_rest(torch.clamp(1.0 - sign * out, min=0.0))
    # Σ_{j≠y} max(0, 1 − f_y + f_j) / C, as F.multi_margin_loss computes it, written out because
    # that op has no vmap batching rule (surfaces evaluate many grid points in one call)
    f_y = out.gather(1, y.unsqueeze(1))  # (n, 1)
    margins = torch.clamp(1.0 - f_y + out, min=0.0)  # (n, C); the j = y entry is exactly 1
    return (margins.sum(dim=1) - 1.0) / out.shape[1]


# Short names accepted wherever a loss is named (``--loss ce,mse,l1``). The criterion keeps its
# registered name, so metric datasets are still called ``train_cross_entropy``, ``train_l1``.
ALIASES: dict[str, str] = {"ce": "cross_entropy", "xent": "cross_entropy", "mae": "l1"}


def canonical_loss_name(name: str) -> str:
    """The registered name behind ``name`` (``ce`` → ``cross_entropy``); other names unchanged."""
    return ALIASES.get(name, name)


def get_criterion(name: str, task: Task) -> Criterion:
    """The registered criterion ``name`` (or an alias of it), checked against the data's task."""
    if name not in LOSSES and name not in ALIASES:
        aliases = ", ".join(f"{a} → {n}" for a, n in ALIASES.items())
        raise RegistryError(f"unknown loss {name!r}; known: {', '.join(LOSSES.names())} (aliases: {aliases})")
    crit = LOSSES.get(canonical_loss_name(name))
    if task not in crit.tasks:
        raise ModelError(f"loss {name!r} does not apply to a {task} task; it applies to: {', '.join(sorted(crit.tasks))}")
    return crit


def correct(output: Tensor, target: Tensor, threshold: float = 0.0) -> Tensor:
    """Per-sample 0/1 correctness for class indices (argmax) or one binary output (``> threshold``)."""
    if target.dtype == torch.long:
        return (output.argmax(dim=1) == target).to(output.dtype)
    return ((output.reshape(target.shape) > threshold) == (target > 0.5)).to(output.dtype).reshape(-1)


def moments(values: Tensor) -> Tensor:
    """(Σv, Σv²) over the samples of per-sample values ``(n, m)``: shape (2, m), float64."""
    v = values.to(torch.float64)
    return torch.stack([v.sum(dim=0), (v * v).sum(dim=0)])


def diverged_as_nan(output: Tensor) -> Tensor:
    """Per sample 0, or NaN where that sample's output is not finite (no host sync): added to an
    accuracy, it makes a diverged output count as no prediction."""
    return output.reshape(output.shape[0], -1).sum(dim=1) * 0


class Metrics(Protocol):
    """What the surface engine needs from metrics: names, per-batch sums (and, for progressive
    evaluation, the per-sample moments Σv and Σv² as a (2, len(names)) tensor), a first-batch check."""

    names: list[str]

    def batch_sums(self, output: Tensor, target: Tensor) -> Tensor: ...

    def batch_moments(self, output: Tensor, target: Tensor) -> Tensor: ...

    def check(self, output: Tensor, target: Tensor) -> None: ...


class MetricSet:
    """Every requested metric from one forward pass, accumulated as sums on the device.

    Names: ``loss`` (the first criterion), each criterion by name when several are asked for,
    and ``acc`` for classification and binary tasks. A binary ``acc`` uses the first criterion's
    decision threshold (0 for a logit, 0.5 for an output regressed onto 0/1).
    """

    def __init__(self, losses: Sequence[str], task: Task, num_classes: int) -> None:
        if not losses:
            raise ModelError("at least one loss is needed")
        self.criteria = [get_criterion(name, task) for name in losses]
        self.num_classes = num_classes
        self.has_acc = task in ("classification", "binary")
        self.names = ["loss"]
        if len(self.criteria) > 1:
            self.names += [c.name for c in self.criteria]
        if self.has_acc:
            self.names.append("acc")

    def per_sample(self, i: int = 0) -> Callable[[Tensor, Tensor], Tensor]:
        """Criterion ``i`` as ``(output, target) -> (n,)`` per-sample losses, with this set's classes."""
        fn, num_classes = self.criteria[i].fn, self.num_classes
        return lambda output, target: fn(output, target, num_classes)

    def batch_sums(self, output: Tensor, target: Tensor) -> Tensor:
        """Sum over the batch of each metric, in ``names`` order: shape (len(names),)."""
        per = [c.fn(output, target, self.num_classes).to(torch.float64) for c in self.criteria]  # summed in float64
        sums = [per[0].sum()]
        if len(per) > 1:
            sums += [p.sum() for p in per]
        if self.has_acc:
            # a diverged output has no prediction: NaN/inf anywhere makes the accuracy NaN too
            # (output.sum() * 0 is 0 for finite outputs; no host sync)
            sums.append(correct(output, target, self.criteria[0].binary_threshold).sum() + output.sum() * 0)
        return torch.stack(sums).to(torch.float64)

    def batch_moments(self, output: Tensor, target: Tensor) -> Tensor:
        """Σv and Σv² over the batch of each metric's per-sample values: shape (2, len(names))."""
        per = [c.fn(output, target, self.num_classes) for c in self.criteria]
        cols = per[:1] + (per if len(per) > 1 else [])
        if self.has_acc:
            cols.append(correct(output, target, self.criteria[0].binary_threshold) + diverged_as_nan(output))
        return moments(torch.stack(cols, dim=1))

    def check(self, output: Tensor, target: Tensor) -> None:
        """Fail early, naming shapes or values, when the output or targets cannot meet the loss.

        Called once on a first batch, so the hot loop never syncs with the host for checks.
        """
        if not isinstance(output, Tensor):
            raise ModelError(f"the model returns a {type(output).__name__}, not a tensor: wrap it so that its forward "
                             "returns the outputs the loss compares with the targets (e.g. the logits)")
        want = (target.shape[0], self.num_classes) if target.dtype == torch.long else tuple(target.shape)
        if tuple(output.shape) != tuple(want):
            raise ModelError(f"the model returns shape {tuple(output.shape)} but the data and loss need {tuple(want)}")
        bce = any(c.name == "bce" for c in self.criteria)
        if bce and target.is_floating_point() and not bool(((target >= 0) & (target <= 1)).all()):
            raise ModelError("loss 'bce' needs targets in [0, 1]")
