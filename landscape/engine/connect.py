"""Paths between two minima: the straight line, Bezier curves and polygonal chains (Garipov et al., 2018).

A path is ``θ(t) = Σ_i c_i(t)·P_i`` over control points ``P_0 = θ_A``, the bends ``P_1..P_k``
and ``P_{k+1} = θ_B``:

- ``line``: ``c = (1 − t, t)`` (no bends);
- ``bezier``: the Bernstein polynomials of degree k + 1, ``c_i = C(k+1, i)·t^i·(1 − t)^{k+1−i}``
  (one bend: the quadratic Bezier curve ``(1 − t)²θ_A + 2t(1 − t)θ_C + t²θ_B``);
- ``polychain``: k + 1 straight segments of equal t-length joining the points in order.

Curve finding (Garipov et al., "Loss Surfaces, Mode Connectivity, and Fast Ensembling of DNNs",
NeurIPS 2018): the bends (they start on the line) minimize ``E_{t~U(0,1)} L(θ(t))``, estimated with
one t per mini-batch. The barrier of a path is ``max_t [L(t) − ((1 − t)L(0) + t·L(1))]`` over
t ∈ [0, 1] (Frankle et al., 2020; Entezari et al., 2022).

BatchNorm: the running statistics of ``θ(t)`` are not the interpolated statistics, so with
``bn = "recompute"`` they are re-estimated at every t from a fixed set of training batches
(cumulative average, momentum None); during curve training BatchNorm uses batch statistics.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call

from landscape.engine.evaluate import evaluate
from landscape.engine.losses import MetricSet
from landscape.engine.progress import bar
from landscape.engine.rewrites import is_bn
from landscape.errors import ConfigError, ModelError
from landscape.zoo.data import TensorSplit
from landscape.zoo.modules import eval_mode

TensorDict = dict[str, Tensor]
CURVES: tuple[str, ...] = ("line", "bezier", "polychain")


def coefficients(kind: str, t: float, bends: int) -> list[float]:
    """The weights ``c_i(t)`` of the k + 2 control points ``[θ_A, bend_1..bend_k, θ_B]``."""
    if kind == "line" or bends == 0:
        return [1.0 - t, t]
    if kind == "bezier":
        n = bends + 1
        return [math.comb(n, i) * t**i * (1.0 - t) ** (n - i) for i in range(n + 1)]
    if kind == "polychain":
        segments = bends + 1
        s = min(max(math.floor(t * segments), 0), segments - 1)  # t outside [0, 1]: the end segments extend
        u = t * segments - s
        c = [0.0] * (segments + 1)
        c[s], c[s + 1] = 1.0 - u, u
        return c
    raise ConfigError(f"unknown curve {kind!r}; choose one of {', '.join(CURVES)}")


def combine(points: Sequence[Mapping[str, Tensor]], weights: Sequence[float]) -> TensorDict:
    """``Σ_i w_i·P_i`` per tensor (points share their keys); differentiable in the points."""
    out: TensorDict = {}
    for k, first in points[0].items():
        if first.is_floating_point():  # (counters, num_batches_tracked, are not interpolated)
            first = sum((p[k] * w for p, w in zip(points[1:], weights[1:], strict=True)), first * weights[0])
        out[k] = first
    return out


def path_point(kind: str, t: float, points: Sequence[Mapping[str, Tensor]]) -> TensorDict:
    """``θ(t)`` of the path through ``points = [θ_A, bends..., θ_B]``."""
    return combine(points, coefficients(kind, t, len(points) - 2))


def initial_bends(a: Mapping[str, Tensor], b: Mapping[str, Tensor], bends: int) -> list[TensorDict]:
    """Bends on the straight line at t = j / (k + 1), as Garipov et al. start them."""
    return [combine([a, b], [1.0 - j / (bends + 1), j / (bends + 1)]) for j in range(1, bends + 1)]


def barrier(t: np.ndarray, values: np.ndarray) -> float:
    """``max_{t ∈ [0,1]} [L(t) − ((1 − t)L(0) + t·L(1))]`` on a grid that contains t = 0 and t = 1.

    NaN when any value inside [0, 1] is missing or diverged.
    """
    t = np.asarray(t, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    inside = (t >= 0.0) & (t <= 1.0)
    i0, i1 = np.flatnonzero(t == 0.0), np.flatnonzero(t == 1.0)
    if len(i0) != 1 or len(i1) != 1:
        raise ValueError("the t grid must contain 0 and 1 exactly once")
    vin = v[inside]
    if not np.isfinite(vin).all():
        return float("nan")
    chord = (1.0 - t[inside]) * v[i0[0]] + t[inside] * v[i1[0]]
    return float(np.max(vin - chord))


def t_grid(points: int, margin: float) -> np.ndarray:
    """``points`` values over [0, 1] (t = i / (points − 1), so 0 and 1 are exact) plus whole steps
    into ``[−margin, 1 + margin]``."""
    if points < 2:
        raise ConfigError(f"connect.points = {points} must be at least 2 (t = 0 and t = 1)")
    if not 0.0 <= margin <= 10.0:
        raise ConfigError(f"connect.margin = {margin} must be between 0 and 10")
    extra = math.floor(margin * (points - 1) + 1e-9)
    return np.arange(-extra, points + extra, dtype=np.float64) / (points - 1)


def has_batchnorm(model: nn.Module) -> bool:
    return any(is_bn(m) for m in model.modules())


def check_same_architecture(state_a: Mapping[str, Tensor], state_b: Mapping[str, Tensor], what_a: str, what_b: str) -> None:
    """One error naming the first tensor that differs in name or shape."""
    missing = [k for k in state_a if k not in state_b]
    extra = [k for k in state_b if k not in state_a]
    if missing or extra:
        k = (missing or extra)[0]
        raise ModelError(f"{what_a} and {what_b} are different architectures: tensor {k!r} is only in "
                         f"{what_a if missing else what_b}")
    for k, v in state_a.items():
        if tuple(v.shape) != tuple(state_b[k].shape):
            raise ModelError(f"{what_a} and {what_b} are different architectures: {k!r} has shape "
                             f"{tuple(v.shape)} vs {tuple(state_b[k].shape)}")
    if all(torch.equal(v.cpu(), state_b[k].cpu()) for k, v in state_a.items()):
        raise ModelError(f"{what_a} and {what_b} hold identical weights (the same model given twice): "
                         "connect needs two different models")


# --- BatchNorm re-estimation ---------------------------------------------------------------------


@torch.no_grad()
def recompute_bn_(model: nn.Module, batches: Sequence[Tensor]) -> None:
    """Re-estimate every BatchNorm's running statistics from ``batches`` (in place).

    Cumulative average (momentum None): running_mean is the mean of the batch means and
    running_var the mean of the batches' unbiased variances. Modes are restored afterwards.
    """
    bns = [m for m in model.modules() if is_bn(m)]
    if not bns:
        return
    saved = [m.momentum for m in bns]
    with eval_mode(model):
        for m in bns:
            m.reset_running_stats()
            m.momentum = None
            m.train()
        try:
            for x in batches:
                model(x)
        finally:
            for bn, mom in zip(bns, saved, strict=True):
                bn.momentum = mom


def bn_batches(train: TensorSplit, batch_size: int, count: int, seed: int) -> np.ndarray:
    """Indices (count, batch_size) of a fixed seeded choice of training batches (recorded in the file)."""
    n = min(len(train), batch_size * count)
    count = max(1, n // batch_size) if n >= batch_size else 1
    per = min(batch_size, n)
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))[: count * per]
    return order.reshape(count, per).numpy()


# --- evaluation along a path --------------------------------------------------------------------


class PathEvaluator:
    """Metrics at ``θ(t)`` on every split, on a private copy of the model (the caller's is untouched)."""

    def __init__(self, model: nn.Module, splits: Mapping[str, TensorSplit], metrics: MetricSet, *,
                 device: torch.device, bn: str = "keep", bn_inputs: Sequence[Tensor] = (), batch_size: int = 1024) -> None:
        self.device = device
        self.model = copy.deepcopy(model).to(device).eval()
        self.splits = {name: s.to(device) for name, s in splits.items()}
        self.metrics = metrics
        self.columns = [f"{split}_{m}" for split in self.splits for m in metrics.names]
        self.bn = bn
        self.bn_inputs = [x.to(device) for x in bn_inputs]
        self.batch_size = batch_size
        if bn == "recompute" and not self.bn_inputs:
            raise ConfigError("bn = 'recompute' needs training batches")

    def load_(self, state: Mapping[str, Tensor]) -> None:
        """Write ``state`` (every parameter and buffer) into the private model; re-estimate BN if asked."""
        with torch.no_grad():
            own = self.model.state_dict()
            for k, v in state.items():
                own[k].copy_(v.detach())
        if self.bn == "recompute":
            recompute_bn_(self.model, self.bn_inputs)

    def evaluate(self, state: Mapping[str, Tensor]) -> np.ndarray:
        """One row of values in :attr:`columns` order at the point ``state``."""
        self.load_(state)
        row: list[float] = []
        for split in self.splits.values():
            vals = evaluate(self.model, split, self.metrics, self.batch_size)
            row += [vals[m] for m in self.metrics.names]
        return np.asarray(row, dtype=np.float64)


# --- curve training -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CurveTraining:
    """Settings of the curve finder (from :class:`landscape.config.ConnectConfig`)."""

    kind: str = "bezier"
    bends: int = 1
    epochs: int = 20
    lr: float = 0.05
    optimizer: str = "sgd"
    momentum: float = 0.9
    weight_decay: float = 0.0
    batch_size: int = 64
    schedule: str = "cosine"
    seed: int = 0


def curve_loss(model: nn.Module, kind: str, t: float, points: Sequence[Mapping[str, Tensor]],
               buffers: Mapping[str, Tensor], x: Tensor, y: Tensor, criterion: Callable[[Tensor, Tensor], Tensor]) -> Tensor:
    """``L(θ(t))`` on one batch as a differentiable function of the control points (functional_call)."""
    params = path_point(kind, t, points)
    out = functional_call(model, {**dict(buffers), **params}, (x,))
    return criterion(out, y)


def make_optimizer(cfg: Any, params: Sequence[Tensor]) -> torch.optim.Optimizer:
    """SGD, Adam or AdamW from ``cfg``'s ``optimizer``, ``lr``, ``momentum``, ``weight_decay`` and, SGD only,
    ``nesterov`` (when it has one): a :class:`CurveTraining`, or the config's ``[train]`` section."""
    nesterov = bool(getattr(cfg, "nesterov", False))
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=nesterov, weight_decay=cfg.weight_decay)
    if nesterov:
        raise ConfigError(f"train.nesterov applies to sgd only, not {cfg.optimizer!r}")
    if cfg.optimizer in ("adam", "adamw"):
        adam = torch.optim.Adam if cfg.optimizer == "adam" else torch.optim.AdamW
        return adam(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    raise ConfigError(f"unknown optimizer {cfg.optimizer!r}; choose sgd, adam or adamw")


EpochHook = Callable[[int, list[TensorDict], dict[str, object], float], None]


def train_curve(model: nn.Module, a: Mapping[str, Tensor], b: Mapping[str, Tensor], train: TensorSplit,
                criterion: Callable[[Tensor, Tensor], Tensor], cfg: CurveTraining, *, device: torch.device,
                bends: list[TensorDict] | None = None, optimizer_state: dict[str, object] | None = None,
                start_epoch: int = 0, on_epoch: EpochHook | None = None) -> list[TensorDict]:
    """Train the bends of a curve from θ_A to θ_B by minimizing ``E_{t~U(0,1)} L(θ(t))`` (Garipov et al.).

    ``a``/``b`` hold the parameters (the endpoints stay fixed); buffers (BatchNorm statistics)
    are the model's own, and BatchNorm uses batch statistics while training. Each epoch draws
    its batch order and its t's from a generator seeded with ``(seed, epoch)``, so a run resumed
    at ``start_epoch`` with the saved bends and optimizer state continues exactly as an
    uninterrupted one. ``on_epoch(epoch, bends, optimizer_state, mean_loss)`` runs after each
    epoch (the caller saves there).
    """
    work = copy.deepcopy(model).to(device).train()
    for p in work.parameters():
        p.requires_grad_(False)
    buffers = {k: v.to(device) for k, v in work.named_buffers()}
    a_dev = {k: v.detach().to(device) for k, v in a.items()}
    b_dev = {k: v.detach().to(device) for k, v in b.items()}
    start = bends if bends is not None else initial_bends(a_dev, b_dev, cfg.bends)
    live = [{k: v.detach().to(device).clone().requires_grad_(True) for k, v in bend.items()} for bend in start]
    opt = make_optimizer(cfg, [t for bend in live for t in bend.values()])
    if optimizer_state is not None:
        opt.load_state_dict(optimizer_state)
    data = train.to(device)
    steps = max(1, math.ceil(len(data) / cfg.batch_size))
    with bar((cfg.epochs - start_epoch) * steps, "curve", unit="step") as pbar:
        for epoch in range(start_epoch, cfg.epochs):
            g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
            order = torch.randperm(len(data), generator=g).to(device)
            ts = torch.rand(steps, generator=g, dtype=torch.float64).tolist()
            total = 0.0
            for step in range(steps):
                idx = order[step * cfg.batch_size : (step + 1) * cfg.batch_size]
                progress = (epoch * steps + step) / max(1, cfg.epochs * steps)  # of the whole training
                lr = cfg.lr if cfg.schedule == "constant" else 0.5 * cfg.lr * (1.0 + math.cos(math.pi * progress))
                for group in opt.param_groups:
                    group["lr"] = lr
                loss = curve_loss(work, cfg.kind, ts[step], [a_dev, *live, b_dev], buffers,
                                  data.inputs[idx], data.targets[idx], criterion)
                opt.zero_grad(set_to_none=True)
                loss.backward()  # type: ignore[no-untyped-call]
                opt.step()
                total += float(loss.detach())
                pbar.update(1)
            if not math.isfinite(total):
                raise ModelError(f"curve training diverged in epoch {epoch + 1} (loss {total}); lower connect.lr")
            if on_epoch is not None:
                on_epoch(epoch + 1, [{k: v.detach().cpu().clone() for k, v in bend.items()} for bend in live],
                         opt.state_dict(), total / steps)
    return [{k: v.detach().cpu().clone() for k, v in bend.items()} for bend in live]


def outputs_match(model: nn.Module, state_1: Mapping[str, Tensor], state_2: Mapping[str, Tensor], x: Tensor) -> float:
    """Largest |f_1(x) − f_2(x)| relative to max |f_1(x)| between two states of ``model`` (eval mode)."""
    work = copy.deepcopy(model).eval()
    with torch.no_grad():
        work.load_state_dict(dict(state_1))
        y1 = work(x)
        work.load_state_dict(dict(state_2))
        y2 = work(x)
    return float((y1 - y2).abs().max() / y1.abs().max().clamp_min(1e-12))
