#!/usr/bin/env python
"""Benchmark: our surface engine against a faithful per-point DataLoader loop, in one run.

The baseline reproduces what the paper's code does at every grid point: write
``θ* + α·δ + β·η`` into the parameters from a list, iterate a DataLoader (batch 128) over the
evaluation set, and read the loss and accuracy back with ``.item()`` per batch. Our engine is
timed from its construction (data to the device, the set-up rewrites and their equivalence
checks, calibration of the points per call) to its last point.

What is timed, exactly: inside this one process, after the interpreter has started, torch is
imported, and the model, the data and the directions are built (the same objects for both), each
loop from its own set-up (the faithful loop's DataLoader; the engine's construction) to its
last value. Interpreter start, imports, data loading and file writing are not timed; ``--scale``
times whole ``landscape surface`` commands (interpreter start to exit) separately. The two loops
alternate over ``--rounds`` rounds, in the opposite order each round (a machine that warms up or
gets busier then favours neither), and the median of each is kept. Both use the same thread
count, grid, model and data, and the values are checked to agree.

Each case also reports a floor measured in the same run: the time of the layers no engine can
skip (every Conv2d and Linear but the first), each run alone on its own input, hot in cache, in
the faster layout for each layer, at the best batch size from 64 to 2,048 (or the whole split).
Its ratio to the faithful loop ("ceiling") is the most any per-point engine could gain on this
machine without doing fewer floating-point operations.

    python scripts/bench_surface.py                 # digits MLP, digits CNN, ResNet-20 (1,000 CIFAR-sized images)
    python scripts/bench_surface.py --models mlp --threads 1
    python scripts/bench_surface.py --smoke         # seconds: digits MLP on a 3×3 grid, 2 rounds (a test runs it)
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from _bench_common import paper_loop, peak_rss_mib
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

from landscape.config import DataConfig
from landscape.engine.directions import DirectionOptions, Directions, random_directions
from landscape.engine.grid import Grid
from landscape.engine.losses import MetricSet
from landscape.engine.surface import SurfaceEngine
from landscape.zoo.data import TensorSplit, load_data
from landscape.zoo.models import build_model


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[], tuple[nn.Module, TensorSplit, int]]
    grid: tuple[str, str]
    rtol: float
    pipeline: bool = False  # the baseline reads images through the paper's per-item transforms


def digits_case(model_name: str, options: dict[str, object]) -> Callable[[], tuple[nn.Module, TensorSplit, int]]:
    def make() -> tuple[nn.Module, TensorSplit, int]:
        data = load_data(DataConfig())
        torch.manual_seed(0)
        return build_model(model_name, data.input_shape, data.output_shape, options), data.train, data.num_classes
    return make


class CifarStyleImages(torch.utils.data.Dataset[tuple[torch.Tensor, int]]):
    """What the paper's code iterates at every grid point: torchvision's CIFAR10 with
    ``ToTensor()`` and ``Normalize``. Each item is a uint8 HWC image turned into a PIL image,
    then into a float CHW tensor in [0, 1], then normalized per channel (written here by hand,
    torchvision is not a dependency). The values equal the preprocessed tensors the engine uses."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.images, self.labels, self.mean, self.std = images, labels, mean.view(3, 1, 1), std.view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        from PIL import Image

        pic = Image.fromarray(self.images[i])
        chw = torch.from_numpy(np.array(pic, dtype=np.uint8)).permute(2, 0, 1).float().div(255)
        return (chw - self.mean) / self.std, int(self.labels[i])


def cifar_images() -> tuple[np.ndarray, np.ndarray, torch.Tensor, torch.Tensor, TensorSplit]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(1000, 32, 32, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=1000)
    mean, std = torch.tensor([0.4914, 0.4822, 0.4465]), torch.tensor([0.2470, 0.2435, 0.2616])
    x = (torch.from_numpy(images).permute(0, 3, 1, 2).float().div(255) - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    return images, labels, mean, std, TensorSplit(x.contiguous(), torch.from_numpy(labels))


def cifar_like_resnet() -> tuple[nn.Module, TensorSplit, int]:
    split = cifar_images()[-1]
    torch.manual_seed(0)
    model = build_model("resnet20", (3, 32, 32), (10,), {})
    model.train()
    with torch.no_grad():  # realistic BatchNorm statistics
        model(split.inputs[:256])
    return model.eval(), split, 10


CASES = {
    "mlp": Case("digits MLP (64-64)", digits_case("mlp", {}), ("-1:1:31", "-1:1:31"), 1e-5),
    "cnn": Case("digits CNN (width 16, BN)", digits_case("cnn", {}), ("-1:1:11", "-1:1:11"), 1e-5),
    "cnn8": Case("digits CNN (width 8, BN)", digits_case("cnn", {"width": 8}), ("-1:1:15", "-1:1:15"), 1e-5),
    "resnet20": Case("ResNet-20, 1,000 CIFAR-sized images", cifar_like_resnet, ("-1:1:3", "-1:1:3"), 1e-4),
    "resnet20-pipeline": Case("ResNet-20, same, paper's image pipeline", cifar_like_resnet, ("-1:1:3", "-1:1:3"), 1e-4,
                              pipeline=True),
}


def faithful_loop(model: nn.Module, dirs: Directions, split: TensorSplit, coords: np.ndarray,
                  dataset: torch.utils.data.Dataset | None = None) -> np.ndarray:  # type: ignore[type-arg]
    """The reference implementation's per-point evaluation over ``split`` (or ``dataset``), batches of 128."""
    loader = DataLoader(dataset if dataset is not None else TensorDataset(split.inputs, split.targets),
                        batch_size=128, shuffle=False)
    return paper_loop(model, dirs, loader, coords)


def engine_run(model: nn.Module, dirs: Directions, split: TensorSplit, coords: np.ndarray, num_classes: int,
               points_per_call: int) -> tuple[np.ndarray, int]:
    engine = SurfaceEngine(model, dirs, {"train": split}, MetricSet(["cross_entropy"], "classification", num_classes),
                           points_per_call=points_per_call)
    first, used = engine.calibrate(coords)
    rest = engine.evaluate(coords[used:])
    return np.concatenate([first, rest]) if used else rest, engine.points_per_call


def compute_floor(model: nn.Module, split: TensorSplit, repeats: int = 5) -> tuple[float, float]:
    """Seconds and FLOPs per point of the work no engine can skip: every Conv2d and Linear layer
    except the first (linear in its weights for fixed input, so it can be precomputed), each run
    alone on its own captured input, hot in cache, in whichever memory layout (NCHW or
    channels-last) is faster for that layer, at the fastest batch size. Activations, pooling, the
    loss and all per-call overhead count as free, so no per-point loop can beat it on this machine."""
    layouts = [torch.contiguous_format] + ([torch.channels_last] if split.inputs.ndim == 4 else [])
    best, flops = float("inf"), 0.0
    for bs in sorted({min(len(split), b) for b in (64, 128, 256, 512, 1024, 2048)}):
        per_layer: list[float] = []
        for layout in layouts:
            net = copy.deepcopy(model).eval().to(memory_format=layout)  # type: ignore[call-overload]
            layers = [m for m in net.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
            seen: list[tuple[nn.Module, Tensor, int]] = []
            hooks = [m.register_forward_hook(lambda m, a, o, seen=seen: seen.append((m, a[0], o.numel()))) for m in layers]
            x = split.inputs[:bs]
            with torch.inference_mode():
                net(x.contiguous(memory_format=layout) if x.ndim == 4 else x)
            for h in hooks:
                h.remove()
            work = seen[1:]  # seen[0] received the raw input
            flops = sum(2.0 * n * m.weight[0].numel() for m, _, n in work) * len(split) / bs  # type: ignore[index]
            times = [float("inf")] * len(work)
            with torch.inference_mode():
                for m, inp, _ in work:  # warm-up
                    m(inp)
                for _ in range(repeats):
                    for i, (m, inp, _n) in enumerate(work):
                        t0 = time.perf_counter()
                        m(inp)
                        times[i] = min(times[i], time.perf_counter() - t0)
            per_layer = times if not per_layer else [min(a, b) for a, b in zip(per_layer, times, strict=True)]
        best = min(best, sum(per_layer) * len(split) / bs)
    return best, flops


def run_case(case: Case, points_per_call: int, rounds: int, grid: tuple[str, str] | None = None,
             floor_repeats: int = 5) -> dict[str, float]:
    """Alternate the two loops ``rounds`` times, the faithful loop first in even rounds and the
    engine first in odd ones, and keep the median of each: a busy, warming or throttled machine
    then slows both alike instead of whichever ran second."""
    model, split, num_classes = case.make()
    dirs = random_directions(model, DirectionOptions(), dims=2)
    coords = Grid.parse(*(grid or case.grid)).coords()
    dataset = CifarStyleImages(*cifar_images()[:4]) if case.pipeline else None
    t_base: list[float] = []
    t_ours: list[float] = []
    t_floor: list[float] = []
    for round_ in range(rounds):
        t_floor.append(compute_floor(model, split, floor_repeats)[0])
        for loop in ("faithful", "engine") if round_ % 2 == 0 else ("engine", "faithful"):
            t0 = time.perf_counter()
            if loop == "faithful":
                base = faithful_loop(model, dirs, split, coords, dataset)
                t_base.append(time.perf_counter() - t0)
            else:
                ours, k = engine_run(model, dirs, split, coords, num_classes, points_per_call)
                t_ours.append(time.perf_counter() - t0)
        np.testing.assert_allclose(ours[:, 0], base[:, 0], rtol=case.rtol, atol=1e-7)
        np.testing.assert_allclose(ours[:, 1], base[:, 1], atol=1.5 / len(split))
    flops = compute_floor(model, split, repeats=1)[1]
    return {"points": len(coords), "baseline": len(coords) / float(np.median(t_base)),
            "ours": len(coords) / float(np.median(t_ours)), "k": k,
            "floor": 1.0 / float(np.median(t_floor)), "gflop": flops / 1e9,
            "max_rel_diff": float(np.max(np.abs(ours[:, 0] - base[:, 0]) / np.abs(base[:, 0])))}


def scale_out(grid: tuple[str, str]) -> None:
    """Whole commands: 1 process × 2 threads against 2 processes × 1 thread (torchrun, gloo)."""
    import os
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    from landscape.config import load_config
    from landscape.workflows.train import train

    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "LANDSCAPE_QUIET": "1"}
        ckpt = train(load_config("configs/digits_cnn.toml", ["train.epochs=1"]), Path(tmp) / "run").final
        args = ["surface", str(ckpt), "--x", "-1:1:" + grid[0], "--y", "-1:1:" + grid[1]]
        runs = {
            "1 process × 2 threads": [sys.executable, "-m", "landscape", "--quiet", "--threads", "2", *args],
            "2 processes × 1 thread": [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                                       "-m", "landscape", "--quiet", "--threads", "1", *args],
        }
        n = int(grid[0]) * int(grid[1])
        for name, cmd in runs.items():
            out = Path(tmp) / f"{len(cmd)}.h5"
            t0 = time.perf_counter()
            subprocess.run([*cmd, "--out", str(out)], check=True, env=env, capture_output=True)
            dt = time.perf_counter() - t0
            print(f"digits CNN {grid[0]}×{grid[1]}, {name:24s}: {dt:6.1f} s whole command, {n / dt:7.1f} points/s", flush=True)


def memory_check(params_m: int = 25) -> None:
    """Peak RSS while evaluating a surface of a ~25M-parameter model (one rank's footprint);
    meaningful only in a process that has done nothing else (``--memory`` starts one)."""
    width = int((params_m * 1e6) ** 0.5)
    rss0 = peak_rss_mib()
    model = nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10))
    p = sum(t.numel() for t in model.parameters())
    x, y = torch.randn(256, 64), torch.randint(0, 10, (256,))
    dirs = random_directions(model, DirectionOptions(), dims=2)
    engine = SurfaceEngine(model, dirs, {"train": TensorSplit(x, y)}, MetricSet(["cross_entropy"], "classification", 10),
                           points_per_call=1)
    engine.evaluate(Grid.parse("-1:1:3", "-1:1:3").coords())
    peak = peak_rss_mib()
    print(f"memory: model of {p / 1e6:.1f}M parameters ({4 * p / 2**20:.0f} MiB float32): peak RSS {peak:.0f} MiB "
          f"({peak - rss0:.0f} MiB above start, {(peak - rss0) * 2**20 / (4 * p):.1f}× the model)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="mlp,cnn,cnn8,resnet20,resnet20-pipeline")
    parser.add_argument("--rounds", type=int, default=3, help="alternate baseline and engine this many times (median)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--points-per-call", type=int, default=0, help="0 = the engine's automatic choice")
    parser.add_argument("--scale", action="store_true", help="also: 2 processes × 1 thread vs 1 process × 2 threads")
    parser.add_argument("--memory", action="store_true", help="also: peak RSS with a 25M-parameter model")
    parser.add_argument("--memory-probe", action="store_true", help=argparse.SUPPRESS)  # the fresh process --memory runs
    parser.add_argument("--grid", help="X:Y instead of each case's grid, e.g. -1:1:5,-1:1:5")
    parser.add_argument("--smoke", action="store_true",
                        help="a seconds-long check that the script runs: digits MLP, 3×3 grid, 2 rounds, a quick floor")
    args = parser.parse_args()
    floor_repeats = 5
    if args.smoke:
        args.models, args.grid, args.rounds, floor_repeats = "mlp", "-1:1:3,-1:1:3", 2, 1
    grid: tuple[str, str] | None = None
    if args.grid:
        x, _, y = args.grid.partition(",")
        grid = (x, y)
    torch.set_num_threads(args.threads)
    if args.memory_probe:
        memory_check()
        return
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), device cpu; "
          f"median of {args.rounds} rounds alternating the order; timed in this process: each loop from its own "
          f"set-up (the engine's construction, rewrites and calibration included) to its last point, after imports, "
          f"data, model and directions are built")
    print("floor: the layers no engine can skip, alone (see compute_floor); ceiling = floor / faithful")
    print(f"{'case':38s} {'points':>6s} {'faithful pts/s':>15s} {'ours pts/s':>11s} {'ratio':>7s} {'K':>3s} {'max rel diff':>12s}"
          f" {'GFLOP/pt':>9s} {'floor pts/s':>12s} {'ceiling':>8s} {'ours/floor':>10s}")
    for key in args.models.split(","):
        case = CASES[key]
        r = run_case(case, args.points_per_call, args.rounds, grid, floor_repeats)
        print(f"{case.name:38s} {r['points']:6d} {r['baseline']:15.1f} {r['ours']:11.1f} {r['ours'] / r['baseline']:6.1f}x "
              f"{r['k']:3d} {r['max_rel_diff']:12.1e} {r['gflop']:9.3f} {r['floor']:12.1f} {r['floor'] / r['baseline']:7.1f}x"
              f" {100 * r['ours'] / r['floor']:9.0f}%", flush=True)
    if args.scale:
        scale_out(("21", "21"))
    if args.memory:  # in a fresh process: the peak RSS of this one already includes the cases above
        import subprocess
        import sys

        subprocess.run([sys.executable, __file__, "--memory-probe", "--threads", str(args.threads)], check=True)


if __name__ == "__main__":
    main()
