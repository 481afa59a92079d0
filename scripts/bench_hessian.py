#!/usr/bin/env python
"""Benchmark: Hessian-vector products per second, and one eig-ratio point against one loss point.

Both surfaces are timed with the engines ``landscape surface`` uses, on the same checkpoint,
data, directions and grid: :class:`~landscape.engine.surface.SurfaceEngine` for the loss (once one
point per call, once with the points per call it picks by timing) and
:class:`~landscape.workflows.hessian.EigenRatioEngine` for ``--metric eig_ratio`` (one Lanczos run per
point, ``hessian.map_tol``). HVPs are timed on their own with random vectors.

    landscape train configs/digits_mlp.toml --out /tmp/h_mlp
    python scripts/bench_hessian.py /tmp/h_mlp/checkpoints/epoch_020.pt --threads 1
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from landscape.engine.directions import random_directions
from landscape.engine.grid import Grid
from landscape.engine.hessian import HessianProblem
from landscape.engine.surface import Evaluator, SurfaceEngine
from landscape.io.checkpoint import load_checkpoint
from landscape.workflows.experiment import experiment_from_checkpoint, resolve_device
from landscape.workflows.hessian import eig_ratio_engine, forward_seconds, setup


def hvps_per_second(problem: HessianProblem, hvps: int) -> float:
    """HVPs per second over ``hvps`` products with random vectors (after two warm-up calls)."""
    gen = torch.Generator().manual_seed(0)
    vectors = [torch.randn(problem.dim, generator=gen, dtype=torch.float64).to(problem.device) for _ in range(hvps + 2)]
    for v in vectors[:2]:
        problem.hvp_flat(v)
    start = time.perf_counter()
    for v in vectors[2:]:
        float(problem.hvp_flat(v).norm())  # the host read waits for the device
    return hvps / (time.perf_counter() - start)


def seconds_per_point(engine: Evaluator, coords: np.ndarray) -> float:
    start = time.perf_counter()
    engine.evaluate(coords)
    return (time.perf_counter() - start) / len(coords)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch's default)")
    parser.add_argument("--hvps", type=int, default=100, help="HVPs to time")
    parser.add_argument("--grid", default="-1:1:5", help="MIN:MAX:NUM per axis of the 2D grid (both surfaces)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    exp = experiment_from_checkpoint(load_checkpoint(args.checkpoint))
    cfg, device = exp.config, resolve_device(args.device)
    grid = Grid.parse(args.grid, args.grid)
    coords = grid.coords()
    dirs = random_directions(exp.model, cfg.directions, 2)
    splits = {"train": exp.data.train}

    s = setup(exp, cfg, device)
    rate = hvps_per_second(s.problem, args.hvps)
    fwd = forward_seconds(s.model, s.batches, s.loss_fn, repeats=10)

    single = SurfaceEngine(exp.model, dirs, splits, exp.metrics(), device=device, points_per_call=1)
    seconds_per_point(single, coords[:2])  # warm-up
    loss_single = seconds_per_point(single, coords)
    tuned = SurfaceEngine(exp.model, dirs, splits, exp.metrics(), device=device)
    tuned.calibrate(coords)
    loss_tuned = seconds_per_point(tuned, coords)

    eig = eig_ratio_engine(exp, cfg, dirs, splits, device)
    eig.evaluate(coords[:1])  # warm-up
    hvps_before = eig.hvps
    eig_point = seconds_per_point(eig, coords)
    hvps_per_point = (eig.hvps - hvps_before) / len(coords)

    print(f"{cfg.model.name} on {cfg.data.name} ({len(exp.data.train)} training samples), P = {s.problem.dim:,} "
          f"restricted parameters, {device}, {torch.get_num_threads()} threads, {len(coords)} grid points")
    print(f"HVPs per second:            {rate:10.1f}   (one HVP = {1 / rate / fwd:.1f} forward passes of {fwd * 1e3:.2f} ms)")
    print(f"loss point, 1 per call:     {loss_single * 1e3:10.2f} ms")
    print(f"loss point, {tuned.points_per_call:>2} per call:    {loss_tuned * 1e3:10.2f} ms")
    print(f"eig-ratio point:            {eig_point * 1e3:10.2f} ms   ({hvps_per_point:.1f} HVPs per point, "
          f"tol {cfg.hessian.map_tol:g})")
    print(f"eig-ratio / loss point:     {eig_point / loss_single:10.1f}×  (1 per call), "
          f"{eig_point / loss_tuned:.1f}× (vectorized)")


if __name__ == "__main__":
    main()
