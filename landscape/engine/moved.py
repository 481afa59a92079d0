"""The tensors a grid point moves, ``θ(α, β) = θ* + α·δ + β·η``, kept together as one small type."""

from __future__ import annotations

import copy
import fnmatch
import json
from collections.abc import Callable, Collection, Mapping, Sequence

import torch
from torch import Tensor, nn

from landscape.engine.directions import Directions, nonzero, target_tensors
from landscape.engine.filters import deparametrize_
from landscape.errors import ConfigError

ParamSelector = str | Sequence[str] | Callable[[str], bool] | None


def selector(params: ParamSelector) -> Callable[[str], bool] | None:
    """``params`` as a predicate on tensor names: glob patterns (``"blocks.*.attn.*"``), a list of
    them (any may match), or a predicate itself; None moves every tensor."""
    if params is None:
        return None
    if callable(params):
        return params
    patterns = [params] if isinstance(params, str) else list(params)
    if not patterns or not all(isinstance(p, str) and p for p in patterns):
        raise ConfigError(f"params must be glob patterns on parameter names or a predicate, got {params!r}")
    return lambda name: any(fnmatch.fnmatchcase(name, p) for p in patterns)


def params_label(params: ParamSelector) -> str:
    """``params`` as saved with the directions it chose: its glob patterns (JSON), or ``predicate``."""
    if callable(params):
        return "predicate"
    return json.dumps([params] if isinstance(params, str) else list(params or []))


def moved_names(directions: Directions, moved: Callable[[str], bool] | None = None) -> list[str]:
    """Names of the tensors a point rewrites: a non-zero direction, and selected by ``moved``."""
    ys = directions.y or {}
    names = [k for k in directions.x if (moved is None or moved(k))
             and (nonzero(directions.x[k]) or (k in ys and nonzero(ys[k])))]
    if moved is not None and not names:
        raise ConfigError("params selects no tensor with a non-zero direction; names look like "
                          f"{', '.join(list(directions.x)[:4])}")
    return names


def working_copy(model: nn.Module, own: Collection[str], device: torch.device, *, effective: bool = False) -> nn.Module:
    """A copy of ``model`` on ``device`` (eval mode, no gradients) that holds its own storage only
    for the parameters named in ``own`` (those a point rewrites) and for every buffer.

    Every other parameter is a new tensor object over the caller's storage: never written, and
    swapping its ``.data`` (a layout or device change) leaves the caller's alone. So the copy
    costs the moved tensors' bytes, not the model's (``copy.deepcopy`` with those tensors
    pre-entered in its memo; buffers, modules, hooks and other attributes are copied as usual).
    Buffers are always the copy's own: they are small, and a user's forward or a BatchNorm
    re-estimate may write into them, which must never reach the caller's model.
    With ``effective``, every parametrization (``weight_norm``, ``spectral_norm``, ...) is removed
    from the copy, its tensor left at the effective value the forward uses, a plain tensor of the
    copy's own under the module's name (``0.weight``): a point writes that weight itself.
    """
    own = set(own)

    def placed(t: Tensor, owned: bool) -> Tensor:
        there = t.detach().to(device)  # the same tensor when it is already there, else the device's own copy
        return there.clone() if owned and there.data_ptr() == t.data_ptr() else there

    # a Parameter subclass (quantized weights...) is copied by its own __deepcopy__
    memo: dict[int, object] = {id(p): nn.Parameter(placed(p, name in own), requires_grad=False)
                               for name, p in model.named_parameters() if type(p) is nn.Parameter}
    work = copy.deepcopy(model, memo).eval()  # eval first: a spectral_norm in training mode would step its power iteration
    if effective:
        deparametrize_(work)
    work = work.to(device).eval()
    for p in work.parameters():
        p.requires_grad_(False)
    return work


class MovedTensors:
    """Names, working tensors, origin and directions of every tensor a point rewrites.

    ``params`` are the working model's own tensors (written in place at every point); ``origin``
    the pristine values θ*. The origin and the directions may alias the caller's tensors (never
    written to), in any memory layout: the model, its moved tensors once more and the two
    directions are all a surface holds. A tensor may carry an affine map (``scale``, ``shift``),
    ``θ = s·(θ* + α·δ + β·η) + t``: a BatchNorm folded into the convolution before it, applied on
    the fly so that no scaled copy of the origin or the directions is kept.
    """

    def __init__(self, names: list[str], params: list[Tensor], origin: list[Tensor], dx: list[Tensor],
                 dy: list[Tensor] | None, affine: Mapping[str, tuple[Tensor, Tensor | None]] | None = None) -> None:
        self.names, self.params, self.origin, self.dx, self.dy = names, params, origin, dx, dy
        self.affine: dict[str, tuple[Tensor, Tensor | None]] = dict(affine or {})

    @classmethod
    def build(cls, work: nn.Module, directions: Directions, device: torch.device, *,
              pristine: nn.Module | None = None, moved: Callable[[str], bool] | None = None) -> MovedTensors:
        """The tensors of ``work`` with a non-zero direction (and selected by ``moved``).

        ``pristine`` (the caller's model, same values) supplies the origin where its tensor is
        already on ``device`` with the same dtype (in any layout); elsewhere the origin is a copy.
        """
        targets = target_tensors(work, directions.dir_type)
        source = target_tensors(pristine, directions.dir_type) if pristine is not None else {}
        ys = directions.y or {}
        names = moved_names(directions, moved)
        params = [targets[k] for k in names]
        origin: list[Tensor] = []
        for k, p in zip(names, params, strict=True):
            s = source.get(k)
            usable = s is not None and s.device == p.device and s.dtype == p.dtype
            origin.append(s if s is not None and usable else p.clone())
        dx = [directions.x[k].to(device, p.dtype) for k, p in zip(names, params, strict=True)]
        dy = [ys[k].to(device, p.dtype) for k, p in zip(names, params, strict=True)] if directions.y is not None else None
        return cls(names, params, origin, dx, dy)

    def narrow(self, keep: Sequence[int]) -> MovedTensors:
        """Only the tensors at indices ``keep`` (in order)."""
        names = [self.names[i] for i in keep]
        return MovedTensors(names, [self.params[i] for i in keep], [self.origin[i] for i in keep],
                            [self.dx[i] for i in keep], [self.dy[i] for i in keep] if self.dy is not None else None,
                            {k: v for k, v in self.affine.items() if k in names})

    def relayout(self, tensors: Mapping[str, Tensor]) -> None:
        """Point ``params`` at the tensors now called by these names (after a layout change)."""
        self.params = [tensors[k].detach() for k in self.names]

    def direction(self, i: int, which: str) -> Tensor:
        """Direction ``x`` or ``y`` of tensor ``i`` as the working tensor moves along it: times the scale of
        its affine map, if any (a new tensor then)."""
        d = self.dx[i] if which == "x" else self.dy[i]  # type: ignore[index]
        scale = self.affine.get(self.names[i], (None, None))[0]
        return d if scale is None else d * scale

    def point(self, a: float, b: float) -> dict[str, Tensor]:
        """``θ* + a·δ + b·η`` (affine maps applied) as new tensors by name (nothing is written)."""
        out = {}
        for i, k in enumerate(self.names):
            p = self.origin[i] + a * self.dx[i]
            if self.dy is not None:
                p = p + b * self.dy[i]
            out[k] = self.mapped(k, p)
        return out

    def mapped(self, name: str, p: Tensor) -> Tensor:
        """``p`` (values of tensor ``name``, possibly stacked along a leading dim) through its affine map, if any."""
        return self._map(name, p, inplace=False)

    def _map(self, name: str, p: Tensor, inplace: bool) -> Tensor:
        scale, shift = self.affine.get(name, (None, None))
        if scale is None:
            return p
        p = p.mul_(scale) if inplace else p * scale
        if shift is not None:
            p = p.add_(shift) if inplace else p + shift
        return p

    @torch.no_grad()
    def set_point(self, a: float, b: float) -> None:
        """``θ = θ* + a·δ + b·η`` written into ``params`` (from the origin: no drift; in place: no temporaries)."""
        if not self.params:
            return
        torch._foreach_copy_(self.params, self.origin)
        torch._foreach_add_(self.params, self.dx, alpha=a)
        if self.dy is not None:
            torch._foreach_add_(self.params, self.dy, alpha=b)
        self._apply_affine()

    def _apply_affine(self) -> None:
        if not self.affine:
            return
        for k, p in zip(self.names, self.params, strict=True):
            if k in self.affine:
                self._map(k, p, inplace=True)

    @torch.no_grad()
    def reset(self) -> None:
        """Back to θ* (through the affine maps)."""
        if self.params:
            torch._foreach_copy_(self.params, self.origin)
            self._apply_affine()
