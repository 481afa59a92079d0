"""Set-up rewrites of the surface engine: stand-ins that compute the same values faster.

- :class:`LinearStem` replaces the first layer, whose output is linear in (α, β);
- :class:`FastConv` folds a ReLU (or a residual add and a ReLU) into the convolution before it;
- :class:`MaxPool2x2` swaps a 2×2 max-pool for two elementwise maxima;
- :func:`fuse_traced` traces a forward with ``torch.fx`` and applies the last two.

These are the engine's public passes and stand-ins; :class:`~landscape.engine.surface.SurfaceEngine`
decides their order and checks every rewrite against the unmodified model before it keeps it.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from typing import TypeGuard

import torch
from torch import Tensor, nn

__all__ = ["FastConv", "LinearStem", "MaxPool2x2", "StopForward", "fast_conv_available", "fuse_traced", "in_layout_of",
           "is_bn"]


def is_bn(m: nn.Module) -> TypeGuard[nn.modules.batchnorm._BatchNorm]:
    """A BatchNorm of any dimension."""
    return isinstance(m, nn.modules.batchnorm._BatchNorm)


def in_layout_of(ref: Tensor, t: Tensor) -> Tensor:
    """``t``'s values in ``ref``'s memory layout (strides), so elementwise ops on the two run fast
    (``t`` itself when its layout already is: no second copy of a first-layer cache)."""
    return t if t.stride() == ref.stride() else torch.empty_like(ref).copy_(t)


class StopForward(Exception):
    """Raised by a hook to end a forward pass once the layer it watches has run."""


class LinearStem(nn.Module):
    """Stands in for the first layer, whose output is linear in its weights for fixed input.

    ``W(α, β)·x = W*·x + α·(δ·x) + β·(η·x)``: the three terms are computed once per batch, so a
    grid point costs two axpys instead of the layer. ``coef`` holds (α, β); under ``vmap`` it is
    stacked to (K, 2) like any other tensor. ``key`` names the batch being evaluated.
    """

    coef: Tensor
    cache: dict[tuple[str, int], tuple[Tensor, Tensor, Tensor | None]]
    key: tuple[str, int]
    point: tuple[float, float] | None
    relu: bool  # also apply the ReLU that follows it in the traced forward (see fuse_traced)

    def __init__(self, cache: dict[tuple[str, int], tuple[Tensor, Tensor, Tensor | None]], device: torch.device) -> None:
        super().__init__()
        self.register_buffer("coef", torch.zeros(2, device=device))
        self.cache = cache
        self.key: tuple[str, int] = ("", 0)
        self.point: tuple[float, float] | None = None
        self.relu = False

    def clone(self) -> LinearStem:
        """A copy that shares the cache: it is read-only, and it can be as large as the data's first layer."""
        twin = LinearStem(self.cache, self.coef.device)
        twin.coef.copy_(self.coef)
        twin.key, twin.point, twin.relu = self.key, self.point, self.relu
        return twin

    def __deepcopy__(self, memo: dict[int, object]) -> LinearStem:
        return self.clone()

    def forward(self, x: Tensor) -> Tensor:
        base, ux, uy = self.cache[self.key]
        if self.point is not None:  # one point: two fused axpys on a fresh tensor, no tensor indexing
            out = torch.add(base, ux, alpha=self.point[0])
            if uy is not None:
                out.add_(uy, alpha=self.point[1])
            return out.clamp_min_(0.0) if self.relu else out
        out = base + self.coef[0] * ux  # K points under vmap: coef is stacked to (K, 2)
        if uy is not None:
            out = out + self.coef[1] * uy
        return torch.relu(out) if self.relu else out


class FastConv(nn.Module):
    """A Conv2d and what follows it — a ReLU, or a residual add then a ReLU — in one call to
    oneDNN's fused entry point: ``relu(conv(x) [+ other])``.

    Same values as the unfused ops; on the CPU each fused op saves a pass over the activations.
    It keeps the convolution's own parameter tensors, so parameter names and in-place point
    updates are unchanged. It has no ``vmap`` batching rule, so it is used with one point per
    call only.
    """

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__()
        self.weight = conv.weight
        self.bias = conv.bias
        self.stride, self.padding = list(conv.stride), list(conv.padding)  # type: ignore[arg-type]
        self.dilation, self.groups = list(conv.dilation), conv.groups

    @staticmethod
    def applies(conv: nn.Module) -> bool:
        return (type(conv) is nn.Conv2d and conv.padding_mode == "zeros" and isinstance(conv.padding, tuple)
                and conv.weight.dtype == torch.float32)

    def forward(self, x: Tensor, other: Tensor | None = None) -> Tensor:
        op = torch.ops.mkldnn._convolution_pointwise
        if other is None:
            return op(x, self.weight, self.bias, self.padding, self.stride, self.dilation, self.groups,  # type: ignore[no-any-return]
                      "relu", [], "")
        return op.binary(x, other, self.weight, self.bias, self.padding, self.stride, self.dilation,  # type: ignore[no-any-return]
                         self.groups, "add", None, "relu", [], "")


class MaxPool2x2(nn.Module):
    """A 2×2, stride-2 MaxPool2d as two elementwise maxima (rows, then columns).

    Exactly the same values; on the CPU with channels-last activations it is about twice as fast
    as the pooling kernel (which also computes indices). Odd sizes fall back to the pool itself.
    """

    def __init__(self, pool: nn.MaxPool2d) -> None:
        super().__init__()
        self.pool = pool

    @staticmethod
    def applies(pool: nn.Module) -> bool:
        def pair(v: object) -> tuple[object, ...]:
            return tuple(v) if isinstance(v, tuple | list) else (v, v)
        return (type(pool) is nn.MaxPool2d and pair(pool.kernel_size) == (2, 2) and pair(pool.stride) == (2, 2)
                and pair(pool.padding) == (0, 0) and pair(pool.dilation) == (1, 1) and not pool.return_indices)

    def forward(self, x: Tensor) -> Tensor:
        if x.ndim != 4 or x.shape[-2] % 2 or x.shape[-1] % 2:
            return self.pool(x)  # type: ignore[no-any-return]
        rows = torch.maximum(x[:, :, 0::2], x[:, :, 1::2])
        return torch.maximum(rows[:, :, :, 0::2], rows[:, :, :, 1::2])


class _Tracer(torch.fx.Tracer):
    """Traces through everything but the engine's own stand-ins, which keep per-point state or
    branch on shapes."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, LinearStem | MaxPool2x2) or super().is_leaf_module(m, module_qualified_name)


def _is_relu(node: torch.fx.Node | None, modules: Mapping[str, nn.Module]) -> bool:
    if node is None:
        return False
    if node.op == "call_function":
        return node.target in (torch.relu, torch.relu_, nn.functional.relu)
    if node.op == "call_method":
        return node.target in ("relu", "relu_")
    return node.op == "call_module" and type(modules[str(node.target)]) is nn.ReLU


def _only_user(node: torch.fx.Node) -> torch.fx.Node | None:
    return next(iter(node.users)) if len(node.users) == 1 else None


def fuse_traced(model: nn.Module, cpu: bool, fast_conv: bool) -> torch.fx.GraphModule | None:
    """``model`` traced, with each ReLU (and residual add) folded into the layer before it and,
    on the CPU, 2×2 max-pools swapped for :class:`MaxPool2x2`.

    The result shares ``model``'s layers and tensors (the fused convolutions hold the
    convolutions' own), so parameter names are unchanged and ``model`` itself is left as it is.
    ``None`` when the forward cannot be traced or nothing changes.
    """
    try:
        graph = _Tracer().trace(model)
    except Exception:  # tracing runs arbitrary user code on proxies: any failure means "not traceable"
        return None
    modules = dict(model.named_modules())
    for node in list(graph.nodes):  # Identity (a folded BatchNorm) would hide a ReLU from its layer
        if node.op == "call_module" and type(modules[str(node.target)]) is nn.Identity and len(node.args) == 1:
            node.replace_all_uses_with(node.args[0])
            graph.erase_node(node)
    swaps: dict[str, nn.Module] = {}
    for node in list(graph.nodes):
        if node.op != "call_module" or len(node.args) != 1 or node.kwargs:
            continue
        layer, nxt = modules[str(node.target)], _only_user(node)
        if cpu and MaxPool2x2.applies(layer):
            swaps[str(node.target)] = MaxPool2x2(layer)  # type: ignore[arg-type]
            continue
        if nxt is None:
            continue
        if isinstance(layer, LinearStem) and _is_relu(nxt, modules):
            stem = layer.clone()
            stem.relu = True
            swaps[str(node.target)] = stem
        elif fast_conv and FastConv.applies(layer) and _is_relu(nxt, modules):
            swaps[str(node.target)] = FastConv(layer)  # type: ignore[arg-type]
        elif (fast_conv and FastConv.applies(layer) and nxt.op == "call_function" and nxt.target in (operator.add, torch.add)
              and len(nxt.args) == 2 and not nxt.kwargs and all(isinstance(a, torch.fx.Node) for a in nxt.args)
              and nxt.args[0] is not nxt.args[1] and _is_relu(_only_user(nxt), modules)):
            other = nxt.args[1] if nxt.args[0] is node else nxt.args[0]
            nxt.prepend(node)  # the residual is computed before the fused call that reads it
            node.args = (node.args[0], other)
            swaps[str(node.target)] = FastConv(layer)  # type: ignore[arg-type]
            nxt.replace_all_uses_with(node)
            graph.erase_node(nxt)
            nxt = _only_user(node)
        else:
            continue
        assert nxt is not None
        nxt.replace_all_uses_with(node)
        graph.erase_node(nxt)
    if not swaps:
        return None
    graph.lint()
    fused = torch.fx.GraphModule(model, graph)
    for target, new in swaps.items():
        parent_name, _, child = target.rpartition(".")
        setattr(fused.get_submodule(parent_name), child, new)
    return fused


def fast_conv_available() -> bool:
    """oneDNN's fused convolution entry point (:class:`FastConv`) exists in this torch build."""
    return bool(torch.backends.mkldnn.is_available()) and hasattr(torch.ops.mkldnn, "_convolution_pointwise")  # type: ignore[no-untyped-call]
