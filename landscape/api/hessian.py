"""The Python API's Hessian: eigenvalues and trace of the loss's Hessian at a model's weights.

Matrix-free (:mod:`landscape.engine.hessian`): Lanczos for the extreme eigenvalues, Hutchinson
for the trace (exact from the basis when there are at most 2,000 parameters). Any loss the
surface API takes, any data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from landscape.api.inputs import LossSpec, as_batches, model_device, resolve_loss
from landscape.config import DirectionsConfig, HessianConfig, SurfaceConfig
from landscape.engine.moved import ParamSelector, selector, working_copy
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

    ``trace`` is Hutchinson's estimate (``trace_std`` its standard error), or exact when
    ``exact_trace`` is not None; both None with ``trace_samples=0`` (no trace asked for); ``names`` are the parameters the Hessian is taken over; ``dim`` their size.

    Units: eigenvalues and traces in loss units per unit² of parameter; ``loss`` the loss at θ*
    (its units); ``grad_norm`` ‖∇L(θ*)‖₂ (loss units per unit of parameter; near 0 at a minimum,
    where the eigenvalues describe the curvature best); ``converged`` whether every Lanczos
    eigenvalue met ``tol``.
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

    @property
    def max_eigenvalue(self) -> float:
        return self.eigenvalues[0]


def hessian(model: nn.Module, data: Any, loss: LossSpec = "cross_entropy", top_k: int = _HESSIAN.top_k, *,
            params: ParamSelector = None, ignore: str = _DIRECTIONS.ignore, device: str | torch.device | None = None,
            memory_budget: int = _SURFACE.memory_budget, tol: float = _HESSIAN.tol, max_iter: int = _HESSIAN.max_iter,
            trace_samples: int = _HESSIAN.trace_samples, seed: int = _HESSIAN.seed, progress: bool = True) -> HessianResult:
    """Extreme eigenvalues and the trace of the loss Hessian at ``model``'s weights (matrix-free).

    Lanczos with full reorthogonalization for the ``top_k`` largest and the smallest eigenvalue,
    Hutchinson's estimator (Rademacher probes) for the trace; every product is a Hessian-vector
    product by double backpropagation over the whole data (``L = Σ per-sample loss / N``).

    Args:
        model: any ``nn.Module``; never written to (evaluated with ``functional_call``, eval mode).
        data: as for :func:`surface` (the Hessian is of the first split, ``train``).
        loss: as for :func:`surface` (a name, a criterion, or ``loss(model, batch)``).
        top_k: how many of the largest eigenvalues.
        params: glob patterns or a predicate choosing the parameters; None: by ``ignore``.
        ignore: ``biasbn`` leaves out tensors with ndim ≤ 1 (the paper's rule), ``none`` keeps them.
        device: as for :func:`surface`. memory_budget: as for :func:`surface` (bytes).
        tol: relative tolerance of the Ritz values. max_iter: Lanczos iterations at most.
        trace_samples: Hutchinson probes (at least 2); 0: no trace (``trace`` and ``trace_std`` are None).
        seed: seed of the start vector and the probes.
        progress: show a progress bar.

    Returns:
        :class:`HessianResult` (eigenvalues in loss units per unit² of parameter).
    """
    model = plain_module(model)  # torch.compile / DataParallel: the module inside
    dev = model_device(model, device)
    prepared = prepare(data, dev, memory_budget, dtype=floating_dtype(model))  # float inputs in the model's dtype
    first = {"train": prepared["train"]} if "train" in prepared else dict(list(prepared.items())[:1])
    spec, first = resolve_loss(loss, None, model, first)
    work = working_copy(model, (), dev)  # reads the caller's parameters (on dev), owns its buffers: nothing of the caller is written
    moved = selector(params)
    base = parameter_names(work, "weights", ignore) if moved is None else [k for k, p in work.named_parameters() if moved(k)]
    if not base:
        raise ConfigError(f"params {params!r} selects no parameter")
    (split_name, split), = first.items()
    s = problem_setup(work, base, as_batches(split), spec.label, split_name, per_sample=spec.per_sample,
                      batch_fn=None if spec.per_sample is not None else spec.batch[0][1])
    c = measure(s.problem, min(top_k, s.problem.dim), tol=tol, max_iter=max_iter, trace_samples=trace_samples, seed=seed,
                progress=progress)
    trace = c.exact if c.exact is not None else c.trace
    return HessianResult(
        eigenvalues=[float(v) for v in c.top.eigenvalues], min_eigenvalue=float(c.bottom.eigenvalues[0]),
        trace=float(trace.estimate) if trace is not None else None,
        trace_std=float(c.trace.stderr) if c.trace is not None else None,
        exact_trace=float(c.exact.estimate) if c.exact is not None else None, loss=c.loss,
        grad_norm=float(sum(float((g.double() ** 2).sum()) for g in c.grad) ** 0.5), names=list(base), dim=s.problem.dim,
        converged=bool(c.top.all_converged and c.bottom.all_converged))
