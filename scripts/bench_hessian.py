#!/usr/bin/env python
"""Benchmark: Hessian-vector products per second, and one eig-ratio point against one loss point.

Both surfaces are timed with the engines ``landscape surface`` uses, on the same checkpoint,
data, directions and grid: :class:`~landscape.engine.surface.SurfaceEngine` for the loss (once one
point per call, once with the points per call it picks by timing) and
:class:`~landscape.workflows.hessian.EigenRatioEngine` for ``--metric eig_ratio`` (one Lanczos run per
point, ``hessian.map_tol``). HVPs are timed on their own with random vectors.

    landscape train configs/digits_mlp.toml --out /tmp/h_mlp
    python scripts/bench_hessian.py /tmp/h_mlp/checkpoints/epoch_020.pt --threads 1

``--versus-pyhessian`` instead times the Hessian, GGN and Fisher products (through the kept graph, and
recomputed per product) and one SLQ run against PyHessian (``pip install pyhessian``, all the data as one
batch with its graph kept: its fastest mode) on the same model, data and threads, one process per side;
``--memory ggn`` the peak memory of one product on a 25.4M-parameter MLP.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from pathlib import Path

import numpy as np
import torch
from _bench_common import legacy_eig

from landscape.engine.directions import random_directions
from landscape.engine.eigratio import split_batches
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


def _side(checkpoint: Path, side: str, threads: int, hvps: int, steps: int, batched: int = 0,
          samples: int = 0) -> dict[str, float]:
    """One side of ``--versus-pyhessian``, in its own process: HVPs/s on random vectors, the seconds of
    one SLQ run of ``steps`` Lanczos steps, and the growth of the peak resident memory (MiB). ``batched`` K > 1:
    also the Hessian's products K per call (``products_per_call``); ``samples`` > 0: the first that many only."""
    import resource

    from pyhessian import hessian as pyhessian_hessian
    from pyhessian.utils import hessian_vector_product

    from landscape.engine.operators import convert, curvature_problem
    from landscape.engine.slq import slq_density

    torch.set_num_threads(threads)
    exp = experiment_from_checkpoint(load_checkpoint(checkpoint))
    model = exp.model.eval()
    x, y = exp.data.train.inputs, exp.data.train.targets
    if samples:
        x, y = x[:samples], y[:samples]
        cfg = dataclasses.replace(exp.config, surface=dataclasses.replace(exp.config.surface, max_samples=samples))
    else:
        cfg = exp.config
    gen = torch.Generator().manual_seed(0)
    vectors = [[torch.randn(p.shape, generator=gen) for p in model.parameters()] for _ in range(hvps + 2)]
    rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out: dict[str, float] = {}
    if side == "pyhessian":  # all the data as one batch (its fastest mode: the gradient graph is kept)
        comp = pyhessian_hessian(model, torch.nn.CrossEntropyLoss(), data=(x, y), cuda=False)
        for v in vectors[:2]:
            hessian_vector_product(comp.gradsH, comp.params, v)
        start = time.perf_counter()
        for v in vectors[2:]:
            hessian_vector_product(comp.gradsH, comp.params, v)
        out["hessian"] = hvps / (time.perf_counter() - start)
        torch.eig = legacy_eig  # type: ignore[attr-defined]  # PyHessian 0.1's density calls torch.eig (gone in torch 2)
        start = time.perf_counter()
        comp.density(iter=steps, n_v=1)
        out["slq_seconds"] = time.perf_counter() - start
        # its mode for data in batches (dataloader=, the batches `landscape hessian` cuts): every product
        # recomputes each batch's forward and gradient
        loader = split_batches(dataclasses.replace(exp.data.train, inputs=x, targets=y), cfg.surface.batch_size)
        comp = pyhessian_hessian(model, torch.nn.CrossEntropyLoss(), dataloader=loader, cuda=False)
        for v in vectors[:2]:
            comp.dataloader_hv_product(v)
        start = time.perf_counter()
        for v in vectors[2:]:
            comp.dataloader_hv_product(v)
        out["hessian_batches"] = hvps / (time.perf_counter() - start)
        out["batches"] = len(loader)
    else:  # the same data and parameters (all of them, as PyHessian), through `landscape hessian`'s set-up
        s = setup(exp, cfg, torch.device("cpu"))
        assert s.problem.num_samples == len(x)
        names = [n for n, _ in s.model.named_parameters()]
        every = convert(s.problem, "hessian", names)
        for kind in ("hessian", "ggn", "fisher"):
            # the kept graph (the default when the data fit the budget), then recomputed per product (budget 1 byte)
            for label, problem in ((kind, convert(every, kind)),
                                   (f"{kind}_recomputed", curvature_problem(kind, s.model, names, s.batches, s.loss_fn,
                                                                            graph_budget=1))):
                for v in vectors[:2]:
                    problem.hvp(v)
                start = time.perf_counter()
                for v in vectors[2:]:
                    problem.hvp(v)
                out[label] = hvps / (time.perf_counter() - start)
                assert problem.product_path == ("recomputed" if label.endswith("_recomputed") else "kept graph")
        if batched > 1:  # the same products, K per call through the kept graph
            many = curvature_problem("hessian", s.model, names, s.batches, s.loss_fn, products_per_call=batched)
            flat = torch.stack([many.flatten(v) for v in vectors])
            many.hvp_many(flat[:batched])
            start = time.perf_counter()
            for i in range(2, hvps + 2, batched):
                many.hvp_many(flat[i : min(i + batched, hvps + 2)])
            out["hessian_batched"] = hvps / (time.perf_counter() - start)
        start = time.perf_counter()
        slq_density(every, runs=1, steps=steps)
        out["slq_seconds"] = time.perf_counter() - start
    out["peak_mib"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss0) / 1024
    return out


def versus_pyhessian(checkpoint: Path, threads: int, hvps: int, steps: int = 80, batched: int = 0, samples: int = 0) -> None:
    """``landscape``'s Hessian, GGN and Fisher products against PyHessian's HVP on the same model, data
    and thread count, each side in a fresh process; prints both and the ratio."""
    import json
    import subprocess
    import sys

    rows = {}
    for side in ("pyhessian", "landscape"):
        done = subprocess.run([sys.executable, __file__, str(checkpoint), "--side", side, "--threads", str(threads),
                               "--hvps", str(hvps), "--steps", str(steps), "--products-per-call", str(batched),
                               "--samples", str(samples)], check=True, capture_output=True, text=True)
        rows[side] = json.loads(done.stdout.strip().splitlines()[-1])
    ours, theirs = rows["landscape"], rows["pyhessian"]
    print(f"{threads} thread(s), {hvps} products each, SLQ of {steps} steps, {samples or 'all'} samples")
    print(f"PyHessian HVPs/s (graph kept):      {theirs['hessian']:8.1f}   SLQ {theirs['slq_seconds']:.2f} s   "
          f"peak +{theirs['peak_mib']:.0f} MiB")
    print(f"landscape HVPs/s (graph kept):      {ours['hessian']:8.1f}   SLQ {ours['slq_seconds']:.2f} s   "
          f"peak +{ours['peak_mib']:.0f} MiB")
    print(f"landscape HVPs/s (recomputed):      {ours['hessian_recomputed']:8.1f}")
    print(f"PyHessian HVPs/s ({theirs['batches']:.0f} batches, dataloader=): {theirs['hessian_batches']:8.1f}   "
          f"ours (graph kept) / this: {ours['hessian'] / theirs['hessian_batches']:.2f}×")
    print(f"landscape GGN, Fisher /s (kept):    {ours['ggn']:8.1f}, {ours['fisher']:.1f}")
    print(f"landscape GGN, Fisher /s (recomp.): {ours['ggn_recomputed']:8.1f}, {ours['fisher_recomputed']:.1f}")
    if "hessian_batched" in ours:
        print(f"landscape HVPs/s ({batched} per call):    {ours['hessian_batched']:8.1f}   = "
              f"{ours['hessian_batched'] / theirs['hessian']:.2f}× PyHessian's {hvps} products one by one")
    print(f"ratio landscape / PyHessian: HVPs/s {ours['hessian'] / theirs['hessian']:.2f}× (recomputed "
          f"{ours['hessian_recomputed'] / theirs['hessian']:.2f}×), SLQ time {ours['slq_seconds'] / theirs['slq_seconds']:.2f}×")


def _product_memory(kind: str) -> dict[str, float]:
    """Growth of the peak resident memory during one ``kind`` product on an MLP 64-5000-5000-10 (25.4M
    parameters) with 32 samples, relative to the model's own bytes (the vector v is allocated before)."""
    import resource

    import torch.nn.functional as F
    from torch import nn

    from landscape.engine.operators import curvature_problem

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 5000), nn.ReLU(), nn.Linear(5000, 5000), nn.ReLU(), nn.Linear(5000, 10))
    model_mib = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**20
    x, y = torch.randn(32, 64), torch.randint(0, 10, (32,))

    def ce(out: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(out, t, reduction="none")

    problem = curvature_problem(kind, model, [n for n, _ in model.named_parameters()], [(x, y)], ce)
    v = [torch.randn_like(p) for p in model.parameters()]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    problem.hvp(v)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 - before
    return {"model_mib": model_mib, "grown_mib": grown, "ratio": grown / model_mib}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", type=Path, nargs="?", help="a landscape checkpoint (all modes but --memory)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch's default)")
    parser.add_argument("--hvps", type=int, default=100, help="HVPs to time")
    parser.add_argument("--grid", default="-1:1:5", help="MIN:MAX:NUM per axis of the 2D grid (both surfaces)")
    parser.add_argument("--versus-pyhessian", action="store_true",
                        help="only: HVPs/s, SLQ time and peak memory against PyHessian (pip install pyhessian)")
    parser.add_argument("--steps", type=int, default=80, help="SLQ steps for --versus-pyhessian")
    parser.add_argument("--side", choices=["pyhessian", "landscape"], help=argparse.SUPPRESS)
    parser.add_argument("--products-per-call", type=int, default=0,
                        help="--versus-pyhessian: also the Hessian's products K per call (batched backward)")
    parser.add_argument("--samples", type=int, default=0, help="--versus-pyhessian: the first N training samples only")
    parser.add_argument("--memory", choices=["hessian", "ggn", "fisher"],
                        help="only: peak memory of one product on a 25.4M-parameter MLP (run once per kind)")
    args = parser.parse_args()
    if args.memory:
        m = _product_memory(args.memory)
        print(f"{args.memory}: model {m['model_mib']:.0f} MiB, peak grows {m['grown_mib']:.0f} MiB during one product "
              f"= {m['ratio']:.2f}× the model (the result itself is 1×)")
        return
    if args.checkpoint is None:
        parser.error("a checkpoint is needed")
    if args.side:
        import json

        print(json.dumps(_side(args.checkpoint, args.side, args.threads or 1, args.hvps, args.steps, args.products_per_call,
                               args.samples)))
        return
    if args.versus_pyhessian:
        versus_pyhessian(args.checkpoint, args.threads or 1, args.hvps, args.steps, args.products_per_call, args.samples)
        return
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
