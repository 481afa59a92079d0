"""What every capability of the API resolves first (data, loss, device, directions, grid), once,
with the defaults of the CLI's config: given the same inputs both doors draw the same directions."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from landscape.config import SurfaceConfig
from landscape.engine import directions as dirs_
from landscape.engine.batchloss import BatchFn, OutputMetrics
from landscape.engine.directions import DirectionOptions, Directions
from landscape.engine.evaluator import tensor_batches
from landscape.engine.losses import ALIASES, LOSSES, Metrics, MetricSet, canonical_loss_name
from landscape.engine.moved import working_copy
from landscape.engine.outputloss import BATCH_LOSSES
from landscape.errors import ConfigError, DataError, GridError, ModelError
from landscape.workflows.experiment import resolve_device
from landscape.zoo.data import Task, TensorSplit
from landscape.zoo.modules import plain_module
from landscape.zoo.userdata import Prepared, first_batch

AxisSpec = tuple[float, float, int] | Sequence[float] | np.ndarray
LossSpec = str | Sequence[str] | nn.Module | Callable[[nn.Module, Any], Tensor]
DirectionsSpec = Directions | str | Path | tuple[Mapping[str, Tensor], Mapping[str, Tensor] | None] | Any | None

_LO, _HI, _NUM = SurfaceConfig().x.split(":")
DEFAULT_AXIS = (float(_LO), float(_HI), int(_NUM))  # the CLI's default grid axis, (-1, 1, 51)
DEFAULT_SEED = DirectionOptions().seed  # the CLI's [directions] seed (123), for both doors


# --- directions ---------------------------------------------------------------------------------------------


def random_directions(model: nn.Module, dims: int = 2, seed: int = DEFAULT_SEED, *, norm: str = "filter", ignore: str = "biasbn",
                      dir_type: str = "weights") -> Directions:
    """The paper's random directions: Gaussian, filter-normalized, biases and BatchNorm zeroed.

    Args:
        model: the network (any ``nn.Module``); only its parameter names, shapes and values are read.
        dims: 1 or 2 directions (a line or a plane).
        seed: seed of the CPU generator; the same seed gives the same directions bit for bit. The
            default, 123, is ``landscape surface``'s (``[directions] seed``): both doors draw the same plane.
        norm: ``filter`` (Li et al.), ``layer``, ``weight`` or ``none``: each direction's filter
            (one output unit of the layer that owns the tensor: a row of ``Linear``, an output
            channel of ``Conv*d``, see :func:`register_filter_rule`) is rescaled to the norm of
            the weights' filter. A parametrized weight (``weight_norm``...) gets its direction on
            the effective weight, under the module's name for it (``0.weight``).
        ignore: ``biasbn`` gives tensors with ndim ≤ 1 a zero direction; ``none`` gives each the
            tensor itself (the paper's code); ``random1d`` a Gaussian rescaled to the tensor's norm.
        dir_type: ``weights`` (parameters) or ``states`` (state-dict floats, BatchNorm statistics included).

    Returns:
        :class:`Directions` with ``x`` (and ``y``): dicts name → float32 CPU tensor shaped like the parameter.
    """
    if dims not in (1, 2):
        raise ConfigError(f"dims must be 1 or 2, got {dims}")
    model = plain_module(model)  # torch.compile / DataParallel: the module inside
    cfg = DirectionOptions(dir_type=dir_type, norm=norm, ignore=ignore, seed=seed)  # type: ignore[arg-type]
    return dirs_.random_directions(model, cfg, dims)


def resolve_directions(spec: DirectionsSpec, model: nn.Module, dims: int) -> Directions:
    if spec is None:
        return random_directions(model, dims)
    if isinstance(spec, Directions):
        dirs = spec
    elif isinstance(spec, str | Path):
        dirs = dirs_.load_directions(spec, model)
    elif isinstance(getattr(spec, "directions", None), Directions):  # a trajectory's PCA plane
        dirs = spec.directions  # type: ignore[union-attr]
    elif isinstance(spec, tuple) and len(spec) == 2 and isinstance(spec[0], Mapping):
        x = {k: torch.as_tensor(v).detach().float().cpu() for k, v in spec[0].items()}
        y = {k: torch.as_tensor(v).detach().float().cpu() for k, v in spec[1].items()} if spec[1] is not None else None
        dirs = Directions(x, y, {"kind": "user", "dir_type": "weights", "norm": "none", "ignore": "none", "seed": -1})
    else:
        raise ConfigError(f"directions must be Directions, a direction file or a (dx, dy) pair of dicts, got {type(spec).__name__}")
    dirs_.check_directions(dirs, model)
    return dirs


# --- the grid ---------------------------------------------------------------------------------------------------


def axis(spec: AxisSpec, name: str) -> np.ndarray:
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


def spec_text(axis: np.ndarray) -> str:
    return f"{axis[0]:g}:{axis[-1]:g}:{len(axis)}"


# --- losses ------------------------------------------------------------------------------------------------------


def infer_task(targets: Tensor, losses: Sequence[str], output: Tensor) -> tuple[Task, int]:
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


def origin_output(model: nn.Module, x: Any) -> Tensor:
    """The model's output on a couple of samples, from a copy that reads the caller's parameters
    and owns its buffers, so a forward that writes them leaves the caller's model as it was."""
    device = model_device(model, None)
    with torch.inference_mode():
        out = working_copy(model, (), device)(x.to(device))
    if not isinstance(out, Tensor):
        raise ModelError(f"the model returns a {type(out).__name__}, not a tensor: with a loss named or given as a "
                         "criterion the forward must return the outputs; else pass loss=lambda model, batch: ...")
    return out


@dataclass
class ResolvedLoss:
    """What a loss spec resolves to: output metrics for (x, y) data or batch metrics for any data."""

    names: list[str]
    output: Metrics | None = None  # fn(output, target) side
    per_sample: Callable[[Tensor, Tensor], Tensor] | None = None  # for the Hessian
    batch: list[tuple[str, BatchFn]] = field(default_factory=list)  # fn(model, batch) side
    label: str = ""


def resolve_loss(loss: LossSpec, metrics: Mapping[str, Callable[..., Tensor]] | None, model: nn.Module,
                  prepared: dict[str, Prepared]) -> tuple[ResolvedLoss, dict[str, Prepared]]:
    metrics = dict(metrics or {})
    if isinstance(loss, str) and loss in BATCH_LOSSES:  # causal_lm: a batch loss by name, as --loss causal_lm
        loss = BATCH_LOSSES.get(loss)
    if callable(loss) and not isinstance(loss, nn.Module):
        fns: list[tuple[str, BatchFn]] = [("loss", loss), *metrics.items()]
        return ResolvedLoss([n for n, _ in fns], batch=fns, label=getattr(loss, "__name__", "callable")), prepared
    batch = first_batch(next(iter(prepared.values())))
    if not (isinstance(batch, tuple | list) and len(batch) >= 2 and isinstance(batch[0], Tensor) and isinstance(batch[1], Tensor)):
        raise DataError(f"a loss {'named' if isinstance(loss, str) else 'criterion'} compares outputs with targets, so batches "
                        f"must be (inputs, targets, ...) tuples; got {type(batch).__name__} batches: pass "
                        "loss=lambda model, batch: ... for other batches")
    output = origin_output(model, batch[0][:2])
    if output.ndim == 2 and output.shape[1] == 1:  # 1-D float targets become (n, 1), as the CLI's data loading does
        prepared = {k: TensorSplit(v.inputs, v.targets.unsqueeze(1))
                    if isinstance(v, TensorSplit) and v.targets.ndim == 1 and v.targets.is_floating_point() else v
                    for k, v in prepared.items()}
    y = first_batch(next(iter(prepared.values())))[1]
    if isinstance(loss, nn.Module):
        acc = not y.is_floating_point() and output.ndim == 2
        out_fns: list[tuple[str, Callable[[Tensor, Tensor], Tensor]]] = [("loss", loss), *metrics.items()]
        om = OutputMetrics(out_fns, acc=acc)
        om.check(output, y[: output.shape[0]].to(output.device))
        return ResolvedLoss(om.names, output=om, per_sample=om.per_sample, label=type(loss).__name__), prepared
    names = [loss] if isinstance(loss, str) else list(loss)
    if not names or not all(isinstance(n, str) for n in names):
        raise ConfigError(f"loss must be a registry name, a list of them, a criterion or a callable, got {loss!r}")
    task, num_classes = infer_task(y, names, output)
    ms = MetricSet(names, task, num_classes)
    ms.check(output, y[: output.shape[0]].to(output.device))
    label = ",".join(c.name for c in ms.criteria)
    if not metrics:
        return ResolvedLoss(list(ms.names), output=ms, per_sample=ms.per_sample(), label=label), prepared
    fns_named = [("loss" if i == 0 else c.name, ms.per_sample(i)) for i, c in enumerate(ms.criteria)]
    om = OutputMetrics([*fns_named, *metrics.items()], acc=ms.has_acc)
    om.check(output, y[: output.shape[0]].to(output.device))
    return ResolvedLoss(om.names, output=om, per_sample=ms.per_sample(), label=label), prepared


def as_batches(p: Prepared, batch_size: int = 0) -> Iterable[Any]:
    """A prepared split as batches: tensors cut by :func:`~landscape.engine.evaluator.tensor_batches`."""
    return tensor_batches(p, batch_size) if isinstance(p, TensorSplit) else p


def model_device(model: nn.Module, device: str | torch.device | None) -> torch.device:
    """``device`` resolved (``cpu``, ``cuda``, ``cuda:N``); None: the device of the model's parameters."""
    if device is None:
        return next((p.device for p in model.parameters()), torch.device("cpu"))
    return resolve_device(str(device))


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
