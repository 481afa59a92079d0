"""The Python API's sharpness measures: ``landscape.sharpness(model, data, loss, measures, rho)``.

The same inputs as :func:`landscape.hessian` (any model, tensors, DataLoaders, dict batches and a
callable loss, ``params`` subsets, streamed data) through the same plumbing; the measures are those
of ``landscape sharpness`` (:mod:`landscape.engine.sharpness`, docs/CURVATURE.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, overload

import torch
from torch import nn

from landscape.api.hessian import curvature_problem
from landscape.api.inputs import LossSpec, random_directions
from landscape.config import DirectionsConfig, SharpnessConfig
from landscape.engine.directions import Directions
from landscape.engine.moved import ParamSelector
from landscape.engine.progress import bar
from landscape.engine.sharpness import SharpnessResult
from landscape.engine.sharpness import sharpness as _measure
from landscape.errors import ConfigError
from landscape.zoo.userdata import DEFAULT_MEMORY_BUDGET

_DEFAULT = SharpnessConfig()


@dataclass(frozen=True)
class Sharpness:
    """Sharpness at θ*: ``results`` (one per measure and ρ), the loss there, and the parameters
    perturbed (``names``, ``dim``), on the data's ``split``. ``value(measure, rho)`` picks one number."""

    results: list[SharpnessResult]
    loss: float
    names: list[str]
    dim: int
    split: str = "train"

    def value(self, measure: str, rho: float | None = None) -> float:
        for r in self.results:
            if r.measure == measure and (rho is None or r.rho == rho):
                return r.value
        raise ConfigError(f"no result for measure {measure!r} at rho {rho!r}; have "
                          f"{', '.join(sorted({r.measure for r in self.results}))}")


@overload
def sharpness(model: nn.Module, data: object, loss: LossSpec = ..., measures: Sequence[str] = ...,
              rho: float | Sequence[float] = ..., *, params: ParamSelector = ..., ignore: str = ...,
              device: str | torch.device | None = ..., memory_budget: int = ..., steps: int = ..., step: float = ...,
              samples: int = ..., m: int = ..., seed: int = ..., directions: Directions | None = ...,
              progress: bool = ..., split: Literal["both"]) -> dict[str, Sharpness]: ...


@overload
def sharpness(model: nn.Module, data: object, loss: LossSpec = ..., measures: Sequence[str] = ...,
              rho: float | Sequence[float] = ..., *, params: ParamSelector = ..., ignore: str = ...,
              device: str | torch.device | None = ..., memory_budget: int = ..., steps: int = ..., step: float = ...,
              samples: int = ..., m: int = ..., seed: int = ..., directions: Directions | None = ...,
              progress: bool = ..., split: Literal["train", "test"] | None = ...) -> Sharpness: ...


def sharpness(model: nn.Module, data: object, loss: LossSpec = "cross_entropy",
              measures: Sequence[str] = _DEFAULT.measures, rho: float | Sequence[float] = _DEFAULT.rho, *,
              params: ParamSelector = None, ignore: str = "biasbn", device: str | torch.device | None = None,
              memory_budget: int = DEFAULT_MEMORY_BUDGET, steps: int = _DEFAULT.steps, step: float = _DEFAULT.step,
              samples: int = _DEFAULT.samples, m: int = _DEFAULT.m, seed: int = _DEFAULT.seed,
              directions: Directions | None = None, progress: bool = True,
              split: str | None = None) -> Sharpness | dict[str, Sharpness]:
    """Sharpness measures of the loss at ``model``'s weights.

    Worst-case (``worst_l2``, ``worst_linf``, ``adaptive_worst_l2``, ``adaptive_worst_linf``: projected
    gradient ascent in the ρ-ball, the adaptive ones scaled by |θ|), average-case (``average``,
    ``adaptive_average``: Gaussian perturbations of scale ρ, with the standard error), the Fisher-Rao
    norm (``fisher_rao``) and the filter-normalized curvature (``curvature``: the 2×2 Hessian along
    ``directions``, by default the random filter-normalized plane of the surfaces). ``m > 0`` gives
    m-sharpness: each batch of m samples measured alone, then averaged.

    Args:
        model, data, loss, params, ignore, device, memory_budget: as for :func:`landscape.hessian`.
        measures: names from the list above. rho: one radius or several.
        steps, step: ascent steps and their length (in units of ρ). samples: Gaussian draws.
        m: samples per batch of m-sharpness (0: the whole data). seed: starts and draws.
        directions: δ and η of the curvature measure. progress: show a progress bar.
        split: the data's ``train`` or ``test`` split (None: the first, ``train``); ``both`` measures
            each split with the same seed and returns ``{"train": Sharpness, "test": Sharpness}``.
    """
    if split == "both":
        return {name: sharpness(model, data, loss, measures, rho, params=params, ignore=ignore, device=device,
                                memory_budget=memory_budget, steps=steps, step=step, samples=samples, m=m, seed=seed,
                                directions=directions, progress=progress, split=name)  # type: ignore[call-overload]
                for name in ("train", "test")}
    if split not in (None, "train", "test"):
        raise ConfigError(f"split {split!r}: choose 'train', 'test' or 'both'")
    rhos = [float(rho)] if isinstance(rho, int | float) else [float(r) for r in rho]
    problem, base, prefix = curvature_problem(model, data, loss, params, ignore, device, memory_budget, split=split)
    if "curvature" in measures and directions is None:
        directions = random_directions(model, 2, seed=DirectionsConfig().seed, ignore=ignore)
    pair = (directions.x, directions.y) if directions is not None and directions.y is not None else None
    if "curvature" in measures and pair is None:
        raise ConfigError("the curvature measure needs two directions (x and y)")
    results: list[SharpnessResult] = []
    with bar(len(measures) if progress else 0, "sharpness", unit="measure") as pbar:
        for name in measures:
            results += _measure(problem, [name], rhos, steps=steps, step=step, samples=samples, m=m, seed=seed,
                                directions=pair, prefix=prefix)
            pbar.update(1)
        value, _ = problem.loss_and_grad()
    return Sharpness(results, float(value), list(base), problem.dim, split or "train")
