#!/usr/bin/env python
"""Benchmark of the Python API, in one run, side by side (never a timed test).

(a) ``landscape.surface`` on in-memory ``(inputs, targets)`` vs the CLI (``landscape surface``
    called in-process through ``landscape.cli.main``) on the same model, data, directions and
    grid: the CLI reads a bare state-dict checkpoint, builds the model and data from user files
    (``--model file.py:make --data file.py:load``) and writes its HDF5 file;
(b) the API on a ``DataLoader`` whose data fit the memory budget (cached once) vs in-memory tensors;
(c) the API on streamed data (``memory_budget=1``: one batch held at a time; the DataLoader is
    read once per pass, each pass evaluating several grid points batch by batch, the points per
    pass calibrated on a first pass) vs the paper's per-point loop on the same DataLoader: write
    ``θ* + α·δ + β·η`` into the parameters, iterate the loader, sum
    ``criterion(out, y).item() · batch size`` and correct predictions, divide by the sample count;
(d) the peak memory of a surface run in a fresh process (Linux ``VmHWM`` of ``/proc/self/status``,
    after imports vs at the end), as a multiple of the model's float32 bytes: the model, its moved
    tensors once more and two directions make 4×. Rows: a 25M-parameter MLP with 32 samples (the
    data and activations negligible: the figure the API promises, ≤ 4.3×) and with 256 samples (its
    5000-wide activations and first-layer cache are no longer negligible), and a conv+BatchNorm net
    of a few million parameters (every CPU rewrite kept: channels-last, BatchNorm folded, the first
    layer cached, fused conv+ReLU; a ≥ 25M conv net is too slow for this CPU benchmark).

What is timed: each call inside this process, after imports and a warm-up call, so interpreter
start and imports are not counted; everything inside the call is (data preparation, engine set-up
and calibration, for the CLI also checkpoint, user files and the HDF5 file). Both the wall-clock
seconds (``time.perf_counter``) and this process's CPU seconds (``time.process_time``; with one
torch thread the better measure on a machine other jobs share) are shown. Each pair alternates
for ``--rounds`` rounds; the table shows medians and ratios ``measured / against``. Every pair's
values are compared (max relative difference).

    python scripts/bench_api.py               # the full run (a few minutes of CPU on one thread)
    python scripts/bench_api.py --smoke       # seconds: tiny sizes, memory probe in-process
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import landscape
from landscape.cli import main as cli_main
from landscape.engine.directions import save_directions

sys.path.insert(0, str(Path(__file__).resolve().parent))  # also when a test imports this file
from _bench_common import paper_loop, peak_rss_mib

_MODEL_FILE = """\
import torch
from torch import nn


def make(input_shape, output_shape, hidden={hidden}):
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(input_shape[0], hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, output_shape[0]))


def load(n={n}):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(n, 64, generator=g)
    y = (x[:, :10] @ torch.randn(10, 10, generator=g)).argmax(dim=1)
    return (x, y), (x[:8], y[:8])
"""


@dataclass(frozen=True)
class Sizes:
    hidden: int
    n: int
    grid: int  # points per axis of (a) and (b)
    grid_c: int  # points per axis of (c)
    rounds: int
    memory_params_m: float


FULL = Sizes(hidden=256, n=4096, grid=9, grid_c=5, rounds=3, memory_params_m=25.0)
SMOKE = Sizes(hidden=16, n=256, grid=3, grid_c=3, rounds=1, memory_params_m=0.05)


@dataclass(frozen=True)
class Timing:
    wall: float  # median wall-clock seconds of one call
    cpu: float  # median CPU seconds of this process during one call (robust to other jobs on a shared machine)


def _timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    w0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return time.perf_counter() - w0, time.process_time() - c0, out


def _pair(rounds: int, a: Callable[[], Any], b: Callable[[], Any]) -> tuple[Timing, Timing, Any, Any]:
    """Medians of alternating timings of ``a`` and ``b`` (after one warm-up call each) and their last results."""
    a(), b()
    times: tuple[list[tuple[float, float]], list[tuple[float, float]]] = ([], [])
    ra = rb = None
    for _ in range(rounds):
        wa, ca, ra = _timed(a)
        times[0].append((wa, ca))
        wb, cb, rb = _timed(b)
        times[1].append((wb, cb))
    ta, tb = (Timing(statistics.median(w for w, _ in t), statistics.median(c for _, c in t)) for t in times)
    return ta, tb, ra, rb


def _rel(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-12)))


def _conv_bn_net(params_m: float) -> nn.Module:
    """A VGG-like conv+BatchNorm net on 3×8×8 inputs with about ``params_m`` million parameters (width c, 2c)."""
    c = max(8, int((params_m * 1e6 / (9 * 11)) ** 0.5))  # 3x3 convs c→c, c→2c, 2c→2c twice: about 99·c² weights

    def block(i: int, o: int) -> list[nn.Module]:
        return [nn.Conv2d(i, o, 3, padding=1, bias=False), nn.BatchNorm2d(o), nn.ReLU()]

    model = nn.Sequential(*block(3, c), *block(c, c), nn.MaxPool2d(2), *block(c, 2 * c), *block(2 * c, 2 * c), nn.MaxPool2d(2),
                          *block(2 * c, 2 * c), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2 * c, 10))
    with torch.no_grad():  # BatchNorm statistics that are not the identity (folding them must change the weights)
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 1.5)
                m.weight.uniform_(0.5, 1.5)
    return model.eval()


def memory_probe(params_m: float, samples: int = 32, kind: str = "mlp") -> str:
    """Peak memory above the post-import baseline while ``landscape.surface`` runs a 3×3 grid, directions made
    in the call, on an MLP (64-w-w-10) or a conv+BatchNorm net of about ``params_m`` million parameters."""
    base = peak_rss_mib()
    torch.manual_seed(0)
    if kind == "mlp":
        width = int((params_m * 1e6) ** 0.5)
        model: nn.Module = nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10))
        x = torch.randn(samples, 64)
        what = f"MLP 64-{width}-{width}-10"
    else:
        model = _conv_bn_net(params_m)
        x = torch.randn(samples, 3, 8, 8)
        what = f"conv+BN net (5 conv3x3+BN+ReLU, widths {model[0].out_channels}/{2 * model[0].out_channels}, 3×8×8 inputs)"  # type: ignore[index]
    y = torch.randint(0, 10, (samples,))
    p = sum(t.numel() for t in model.parameters())
    s = landscape.surface(model, (x, y), x=(-1, 1, 3), y=(-1, 1, 3), progress=False)
    assert np.all(np.isfinite(s["train_loss"]))
    peak = peak_rss_mib()
    mib = 4 * p / 2**20
    return (f"{what}, {p / 1e6:.1f}M parameters ({mib:.0f} MiB float32), {samples} samples, 3×3 grid, "
            f"{torch.get_num_threads()} thread(s): peak {peak:.0f} MiB, {peak - base:.0f} MiB above the post-import "
            f"baseline = {(peak - base) / mib:.2f}× the model's bytes")


# (d)'s rows: (millions of parameters, samples, kind); each runs in a fresh process
MEMORY_ROWS = ((25.0, 32, "mlp"), (25.0, 256, "mlp"), (6.0, 16, "conv"))


def memory_row(params_m: float, samples: int, kind: str, threads: int) -> str:
    """One row of (d), measured in a fresh Python process (this one's peak already holds other work)."""
    probe = subprocess.run([sys.executable, __file__, "--memory-probe", str(params_m), "--memory-samples", str(samples),
                            "--memory-kind", kind, "--threads", str(threads)], check=True, capture_output=True, text=True)
    return probe.stdout.strip()


def _write_user_files(folder: Path, sizes: Sizes) -> tuple[str, str]:
    (folder / "bench_user.py").write_text(textwrap.dedent(_MODEL_FILE.format(hidden=sizes.hidden, n=sizes.n)))
    return f"{folder / 'bench_user.py'}:make", f"{folder / 'bench_user.py'}:load"


def run(sizes: Sizes, threads: int, smoke: bool) -> None:
    torch.set_num_threads(threads)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        model_spec, data_spec = _write_user_files(folder, sizes)
        sys.path.insert(0, str(folder))
        import bench_user  # the same factories the CLI loads from the file

        (x, y), _ = bench_user.load()
        model = bench_user.make((64,), (10,))
        torch.save(model.state_dict(), folder / "model.pt")
        dirs = landscape.random_directions(model, seed=0)
        save_directions(folder / "dirs.h5", dirs, model)
        g, gc = (-1.0, 1.0, sizes.grid), (-1.0, 1.0, sizes.grid_c)
        axis = f"-1:1:{sizes.grid}"
        counter = iter(range(10**6))

        def api_memory() -> Any:
            return landscape.surface(model, (x, y), directions=dirs, x=g, y=g, progress=False)

        def cli() -> Any:
            out = folder / f"cli_{next(counter)}.h5"
            with contextlib.redirect_stdout(io.StringIO()):  # its summary lines are not the benchmark's
                cli_main(["surface", str(folder / "model.pt"), "--model", model_spec, "--data", data_spec,
                          "--loss", "cross_entropy", "--directions", str(folder / "dirs.h5"), "--x", axis,
                          "--y", axis, "--out", str(out)])
            return landscape.load_surface(out)

        fitting = DataLoader(TensorDataset(x, y), batch_size=128, shuffle=False)

        def api_loader() -> Any:
            return landscape.surface(model, fitting, directions=dirs, x=g, y=g, progress=False)

        def api_streamed() -> Any:
            return landscape.surface(model, fitting, directions=dirs, x=gc, y=gc, memory_budget=1, progress=False)

        xs = np.linspace(*gc[:2], gc[2])
        xs[len(xs) // 2] = 0.0

        def paper() -> Any:
            return paper_loop(model, dirs, fitting, np.array([(a, b) for a in xs for b in xs])).reshape(len(xs), len(xs), 2)

        rows = []
        ta, tb, ra, rb = _pair(sizes.rounds, api_memory, cli)
        rows.append(("(a) API, in-memory tensors", ta, "CLI surface, same inputs", tb, "≤ 1.05",
                     _rel(ra["train_loss"], rb["train_loss"]), sizes.grid**2))
        ta, tb, ra, rb = _pair(sizes.rounds, api_loader, api_memory)
        rows.append(("(b) API, DataLoader within budget", ta, "API, in-memory tensors", tb, "≤ 1.10",
                     _rel(ra["train_loss"], rb["train_loss"]), sizes.grid**2))
        ta, tb, ra, rb = _pair(sizes.rounds, api_streamed, paper)
        rows.append(("(c) API, streamed (budget 1 byte)", ta, "paper's per-point loop", tb, "≤ 1/1.2",
                     max(_rel(ra["train_loss"], rb[..., 0]), _rel(ra["train_acc"], rb[..., 1]) if "train_acc" in ra else 0.0),
                     sizes.grid_c**2))
        sys.path.remove(str(folder))
    print(f"torch {torch.__version__}, {threads} thread(s), cpu; MLP 64-{sizes.hidden}-{sizes.hidden}-10 "
          f"({sum(p.numel() for p in model.parameters()):,} parameters), {sizes.n} samples; "
          f"median of {sizes.rounds} alternating round(s); seconds per call in this process (wall / CPU)")
    print(f"{'measured':34s} {'wall s':>7s} {'CPU s':>7s} {'against':26s} {'wall s':>7s} {'CPU s':>7s} "
          f"{'wall ratio':>10s} {'CPU ratio':>9s} {'expected':>13s} {'max rel diff':>12s} {'points':>6s}")
    for name, ta, other, tb, expect, diff, pts in rows:
        print(f"{name:34s} {ta.wall:7.3f} {ta.cpu:7.3f} {other:26s} {tb.wall:7.3f} {tb.cpu:7.3f} "
              f"{ta.wall / tb.wall:10.3f} {ta.cpu / tb.cpu:9.3f} {expect:>13s} {diff:12.1e} {pts:6d}")
    tc, tp = rows[2][1], rows[2][3]
    print(f"(c) speed-up of the API (streamed) over the paper's loop: {tp.wall / tc.wall:.2f}× wall, {tp.cpu / tc.cpu:.2f}× CPU")
    if smoke:
        print("(d) memory (smoke: in-process, tiny model, not meaningful): " + memory_probe(sizes.memory_params_m))
    else:
        print("(d) peak memory of landscape.surface, each row in a fresh process (VmHWM above the post-import baseline; "
              "the model + its moved tensors once more + 2 directions = 4×; promised ≤ 4.3× with negligible data):")
        for params_m, samples, kind in MEMORY_ROWS:
            print("    " + memory_row(params_m, samples, kind, threads))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="tiny sizes, one round, memory probe in-process (seconds)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--rounds", type=int, help="alternating rounds per pair (default 3; smoke 1)")
    ap.add_argument("--memory-probe", type=float, metavar="MILLIONS", help=argparse.SUPPRESS)  # the fresh process of (d)
    ap.add_argument("--memory-samples", type=int, default=32, help=argparse.SUPPRESS)
    ap.add_argument("--memory-kind", choices=("mlp", "conv"), default="mlp", help=argparse.SUPPRESS)
    ap.add_argument("--memory-only", action="store_true", help="only (d): every memory row, each in a fresh process")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.memory_probe is not None:
        print(memory_probe(args.memory_probe, args.memory_samples, args.memory_kind))
        return 0
    if args.memory_only:
        for params_m, samples, kind in MEMORY_ROWS:
            print("(d) " + memory_row(params_m, samples, kind, args.threads), flush=True)
        return 0
    sizes = SMOKE if args.smoke else FULL
    if args.rounds is not None:
        sizes = Sizes(**{**sizes.__dict__, "rounds": args.rounds})
    run(sizes, args.threads, args.smoke)
    return 0


if __name__ == "__main__":
    sys.exit(main())
