"""The tensors a grid point moves, ``θ(α, β) = θ* + α·δ + β·η``, kept together as one small type."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from landscape.engine.directions import Directions, nonzero, target_tensors
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


class MovedTensors:
    """Names, working tensors, origin and directions of every tensor a point rewrites.

    ``params`` are the working model's own tensors (written in place at every point); ``origin``
    the pristine values θ*. The origin may alias the caller's tensors (never written to), which
    saves a copy of the model.
    """

    def __init__(self, names: list[str], params: list[Tensor], origin: list[Tensor], dx: list[Tensor],
                 dy: list[Tensor] | None) -> None:
        self.names, self.params, self.origin, self.dx, self.dy = names, params, origin, dx, dy

    @classmethod
    def build(cls, work: nn.Module, directions: Directions, device: torch.device, *,
              pristine: nn.Module | None = None, moved: Callable[[str], bool] | None = None) -> MovedTensors:
        """The tensors of ``work`` with a non-zero direction (and selected by ``moved``).

        ``pristine`` (the caller's model, same values) supplies the origin where its tensor is
        already on ``device`` with the same dtype; elsewhere the origin is a copy.
        """
        targets = target_tensors(work, directions.dir_type)
        source = target_tensors(pristine, directions.dir_type) if pristine is not None else {}
        ys = directions.y or {}
        names = [k for k in directions.x if (moved is None or moved(k))
                 and (nonzero(directions.x[k]) or (k in ys and nonzero(ys[k])))]
        if moved is not None and not names:
            raise ConfigError("params selects no tensor with a non-zero direction; names look like "
                              f"{', '.join(list(directions.x)[:4])}")
        params = [targets[k] for k in names]
        origin: list[Tensor] = []
        for k, p in zip(names, params, strict=True):
            s = source.get(k)
            usable = s is not None and s.device == p.device and s.dtype == p.dtype and s.stride() == p.stride()
            origin.append(s if s is not None and usable else p.clone())
        dx = [directions.x[k].to(device, p.dtype) for k, p in zip(names, params, strict=True)]
        dy = [ys[k].to(device, p.dtype) for k, p in zip(names, params, strict=True)] if directions.y is not None else None
        return cls(names, params, origin, dx, dy)

    def narrow(self, keep: Sequence[int]) -> MovedTensors:
        """Only the tensors at indices ``keep`` (in order)."""
        return MovedTensors([self.names[i] for i in keep], [self.params[i] for i in keep],
                            [self.origin[i] for i in keep], [self.dx[i] for i in keep],
                            [self.dy[i] for i in keep] if self.dy is not None else None)

    def copy(self) -> MovedTensors:
        """A shallow copy (new lists, the same tensors): to restore after a rewrite is refused."""
        return self.narrow(range(len(self.names)))

    def relayout(self, tensors: Mapping[str, Tensor]) -> None:
        """Point ``params`` at the tensors now called by these names (after a layout change)."""
        self.params = [tensors[k].detach() for k in self.names]

    def match_layout(self) -> None:
        """Origin and directions in the parameters' own memory layout (strides), so every point's
        rewrite is a plain copy and axpy (mixed layouts make it ~4× slower)."""
        def like(p: Tensor, t: Tensor) -> Tensor:
            return t if t.stride() == p.stride() else torch.empty_like(p).copy_(t)

        self.origin = [like(p, o) for p, o in zip(self.params, self.origin, strict=True)]
        self.dx = [like(p, d) for p, d in zip(self.params, self.dx, strict=True)]
        if self.dy is not None:
            self.dy = [like(p, d) for p, d in zip(self.params, self.dy, strict=True)]

    def rescale(self, name: str, param: Tensor, factor: Tensor) -> None:
        """Tensor ``name`` is now ``param``, whose values are the old ones times ``factor`` (linear in
        the weights, e.g. a folded BatchNorm): origin and directions scale alike."""
        i = self.names.index(name)
        self.params[i] = param.detach()
        self.origin[i] = self.origin[i] * factor
        self.dx[i] = self.dx[i] * factor
        if self.dy is not None:
            self.dy[i] = self.dy[i] * factor

    def point(self, a: float, b: float) -> dict[str, Tensor]:
        """``θ* + a·δ + b·η`` as new tensors by name (nothing is written)."""
        out = {}
        for i, k in enumerate(self.names):
            p = self.origin[i] + a * self.dx[i]
            out[k] = p if self.dy is None else p + b * self.dy[i]
        return out

    @torch.no_grad()
    def set_point(self, a: float, b: float) -> None:
        """``θ = θ* + a·δ + b·η`` written into ``params`` (from the origin: no drift)."""
        if not self.params:
            return
        torch._foreach_copy_(self.params, self.origin)
        torch._foreach_add_(self.params, self.dx, alpha=a)
        if self.dy is not None:
            torch._foreach_add_(self.params, self.dy, alpha=b)

    @torch.no_grad()
    def reset(self) -> None:
        """Back to θ*."""
        if self.params:
            torch._foreach_copy_(self.params, self.origin)
