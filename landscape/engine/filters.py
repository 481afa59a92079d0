"""What a filter is, per layer type, and the effective weights of parametrized layers.

Filter normalization (Li et al., 2018) rescales a direction filter by filter, ``d_f ← d_f ·
‖θ_f‖ / ‖d_f‖``. A filter is one *output unit* of the layer that owns the tensor: what one
output neuron or channel reads. That follows what the layer computes, not the tensor's layout:

================================  =====================================  ================================
module (and subclasses)           tensor                                  one filter
================================  =====================================  ================================
``Linear``, ``Bilinear``          ``weight`` (out, in[, in2])             a row (dim 0)
``Conv1d/2d/3d`` (any groups)     ``weight`` (out, in/groups, k…)         dim 0: one output channel (a
                                                                          grouped or depthwise channel
                                                                          reads only its group's inputs)
``ConvTranspose1d/2d/3d``         ``weight`` (in, out/groups, k…)         output channel ``g·out/groups
                                                                          + j``: the slice ``[g-th group
                                                                          of in, j, …]`` (dim 1 per group)
``transformers`` ``Conv1D``       ``weight`` (in, out)                    a column (dim 1)
``MultiheadAttention``            ``in_proj_weight`` (3E, E),             a row: one output unit of q,
                                  ``q/k/v_proj_weight``                   k or v; ``out_proj`` is a Linear
                                  ``bias_k``, ``bias_v`` (1, 1, E)        biases (the ignore rule)
``Embedding``, ``EmbeddingBag``   ``weight`` (tokens, dim)                a row: one token's vector
``RNN``, ``LSTM``, ``GRU``        ``weight_ih_l*``, ``weight_hh_l*``,     a row: one gate unit's output
                                  ``weight_hr_l*`` (stacked gates)        (a projection unit for hr)
anything with ndim ≤ 1            biases, norm layers' affine, stats      none: the ignore rule applies
any other module                  ndim > 1                                dim 0 (a slice along dim 0)
================================  =====================================  ================================

``transformers``' ``Conv1D`` is recognised by its class name (and its ``nf`` = out), so
``transformers`` stays optional. A user registers a rule for a layer of their own with
:func:`register_filter_rule`; the rule of the most specific class in a module's MRO applies.

Parametrized tensors (``torch.nn.utils.parametrize``: ``weight_norm``, ``spectral_norm``, a
user's own) are seen through their effective value, the one the forward uses, under the
module's tensor name (``0.weight``, not ``0.parametrizations.weight.original0``):
:func:`effective_model` and :func:`deparametrize_`.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

from landscape.errors import ConfigError, DirectionError


@dataclass(frozen=True)
class Filters:
    """How a tensor splits into filters: viewed with ``shape`` (a reshape of it), every index
    along the axes ``units`` of that view is one filter (its entries: all the other axes).

    ``Filters((out, in), (0,))`` is a row per output unit; a ``ConvTranspose2d`` with ``groups``
    viewed as ``(groups, in/groups, out/groups, k·k)`` has units ``(0, 2)``: group and channel.
    """

    shape: tuple[int, ...]
    units: tuple[int, ...]

    @classmethod
    def along(cls, t: Tensor, dim: int) -> Filters:
        """One filter per index along ``dim`` of ``t`` as it is laid out."""
        return cls(tuple(t.shape), (dim % t.ndim,))

    def count(self) -> int:
        """How many filters."""
        return math.prod(self.shape[i] for i in self.units)

    def norms(self, t: Tensor) -> Tensor:
        """Each filter's 2-norm, shaped to broadcast against ``t.reshape(self.shape)``."""
        view = t.reshape(self.shape)
        rest = tuple(i for i in range(view.ndim) if i not in self.units)
        return torch.linalg.vector_norm(view, dim=rest, keepdim=True) if rest else view.abs()


# (module, tensor name within it, tensor) -> its filters, or None: not a filter tensor (a bias), the ignore rule applies
FilterRule = Callable[[nn.Module, str, Tensor], Filters | None]


def rows(module: nn.Module, name: str, t: Tensor) -> Filters | None:
    """The default rule: a slice along dim 0 is a filter (ndim > 1); ndim ≤ 1 is a bias."""
    return Filters((t.shape[0], t.numel() // max(t.shape[0], 1)), (0,)) if t.ndim > 1 else None


def _along(dim: int) -> FilterRule:
    """Tensors with ndim > 1 split along ``dim``; ndim ≤ 1 are biases."""
    def rule(module: nn.Module, name: str, t: Tensor) -> Filters | None:
        if t.ndim <= 1:
            return None
        if not -t.ndim <= dim < t.ndim:
            raise DirectionError(f"the filter rule of {type(module).__name__} splits along dim {dim}, "
                                 f"but {name!r} has shape {tuple(t.shape)}")
        return Filters.along(t, dim)
    return rule


def _conv_transpose(module: nn.Module, name: str, t: Tensor) -> Filters | None:
    """(in, out/groups, k…): output channel ``g·(out/groups) + j`` reads the g-th block of inputs at index j of dim 1."""
    groups = int(getattr(module, "groups", 1))
    if name != "weight" or t.ndim < 2 or t.shape[0] % groups:
        return rows(module, name, t)
    per_group_in, per_group_out = t.shape[0] // groups, t.shape[1]
    return Filters((groups, per_group_in, per_group_out, t.numel() // max(t.shape[0] * per_group_out, 1)), (0, 2))


def _attention(module: nn.Module, name: str, t: Tensor) -> Filters | None:
    """``in_proj_weight`` (3E, E) stacks q, k and v: a row is one output unit of one of them;
    ``bias_k``/``bias_v`` (1, 1, E) are biases appended to the keys and values."""
    return None if name in ("bias_k", "bias_v") else rows(module, name, t)


_BY_TYPE: dict[type[nn.Module], FilterRule] = {
    nn.Linear: rows,
    nn.Bilinear: rows,
    nn.modules.conv._ConvNd: rows,  # Conv1d/2d/3d, grouped and depthwise included
    nn.modules.conv._ConvTransposeNd: _conv_transpose,
    nn.MultiheadAttention: _attention,
    nn.Embedding: rows,
    nn.EmbeddingBag: rows,
    nn.RNNBase: rows,  # RNN, LSTM, GRU: gate units stacked along dim 0
}
# transformers.pytorch_utils.Conv1D stores its weight as (in, out) = (nx, nf): an output unit is a column
_BY_NAME: dict[str, FilterRule] = {"Conv1D": _along(1)}


def register_filter_rule(layer: type[nn.Module] | str, rule: FilterRule | int) -> None:
    """Say what a filter is for the tensors of a layer type (and its subclasses) of your own.

    Args:
        layer: the module class, or its class name (to match a class without importing it).
        rule: the dim of the weight along which output units lie (an ``int``: tensors with
            ndim > 1 are split along it, ndim ≤ 1 are biases), or a function
            ``rule(module, tensor_name, tensor) -> Filters | None`` (None: a bias, left to the
            ``ignore`` rule).

    A later registration for the same layer replaces the earlier one.
    """
    if isinstance(rule, bool) or not (isinstance(rule, int) or callable(rule)):
        raise ConfigError(f"a filter rule is an output dim (int) or a function (module, name, tensor) -> Filters | None, got {rule!r}")
    fn = _along(rule) if isinstance(rule, int) else rule
    if isinstance(layer, str) and layer:
        _BY_NAME[layer] = fn
    elif isinstance(layer, type) and issubclass(layer, nn.Module):
        _BY_TYPE[layer] = fn
    else:
        raise ConfigError(f"register_filter_rule takes an nn.Module subclass or a class name, got {layer!r}")


def rule_for(module: nn.Module) -> FilterRule:
    """The rule of the most specific class in ``type(module).__mro__`` that has one (by type or by name), else :func:`rows`."""
    for cls in type(module).__mro__:
        if cls in _BY_TYPE:
            return _BY_TYPE[cls]
        if cls.__name__ in _BY_NAME:
            return _BY_NAME[cls.__name__]
    return rows


def filters_of(model: nn.Module, name: str, t: Tensor) -> Filters | None:
    """The filters of tensor ``name`` of ``model`` (a parameter or buffer) by the rule of the module that owns it."""
    owner_name, _, local = name.rpartition(".")
    try:
        owner = model.get_submodule(owner_name)
    except AttributeError:
        owner = model
    found = rule_for(owner)(owner, local, t)
    if found is not None and (math.prod(found.shape) != t.numel() or not found.units
                              or any(not 0 <= i < len(found.shape) for i in found.units)):
        raise DirectionError(f"the filter rule of {type(owner).__name__} gives {found} for {name!r} of shape "
                             f"{tuple(t.shape)}: the shape must hold its {t.numel()} entries and units name its axes")
    return found


# --- parametrized tensors ---------------------------------------------------------------------------------------


def is_parametrized(model: nn.Module) -> bool:
    return any(parametrize.is_parametrized(m) for m in model.modules())


@torch.no_grad()
def deparametrize_(model: nn.Module) -> nn.Module:
    """Replace every parametrization of ``model`` (in place) by its effective tensor, as a plain
    parameter (or buffer) under the module's own name; call it on a copy in eval mode (a
    ``spectral_norm`` in training mode would run a power iteration step and write its vectors).

    Not ``parametrize.remove_parametrizations``: that deletes the tensor's property from the
    module's class, which a deep copy shares with the caller's model. Here each module of the
    copy gets its class from before the parametrization back (the one the injected
    ``Parametrized…`` class derives from), and the caller's classes are left alone.
    """
    for module in list(model.modules()):
        if not parametrize.is_parametrized(module):
            continue
        values: dict[str, tuple[Tensor, bool]] = {}
        for name, plist in module.parametrizations.items():  # type: ignore[union-attr, operator]
            original = plist.original if hasattr(plist, "original") else plist.original0
            # the forward's tensor, computed afresh (its own storage); a parameter stays one
            values[name] = (getattr(module, name).detach(), isinstance(original, nn.Parameter))
        del module._modules["parametrizations"]
        module.__class__ = module.__class__.__bases__[0]
        for name, (value, was_parameter) in values.items():
            if was_parameter:
                module.register_parameter(name, nn.Parameter(value, requires_grad=False))
            else:
                module.register_buffer(name, value)
    return model


def effective_model(model: nn.Module) -> nn.Module:
    """``model`` itself, or when it has parametrized tensors a copy (eval mode) in which they are
    plain tensors at their effective values: parameters alias ``model``'s, buffers are copied,
    so ``model`` is never written to."""
    if not is_parametrized(model):
        return model
    memo: dict[int, object] = {id(p): nn.Parameter(p.detach(), requires_grad=False)
                               for p in model.parameters() if type(p) is nn.Parameter}
    return deparametrize_(copy.deepcopy(model, memo).eval())
