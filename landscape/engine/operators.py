"""Curvature operators beside the Hessian: the generalized Gauss-Newton matrix and the empirical Fisher.

Both are positive semi-definite surrogates of the Hessian of ``L(θ) = (1/N) Σ_i ℓ(f(x_i; θ), y_i)``
and, like it, are only ever applied to a vector (never materialized):

* **GGN** ``G = (1/N) Σ_i J_iᵀ H_i J_i`` with ``J_i = ∂f(x_i)/∂θ`` the network's Jacobian and
  ``H_i = ∂²ℓ/∂f²`` the loss's Hessian in the output (Schraudolph 2002; Martens 2010). A product
  ``Gv`` is a Jacobian-vector product (forward mode, ``torch.func.jvp``) for ``u = Jv``, the
  output-space Hessian-vector product ``H_out u`` (double backprop through the loss alone, which
  is cheap: no network), and one vector-Jacobian product ``Jᵀ(H_out u)``. ``G`` drops the term
  ``Σ ∂ℓ/∂f · ∂²f/∂θ²`` of the Hessian, so it equals the Hessian when ``f`` is linear in θ.
* **Empirical Fisher** ``F = (1/N) Σ_i g_i g_iᵀ`` with ``g_i = ∇_θ ℓ_i`` the per-sample gradients
  (Amari 1998; Kunstner et al. 2019 on its limits). ``Fv = (1/N) Σ_i g_i (g_iᵀ v)``: the n numbers
  ``g_iᵀ v`` are one forward-mode JVP of the per-sample loss vector, and ``Σ_i g_i c_i`` is one
  reverse-mode VJP of it with weights ``c`` (both from :mod:`torch.func`), so the per-sample
  gradients are contracted with v and c without ever being stored (n × P would not fit for
  large models; the per-sample gradient is formed implicitly, batch by batch).

The two are :class:`~landscape.engine.hessian.HessianProblem` subclasses that override only the
product ``hvp`` (and what they keep between products): Lanczos, the traces, SLQ densities and blocks
run on them unchanged. When the data are held in memory and the graphs fit the budget, both keep the
graph of their outputs (the model's, or the per-sample losses) and, built on it, ``u ↦ Jᵀu``: ``Jv``
is then its derivative in u along v (reverse mode twice), ``Jᵀw`` a backward through the outputs'
graph, and no product runs the network forward again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Literal, NamedTuple, get_args

import torch
from torch import Tensor, nn
from torch.func import functional_call, jvp, vjp

from landscape.engine.batchloss import BatchLossModel
from landscape.engine.evaluate import eval_mode
from landscape.engine.hessian import HessianProblem, LossFn, attention_as_math
from landscape.engine.outputloss import OutputLoss, OutputModel
from landscape.errors import HessianError
from landscape.zoo.userdata import batch_size_of

OperatorName = Literal["hessian", "ggn", "fisher"]
OPERATORS: tuple[str, ...] = get_args(OperatorName)


class _ProductProblem(HessianProblem):
    """A HessianProblem whose ``hvp`` is another curvature product, built from the same inputs."""

    kind: str = "hessian"

    def _forward(self, x: Any, module: nn.Module | None = None) -> Callable[..., Any]:
        """``f(*restricted tensors) -> module(x)`` (default: the problem's model) at this point, for torch.func's transforms."""
        net = self._model if module is None else module

        def f(*chosen: Tensor) -> Any:
            return functional_call(net, {**self._tensors, **dict(zip(self.names, chosen, strict=True))}, (x,))
        return f

    def _primals(self) -> tuple[Tensor, ...]:
        return tuple(self._tensors[n].detach() for n in self.names)

    def _kept_jacobian(self, output: Callable[[list[Tensor], Any, Any], Tensor]) -> _KeptJacobian | None:
        """``output(leaves, x, y)`` of every batch with its graph, and ``Σ_b J_bᵀ u_b`` built on it with
        ``create_graph`` in dummy cotangents ``u_b``; None over the graph budget."""
        leaves = self._leaves()
        outs = self._forward_within_budget(lambda x, y: output(leaves, x, y))
        if outs is None:
            return None
        dummies = [torch.zeros_like(o, requires_grad=True) for o in outs]
        jt = torch.autograd.grad(outs, leaves, grad_outputs=dummies, create_graph=True, allow_unused=True,
                                 materialize_grads=True)
        return _KeptJacobian(leaves, outs, dummies, jt)


def _live_grad(outputs: Sequence[Tensor], inputs: Sequence[Tensor], cotangents: Sequence[Tensor]) -> list[Tensor]:
    """``Σ_k ∂⟨outputs_k, cotangents_k⟩/∂inputs`` through kept graphs; an output with no graph adds zero."""
    live = [k for k, o in enumerate(outputs) if o.requires_grad]
    if not live:
        return [torch.zeros_like(t) for t in inputs]
    return list(torch.autograd.grad([outputs[k] for k in live], inputs, grad_outputs=[cotangents[k] for k in live],
                                    retain_graph=True, allow_unused=True, materialize_grads=True))


class _KeptJacobian(NamedTuple):
    """The Jacobian J of per-batch outputs w.r.t. the leaves, from kept graphs only (no forward per product):
    ``Jᵀw`` is a backward through the outputs' graphs; ``Jv`` is the derivative of the linear map
    ``u ↦ Jᵀu`` in u along v (the "double-vjp" trick: reverse mode twice instead of forward mode)."""

    leaves: list[Tensor]
    outs: list[Tensor]
    dummies: list[Tensor]
    jt: tuple[Tensor, ...]

    def jvp(self, v: Sequence[Tensor]) -> list[Tensor]:
        return _live_grad(self.jt, self.dummies, v)

    def vjp(self, w: Sequence[Tensor]) -> list[Tensor]:
        return _live_grad(self.outs, self.leaves, w)


def _accumulate(acc: list[Tensor] | None, parts: Sequence[Tensor]) -> list[Tensor]:
    if acc is None:
        return list(parts)
    for a, part in zip(acc, parts, strict=True):
        a.add_(part)
    return acc


class GGNProblem(_ProductProblem):
    """The generalized Gauss-Newton matrix ``(1/N) Σ_i J_iᵀ H_i J_i`` of the loss, matrix-free.

    Needs the model's output: a model whose output the loss compares with targets
    (``loss_fn(output, target)``), or a batch loss given as an
    :class:`~landscape.engine.outputloss.OutputLoss` (output and loss of the output apart). Any other
    batch loss ``fn(model, batch)`` hides the output, so its GGN is refused.
    """

    kind = "ggn"

    def __init__(self, model: nn.Module, names: Sequence[str], batches: Iterable[tuple[Any, Any]],
                 loss_fn: LossFn, *, params: Mapping[str, Tensor] | None = None, **options: Any) -> None:
        self._net: nn.Module = model  # what J is of: the model, or an OutputLoss's output half
        self._output_loss: OutputLoss | None = None
        if isinstance(model, BatchLossModel):
            if not isinstance(model.fn, OutputLoss):
                raise HessianError("the GGN needs the model's output; this batch loss fn(model, batch) hides it: give it as "
                                   "landscape.OutputLoss(output=..., loss=...) (or --loss causal_lm), or use operator "
                                   "'hessian' or 'fisher'")
            self._net, self._output_loss = OutputModel(model.inner, model.fn), model.fn
        super().__init__(model, names, batches, loss_fn, params=params, **options)

    def _batch_total(self, out: Tensor, x: Any, y: Any) -> Tensor:
        """Σ over the batch's samples of the loss of ``out`` (a batch mean counts n times), over N."""
        if self._output_loss is None:
            return self._per_sample(out, x, y).sum() / self.num_samples
        n = batch_size_of(x)
        value = self._output_loss.loss(out, x)
        if not isinstance(value, Tensor) or (value.ndim and value.shape[0] != n):
            got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise HessianError(f"OutputLoss {self._output_loss.name!r}: loss(output, batch) must return per-sample losses "
                               f"({n},) or a batch mean (), got {got}")
        total = value * n if value.ndim == 0 else value.reshape(n, -1).mean(dim=1).sum()
        return total / self.num_samples

    @attention_as_math
    def hvp(self, v: Sequence[Tensor]) -> list[Tensor]:
        """``G v`` accumulated over batches: JVP ``u = Jv``, ``w = H_out u`` (double backprop through
        the loss only), VJP ``Jᵀw``. Costs about one forward with tangents, one forward and one backward;
        with the kept graph (:attr:`product_path`), three backward passes through kept graphs and no forward."""
        vs = tuple(self._checked_vector(v))
        kept = self._kept_graph()
        if kept is not None:
            jac: _KeptJacobian = kept[0]
            outs: list[Tensor] = kept[1]
            hu = _live_grad(kept[2], outs, jac.jvp(vs))  # H_out (J v), batch by batch in one call
            return jac.vjp([t.to(o.dtype) for t, o in zip(hu, outs, strict=True)])
        primals = self._primals()
        acc: list[Tensor] | None = None  # the first batch's product is kept as it is: no extra copy
        with eval_mode(self._model), torch.enable_grad():
            for x, y in self._batches:
                f = self._forward(x, self._net)
                pulled = vjp(f, *primals)
                out, vjp_fn = pulled[0], pulled[1]
                if not isinstance(out, Tensor):
                    raise HessianError(f"the GGN needs a tensor output; the model returned a {type(out).__name__}")
                u = jvp(f, primals, vs)[1]  # u = J v, shaped like the output
                o = out.detach().requires_grad_(True)
                (g,) = torch.autograd.grad(self._batch_total(o, x, y), o, create_graph=True)
                if not g.requires_grad:
                    continue  # the loss is linear in the output: H_out = 0 on this batch
                (w,) = torch.autograd.grad((g * u.detach()).sum(), o, allow_unused=True, materialize_grads=True)
                acc = _accumulate(acc, vjp_fn(w.to(out.dtype)))
        return acc if acc is not None else [torch.zeros_like(t) for t in primals]

    def _build_graph(self) -> tuple[_KeptJacobian, list[Tensor], list[Tensor]] | None:
        """(J of the outputs, the outputs as detached leaves, ∂ℓ/∂output with its graph, per batch)."""
        def output(leaves: list[Tensor], x: Any, y: Any) -> Tensor:
            out = self._forward(x, self._net)(*leaves)
            if not isinstance(out, Tensor):
                raise HessianError(f"the GGN needs a tensor output; the model returned a {type(out).__name__}")
            return out

        with eval_mode(self._model), torch.enable_grad():
            jac = self._kept_jacobian(output)
            if jac is None:
                return None
            outs = [o.detach().requires_grad_(True) for o in jac.outs]
            assert isinstance(self._batches, tuple)
            grads = [torch.autograd.grad(self._batch_total(o, x, y), o, create_graph=True)[0]
                     for o, (x, y) in zip(outs, self._batches, strict=True)]
        return jac, outs, grads


class FisherProblem(_ProductProblem):
    """The empirical Fisher ``(1/N) Σ_i g_i g_iᵀ`` (``g_i`` the per-sample loss gradients), matrix-free.

    A batch loss ``fn(model, batch)`` must return per-sample losses ``(n,)`` (or ``(n, ...)``); a batch
    mean has no per-sample gradients and is refused.
    """

    kind = "fisher"

    def __init__(self, model: nn.Module, names: Sequence[str], batches: Iterable[tuple[Any, Any]],
                 loss_fn: LossFn, *, params: Mapping[str, Tensor] | None = None, **options: Any) -> None:
        super().__init__(model, names, batches, loss_fn, params=params, **options)
        if isinstance(model, BatchLossModel):
            for batch, _ in self._batches:  # one look at the first batch: is the loss per sample?
                with torch.inference_mode():
                    value = model.fn(model.inner, batch)
                if isinstance(value, Tensor) and value.ndim == 0:
                    raise HessianError("the empirical Fisher needs per-sample losses; the batch loss returns a batch "
                                       "mean (a 0-d tensor): return the (n,) per-sample values instead")
                break

    @attention_as_math
    def hvp(self, v: Sequence[Tensor]) -> list[Tensor]:
        """``F v`` accumulated over batches: ``c = (g_iᵀ v)_i`` by one JVP of the per-sample losses,
        then ``Σ_i g_i c_i / N`` by one VJP. Costs about one forward with tangents, one forward and one backward;
        with the kept graph (:attr:`product_path`), two backward passes through kept graphs and no forward."""
        vs = tuple(self._checked_vector(v))
        kept = self._kept_graph()
        if kept is not None:
            jac: _KeptJacobian = kept
            return jac.vjp([c / self.num_samples for c in jac.jvp(vs)])
        primals = self._primals()
        acc: list[Tensor] | None = None  # the first batch's product is kept as it is: no extra copy
        with eval_mode(self._model), torch.enable_grad():
            for x, y in self._batches:
                f = self._forward(x)

                def per_sample(*chosen: Tensor, f: Callable[..., Any] = f, x: Any = x, y: Any = y) -> Tensor:
                    return self._per_sample(f(*chosen), x, y)

                vjp_fn = vjp(per_sample, *primals)[1]
                c = jvp(per_sample, primals, vs)[1]  # c_i = g_iᵀ v, (n,)
                acc = _accumulate(acc, vjp_fn(c / self.num_samples))
        return acc if acc is not None else [torch.zeros_like(t) for t in primals]

    def _build_graph(self) -> _KeptJacobian | None:
        """J of the per-sample losses (n_b,) of every batch."""
        with eval_mode(self._model), torch.enable_grad():
            return self._kept_jacobian(lambda leaves, x, y: self._per_sample(self._forward(x)(*leaves), x, y))


_KINDS: dict[str, type[HessianProblem]] = {"hessian": HessianProblem, "ggn": GGNProblem, "fisher": FisherProblem}


def check_operator(name: str) -> OperatorName:
    if name not in _KINDS:
        raise HessianError(f"unknown operator {name!r}; choose one of {', '.join(OPERATORS)}")
    return name  # type: ignore[return-value]


def curvature_problem(operator: str, model: nn.Module, names: Sequence[str], batches: Iterable[tuple[Any, Any]],
                      loss_fn: LossFn, *, params: Mapping[str, Tensor] | None = None, **options: Any) -> HessianProblem:
    """The ``operator`` (hessian, ggn or fisher) of the loss as a problem for Lanczos, traces and SLQ
    (``options``: ``graph_budget``, ``reduce``, ``products_per_call`` of :class:`~landscape.engine.hessian.HessianProblem`)."""
    return _KINDS[check_operator(operator)](model, names, batches, loss_fn, params=params, **options)


def convert(problem: HessianProblem, operator: str | None = None, names: Sequence[str] | None = None) -> HessianProblem:
    """The same model, data, loss and point as ``problem`` with another operator and/or parameter subset.

    Restricting the names gives the operator's diagonal block over those parameters.
    """
    kind = _KINDS[check_operator(operator or str(getattr(problem, "kind", "hessian")))]  # (the problem's own operator)
    # the problem's own inputs, read here (same package) rather than re-resolved from the user's data
    return kind(problem._model, problem.names if names is None else names, problem._batches,
                problem._loss_fn, params=problem._tensors, **problem._options())
