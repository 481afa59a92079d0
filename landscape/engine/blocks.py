"""Curvature per diagonal block: the operator restricted to one group of parameters at a time.

Restricting a :class:`~landscape.engine.hessian.HessianProblem` (or GGN / Fisher) to a subset S of
its parameters gives exactly the diagonal block ``A_SS`` (the product is taken with every other
parameter held at the point). Per block: the top eigenvalue (Lanczos), the trace (Hutch++ or
Hutchinson) and optionally the SLQ density — the per-layer spectra of e.g. Zhang et al. (2024),
"Why Transformers Need Adam: A Hessian Perspective".

Blocks are named by a rule: ``module`` (the tensors of one module together: weight and bias),
``layer`` (one block per tensor) or glob patterns (one block per pattern, matched on names).
"""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass

from landscape.engine.hessian import EigenResult, HessianProblem, TraceResult, lanczos
from landscape.engine.operators import convert
from landscape.engine.slq import Density, slq_density, trace
from landscape.errors import HessianError

BLOCK_RULES = ("module", "layer")


def block_groups(names: Sequence[str], spec: Sequence[str], prefix: str = "") -> list[tuple[str, list[str]]]:
    """``(block name, problem names)`` per block; ``prefix`` is what problem names carry before the
    model's own (it is left out of block names and of the glob matching)."""
    spec = [s.strip() for s in spec if s.strip()]
    if not spec:
        raise HessianError("blocks is empty: give 'module', 'layer' or glob patterns")
    own = [n.removeprefix(prefix) for n in names]
    if spec == ["layer"]:
        return [(n, [prefix + n]) for n in own]
    if spec == ["module"]:
        groups: dict[str, list[str]] = {}
        for n in own:
            groups.setdefault(n.rpartition(".")[0] or n, []).append(prefix + n)
        return list(groups.items())
    if any(s in BLOCK_RULES for s in spec):
        raise HessianError(f"blocks {','.join(spec)!r}: 'module' and 'layer' stand alone, not mixed with patterns")
    out = []
    for pattern in spec:
        picked = [prefix + n for n in own if fnmatch.fnmatchcase(n, pattern)]
        if not picked:
            raise HessianError(f"block pattern {pattern!r} matches none of the parameters ({', '.join(own[:4])}, ...)")
        out.append((pattern, picked))
    return out


@dataclass(frozen=True)
class BlockResult:
    """One diagonal block: its parameters, size, top eigenvalue, trace and (optionally) density."""

    name: str
    names: tuple[str, ...]
    dim: int
    top: EigenResult
    trace: TraceResult | None
    density: Density | None

    @property
    def hvps(self) -> int:
        return self.top.hvps + (self.trace.hvps if self.trace else 0) + (self.density.hvps if self.density else 0)

    @property
    def seconds(self) -> float:
        return self.top.seconds + (self.trace.seconds if self.trace else 0.0) + (self.density.seconds if self.density else 0.0)


def block_curvature(problem: HessianProblem, groups: Sequence[tuple[str, Sequence[str]]], *, tol: float = 1e-6,
                    max_iter: int = 100, trace_method: str = "hutch++", trace_samples: int = 100,
                    density: tuple[int, int] | None = None, seed: int = 0) -> list[BlockResult]:
    """Top eigenvalue, trace (``trace_samples`` products; 0: none) and SLQ density ((runs, steps) or
    None) of each diagonal block of ``problem``'s operator."""
    out = []
    for name, names in groups:
        block = convert(problem, names=list(names))
        top = lanczos(block, 1, which="largest", tol=tol, max_iter=max_iter, seed=seed, vectors=False)
        tr = trace(block, trace_method, samples=trace_samples, seed=seed) if trace_samples else None
        dens = slq_density(block, runs=density[0], steps=density[1], seed=seed) if density else None
        out.append(BlockResult(name, tuple(names), block.dim, top, tr, dens))
    return out
