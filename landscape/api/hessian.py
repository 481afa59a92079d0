"""The Python API's curvature: eigenvalues, trace, spectral density and per-block results of the loss's
Hessian (or Gauss-Newton matrix, or empirical Fisher) at a model's weights.

Matrix-free (:mod:`landscape.engine.hessian`, :mod:`landscape.engine.operators`): Lanczos for the
extreme eigenvalues, Hutch++ or Hutchinson for the trace (exact from the basis when there are at most
2,000 parameters), SLQ for the density. Any loss the surface API takes, any data; the same
:func:`~landscape.workflows.hessian.measure` as ``landscape hessian``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from landscape.api.inputs import LossSpec, as_batches, model_device, resolve_loss
from landscape.config import DirectionsConfig, HessianConfig, SurfaceConfig
from landscape.engine.blocks import BlockResult
from landscape.engine.hessian import HessianProblem
from landscape.engine.moved import ParamSelector, selector, working_copy
from landscape.engine.operators import convert
from landscape.engine.slq import Density
from landscape.errors import ConfigError
from landscape.integrations.notebook import HessianDisplay
from landscape.workflows.hessian import measure, parameter_names, problem_setup
from landscape.zoo.modules import floating_dtype, plain_module
from landscape.zoo.userdata import prepare

_HESSIAN, _DIRECTIONS, _SURFACE = HessianConfig(), DirectionsConfig(), SurfaceConfig()  # the CLI's defaults


# --- the Hessian -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HessianResult(HessianDisplay):
    """Curvature at θ*: ``eigenvalues`` (top_k, largest first), ``min_eigenvalue``, ``trace``.

    ``trace`` is the estimate (``trace_std`` its standard error, ``trace_method`` the estimator), or
    exact when ``exact_trace`` is not None; both None with ``trace_samples=0`` (no trace asked for);
    ``names`` are the parameters the Hessian is taken over; ``dim`` their size.

    Units: eigenvalues and traces in loss units per unit² of parameter; ``loss`` the loss at θ*
    (its units); ``grad_norm`` ‖∇L(θ*)‖₂ (loss units per unit of parameter; near 0 at a minimum,
    where the eigenvalues describe the curvature best); ``converged`` whether every Lanczos
    eigenvalue met ``tol``. ``operator`` names the matrix (hessian, ggn, fisher); ``density`` holds
    the SLQ nodes and weights and ``blocks`` the per-block results when they were asked for.
    """

    eigenvalues: list[float]
    min_eigenvalue: float
    trace: float | None
    trace_std: float | None
    exact_trace: float | None
    loss: float
    grad_norm: float
    names: list[str]
    dim: int
    converged: bool
    operator: str = "hessian"  # the matrix: hessian, ggn (generalized Gauss-Newton) or fisher (empirical)
    trace_method: str = "hutch++"  # the estimator behind trace_std
    density: Density | None = None  # SLQ nodes and weights (Σ = 1) when density=True
    blocks: list[BlockResult] = field(default_factory=list)  # per diagonal block when blocks= is given

    @property
    def max_eigenvalue(self) -> float:
        return self.eigenvalues[0]


def curvature_problem(model: nn.Module, data: Any, loss: LossSpec, params: ParamSelector, ignore: str,
                      device: str | torch.device | None, memory_budget: int,
                      operator: str = "hessian", split: str | None = None,
                      products_per_call: int = 1) -> tuple[HessianProblem, list[str], str]:
    """(the curvature problem of ``loss`` on the first split of ``data`` (or on ``split``), the model's names
    of its parameters, the prefix the problem's names carry): the API's one way from user inputs to a problem
    (:func:`hessian` and :func:`landscape.sharpness`), through the CLI's :func:`problem_setup`."""
    model = plain_module(model)  # torch.compile / DataParallel: the module inside
    dev = model_device(model, device)
    prepared = prepare(data, dev, memory_budget, dtype=floating_dtype(model))  # float inputs in the model's dtype
    if split is not None and split not in prepared:
        raise ConfigError(f"split {split!r} is not in the data, which hold {', '.join(prepared)} "
                          "(a (train, test) pair of data gives both)")
    name = split if split is not None else "train" if "train" in prepared else next(iter(prepared))
    first = {name: prepared[name]}
    spec, first = resolve_loss(loss, None, model, first)
    work = working_copy(model, (), dev)  # reads the caller's parameters (on dev), owns its buffers: nothing of the caller is written
    moved = selector(params)
    base = parameter_names(work, "weights", ignore) if moved is None else [k for k, p in work.named_parameters() if moved(k)]
    if not base:
        raise ConfigError(f"params {params!r} selects no parameter")
    (split_name, chosen), = first.items()
    s = problem_setup(work, base, as_batches(chosen), spec.label, split_name, per_sample=spec.per_sample,
                      batch_fn=None if spec.per_sample is not None else spec.batch[0][1],
                      graph_budget=memory_budget, products_per_call=products_per_call)
    problem = convert(s.problem, operator) if operator != "hessian" else s.problem  # GGN, Fisher
    return problem, base, s.prefix


def hessian(model: nn.Module, data: Any, loss: LossSpec = "cross_entropy", top_k: int = _HESSIAN.top_k, *,
            params: ParamSelector = None, ignore: str = _DIRECTIONS.ignore, device: str | torch.device | None = None,
            memory_budget: int = _SURFACE.memory_budget, tol: float = _HESSIAN.tol, max_iter: int = _HESSIAN.max_iter,
            trace_samples: int = _HESSIAN.trace_samples, seed: int = _HESSIAN.seed, progress: bool = True,
            operator: str = _HESSIAN.operator, trace: str = _HESSIAN.trace, density: bool = _HESSIAN.density,
            density_runs: int = _HESSIAN.density_runs, density_steps: int = _HESSIAN.density_steps,
            blocks: str | Sequence[str] | None = None, products_per_call: int = _HESSIAN.products_per_call) -> HessianResult:
    """Extreme eigenvalues and the trace of the loss Hessian at ``model``'s weights (matrix-free).

    Lanczos with full reorthogonalization for the ``top_k`` largest and the smallest eigenvalue,
    Hutch++ (Meyer et al. 2021) or Hutchinson for the trace, stochastic Lanczos quadrature for the
    density; every product is a Hessian-vector product by double backpropagation over the whole
    data (``L = Σ per-sample loss / N``), or a Gauss-Newton / Fisher product.

    Args:
        model: any ``nn.Module``; never written to (evaluated with ``functional_call``, eval mode).
        data: as for :func:`surface` (the Hessian is of the first split, ``train``).
        loss: as for :func:`surface` (a name, a criterion, or ``loss(model, batch)``).
        top_k: how many of the largest eigenvalues.
        params: glob patterns or a predicate choosing the parameters; None: by ``ignore``.
        ignore: ``biasbn`` leaves out tensors with ndim ≤ 1 (the paper's rule), ``none`` keeps them.
        device: as for :func:`surface`. memory_budget: as for :func:`surface` (bytes).
        tol: relative tolerance of the Ritz values. max_iter: Lanczos iterations at most.
        trace_samples: products of the trace estimator (at least 2); 0: no trace (``trace`` and
            ``trace_std`` are None). seed: seed of the start vector and the probes.
        progress: show a progress bar.
        operator: ``hessian``, ``ggn`` (generalized Gauss-Newton JᵀH_outJ by JVPs; needs a loss of
            (output, target) or a :class:`~landscape.OutputLoss`) or ``fisher`` (empirical Fisher from
            per-sample gradients).
        trace: ``hutch++`` or ``hutchinson``; its standard error is ``trace_std``.
        density: also the spectral density by SLQ (``density_runs`` Lanczos runs of ``density_steps``).
        blocks: ``"module"``, ``"layer"`` or glob patterns (a list or a comma-separated string): top
            eigenvalue, trace (and density) of each diagonal block.
        products_per_call: trace probes and SLQ runs whose Hessian products share one batched backward
            through the kept graph (same results; faster where one product leaves the device idle).

    Returns:
        :class:`HessianResult` (eigenvalues in loss units per unit² of parameter).
    """
    names = tuple(b.strip() for b in blocks.split(",") if b.strip()) if isinstance(blocks, str) else tuple(blocks or ())
    h = dataclasses.replace(_HESSIAN, top_k=top_k, tol=tol, max_iter=max_iter, trace_samples=trace_samples, seed=seed,
                            operator=operator, trace=trace, density=density, density_runs=density_runs,  # type: ignore[arg-type]
                            density_steps=density_steps, blocks=names, products_per_call=products_per_call)
    problem, base, prefix = curvature_problem(model, data, loss, params, ignore, device, memory_budget, operator,
                                              products_per_call=products_per_call)
    c = measure(problem, h, prefix=prefix, progress=progress)
    tr = c.exact if c.exact is not None else c.trace
    return HessianResult(
        eigenvalues=[float(v) for v in c.top.eigenvalues], min_eigenvalue=float(c.bottom.eigenvalues[0]),
        trace=float(tr.estimate) if tr is not None else None,
        trace_std=float(c.trace.stderr) if c.trace is not None else None,
        exact_trace=float(c.exact.estimate) if c.exact is not None else None, loss=c.loss,
        grad_norm=float(sum(float((g.double() ** 2).sum()) for g in c.grad) ** 0.5), names=list(base), dim=problem.dim,
        converged=bool(c.top.all_converged and c.bottom.all_converged), operator=operator, trace_method=trace,
        density=c.density, blocks=c.blocks)
