"""Curvature of the loss: Hessian-vector products, extreme eigenvalues, and the trace.

Everything here is matrix-free. A :class:`HessianProblem` fixes a model, a point in parameter
space, the parameters the Hessian is restricted to, the evaluation batches and a per-sample
loss; its only expensive operation is the Hessian-vector product (Pearlmutter's trick by double
backpropagation: ``Hv = ∇_θ ⟨∇_θ L(θ), v⟩``). On top of it sit

* :func:`lanczos` — the Lanczos algorithm with full reorthogonalization (float64 Krylov basis,
  Ritz values from the tridiagonal matrix by ``numpy.linalg.eigh``), for the largest, smallest
  or both ends of the spectrum;
* :func:`eig_extremes` — (λmax, λmin) from one Lanczos run, for the eigen-ratio maps
  ``|λmin / λmax|`` of Li et al. (2018, §7);
* :func:`hutchinson_trace` — Hutchinson's stochastic trace estimator with Rademacher probes;
  :func:`exact_trace` probes every basis vector (tiny problems, tests).

When the batches are held in memory (a Sequence) and the autograd graph of the gradient fits
``graph_budget`` bytes, that graph is built once, over all batches summed into one loss, and kept:
every product is then one backward pass through it (``Hv = ∂⟨g, v⟩/∂θ`` with ``g`` from the kept
graph, as PyHessian does for one batch), instead of a forward and a gradient per batch and product.
Streamed data, or a graph over the budget, recompute both per product (bounded memory);
:attr:`HessianProblem.product_path` says which path ran. Under ``torchrun`` each rank holds a shard
of the batches and ``reduce`` sums every flat product (and the loss, gradient and sample count)
over the ranks, so every rank runs the same Krylov method on the whole data's operator.

The caller's model is never written to: the loss is evaluated by
``torch.func.functional_call`` on a dict of detached tensors, in eval mode (dropout off,
BatchNorm on its running statistics), and every module's own mode is restored afterwards.
Results carry their HVP count and wall time, so HVPs per second can be reported.
"""

from __future__ import annotations

import contextlib
import functools
import math
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, ParamSpec, TypeVar, get_args

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call

from landscape.engine.evaluate import eval_mode
from landscape.errors import HessianError
from landscape.zoo.modules import double_backward_attention
from landscape.zoo.userdata import batch_size_of

Which = Literal["largest", "smallest", "both"]
RelativeTo = Literal["eigenvalue", "norm"]
LossFn = Callable[[Tensor, Tensor], Tensor]  # (output, target) -> per-sample loss (n,)
Reducer = Callable[[Tensor], Tensor]  # the sum of a float64 tensor over the ranks of a process group
ProductPath = Literal["kept graph", "recomputed"]
GRAPH_BUDGET = 2 << 30  # bytes the kept gradient graph may take (the data's default memory budget)
# The gradient's graph (create_graph=True) saves about twice what the forward saves: a graph is
# kept when 3 × the first batch's forward tensors × the number of batches fits the budget.
_GRAPH_PER_FORWARD = 3

# ARPACK's floor for relative convergence tests: eps^(2/3) of float64, so that an eigenvalue
# at (or near) zero is judged relative to the spectrum's scale instead of to itself.
_EPS23 = float(np.finfo(np.float64).eps) ** (2.0 / 3.0)
# An invariant Krylov subspace is declared when the new Lanczos vector is this small relative
# to the largest ‖Hq‖ seen (float64 round-off after reorthogonalization is ~1e-15).
_BREAKDOWN = 1e-10
_Z95 = 1.959963984540054  # two-sided 95 % quantile of the standard normal


_P = ParamSpec("_P")
_R = TypeVar("_R")


def attention_as_math(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """Run ``method`` under :func:`~landscape.zoo.modules.double_backward_attention`: every forward that a
    curvature product differentiates twice (a product recomputed, a kept graph built) goes through here,
    so a transformer's fused attention, which has no double backward on the CPU, runs as plain math
    whichever door asked for the product."""
    @functools.wraps(method)
    def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        with double_backward_attention():
            return method(*args, **kwargs)
    return wrapper


@dataclass(frozen=True)
class EigenResult:
    """Eigenvalues of the (restricted) Hessian, with the evidence that they converged.

    ``eigenvalues`` are in descending order; ``residuals[i]`` measures ``‖Hv_i − λ_i v_i‖``
    (the Lanczos a-posteriori bound ``|β_m s_{m,i}|``); ``converged[i]`` says whether it met the tolerance. A Ritz value is
    within its residual of a true eigenvalue. ``eigenvectors[i]`` (unit 2-norm over all restricted parameters) holds
    one tensor per restricted parameter, shaped and typed like it, in ``problem.names`` order.
    """

    eigenvalues: tuple[float, ...]
    eigenvectors: tuple[tuple[Tensor, ...], ...] | None
    residuals: tuple[float, ...]
    converged: tuple[bool, ...]
    iterations: int
    hvps: int
    seconds: float
    method: str

    @property
    def all_converged(self) -> bool:
        return all(self.converged)

    @property
    def hvps_per_second(self) -> float:
        return self.hvps / self.seconds if self.seconds > 0 else float("inf")


@dataclass(frozen=True)
class TraceResult:
    """A trace estimate with its standard error and normal-approximation 95 % interval."""

    estimate: float
    stderr: float
    ci95: tuple[float, float]
    samples: int
    hvps: int
    seconds: float


class _GradGraph(NamedTuple):
    """The Hessian's kept state: autograd leaves, the gradient with its graph, and the loss."""

    leaves: list[Tensor]
    grad: tuple[Tensor, ...]
    loss: float


class HessianProblem:
    """The Hessian of ``L(θ) = (1/N) Σ_batches Σ_i loss_fn(model(x; θ), y)_i`` w.r.t. ``names``.

    ``N`` is the total number of samples in ``batches``, so the result does not depend on how
    the data is split. ``params`` overrides any parameter or buffer by name (e.g. the shifted
    point ``θ* + αδ + βη``); unnamed ones are the model's own. The problem keeps detached
    aliases of these tensors (no copy) and never writes to them.
    """

    def __init__(self, model: nn.Module, names: Sequence[str], batches: Iterable[tuple[Any, Any]],
                 loss_fn: LossFn, *, params: Mapping[str, Tensor] | None = None, graph_budget: int = GRAPH_BUDGET,
                 reduce: Reducer | None = None, products_per_call: int = 1) -> None:
        if products_per_call < 1:
            raise HessianError(f"products_per_call must be at least 1, got {products_per_call}")
        self.products_per_call = products_per_call
        self._model = model
        self._loss_fn = loss_fn
        # a Sequence is kept as a tuple; another re-iterable (streamed data) is read anew at every pass
        self._batches = tuple(batches) if isinstance(batches, Sequence) else batches
        self._tensors = _point_tensors(model, params or {})
        self.names: tuple[str, ...] = _checked_names(names, self._tensors)
        self._graph_budget, self._reduce = graph_budget, reduce
        self._graph: Any = None  # what the operator keeps between products (a _GradGraph for the Hessian)
        self.product_path: ProductPath | None = None  # decided at the first product
        self.graph_bytes: int | None = None  # the kept graph's estimated size, once a graph was tried
        self.local_samples = local = sum(batch_size_of(x) for x, _ in self._batches)
        # under torchrun: the samples of every rank's shard (a rank may hold none)
        on = self._tensors[self.names[0]].device  # NCCL sums tensors on the GPU only
        self.num_samples = local if reduce is None else round(float(reduce(torch.tensor([float(local)], dtype=torch.float64,
                                                                                       device=on))[0]))
        if reduce is None and isinstance(self._batches, tuple) and not self._batches:
            raise HessianError("a Hessian problem needs at least one batch of evaluation data")
        if self.num_samples == 0:
            raise HessianError("the evaluation batches hold no samples")
        chosen = [self._tensors[n] for n in self.names]
        self.shapes: tuple[torch.Size, ...] = tuple(t.shape for t in chosen)
        self.dtypes: tuple[torch.dtype, ...] = tuple(t.dtype for t in chosen)
        self.device: torch.device = chosen[0].device
        self.dim = sum(t.numel() for t in chosen)  # P, the size of the restricted Hessian

    def at(self, params: Mapping[str, Tensor]) -> HessianProblem:
        """The same problem (the same operator) at another point: ``params`` overrides this problem's tensors."""
        return type(self)(self._model, self.names, self._batches, self._loss_fn,
                          params={**self._tensors, **params}, **self._options())

    def _options(self) -> dict[str, Any]:
        """The keyword arguments a problem derived from this one (another point, operator, block) keeps."""
        return {"graph_budget": self._graph_budget, "reduce": self._reduce, "products_per_call": self.products_per_call}

    def as_dict(self, tensors: Sequence[Tensor]) -> dict[str, Tensor]:
        """Key a list in ``names`` order by parameter name (e.g. an eigenvector as a direction)."""
        return dict(zip(self.names, tensors, strict=True))

    # --- flat float64 view, used by the Krylov methods ----------------------------------------

    def flatten(self, tensors: Sequence[Tensor]) -> Tensor:
        """Concatenate a list shaped like the restricted parameters into one float64 vector (P,)."""
        if len(set(self.dtypes)) == 1:  # one conversion of the whole vector, not one per tensor
            return torch.cat([t.reshape(-1) for t in tensors]).to(torch.float64)
        return torch.cat([t.reshape(-1).to(torch.float64) for t in tensors])

    def unflatten(self, flat: Tensor) -> list[Tensor]:
        """Split a vector (P,) into tensors shaped and typed like the restricted parameters."""
        if len(set(self.dtypes)) == 1:
            flat = flat.to(self.dtypes[0])  # then split into views, already in their dtype
        parts = torch.split(flat, [math.prod(s) for s in self.shapes])
        return [p.reshape(s).to(d) for p, s, d in zip(parts, self.shapes, self.dtypes, strict=True)]

    def hvp_flat(self, v: Tensor) -> Tensor:
        """``H v`` for a flat vector (P,); computed in the parameters' dtype, returned in float64.

        Under ``torchrun`` (``reduce`` given) the ranks' partial products are summed: every rank
        gets the product of the whole data's operator. The Krylov methods call this one.
        """
        flat = self.flatten(self.hvp(self.unflatten(v)))
        return flat if self._reduce is None else self._reduce(flat)

    @property
    def batched_products(self) -> bool:
        """Whether :meth:`hvp_many` runs one batched backward (the Hessian's kept graph), not K products."""
        return type(self)._build_graph is HessianProblem._build_graph and self._kept_graph() is not None

    def hvp_many(self, vs: Tensor) -> Tensor:
        """``H vᵢ`` for the rows of ``vs`` (K, P) float64, as rows (K, P): through the kept Hessian graph in
        one batched backward (``is_grads_batched``, vectorized over the K cotangents), else one by one.
        Summed over the ranks under ``torchrun``: one collective for the K products on every rank, whichever
        path its own shard takes (a rank may recompute where another keeps its graph)."""
        if not self.batched_products or len(vs) == 1:
            out = torch.stack([self.flatten(self.hvp(self.unflatten(v))) for v in vs])
            return out if self._reduce is None else self._reduce(out)
        kept = self._kept_graph()
        live = [i for i, g in enumerate(kept.grad) if g.requires_grad]
        out = torch.zeros_like(vs)
        if live:
            parts = torch.split(vs, [math.prod(s) for s in self.shapes], dim=1)
            cot = [parts[i].reshape(len(vs), *self.shapes[i]).to(self.dtypes[i]) for i in live]
            hv = torch.autograd.grad([kept.grad[i] for i in live], kept.leaves, grad_outputs=cot, retain_graph=True,
                                     allow_unused=True, is_grads_batched=True)
            out = torch.cat([h.reshape(len(vs), -1).to(torch.float64) if h is not None
                             else torch.zeros(len(vs), math.prod(s), dtype=torch.float64, device=vs.device)
                             for h, s in zip(hv, self.shapes, strict=True)], dim=1)
        return out if self._reduce is None else self._reduce(out)

    # --- the two autograd kernels -----------------------------------------------------------

    def loss_and_grad(self) -> tuple[float, list[Tensor]]:
        """The mean loss and its gradient w.r.t. the restricted parameters (one pass over the data,
        none when the kept graph exists); summed over the ranks under ``torchrun``."""
        if isinstance(self._graph, _GradGraph):
            grad, total = [t.detach().clone() for t in self._graph.grad], self._graph.loss
        else:
            leaves = self._leaves()
            total = 0.0
            grad = [torch.zeros_like(t) for t in leaves]
            with eval_mode(self._model), torch.enable_grad():
                for x, y in self._batches:
                    loss = self._batch_loss(leaves, x, y)
                    for acc, gi in zip(grad, _grad(loss, leaves), strict=True):
                        acc.add_(gi)
                    total += float(loss.detach())
        if self._reduce is None:
            return total, grad
        summed = self._reduce(torch.cat([torch.tensor([total], dtype=torch.float64, device=self.device), self.flatten(grad)]))
        return float(summed[0]), self.unflatten(summed[1:])

    @attention_as_math
    def hvp(self, v: Sequence[Tensor]) -> list[Tensor]:
        """Hessian-vector product by double backprop (this rank's share of it under ``torchrun``).

        With the kept graph (:attr:`product_path` ``"kept graph"``): one backward pass ``∂⟨g, v⟩/∂θ``
        through the gradient ``g`` built once. Otherwise per batch: ``g = ∂L_b/∂θ`` with
        ``create_graph=True``, then ``∂⟨g, v⟩/∂θ``, about two backward passes per batch.
        """
        vs = self._checked_vector(v)
        kept = self._kept_graph()
        if kept is not None:
            leaves, g = kept.leaves, kept.grad
            live = [i for i, gi in enumerate(g) if gi.requires_grad]  # a constant gradient has a zero Hessian
            if not live:
                return [torch.zeros_like(t) for t in leaves]
            return list(torch.autograd.grad([g[i] for i in live], leaves, grad_outputs=[vs[i] for i in live],
                                            retain_graph=True, allow_unused=True, materialize_grads=True))
        leaves = self._leaves()
        out = [torch.zeros_like(t) for t in leaves]
        with eval_mode(self._model), torch.enable_grad():
            for x, y in self._batches:
                g = _grad(self._batch_loss(leaves, x, y), leaves, create_graph=True)
                gv = torch.zeros((), dtype=torch.float64, device=self.device)
                for gi, vi in zip(g, vs, strict=True):
                    gv = gv + (gi * vi).sum()
                if not gv.requires_grad:
                    continue  # the gradient is constant in θ on this batch: its Hessian is zero
                for acc, h in zip(out, _grad(gv, leaves), strict=True):
                    acc.add_(h)
        return out

    # --- internals --------------------------------------------------------------------------

    @attention_as_math
    def _kept_graph(self) -> Any:
        """What :meth:`_build_graph` keeps, built at the first call when the data are held in memory and
        it fits the budget; None (and :attr:`product_path` ``"recomputed"``) otherwise."""
        if self.product_path is None:
            self.product_path = "recomputed"
            if isinstance(self._batches, tuple) and self._batches:
                self._graph = self._build_graph()
                if self._graph is not None:
                    self.product_path = "kept graph"
        return self._graph

    def _build_graph(self) -> Any:
        """The Hessian's: the gradient of the summed batch losses, with its graph (``create_graph``)."""
        leaves = self._leaves()
        with eval_mode(self._model), torch.enable_grad():
            losses = self._forward_within_budget(lambda x, y: self._batch_loss(leaves, x, y))
            if losses is None:
                return None
            total = torch.stack(losses).sum() if len(losses) > 1 else losses[0]
            g = torch.autograd.grad(total, leaves, create_graph=True, allow_unused=True, materialize_grads=True)
        return _GradGraph(leaves, g, float(total.detach()))

    def _forward_within_budget(self, step: Callable[[Any, Any], Tensor]) -> list[Tensor] | None:
        """``step(x, y)`` on every batch (their graphs kept), or None when the estimate from the first batch —
        the storages its forward saves for backward, × 3 for the graph built on top, × the batches — is over the budget."""
        assert isinstance(self._batches, tuple)
        saved: dict[tuple[torch.device, int], int] = {}

        def pack(t: Tensor) -> Tensor:
            saved[(t.device, t.untyped_storage().data_ptr())] = t.untyped_storage().nbytes()
            return t

        out = []
        for i, (x, y) in enumerate(self._batches):
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t) if i == 0 else contextlib.nullcontext():
                out.append(step(x, y))
            if i == 0:
                self.graph_bytes = _GRAPH_PER_FORWARD * sum(saved.values()) * len(self._batches)
                if self.graph_bytes > self._graph_budget:
                    return None
        return out

    def _leaves(self) -> list[Tensor]:
        # Fresh autograd leaves aliasing the point's storage; the model's Parameters are untouched.
        return [self._tensors[n].detach().requires_grad_(True) for n in self.names]

    def _batch_loss(self, leaves: Sequence[Tensor], x: Tensor, y: Tensor) -> Tensor:
        tensors = {**self._tensors, **dict(zip(self.names, leaves, strict=True))}
        return self._per_sample(functional_call(self._model, tensors, (x,)), x, y).sum() / self.num_samples

    def _per_sample(self, out: Any, x: Any, y: Any) -> Tensor:
        """``loss_fn(out, y)``, checked to hold one loss per sample of ``x``."""
        per = self._loss_fn(out, y)
        if tuple(per.shape) != (batch_size_of(x),):
            raise HessianError(f"loss_fn must return per-sample losses of shape ({batch_size_of(x)},), "
                               f"got {tuple(per.shape)}")
        return per

    def _checked_vector(self, v: Sequence[Tensor]) -> list[Tensor]:
        if len(v) != len(self.names):
            raise HessianError(f"vector has {len(v)} tensors, the problem has {len(self.names)} ({', '.join(self.names)})")
        out = []
        for t, name, shape, dtype in zip(v, self.names, self.shapes, self.dtypes, strict=True):
            if t.shape != shape:
                raise HessianError(f"vector tensor for {name!r} has shape {tuple(t.shape)}, expected {tuple(shape)}")
            out.append(t.detach().to(device=self.device, dtype=dtype))
        return out


def _point_tensors(model: nn.Module, params: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Detached parameters of ``model`` with ``params`` (parameters or buffers) overriding them."""
    own = {k: p.detach() for k, p in model.named_parameters()}
    known = own | {k: b.detach() for k, b in model.named_buffers()}
    for k, t in params.items():
        if k not in known:
            raise HessianError(f"params override {k!r} is neither a parameter nor a buffer of the model")
        if t.shape != known[k].shape:
            raise HessianError(f"params override {k!r} has shape {tuple(t.shape)}, the model has {tuple(known[k].shape)}")
    return own | {k: t.detach() for k, t in params.items()}


def _checked_names(names: Sequence[str], tensors: Mapping[str, Tensor]) -> tuple[str, ...]:
    if isinstance(names, str):
        raise HessianError(f"names must be a sequence of parameter names, got the string {names!r}")
    if not names:
        raise HessianError("names is empty: choose at least one parameter to restrict the Hessian to")
    if len(set(names)) != len(names):
        raise HessianError(f"names has duplicates: {list(names)}")
    for n in names:
        if n not in tensors:
            raise HessianError(f"unknown parameter {n!r}; the model has {', '.join(tensors)}")
        if not tensors[n].is_floating_point():
            raise HessianError(f"parameter {n!r} has dtype {tensors[n].dtype}; the Hessian needs floating point")
    return tuple(names)


def _grad(output: Tensor, inputs: Sequence[Tensor], *, create_graph: bool = False) -> tuple[Tensor, ...]:
    # allow_unused + materialize_grads: a parameter the loss ignores has a zero gradient.
    return torch.autograd.grad(output, inputs, create_graph=create_graph, allow_unused=True,
                               materialize_grads=True)


class _Operator:
    """``v ↦ Hv`` on flat float64 vectors, counting HVPs (the algorithms' only cost)."""

    def __init__(self, problem: HessianProblem) -> None:
        self.problem = problem
        self.calls = 0

    def __call__(self, v: Tensor) -> Tensor:
        self.calls += 1
        return self.problem.hvp_flat(v)

    def many(self, vs: Tensor) -> Tensor:
        """The products of the rows of ``vs`` (K, P), ``problem.products_per_call`` rows per call."""
        self.calls += len(vs)
        step = self.problem.products_per_call  # (one row: hvp_many is hvp_flat)
        return torch.cat([self.problem.hvp_many(vs[i : i + step]) for i in range(0, len(vs), step)])


def _random_unit(generator: torch.Generator, dim: int, device: torch.device) -> Tensor:
    # Drawn on the CPU so a seed gives the same start vector on any device.
    v = torch.randn(dim, generator=generator, dtype=torch.float64)
    unit: Tensor = (v / v.norm()).to(device)
    return unit


def _orthogonalize_(w: Tensor, basis: Tensor) -> Tensor:
    """Remove from ``w`` (in place) its components along the orthonormal rows of ``basis`` (j, P).

    Classical Gram–Schmidt applied twice ("twice is enough", Kahan–Parlett), which keeps the
    Lanczos basis orthogonal to working precision.
    """
    for _ in range(2):
        w.sub_(basis.T @ (basis @ w))
    return w


def _wanted(num: int, k: int, which: Which) -> list[int]:
    """Indices (into ascending Ritz values) of the requested end(s) of the spectrum, descending."""
    top = list(range(max(num - k, 0), num))
    bottom = list(range(min(k, num)))
    picked = {"largest": top, "smallest": bottom, "both": sorted(set(top) | set(bottom))}[which]
    return picked[::-1]


def lanczos(problem: HessianProblem, k: int, *, max_iter: int = 100, tol: float = 1e-6, seed: int = 0,
            which: Which = "largest", relative_to: RelativeTo = "eigenvalue", vectors: bool = True) -> EigenResult:
    """Extreme eigenpairs of the Hessian by the Lanczos algorithm with full reorthogonalization.

    The Krylov basis ``Q`` (m, P) is kept in float64 on the problem's device and every new
    vector is reorthogonalized against all of it, so there are no ghost eigenvalues. After
    each step the tridiagonal ``T_m = QᵀHQ`` is diagonalized (``numpy.linalg.eigh``); Ritz
    pair i has the residual bound ``|β_m · s_{m,i}|`` (s_{m,i}: last entry of T's i-th
    eigenvector). Iteration stops when every requested Ritz value has residual
    ``< tol · max(|λ_i|, eps^(2/3)·‖T‖)`` (``relative_to="eigenvalue"``, ARPACK's test) or
    ``< tol · ‖T‖`` (``"norm"``), or after ``min(max_iter, P)`` HVPs. ``which`` picks the
    k algebraically largest, k smallest, or both (up to 2k values). If the Krylov space
    becomes invariant before k values exist, it restarts from a fresh orthogonal vector. As any
    single-vector Krylov method it may see a repeated eigenvalue only once.

    Memory: the basis takes ``min(max_iter, P) × P`` float64 values on the device.
    """
    if which not in get_args(Which):
        raise HessianError(f"unknown which {which!r}; choose one of {', '.join(get_args(Which))}")
    if relative_to not in get_args(RelativeTo):
        raise HessianError(f"unknown relative_to {relative_to!r}; choose one of {', '.join(get_args(RelativeTo))}")
    if k < 1 or k > problem.dim:
        raise HessianError(f"k must be between 1 and the number of parameters ({problem.dim}), got {k}")
    if max_iter < 1:
        raise HessianError(f"max_iter must be at least 1, got {max_iter}")
    if not tol > 0:
        raise HessianError(f"tol must be positive, got {tol}")
    start = time.perf_counter()
    op, gen = _Operator(problem), torch.Generator().manual_seed(seed)
    steps = min(max_iter, problem.dim)
    needed = min(2 * k if which == "both" else k, problem.dim)
    basis = torch.empty((steps, problem.dim), dtype=torch.float64, device=problem.device)
    basis[0] = _random_unit(gen, problem.dim, problem.device)
    alpha: list[float] = []
    beta: list[float] = []  # beta[j] couples q_j and q_{j+1}
    hq_max = 0.0
    for j in range(steps):
        w = op(basis[j])
        hq_max = max(hq_max, float(w.norm()))
        alpha.append(float(basis[j] @ w))
        _orthogonalize_(w, basis[: j + 1])  # removes α_j q_j and β_{j-1} q_{j-1} too
        beta.append(float(w.norm()))
        theta, s = np.linalg.eigh(_tridiagonal(alpha, beta[:-1]))
        idx = _wanted(j + 1, k, which)
        residuals = np.abs(beta[-1] * s[-1, idx])
        scale = float(np.max(np.abs(theta)))  # ‖T‖
        done = residuals < tol * (scale if relative_to == "norm" else np.maximum(np.abs(theta[idx]), _EPS23 * scale))
        breakdown = beta[-1] <= _BREAKDOWN * hq_max
        if j + 1 == steps or (j + 1 >= needed and (done.all() or breakdown)):
            break
        if breakdown:  # invariant subspace, too few Ritz values: restart orthogonally (T splits)
            beta[-1] = 0.0
            w = _orthogonalize_(_random_unit(gen, problem.dim, problem.device), basis[: j + 1])
        basis[j + 1] = w / w.norm()
    if beta[-1] <= _BREAKDOWN * hq_max:  # exact invariant subspace: the Ritz pairs are eigenpairs
        residuals, done = np.zeros_like(residuals), np.ones_like(done)
    m = len(alpha)
    vecs = None
    if vectors:  # y_i = Qᵀ s_i: (P, m) @ (m, r) -> (P, r), one column per requested Ritz pair
        y = basis[:m].T @ torch.from_numpy(np.ascontiguousarray(s[:, idx])).to(basis.device)
        vecs = tuple(tuple(problem.unflatten(y[:, i] / y[:, i].norm())) for i in range(y.shape[1]))
    return EigenResult(tuple(float(t) for t in theta[idx]), vecs, tuple(float(r) for r in residuals),
                       tuple(bool(c) for c in done), m, op.calls, time.perf_counter() - start, "lanczos")


def _tridiagonal(alpha: Sequence[float], offdiag: Sequence[float]) -> np.ndarray:
    off = np.asarray(offdiag, dtype=np.float64)  # (m - 1,); np.diag of an empty one is the 1 × 1 zero
    return np.diag(np.asarray(alpha, dtype=np.float64)) + np.diag(off, 1) + np.diag(off, -1)


def eig_extremes(problem: HessianProblem, *, tol: float = 1e-3, max_iter: int = 100,
                 seed: int = 0) -> tuple[float, float, EigenResult]:
    """(λmax, λmin) — λmin the algebraically smallest, i.e. most negative — for |λmin/λmax| maps.

    Both come from ONE Lanczos run (``which="both"``): Krylov methods converge at both ends
    of the spectrum at once, so this is cheaper and more accurate than the shift-and-repeat
    route (top eigenvalue of ``H − λmax I``), whose second run has a gap ratio near 1. The
    test is relative to ‖H‖ (``relative_to="norm"``): each Ritz value is then within
    ``tol·|λmax|`` of an eigenvalue, so the ratio ``|λmin/λmax|`` is accurate to about ``tol``
    even when λmin is tiny — an eigenvalue-relative test could never be met for λmin ≈ 0.
    The default ``tol = 1e-3`` is meant for maps evaluated at every grid point; the HVP count
    per point is in the returned :class:`EigenResult`.
    """
    res = lanczos(problem, 1, max_iter=max_iter, tol=tol, seed=seed, which="both", relative_to="norm",
                  vectors=False)
    return res.eigenvalues[0], res.eigenvalues[-1], res


def hutchinson_trace(problem: HessianProblem, *, samples: int = 100, seed: int = 0) -> TraceResult:
    """Hutchinson's estimator ``tr H ≈ (1/n) Σ zᵀHz`` with Rademacher probes ``z ∈ {±1}^P``.

    Each probe is unbiased with variance ``2 Σ_{i≠j} H_ij²``; the reported standard error is
    the sample standard deviation over √n and the 95 % interval is ``estimate ± 1.96·stderr``
    (normal approximation, honest for n ≳ 30).
    """
    if samples < 2:
        raise HessianError(f"samples must be at least 2 to estimate an error, got {samples}")
    start = time.perf_counter()
    op, gen = _Operator(problem), torch.Generator().manual_seed(seed)
    draws = torch.empty(samples, dtype=torch.float64, device=problem.device)
    for lo in range(0, samples, problem.products_per_call):
        hi = min(lo + problem.products_per_call, samples)  # probes drawn one by one: the same for any chunking
        z = torch.stack([torch.randint(0, 2, (problem.dim,), generator=gen) * 2 - 1 for _ in range(lo, hi)])
        z = z.to(problem.device, torch.float64)
        draws[lo:hi] = (z * op.many(z)).sum(dim=1)
    estimate = float(draws.mean())
    stderr = float(draws.std(correction=1)) / math.sqrt(samples)
    half = _Z95 * stderr
    return TraceResult(estimate, stderr, (estimate - half, estimate + half), samples, op.calls,
                       time.perf_counter() - start)


def exact_trace(problem: HessianProblem) -> TraceResult:
    """``tr H = Σ_i e_iᵀ H e_i`` by probing every basis vector: P HVPs, for tiny problems."""
    start = time.perf_counter()
    op, step, diagonal = _Operator(problem), problem.products_per_call, []
    for lo in range(0, problem.dim, step):
        eye = torch.zeros(min(step, problem.dim - lo), problem.dim, dtype=torch.float64, device=problem.device)
        rows = torch.arange(len(eye), device=problem.device)
        eye[rows, lo + rows] = 1.0
        diagonal += op.many(eye)[rows, lo + rows].tolist()
    total = math.fsum(diagonal)
    return TraceResult(total, 0.0, (total, total), problem.dim, problem.dim, time.perf_counter() - start)
