"""Curvature jobs: ``landscape hessian``, eigenvalue-ratio maps and Hessian directions.

The numerical kernels live in :mod:`landscape.engine.hessian` (matrix-free Hessian-vector products,
Lanczos, Hutchinson); this module ties them to checkpoints, configs and files:

* :func:`run_hessian` — the top-k eigenvalues (Lanczos, eigenvalue-relative residual test),
  the algebraically smallest eigenvalue (Lanczos, ‖H‖-relative test: λmin is often ≈ 0),
  Hutchinson's trace with its 95 % interval (and the exact trace for P ≤ 2000), HVPs per
  second, and optionally the top two eigenvectors as a direction file;
* :class:`~landscape.engine.eigratio.EigenRatioEngine` (in the engine) — a drop-in for :class:`~landscape.engine.surface.SurfaceEngine` whose
  columns are ``<split>_max_eig``, ``<split>_min_eig``, ``<split>_eig_ratio`` (= |λmin/λmax|,
  Li et al. 2018, §7) and ``<split>_eig_converged`` (1.0 when the Lanczos test was met), so
  ``landscape surface --metric eig_ratio`` files resume and flush like any surface;
* :func:`hessian_directions` — the top eigenvectors as the x/y directions (kind ``hessian``).

The Hessian is restricted to the tensors the directions' rule picks (``directions.dir_type``
and ``ignore``; by default the weights with ndim > 1, so biases and BatchNorm are excluded as in
the random directions). Models are evaluated in eval mode, BatchNorm on its running statistics.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import itertools
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from landscape.atomic import write_json_atomic
from landscape.config import Config, HessianConfig, config_to_dict
from landscape.engine import slq
from landscape.engine.batchloss import BatchFn, BatchLossModel, on_first_batch
from landscape.engine.blocks import BlockResult
from landscape.engine.directions import Directions, save_directions, target_tensors
from landscape.engine.eigratio import EigenRatioEngine, eig_ratio
from landscape.engine.evaluate import eval_mode
from landscape.engine.evaluator import tensor_batches
from landscape.engine.hessian import (
    GRAPH_BUDGET,
    EigenResult,
    HessianProblem,
    LossFn,
    Reducer,
    TraceResult,
    exact_trace,
    lanczos,
)
from landscape.engine.moved import selector
from landscape.engine.operators import convert
from landscape.engine.outputloss import is_batch_loss, load_batch_loss
from landscape.engine.progress import bar
from landscape.engine.slq import Density
from landscape.errors import ConfigError, HessianError
from landscape.io.checkpoint import Checkpoint, load_checkpoint, sha256_file
from landscape.version import __version__
from landscape.workflows import _curvature as curvature
from landscape.workflows._distributed import (
    Group,
    close_group,
    init_group,
    local_device,
    samples_per_rank,
    sum_over_ranks,
)
from landscape.workflows.experiment import Experiment, experiment_with_user_data, resolve_device
from landscape.zoo.data import TensorSplit
from landscape.zoo.modules import floating_dtype
from landscape.zoo.userdata import Paired, Streamed, UserBatches, UserStreams

EXACT_TRACE_MAX_DIM = 2000  # exact_trace costs P HVPs: only for small restricted Hessians



# --- what the Hessian is of --------------------------------------------------------------------


def parameter_names(model: nn.Module, dir_type: str = "weights", ignore: str = "biasbn") -> list[str]:
    """The tensors the Hessian is restricted to, by the directions' rule.

    ``dir_type`` picks parameters (``weights``) or float state-dict entries (``states``);
    ``ignore = "biasbn"`` drops every tensor with ndim ≤ 1 (biases, BatchNorm), ``"none"`` keeps them.
    """
    if ignore not in ("biasbn", "none", "random1d"):
        raise ConfigError(f"unknown ignore {ignore!r}; choose 'biasbn', 'none' or 'random1d'")
    names = [k for k, t in target_tensors(model, dir_type).items()
             if t.is_floating_point() and (ignore != "biasbn" or t.ndim > 1)]
    if not names:
        raise HessianError(f"the model has no tensors for a Hessian with dir_type={dir_type!r}, ignore={ignore!r} "
                           "(try ignore = 'none')")
    return names


def hessian_loss(cfg: Config) -> str:
    """The one loss whose Hessian is taken: ``surface.losses`` when given, else the training loss."""
    losses = cfg.surface.losses or (cfg.train.loss,)
    if len(losses) != 1:
        raise ConfigError(f"the Hessian is of one loss; got {len(losses)} ({', '.join(losses)}): pass a single --loss")
    return losses[0]


@dataclass(frozen=True)
class Setup:
    """A Hessian problem at the checkpoint plus what it was built from (for timing and reports)."""

    problem: HessianProblem
    model: nn.Module  # a private copy on the device
    batches: Iterable[tuple[Any, Any]]  # (inputs, targets) or (batch, None); a list, or streamed
    loss_fn: LossFn
    loss: str
    split: str
    prefix: str = ""  # what the problem's names carry before the model's own (a batch loss wraps the model)


def setup(exp: Experiment, cfg: Config, device: torch.device, allow_both: bool = True, group: Group | None = None) -> Setup:
    """The Hessian of the configured loss on the configured split, at the checkpoint, on ``device``.

    The user's streamed data (:class:`~landscape.zoo.userdata.UserStreams`) are re-read at every
    Hessian-vector product; batches of other shapes (:class:`~landscape.zoo.userdata.UserBatches`,
    dicts) are cached on the device when they fit ``surface.memory_budget``, else streamed too.
    Under ``torchrun`` (``group`` distributed) this rank takes its shard: a contiguous slice of the
    samples of tensor data, every ``world_size``-th batch of other data; products are summed over the ranks.
    """
    shard = group if group is not None and group.distributed else None
    reduce = sum_over_ranks if shard is not None else None
    loss, split_name = hessian_loss(cfg), cfg.surface.split
    if split_name == "both":  # the training split, where allowed
        if not allow_both:
            raise ConfigError("a Hessian is of one split: choose --split train or --split test")
        split_name = "train"
    model = copy.deepcopy(exp.model).to(device).eval()
    names = parameter_names(model, cfg.directions.dir_type, cfg.directions.ignore)
    if cfg.surface.params:
        chosen = selector(cfg.surface.params)
        assert chosen is not None
        names = [k for k in names if chosen(k)]
        if not names:
            raise ConfigError(f"--params {','.join(cfg.surface.params)} selects none of the parameters "
                              f"({', '.join(parameter_names(model, cfg.directions.dir_type, cfg.directions.ignore)[:4])}, ...)")
    data: Iterable[Any]
    probe = exp.data.split(split_name).subset(cfg.surface.max_samples).to(device)
    if isinstance(exp.batches, UserBatches):
        if cfg.surface.max_samples:
            raise ConfigError(f"--max-samples {cfg.surface.max_samples} cuts (inputs, targets) data; the {exp.batches.kind} "
                              f"batches of {exp.batches.name!r}: cut them in your data function")
        data = exp.batches.placed([split_name], device, cfg.surface.memory_budget, floating_dtype(exp.model))[split_name]
        data = batch_shard(data, shard)
    elif isinstance(exp.batches, UserStreams):  # the probe is the split's first batch
        data = Streamed(exp.batches.splits[split_name].limited(cfg.surface.max_samples), device, floating_dtype(exp.model))
        data = batch_shard(data, shard)
    else:
        data = tensor_batches(sample_shard(probe, shard) if shard is not None else probe, cfg.surface.batch_size)
    if is_batch_loss(loss):  # a batch loss fn(model, batch) (file.py:fn, causal_lm): the Hessian of the wrapped model
        return problem_setup(model, names, data, loss, split_name, batch_fn=load_batch_loss(loss),
                             graph_budget=cfg.surface.memory_budget, reduce=reduce,
                             products_per_call=cfg.hessian.products_per_call)
    assert not isinstance(exp.batches, UserBatches)  # a loss of (output, target) on them is refused when they are read
    with torch.inference_mode():  # a wrong output shape fails here, naming the shapes
        exp.metrics([loss]).check(model(probe.inputs[:2]), probe.targets[:2])
    return problem_setup(model, names, data, loss, split_name, per_sample=exp.metrics([loss]).per_sample(),
                         graph_budget=cfg.surface.memory_budget, reduce=reduce,
                         products_per_call=cfg.hessian.products_per_call)


def _identity(out: Tensor, _: Any) -> Tensor:
    return out


def sample_shard(split: TensorSplit, group: Group) -> TensorSplit:
    """Rank r of w: samples ``[r·n/w, (r+1)·n/w)`` (contiguous, sizes differing by at most one)."""
    n = len(split)
    lo, hi = n * group.rank // group.world_size, n * (group.rank + 1) // group.world_size
    return TensorSplit(split.inputs[lo:hi], split.targets[lo:hi])


def batch_shard(data: Iterable[Any], shard: Group | None) -> Iterable[Any]:
    """Rank r of w: batches r, r + w, r + 2w, ... (all of them without a shard)."""
    if shard is None:
        return data
    if isinstance(data, list):
        return data[shard.rank :: shard.world_size]
    if isinstance(data, Streamed):  # skip the other ranks' batches before they are moved to the device
        return Streamed(EveryNth(data.source, shard.rank, shard.world_size), data.device, data.dtype)
    return EveryNth(data, shard.rank, shard.world_size)


@dataclass(frozen=True)
class EveryNth:
    """Batches ``start, start + step, ...`` of a re-iterable source (a rank's shard of streamed data)."""

    source: Iterable[Any]
    start: int
    step: int

    def __iter__(self) -> Iterator[Any]:
        return itertools.islice(iter(self.source), self.start, None, self.step)


def problem_setup(model: nn.Module, names: Sequence[str], data: Iterable[Any], loss: str, split: str, *,
                  per_sample: LossFn | None = None, batch_fn: BatchFn | None = None, graph_budget: int = GRAPH_BUDGET,
                  reduce: Reducer | None = None, products_per_call: int = 1) -> Setup:
    """The Hessian problem over ``names`` of ``model`` (a private copy) for both doors: ``per_sample(output,
    target)`` over (inputs, targets) batches, or ``batch_fn(model, batch)`` over any batches (names get ``inner.``).
    ``graph_budget``: bytes the kept gradient graph may take; ``reduce``: the sum over torchrun's ranks;
    ``products_per_call``: products per batched backward in the traces and SLQ."""
    opts: dict[str, Any] = {"graph_budget": graph_budget, "reduce": reduce, "products_per_call": products_per_call}
    if batch_fn is None:
        assert per_sample is not None
        return Setup(HessianProblem(model, list(names), data, per_sample, **opts), model, data, per_sample, loss, split)
    wrapped = BatchLossModel(model, batch_fn)
    pairs: Iterable[tuple[Any, None]] = [(b, None) for b in data] if isinstance(data, list) else Paired(data)
    for first, _ in pairs:
        on_first_batch(functools.partial(wrapped, first), f"the loss {loss!r} fails on the first {split} batch")
        break
    problem = HessianProblem(wrapped, [f"inner.{k}" for k in names], pairs, _identity, **opts)
    return Setup(problem, wrapped, pairs, _identity, loss, split, prefix="inner.")


@dataclass(frozen=True)
class Curvature:
    """What :func:`measure` found at θ* (``exact``: None over :data:`EXACT_TRACE_MAX_DIM` parameters;
    ``trace`` None with ``trace_samples`` = 0; ``density`` and ``blocks`` when asked for)."""

    loss: float
    grad: list[Tensor]
    top: EigenResult
    bottom: EigenResult
    trace: TraceResult | None
    exact: TraceResult | None
    density: Density | None = None
    blocks: list[BlockResult] = field(default_factory=list)


def measure(problem: HessianProblem, h: HessianConfig, *, prefix: str = "", vectors: bool = False,
            progress: bool = True) -> Curvature:
    """What ``landscape hessian`` and ``landscape.hessian`` report, for both: the ``h.top_k`` largest
    eigenvalues (Lanczos, eigenvalue-relative test), the smallest (Lanczos, ‖H‖-relative test: λmin is
    often ≈ 0), the trace (``h.trace``: Hutch++ or Hutchinson; exact for P ≤ 2000), the SLQ density and
    the per-block results (``h.density``, ``h.blocks``). ``problem`` may be the Hessian, GGN or Fisher."""
    if h.density and (h.density_runs < 1 or h.density_steps < 2):  # (SLQ's sizes)
        raise ConfigError(f"hessian.density_runs must be ≥ 1 and density_steps ≥ 2, got {h.density_runs} and "
                          f"{h.density_steps}")
    exact_wanted = problem.dim <= EXACT_TRACE_MAX_DIM and h.trace_samples > 0
    # at most this many HVPs (Lanczos may converge sooner): the bar's ETA is an upper bound
    budget = (2 * min(h.max_iter, problem.dim) + h.trace_samples + (problem.dim if exact_wanted else 0)
              + (h.density_runs * min(h.density_steps, problem.dim) if h.density else 0))
    plain_hvp, plain_many = problem.hvp, problem.hvp_many
    with bar(budget if progress else 0, "hessian", unit="HVP") as pbar:

        def counted_hvp(v: Sequence[Tensor]) -> list[Tensor]:
            pbar.update(1)
            return plain_hvp(v)

        def counted_many(vs: Tensor) -> Tensor:  # the kept graph's batched products skip hvp
            out = plain_many(vs)
            pbar.update(len(vs) if problem.batched_products and len(vs) > 1 else 0)
            return out

        problem.hvp, problem.hvp_many = counted_hvp, counted_many  # type: ignore[method-assign]
        try:
            loss, grad = problem.loss_and_grad()
            top = lanczos(problem, min(h.top_k, problem.dim), which="largest", tol=h.tol, max_iter=h.max_iter,
                          seed=h.seed, vectors=vectors)
            bottom = lanczos(problem, 1, which="smallest", tol=h.tol, max_iter=h.max_iter, seed=h.seed,
                             relative_to="norm", vectors=False)
            trace = slq.trace(problem, h.trace, samples=h.trace_samples, seed=h.seed) if h.trace_samples else None
            exact = exact_trace(problem) if exact_wanted else None
            density = (slq.slq_density(problem, runs=h.density_runs, steps=h.density_steps, seed=h.seed)
                       if h.density else None)
        finally:
            problem.hvp, problem.hvp_many = plain_hvp, plain_many  # type: ignore[method-assign]
        blocks = curvature.blocks_of(problem, h, prefix)
    return Curvature(float(loss), list(grad), top, bottom, trace, exact, density, blocks)


# --- Hessian directions ------------------------------------------------------------------------


def eigen_directions(problem: HessianProblem, result: EigenResult, model: nn.Module, dir_type: str,
                     prefix: str = "", **meta: Any) -> Directions:
    """The first one or two eigenvectors of ``result`` as directions x (and y), kind ``hessian``.

    Each is unit-norm on the restricted tensors and zero on every other target tensor of
    ``dir_type``; signs are canonical (largest entry positive). The problem's names are
    ``prefix`` + the model's names. ``meta`` is recorded as well.
    """
    if not result.eigenvectors:
        raise HessianError("the eigen result holds no eigenvectors (run lanczos with vectors=True)")
    targets = target_tensors(model, dir_type)

    def direction(vector: Sequence[Tensor]) -> dict[str, Tensor]:
        flat = problem.flatten(vector)  # eigenvectors have no sign: the largest-magnitude entry is made positive
        sign = 1.0 if float(flat[int(flat.abs().argmax())]) >= 0 else -1.0
        own = {k.removeprefix(prefix): v for k, v in problem.as_dict(vector).items()}
        return {k: (sign * own[k]).detach().float().cpu() if k in own else torch.zeros(t.shape, dtype=torch.float32)
                for k, t in targets.items()}

    vecs = result.eigenvectors[:2]
    n = len(vecs)
    info = {"kind": "hessian", "dir_type": dir_type, "norm": "none", "eigenvalues": list(result.eigenvalues[:n]),
            "residuals": list(result.residuals[:n]), "converged": [bool(c) for c in result.converged[:n]], **meta}
    return Directions(direction(vecs[0]), direction(vecs[1]) if n > 1 else None, info)


def hessian_directions(exp: Experiment, cfg: Config, dims: int) -> Directions:
    """The top ``dims`` (1 or 2) Hessian eigenvectors at the checkpoint as surface directions.

    Computed by Lanczos (``hessian.tol``, ``max_iter``, ``seed``) on ``surface.split`` (``both``:
    the training split) with the configured loss, on ``surface.device``.
    """
    s = setup(exp, cfg, resolve_device(cfg.surface.device))
    h = cfg.hessian
    problem = convert(s.problem, h.operator)  # hessian, ggn or fisher
    res = lanczos(problem, dims, which="largest", tol=h.tol, max_iter=h.max_iter, seed=h.seed)
    return eigen_directions(problem, res, exp.model, cfg.directions.dir_type, s.prefix, ignore=cfg.directions.ignore,
                            seed=h.seed, loss=s.loss, split=s.split, operator=h.operator)


# --- eigenvalue-ratio maps ---------------------------------------------------------------------


def eig_ratio_engine(exp: Experiment, cfg: Config, directions: Directions, splits: Mapping[str, TensorSplit],
                     device: torch.device) -> EigenRatioEngine:
    """The engine behind ``landscape surface --metric eig_ratio`` for a config."""
    if cfg.surface.bn != "keep":
        raise ConfigError("--metric eig_ratio takes the Hessian with the checkpoint's BatchNorm statistics; "
                          "it cannot be combined with --bn recompute")
    h = cfg.hessian
    if not h.map_tol > 0 or h.map_max_iter < 1:
        raise ConfigError(f"hessian.map_tol must be > 0 and map_max_iter ≥ 1, got {h.map_tol} and {h.map_max_iter}")
    loss = hessian_loss(cfg)
    names = parameter_names(exp.model, cfg.directions.dir_type, cfg.directions.ignore)
    return EigenRatioEngine(exp.model, directions, splits, exp.metrics([loss]).per_sample(), names, device=device,
                            batch_size=cfg.surface.batch_size, tol=h.map_tol, max_iter=h.map_max_iter, seed=h.seed)


def eig_map_settings(cfg: Config) -> dict[str, Any]:
    """What, beyond the usual surface settings, determines the values of an eig_ratio map."""
    h = cfg.hessian
    return {"dir_type": cfg.directions.dir_type, "ignore": cfg.directions.ignore, "tol": h.map_tol,
            "max_iter": h.map_max_iter, "seed": h.seed}


# --- landscape hessian -------------------------------------------------------------------------


def forward_seconds(model: nn.Module, batches: Iterable[tuple[Any, Any]], loss_fn: LossFn, repeats: int = 3) -> float:
    """Best-of-``repeats`` seconds for one loss evaluation over ``batches`` (one loss-surface point)."""
    best = math.inf
    with eval_mode(model), torch.inference_mode():
        for _ in range(repeats):
            start = time.perf_counter()
            # the parameters' device: x may be a whole (inputs, targets) batch of a batch loss
            total = torch.zeros((), dtype=torch.float64, device=next(iter(model.parameters()), torch.empty(0)).device)
            for x, y in batches:
                total += loss_fn(model(x), y).sum()
            float(total)  # wait for the device
            best = min(best, time.perf_counter() - start)
    return best


def _eigen_report(res: EigenResult, tol: float, relative_to: str) -> dict[str, Any]:
    return {"method": res.method, "tol": tol, "relative_to": relative_to, "iterations": res.iterations,
            "hvps": res.hvps, "seconds": res.seconds, "residuals": list(res.residuals),
            "converged": list(res.converged)}


def _finite_or_none(obj: Any) -> Any:
    """JSON has no NaN/inf: they become null."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite_or_none(v) for v in obj]
    return obj


def run_hessian(checkpoint: str | Path, cfg: Config | None = None, *, out: str | Path | None = None,
                save_directions_to: str | Path | None = None, unsafe: bool = False,
                checkpoint_obj: Checkpoint | None = None, group: Group | None = None) -> dict[str, Any]:
    """Eigenvalues, trace and speed of the loss Hessian at ``checkpoint``; returns the report.

    ``cfg`` defaults to the checkpoint's own; its ``hessian`` section sets k, tolerances,
    iterations, probes and seed; ``surface`` the loss, split, samples, batch size and device;
    ``directions`` the parameter set. The report (JSON-ready, NaN/inf as None) is written to
    ``out`` when given; ``save_directions_to`` also writes the top two eigenvectors as a
    direction file (kind ``hessian``) for ``landscape surface --directions``.

    Under ``torchrun`` every rank takes a shard of the data and the products are summed over the
    ranks, so all run the same Lanczos, traces and SLQ; only rank 0 writes files (the other ranks'
    reports carry their ``rank``). ``group``: a process group already joined (else joined and left here).
    """
    own = group is None
    group = group or init_group(resolve_device(cfg.surface.device if cfg else "cpu").type)
    try:
        return _run_hessian(checkpoint, cfg, out=out, save_directions_to=save_directions_to, unsafe=unsafe,
                            checkpoint_obj=checkpoint_obj, group=group)
    finally:
        if own:
            close_group(group)


def _run_hessian(checkpoint: str | Path, cfg: Config | None, *, out: str | Path | None,
                 save_directions_to: str | Path | None, unsafe: bool, checkpoint_obj: Checkpoint | None,
                 group: Group) -> dict[str, Any]:
    t_start = time.perf_counter()
    ckpt = checkpoint_obj or load_checkpoint(checkpoint, unsafe=unsafe)
    exp = experiment_with_user_data(ckpt, cfg)  # user data over surface.memory_budget are streamed
    cfg = cfg or exp.config
    device = resolve_device(local_device(cfg.surface.device, group))
    s = setup(exp, cfg, device, allow_both=False, group=group)
    h = cfg.hessian
    problem = convert(s.problem, h.operator) if h.operator != "hessian" else s.problem  # GGN, Fisher
    if not 1 <= h.top_k <= problem.dim:
        raise ConfigError(f"hessian.top_k = {h.top_k} must be between 1 and the number of parameters P = {problem.dim}")
    if not h.tol > 0 or h.max_iter < 1 or h.trace_samples == 1 or h.trace_samples < 0:
        raise ConfigError(f"hessian.tol must be > 0, max_iter ≥ 1 and trace_samples 0 (no trace) or ≥ 2; "
                          f"got {h.tol}, {h.max_iter}, {h.trace_samples}")
    c = measure(problem, h, prefix=s.prefix, vectors=save_directions_to is not None, progress=group.is_main)
    runs: list[Any] = [c.top, c.bottom, *(r for r in (c.trace, c.exact, c.density) if r is not None), *c.blocks]
    hvps, hvp_seconds = sum(r.hvps for r in runs), sum(r.seconds for r in runs)
    fwd = forward_seconds(s.model, s.batches, s.loss_fn)
    full = config_to_dict(cfg)
    report: dict[str, Any] = {
        "checkpoint": str(ckpt.path),
        "checkpoint_sha256": sha256_file(ckpt.path),
        "landscape_version": __version__,
        "settings": {"loss": s.loss, "split": s.split, "max_samples": cfg.surface.max_samples,
                     "num_samples": problem.num_samples, "batch_size": cfg.surface.batch_size, "device": str(device),
                     **{k: v for k, v in full["hessian"].items() if not k.startswith("map_")}, "data": full["data"], "model": full["model"]},
        "parameters": {"dir_type": cfg.directions.dir_type, "ignore": cfg.directions.ignore, "dim": problem.dim,
                       "names": [k.removeprefix(s.prefix) for k in problem.names], "shapes": [list(sh) for sh in problem.shapes]},
        "loss": c.loss,
        "grad_norm": math.sqrt(sum(float((g.double() ** 2).sum()) for g in c.grad)),
        "eigenvalues": list(c.top.eigenvalues),
        "eigenvalues_convergence": _eigen_report(c.top, h.tol, "eigenvalue"),
        "min_eigenvalue": c.bottom.eigenvalues[0],
        "min_eigenvalue_convergence": _eigen_report(c.bottom, h.tol, "norm"),
        "eig_ratio": eig_ratio(c.top.eigenvalues[0], c.bottom.eigenvalues[0]),
        "operator": h.operator,
        "trace": None if c.trace is None else {"method": h.trace, **dataclasses.asdict(c.trace),
                                               "ci95": list(c.trace.ci95)},
        "exact_trace": c.exact.estimate if c.exact is not None else None,
        "hvps": hvps,
        "hvp_seconds": hvp_seconds,
        "hvps_per_second": hvps / hvp_seconds if hvp_seconds > 0 else None,
        "product_path": problem.product_path,  # "kept graph" (built once) or "recomputed" (per product)
        # one loss-surface point is one forward pass over the data; one HVP is worth this many
        "forward_seconds": fwd,
        "hvp_cost_in_forward_passes": (hvp_seconds / hvps) / fwd if hvps and fwd > 0 else None,
    }
    report.update(curvature.report_extras(c.density, c.blocks, s.prefix))
    if group.distributed:  # a collective: before rank 0 alone writes
        report["ranks"] = {"world_size": group.world_size, "samples": samples_per_rank(group, problem.local_samples, device)}
        if not group.is_main:
            return {**report, "rank": group.rank}
    if save_directions_to is not None:
        dirs = eigen_directions(problem, c.top, exp.model, cfg.directions.dir_type, s.prefix, seed=h.seed,
                                ignore=cfg.directions.ignore, loss=s.loss, split=s.split, operator=h.operator)
        save_directions(save_directions_to, dirs, exp.model)
        report["directions_file"] = str(save_directions_to)
    report["seconds"] = time.perf_counter() - t_start
    report = _finite_or_none(report)
    if out is not None:
        report["figures"] = curvature.write_figures(report, out)
        write_json_atomic(out, report, allow_nan=False)
        report["file"] = str(out)
    return report


def run_hessian_per_split(checkpoint: str | Path, cfg: Config, *, out: str | Path | None = None,
                          save_directions_to: str | Path | None = None, unsafe: bool = False,
                          checkpoint_obj: Checkpoint | None = None) -> dict[str, Any]:
    """``surface.split = "both"``: :func:`run_hessian` on the training split, then on the test split (one
    process group for both under ``torchrun``).

    The report is ``{"split": "both", "reports": {"train": ..., "test": ...}}``, each as
    :func:`run_hessian` returns it (same seed, so the two differ only by their data), written
    to ``out`` when given. Eigenvectors are of one split: ``save_directions_to`` is refused.
    """
    if save_directions_to is not None:
        raise ConfigError("--save-directions writes the eigenvectors of one split: choose --split train or --split test")
    return each_split(run_hessian, checkpoint, cfg, out=out, unsafe=unsafe, checkpoint_obj=checkpoint_obj)


def each_split(run: Callable[..., dict[str, Any]], checkpoint: str | Path, cfg: Config, *, out: str | Path | None,
               unsafe: bool, checkpoint_obj: Checkpoint | None) -> dict[str, Any]:
    """``run`` (:func:`run_hessian`, ``run_sharpness``) on the training split, then on the test split, in one
    process group under ``torchrun``: ``{"split": "both", "reports": {"train": ..., "test": ...}}``, written
    to ``out`` by rank 0 when given (the other ranks' reports carry their ``rank``)."""
    ckpt = checkpoint_obj or load_checkpoint(checkpoint, unsafe=unsafe)
    group = init_group(resolve_device(cfg.surface.device).type)
    try:
        reports = {name: run(checkpoint, dataclasses.replace(cfg, surface=dataclasses.replace(cfg.surface, split=name)),
                             unsafe=unsafe, checkpoint_obj=ckpt, group=group) for name in ("train", "test")}
    finally:
        close_group(group)
    report: dict[str, Any] = {"split": "both", "reports": reports}
    if not group.is_main:
        return {**report, "rank": group.rank}
    if out is not None:
        write_json_atomic(out, report, allow_nan=False)
        report["file"] = str(out)
    return report


def _status(conv: Mapping[str, Any]) -> str:
    n, ok = len(conv["converged"]), sum(conv["converged"])
    word = "converged" if ok == n else f"{ok}/{n} converged — raise --max-iter or --tol"
    return f"{word}, {conv['iterations']} Lanczos steps, max residual {max(conv['residuals']):.2g}"


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.6g}"


def format_hessian(report: Mapping[str, Any]) -> str:
    """A few human-readable lines for the terminal (per split for :func:`run_hessian_per_split`)."""
    if "reports" in report:
        text = "\n".join(f"[{name}]\n{format_hessian(r)}" for name, r in report["reports"].items())
        return text + (f"\nwrote {report['file']}" if report.get("file") else "")
    st, par, tr = report["settings"], report["parameters"], report["trace"]
    word = curvature.OPERATOR_WORDS[report.get("operator", "hessian")]
    lines = [f"{word[:1].upper() + word[1:]} of {st['loss']} on {st['split']} ({st['num_samples']} samples) w.r.t. {len(par['names'])} "
             f"tensors ({par['dir_type']}, ignore {par['ignore']}): P = {par['dim']:,}; loss {_num(report['loss'])}, "
             f"‖grad‖ {_num(report['grad_norm'])}",
             "top eigenvalues: " + ", ".join(_num(v) for v in report["eigenvalues"])
             + f" ({_status(report['eigenvalues_convergence'])})",
             f"λmin = {_num(report['min_eigenvalue'])} ({_status(report['min_eigenvalue_convergence'])}); "
             f"|λmin/λmax| = {_num(report['eig_ratio'])}",
             (f"trace ≈ {_num(tr['estimate'])} ± {_num(tr['stderr'])} (95 % CI [{_num(tr['ci95'][0])}, "
              f"{_num(tr['ci95'][1])}], {tr['method']}, {tr['samples']} products)" if tr else "trace not estimated")
             + (f"; exact trace {_num(report['exact_trace'])}" if report.get("exact_trace") is not None else ""),
             *curvature.format_extras(report)]
    rate, cost = report.get("hvps_per_second"), report.get("hvp_cost_in_forward_passes")
    lines.append(f"{report['hvps']} HVPs in {report['hvp_seconds']:.2f} s ({_num(rate)} HVPs/s on {st['device']}; "
                 f"one HVP ≈ {_num(cost)} loss evaluations; {report.get('product_path') or 'n/a'})")
    if report.get("ranks"):
        lines.append(f"sharded over {report['ranks']['world_size']} ranks (torchrun), samples per rank: "
                     + ", ".join(str(n) for n in report["ranks"]["samples"]))
    written = [report[k] for k in ("file", "directions_file") if report.get(k)] + list(report.get("figures", []))
    if written:
        lines.append("wrote " + " and ".join(written))
    return "\n".join(lines)
