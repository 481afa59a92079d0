"""Eigenvalue-ratio maps: λmax, λmin and |λmin/λmax| of the loss Hessian at every grid point.

Li et al. (2018, §7) map the ratio |λmin/λmax| over the plane of a surface to show where the
landscape is convex (≈ 0) and where negative curvature dominates. :class:`EigenRatioEngine` has
the surface engine's interface (``columns``, ``evaluate``, ``calibrate``, ``points_per_call``),
so a surface job drives it unchanged; each point costs one Lanczos run per split.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn

from landscape.engine.directions import Directions, check_directions
from landscape.engine.evaluator import tensor_batches
from landscape.engine.hessian import HessianProblem, LossFn, eig_extremes
from landscape.engine.moved import MovedTensors
from landscape.zoo.data import TensorSplit

EIG_METRICS = ("max_eig", "min_eig", "eig_ratio", "eig_converged")  # columns per split, in order


def eig_ratio(lam_max: float, lam_min: float) -> float:
    """|λmin/λmax|: 0 for a convex point, large where negative curvature dominates; NaN for H = 0."""
    if lam_max == 0.0:
        return math.nan if lam_min == 0.0 else math.inf
    return abs(lam_min / lam_max)


class EigenRatioEngine:
    """λmax, λmin and |λmin/λmax| of the restricted Hessian at points ``θ* + α·δ + β·η``.

    Same interface as :class:`~landscape.engine.surface.SurfaceEngine` (``columns``, ``evaluate``,
    ``calibrate``, ``points_per_call``), so the surface job drives it unchanged. Each point and
    split costs one Lanczos run (:func:`~landscape.engine.hessian.eig_extremes`, residuals relative
    to ‖H‖ below ``tol``) from the same seeded start vector, so a point's values do not depend
    on the order or the process that computed it. The caller's model is never touched.
    """

    def __init__(self, model: nn.Module, directions: Directions, splits: Mapping[str, TensorSplit], loss_fn: LossFn,
                 names: Sequence[str], *, device: torch.device | str = "cpu", batch_size: int = 0,
                 tol: float = 1e-3, max_iter: int = 100, seed: int = 0) -> None:
        check_directions(directions, model)
        self.device = torch.device(device)
        self.model = copy.deepcopy(model).to(self.device).eval()
        self.columns = [f"{split}_{m}" for split in splits for m in EIG_METRICS]
        self.points_per_call = 1  # one Lanczos run per point: nothing to vectorize
        self.tol, self.max_iter, self.seed = tol, max_iter, seed
        self.hvps, self.seconds = 0, 0.0  # totals over every point, for cost reports
        # only tensors whose direction is non-zero move; the origin aliases the private copy (never written)
        self.moved = MovedTensors.build(self.model, directions, self.device, pristine=self.model)
        self.problems = {name: HessianProblem(self.model, names, tensor_batches(split.to(self.device), batch_size), loss_fn)
                         for name, split in splits.items()}

    def _row(self, problem: HessianProblem) -> list[float]:
        try:
            lam_max, lam_min, res = eig_extremes(problem, tol=self.tol, max_iter=self.max_iter, seed=self.seed)
        except np.linalg.LinAlgError:  # NaN/inf curvature at a diverged point: a legitimate NaN value
            return [math.nan] * len(EIG_METRICS)
        self.hvps += res.hvps
        self.seconds += res.seconds
        return [lam_max, lam_min, eig_ratio(lam_max, lam_min), float(res.all_converged)]

    def evaluate(self, coords: np.ndarray) -> np.ndarray:
        """Values at each (α, β) row of ``coords``: (k, len(columns)) float64 on the host."""
        coords = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
        out = np.empty((len(coords), len(self.columns)))
        for i, (a, b) in enumerate(coords):
            params = self.moved.point(float(a), float(b))  # new tensors: the origin is untouched
            out[i] = [v for problem in self.problems.values() for v in self._row(problem.at(params))]
        return out

    def calibrate(self, coords: np.ndarray) -> tuple[np.ndarray, int]:
        """Nothing to tune (one point per call); evaluates no point."""
        return np.empty((0, len(self.columns))), 0
