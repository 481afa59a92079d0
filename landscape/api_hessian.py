"""The Python API's Hessian: eigenvalues and trace of the loss's Hessian at a model's weights.

Matrix-free (:mod:`landscape.engine.hessian`): Lanczos for the extreme eigenvalues, Hutchinson
for the trace (exact from the basis when there are at most 2,000 parameters). Any loss the
surface API takes, any data.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from landscape.api import LossSpec, _as_batches, _device, _resolve_loss, _slices
from landscape.engine.batchloss import BatchLossModel
from landscape.engine.blocks import BlockResult, block_curvature, block_groups
from landscape.engine.hessian import HessianProblem, exact_trace, lanczos
from landscape.engine.moved import ParamSelector, selector, working_copy
from landscape.engine.operators import curvature_problem
from landscape.engine.progress import bar
from landscape.engine.slq import DENSITY_RUNS, DENSITY_STEPS, Density, slq_density
from landscape.engine.slq import trace as trace_estimate
from landscape.errors import ConfigError
from landscape.zoo.data import TensorSplit
from landscape.zoo.userdata import DEFAULT_MEMORY_BUDGET, Paired, Streamed, prepare


def _double_backward_attention() -> contextlib.AbstractContextManager[None]:
    """Hessian-vector products differentiate twice; fused attention kernels (flash, memory-efficient)
    have no double backward on the CPU, so scaled-dot-product attention runs as plain math here."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:  # torch < 2.3: no kernel choice to make
        return contextlib.nullcontext()
    return sdpa_kernel(SDPBackend.MATH)


# --- the Hessian -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HessianResult:
    """Curvature at θ*: ``eigenvalues`` (top_k, largest first), ``min_eigenvalue``, ``trace``.

    ``trace`` is Hutchinson's estimate (``trace_std`` its standard error), or exact when
    ``exact_trace`` is not None; ``names`` are the parameters the Hessian is taken over; ``dim`` their size.

    Units: eigenvalues and traces in loss units per unit² of parameter; ``loss`` the loss at θ*
    (its units); ``grad_norm`` ‖∇L(θ*)‖₂ (loss units per unit of parameter; near 0 at a minimum,
    where the eigenvalues describe the curvature best); ``converged`` whether every Lanczos
    eigenvalue met ``tol``. ``operator`` names the matrix (hessian, ggn, fisher), ``trace_method`` the
    trace estimator; ``density`` holds the SLQ nodes and weights and ``blocks`` the per-block results
    when they were asked for.
    """

    eigenvalues: list[float]
    min_eigenvalue: float
    trace: float
    trace_std: float
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


def _problem(model: nn.Module, data: Any, loss: LossSpec, params: ParamSelector, ignore: str,
             device: str | torch.device | None, memory_budget: int,
             operator: str = "hessian") -> tuple[HessianProblem, list[str], str]:
    """(the curvature problem of ``loss`` on the first split of ``data``, the model's names of its
    parameters, the prefix the problem's names carry): the API's one way from user inputs to a problem."""
    from landscape.workflows.hessian import parameter_names

    dev = _device(model, device)
    prepared = prepare(data, dev, memory_budget)
    first = {"train": prepared["train"]} if "train" in prepared else dict(list(prepared.items())[:1])
    spec, first = _resolve_loss(loss, None, model, first)
    split = next(iter(first.values()))
    work = working_copy(model, (), dev)  # reads the caller's parameters (on dev), owns its buffers: nothing of the caller is written
    target: nn.Module
    prefix = ""
    if spec.per_sample is not None:
        target, loss_fn = work, spec.per_sample
        batches: Iterable[Any] = _slices(split) if isinstance(split, TensorSplit) else split
    else:
        target, prefix = BatchLossModel(work, spec.batch[0][1]), "inner."
        batches = [(b, None) for b in _as_batches(split)] if not isinstance(split, Streamed) else Paired(split)

        def loss_fn(out: Tensor, _: Any) -> Tensor:
            return out
    moved = selector(params)
    base = parameter_names(work, "weights", ignore) if moved is None else [k for k, p in work.named_parameters() if moved(k)]
    if not base:
        raise ConfigError(f"params {params!r} selects no parameter")
    problem = curvature_problem(operator, target, [prefix + k for k in base], batches, loss_fn)  # type: ignore[arg-type]
    return problem, base, prefix


def hessian(model: nn.Module, data: Any, loss: LossSpec = "cross_entropy", top_k: int = 3, *,
            params: ParamSelector = None, ignore: str = "biasbn", device: str | torch.device | None = None,
            memory_budget: int = DEFAULT_MEMORY_BUDGET, tol: float = 1e-3, max_iter: int = 100,
            trace_samples: int = 100, seed: int = 0, progress: bool = True, operator: str = "hessian",
            trace: str = "hutch++", density: bool = False, density_runs: int = DENSITY_RUNS,
            density_steps: int = DENSITY_STEPS, blocks: str | Sequence[str] | None = None) -> HessianResult:
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
        trace_samples: products of the trace estimator. seed: seed of the start vector and the probes.
        progress: show a progress bar.
        operator: ``hessian``, ``ggn`` (generalized Gauss-Newton JᵀH_outJ by JVPs; needs a loss of
            (output, target)) or ``fisher`` (empirical Fisher from per-sample gradients).
        trace: ``hutch++`` (Meyer et al. 2021) or ``hutchinson``; its standard error is ``trace_std``.
        density: also the spectral density by SLQ (``density_runs`` Lanczos runs of ``density_steps``).
        blocks: ``"module"``, ``"layer"`` or glob patterns (a list or a comma-separated string): top
            eigenvalue, trace (and density) of each diagonal block.

    Returns:
        :class:`HessianResult` (eigenvalues in loss units per unit² of parameter).
    """
    problem, base, prefix = _problem(model, data, loss, params, ignore, device, memory_budget, operator)
    extra = density_runs * min(density_steps, problem.dim) if density else 0
    with _double_backward_attention(), \
            bar(2 * min(max_iter, problem.dim) + trace_samples + extra if progress else 0, "hessian", unit="HVP") as pbar:
        plain = problem.hvp

        def counted(v: Sequence[Tensor]) -> list[Tensor]:
            pbar.update(1)
            return plain(v)

        problem.hvp = counted  # type: ignore[method-assign]
        value, grad = problem.loss_and_grad()
        k = min(top_k, problem.dim)
        top = lanczos(problem, k, which="largest", tol=tol, max_iter=max_iter, seed=seed, vectors=False)
        bottom = lanczos(problem, 1, which="smallest", tol=tol, max_iter=max_iter, seed=seed, relative_to="norm", vectors=False)
        tr = trace_estimate(problem, trace, samples=trace_samples, seed=seed)
        exact = exact_trace(problem) if problem.dim <= 2000 else None
        dens = slq_density(problem, runs=density_runs, steps=density_steps, seed=seed) if density else None
        groups = block_groups(problem.names, blocks.split(",") if isinstance(blocks, str) else blocks, prefix) if blocks else []
        per_block = block_curvature(problem, groups, tol=tol, max_iter=max_iter, trace_method=trace,
                                    trace_samples=trace_samples, seed=seed,
                                    density=(density_runs, density_steps) if density else None)
    return HessianResult(
        eigenvalues=[float(v) for v in top.eigenvalues], min_eigenvalue=float(bottom.eigenvalues[0]),
        trace=float(exact.estimate if exact is not None else tr.estimate), trace_std=float(tr.stderr),
        exact_trace=float(exact.estimate) if exact is not None else None, loss=float(value),
        grad_norm=float(sum(float((g.double() ** 2).sum()) for g in grad) ** 0.5), names=list(base), dim=problem.dim,
        converged=bool(top.all_converged and bottom.all_converged), operator=operator, trace_method=trace,
        density=dens, blocks=per_block)

