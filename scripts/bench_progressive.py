#!/usr/bin/env python
"""Benchmark: exact surfaces against progressive ones (``--tolerance``, ``--tolerance --refine``), in one run.

For one checkpoint and one pair of directions, each plane is computed three times, each as its own
``landscape surface`` command into its own file, its wall time measured around the subprocess
(interpreter start, data loading and file writing included):

    exact       the default engine, every sample at every point
    tolerance   --tolerance T (default "2%" of the contour step)
    refine      --tolerance T --refine

then the three files are read and compared point by point with the exact one: sample-forwards
(Σ over points of ``train_samples``; exact: points × N), the largest |estimate − exact| in units of
T (each point's T, ``landscape.figures.estimates.tolerance_of``; points stopped "above" the figure's range left out and counted
apart), the share of points whose exact value lies within 2 standard errors of the estimate, the
share of points computed (not interpolated), and the Hausdorff distance between the contour lines
of the two surfaces at the figure's levels, in grid cells (``scripts/_contours.py``): the largest
over the levels drawn in both, with the number of levels drawn in one surface only beside it. The levels
are those ``landscape plot`` draws for the exact surface with ``--vmax`` at the estimator's top of
the range (attrs["top"]) when the surface goes above it.

Planes: ``small``, ±``--range`` around the checkpoint, a range where no point explodes; with
``--plane paper`` also the paper's ±1, where the trained CNN's corners explode (three more runs),
so the share of points ``--refine`` computes can be read on both. ``--reuse`` keeps the runs
already complete in the output folder (with their recorded times), e.g. to add the paper plane later.
The workload is ``configs/bench_progressive.toml`` (the digits CNN on 60,000 augmented digits),
trained into the output folder when no ``--checkpoint`` is given.

    python scripts/bench_progressive.py --out-dir bench_out --threads 2            # the benchmark
    python scripts/bench_progressive.py --out-dir bench_out --plane paper --threads 2
    python scripts/bench_progressive.py --out-dir bench_out --plane paper --reuse --threads 2   # add the ±1 plane
    python scripts/bench_progressive.py --out-dir bench_out --analyze-only         # re-read the files
                                                                                   # (a run not finished is named so)
    python scripts/bench_progressive.py --out-dir /tmp/quick --quick               # smoke run, seconds

Writes ``<out-dir>/progressive_table.md`` (the table, Markdown) and ``<out-dir>/speed_progressive.png``
(contours: exact | tolerance | tolerance + refine, one row per plane), and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from _contours import hausdorff_by_level
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from landscape.figures._style import _levels, _Style
from landscape.figures.estimates import tolerance_of
from landscape.figures.planar import contour
from landscape.figures.views import spans_decades
from landscape.io.surface_file import SurfaceFile, read_surface

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "bench_progressive.toml"
RUNS = ("exact", "tolerance", "refine")
PAPER_RANGE = 1.0


@dataclass(frozen=True)
class Comparison:
    """A run's numbers against the exact surface of its plane."""

    sample_forwards: int
    data_share: float
    max_err_t: float  # largest |estimate − exact| / T over the points not stopped "above"
    within_2se: float  # share of points with |estimate − exact| ≤ 2 standard errors
    computed_share: float
    above: int
    hausdorff_cells: float  # over the levels drawn in both surfaces
    levels_in_one: int  # levels drawn in one surface only (a contour appeared or vanished)


@dataclass(frozen=True)
class Row:
    """One line of the table."""

    plane: str
    run: str
    wall_s: float
    speedup: float
    numbers: Comparison


def figure_levels(exact: np.ndarray, top: float | None) -> tuple[np.ndarray, bool, float | None]:
    """(levels, log, vmax) of ``landscape plot``'s contour figure of ``exact``: a log scale when the finite
    values span more than a decade, about 12 round values over the range, capped at ``top`` (as
    ``--vmax top``) when the surface goes above it."""
    finite = exact[np.isfinite(exact)]
    if finite.size < 2:
        raise ValueError("the exact surface has fewer than 2 finite values: no contour figure to compare")
    log = spans_decades(finite)
    lo, hi = float(finite.min()), float(finite.max())
    vmax = top if top is not None and hi > top > lo else None
    return _levels(_Style(log=log, vmax=vmax), lo, hi if vmax is None else vmax, filled=False), log, vmax


def compare(exact: SurfaceFile, run: SurfaceFile, metric: str, levels: Iterable[float], n: int) -> Comparison:
    """The table's numbers for ``run`` against ``exact`` (an exact run compared with itself gives the exact row)."""
    split = metric.split("_", 1)[0]
    e = np.where(exact.done, exact.values[metric], np.nan)
    v = np.where(run.done, run.values[metric], np.nan)
    points = int(run.done.size)
    by_level = np.asarray(hausdorff_by_level(e, v, levels))
    shared = by_level[np.isfinite(by_level)]
    lines = (float(shared.max()) if shared.size else 0.0, int((~np.isfinite(by_level)).sum()))
    if not run.attrs.get("progressive"):
        return Comparison(points * n, 1.0, 0.0, 1.0, 1.0, 0, *lines)
    t = tolerance_of(run, metric)  # each point's T (a percent tolerance: smaller at low values, as on a log figure)
    assert t is not None
    se = run.extra[f"{metric}_stderr"]
    above = run.extra["above"].astype(bool)
    forwards = int(run.extra[f"{split}_samples"].sum())
    both = np.isfinite(e) & np.isfinite(v)
    err = np.abs(v - e)
    # exact points (stderr 0) count as within when they agree to rounding: sums in another order
    within = err[both] <= 2 * se[both] + 1e-9 * np.maximum(1.0, np.abs(e[both]))
    kept = both & ~above
    computed = run.extra["computed"].astype(bool) if "computed" in run.extra else np.ones(e.shape, dtype=bool)
    return Comparison(forwards, forwards / (points * n), float((err[kept] / t[kept]).max()) if kept.any() else 0.0,
                      float(within.mean()) if within.size else float("nan"), float(computed.mean()),
                      int(above.sum()), *lines)


def check_comparable(exact: SurfaceFile, sf: SurfaceFile, name: str, metric: str) -> None:
    """Stop with a message when ``sf`` is not the exact surface's plane, or has no tolerance for ``metric``."""
    if sf.grid.shape != exact.grid.shape or not (np.allclose(sf.grid.x, exact.grid.x) and sf.grid.y is not None
                                                 and exact.grid.y is not None and np.allclose(sf.grid.y, exact.grid.y)):
        sys.exit(f"bench_progressive: {name} has another grid than the exact surface of its plane")
    if sf.attrs.get("directions_fingerprint") != exact.attrs.get("directions_fingerprint"):
        sys.exit(f"bench_progressive: {name} was computed along other directions than the exact surface")
    if metric not in sf.columns or (sf.attrs.get("progressive") and metric not in sf.attrs["tolerance"]):
        sys.exit(f"bench_progressive: {name} has no tolerance for --metric {metric!r} (a loss column is needed)")


def analyze(files: dict[str, dict[str, Path]], timings: dict[str, float], metric: str) -> tuple[list[Row], Figure, str]:
    """Rows of the table, the side-by-side figure and a note on T, N and the levels, from the files
    ``files[plane][run]`` and the wall times ``timings["plane/run"]``."""
    rows: list[Row] = []
    notes: list[str] = []
    fig = Figure(figsize=(13.5, 3.9 * len(files)), layout="constrained")
    axes = fig.subplots(len(files), 3, squeeze=False)
    for r, (plane, paths) in enumerate(files.items()):
        surfaces = {run: read_surface(paths[run]) for run in RUNS if run in paths}
        exact = surfaces["exact"]
        for run, sf in surfaces.items():
            check_comparable(exact, sf, f"{plane}_{run}.h5", metric)
        progressive = [sf for sf in surfaces.values() if sf.attrs.get("progressive")]
        top = float(progressive[0].attrs["top"][metric]) if progressive else None
        n = int(progressive[0].attrs["samples_total"][metric.split("_", 1)[0]]) if progressive else 0
        e = np.where(exact.done, exact.values[metric], np.nan)
        levels, log, vmax = figure_levels(e, top)
        t = ", ".join(f"{run}: T = {sf.attrs['tolerance'][metric]:.4g} ({sf.attrs.get('tolerance_spec', '')})"
                      for run, sf in surfaces.items() if sf.attrs.get("progressive"))
        notes.append(f"{plane} plane, x {exact.grid.x[0]:g}..{exact.grid.x[-1]:g}, grid {exact.grid.shape}, "
                     f"N = {n:,} samples; {t}; top = {'none' if top is None else f'{top:.4g}'}; levels ({'log' if log else 'linear'}): "
                     + ", ".join(f"{lv:.3g}" for lv in levels))
        for c, (run, sf) in enumerate(surfaces.items()):
            numbers = compare(exact, sf, metric, levels, n)
            wall = timings.get(f"{plane}/{run}", float("nan"))
            label = run if sf.done.all() else f"{run} ({int(sf.done.sum())}/{sf.done.size} points done)"
            rows.append(Row(plane, label, wall, timings.get(f"{plane}/exact", float("nan")) / wall, numbers))
            panel(axes[r][c], sf, metric, f"{plane}: {run}", levels, log, vmax)
    return rows, fig, "\n".join(notes)


def panel(ax: Axes, sf: SurfaceFile, metric: str, title: str, levels: np.ndarray, log: bool, vmax: float | None) -> None:
    """One surface's contour lines at the shared levels; the points ``--refine`` computed dotted."""
    y = sf.grid.y
    assert y is not None, "a 2D surface"
    computed = sf.extra.get("computed")
    contour(sf.grid.x, y, sf.values[metric], done=sf.done, ax=ax, levels=list(levels), log=log, vmax=vmax,
            title=title if computed is None else f"{title} (dots: points computed)")
    if computed is not None:  # the rest are interpolated
        ii, jj = np.nonzero(computed.astype(bool))
        ax.plot(sf.grid.x[ii], y[jj], ".", color="0.2", markersize=2.0)


def in_one(count: int) -> str:
    return f" (+{count} level{'s' if count > 1 else ''} in one surface only)" if count else ""


def markdown(rows: Sequence[Row], note: str) -> str:
    head = ("| plane | run | wall time (s) | speed-up | sample-forwards | data read | max \\|est − exact\\| / T "
            "| within 2 SE | points computed | above range | contour Hausdorff (cells) |")
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        c = r.numbers
        lines.append(f"| {r.plane} | {r.run} | {r.wall_s:.1f} | {r.speedup:.2f}× | {c.sample_forwards:,} | "
                     f"{100 * c.data_share:.1f} % | {c.max_err_t:.2f} | {100 * c.within_2se:.1f} % | "
                     f"{100 * c.computed_share:.1f} % | {c.above} | {c.hausdorff_cells:.2f}{in_one(c.levels_in_one)} |")
    return "\n".join(lines) + "\n\n" + "\n".join(f"- {line}" for line in note.splitlines()) + "\n"


# ------------------------------------------------------------------------------------- running


def run_command(cmd: list[str]) -> float:
    """Run one ``landscape`` command; its wall time in seconds. A failure ends the benchmark with its message."""
    print("$", " ".join(cmd[2:]), flush=True)
    path = os.pathsep.join([str(REPO), *filter(None, [os.environ.get("PYTHONPATH")])])  # this checkout's landscape
    start = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": path})
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"bench_progressive: `{' '.join(cmd[2:])}` failed: {(done.stderr or done.stdout).strip()[-600:]}")
    return wall


def train(out: Path, quick: bool, threads: list[str]) -> Path:
    """Train the workload into ``out/run`` (``out/run_quick`` for ``--quick``); its last checkpoint."""
    folder = out / ("run_quick" if quick else "run")
    trained = sorted((folder / "checkpoints").glob("*.pt"))
    if trained:  # a run already there (landscape train would only resume it)
        return trained[-1]
    extra = ["--epochs", "1", "--set", "data.options={ n_train = 3000 }"] if quick else []
    run_command([sys.executable, "-m", "landscape", "train", str(CONFIG), "--out", str(folder), *extra, *threads])
    return sorted((folder / "checkpoints").glob("*.pt"))[-1]


def compute(args: argparse.Namespace, planes: dict[str, float], threads: list[str]) -> dict[str, float]:
    """The three runs of every plane; their wall times by "plane/run" (also saved to timings.json)."""
    out: Path = args.out_dir
    checkpoint = args.checkpoint or train(out, args.quick, threads)
    points = 9 if args.quick else args.points
    common = [*(["--max-samples", "2000"] if args.quick else []), "--split", metric_split(args.metric), *threads]
    directions = (["--directions", str(args.directions)] if args.directions
                  else ["--seed", str(args.seed)] if args.seed is not None else [])
    options = {"exact": [], "tolerance": ["--tolerance", args.tolerance],
               "refine": ["--tolerance", args.tolerance, "--refine"]}
    stored = out / "timings.json"
    timings: dict[str, float] = json.loads(stored.read_text()) if args.reuse and stored.is_file() else {}
    for plane, r in planes.items():
        grid = f"{-r:g}:{r:g}:{points}"
        for run in RUNS:
            path = out / f"{plane}_{run}.h5"
            if not (args.reuse and f"{plane}/{run}" in timings and complete(path)):
                timings[f"{plane}/{run}"] = run_command(
                    [sys.executable, "-m", "landscape", "surface", str(checkpoint), "--x", grid, "--y", grid,
                     "--out", str(path), "--overwrite", *directions, *common, *options[run]])
                stored.write_text(json.dumps(timings, indent=1))
            directions = ["--directions", str(path)] if run == "exact" and not args.directions else directions
    return timings


def complete(path: Path) -> bool:
    return path.is_file() and bool(read_surface(path).done.all())


def metric_split(metric: str) -> str:
    split = metric.split("_", 1)[0]
    if split not in ("train", "test"):
        sys.exit(f"bench_progressive: --metric {metric!r} must be a train_* or test_* column")
    return split


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out-dir", type=Path, default=Path("bench_progressive"), help="where files, table and figure go")
    p.add_argument("--checkpoint", type=Path, help="default: train configs/bench_progressive.toml into OUT/run")
    p.add_argument("--directions", type=Path, help="a direction or surface file (default: the first exact run's, --seed)")
    p.add_argument("--seed", type=int, help="seed of the random directions (default: landscape surface's)")
    p.add_argument("--tolerance", default="2%", help="the tolerance given to --tolerance (default: 2%%)")
    p.add_argument("--plane", choices=("small", "paper"), default="small", help="paper: also the paper's ±1 plane")
    p.add_argument("--reuse", action="store_true", help="keep the complete runs already in OUT (and their times)")
    p.add_argument("--range", type=float, default=0.25, help="half-width of the small plane (default 0.25)")
    p.add_argument("--points", type=int, default=51, help="points per axis (default 51)")
    p.add_argument("--metric", default="train_loss")
    p.add_argument("--threads", type=int, help="passed to every landscape command")
    p.add_argument("--quick", action="store_true", help="smoke run: 3,000 training images, 9×9, 2,000 samples")
    p.add_argument("--analyze-only", action="store_true", help="read OUT's files and timings.json; run nothing")
    p.add_argument("--figure", type=Path, help="default OUT/speed_progressive.png")
    p.add_argument("--table", type=Path, help="default OUT/progressive_table.md")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    planes = {name: r for name, r in (("small", args.range), ("paper", PAPER_RANGE)) if name == "small" or args.plane == "paper"}
    threads = ["--threads", str(args.threads)] if args.threads else []
    if args.analyze_only:
        stored = args.out_dir / "timings.json"
        timings = json.loads(stored.read_text()) if stored.is_file() else {}
    else:
        timings = compute(args, planes, threads)
    files = {plane: {run: args.out_dir / f"{plane}_{run}.h5" for run in RUNS
                     if (args.out_dir / f"{plane}_{run}.h5").is_file()} for plane in planes}
    missing = [f"{plane}_exact.h5" for plane, paths in files.items() if "exact" not in paths]
    if missing:
        sys.exit(f"bench_progressive: {args.out_dir} lacks {', '.join(missing)}; run without --analyze-only first")
    rows, fig, note = analyze(files, timings, args.metric)
    table = markdown(rows, note)
    (args.table or args.out_dir / "progressive_table.md").write_text(table)
    fig.savefig(args.figure or args.out_dir / "speed_progressive.png", dpi=110)
    print(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
