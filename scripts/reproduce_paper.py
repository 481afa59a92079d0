"""Reproduce the findings of Li et al. (2018) on the built-in digits; write REPRODUCTION.md and its figures.

Run through ``scripts/reproduce_paper.sh`` (see ``--help``). Every model is trained from a config
in ``configs/paper/`` with ``--set`` overrides that scale the paper's recipe down (fewer epochs,
a training subset, narrower nets); every surface is computed by the ``landscape`` CLI. Each
stage resumes: a second run reuses the finished runs and surface files in the work folder.

The findings and the number that states each one:

1. skip connections (Fig. 5, 7): test error, and the mean of |λmin/λmax| over the plotted plane;
2. width (Fig. 6): test error, and the mean loss increase over the plotted plane;
3. small vs large batch (Fig. 3, 4): the curvature of the interpolation at each end, and the
   curvature of the filter-normalized 1D plot against the test error, with and without weight decay;
4. the optimizer path in its PCA plane (Fig. 9): the explained variance of PC1 + PC2.

A verdict per finding is computed from the numbers (the comparison the paper states), so the
text cannot claim more than the measurements show.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import json
import math
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from landscape.cli import main as cli_main  # noqa: E402
from landscape.io.checkpoint import load_checkpoint  # noqa: E402
from landscape.workflows.trajectory import path_axis  # noqa: E402


@dataclass(frozen=True)
class Scale:
    """How far the paper's recipes are scaled down."""

    name: str
    max_train: int  # training subset (digits: 1,437 training images)
    eval_samples: int  # training samples each surface point is evaluated on
    resnet_width: int  # paper: 16
    resnet_epochs: int
    resnet_batch: int
    depths: tuple[int, ...]
    widths: tuple[int, ...]  # base widths of the width study (ResNet-20)
    grid2d: int  # points per axis of the 2D surfaces
    eig_grid: int  # points per axis of the |λmin/λmax| maps
    eig_samples: int
    eig_iter: int
    vgg_width: int  # paper: 64
    vgg_epochs: int
    line_points: int
    pca_grid: int
    resnet_step: int  # epochs between learning-rate drops
    vgg_step: int
    extra: tuple[str, ...] = field(default_factory=tuple)  # added to every surface command


FULL = Scale("full", max_train=768, eval_samples=128, resnet_width=4, resnet_epochs=15, resnet_batch=64,
             depths=(20, 56, 110), widths=(2, 4, 8), grid2d=11, eig_grid=3, eig_samples=32, eig_iter=10,
             vgg_width=8, vgg_epochs=60, line_points=25, pca_grid=13, resnet_step=10, vgg_step=30)
MINI = Scale("mini", max_train=48, eval_samples=8, resnet_width=1, resnet_epochs=2, resnet_batch=16,
             depths=(20,), widths=(1, 2), grid2d=3, eig_grid=2, eig_samples=4, eig_iter=2,
             vgg_width=1, vgg_epochs=2, line_points=3, pca_grid=3, resnet_step=1, vgg_step=1,
             extra=("--points-per-call", "1"))


class Runner:
    """Calls the ``landscape`` CLI and keeps a log of the commands and their wall time."""

    def __init__(self, work: Path, threads: int, extra: tuple[str, ...] = ()) -> None:
        self.work = work
        self.extra = extra
        self.threads = threads
        self.log: list[tuple[str, float]] = []
        # the wall time of the call that did each command's work: a rerun (which resumes and
        # finds everything done) keeps the first time, so the report states the real cost
        self.times_file = work / "times.json"
        self.first: dict[str, float] = json.loads(self.times_file.read_text()) if self.times_file.is_file() else {}

    def __call__(self, *args: str) -> str:
        """``landscape ARGS`` in this process (no start-up cost per command); its stdout is returned."""
        cmd = ["--quiet", *(["--threads", str(self.threads)] if self.threads else []), *args]
        t0 = time.perf_counter()
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf):
            code = cli_main(cmd)
        dt = time.perf_counter() - t0
        shown = " ".join(a if " " not in a else repr(a) for a in args)
        self.log.append((shown, dt))
        self.first.setdefault(shown, dt)
        self.times_file.write_text(json.dumps(self.first, indent=1))
        print(f"[{dt:7.1f} s] landscape {shown}", flush=True)
        if code != 0:
            sys.stderr.write(buf.getvalue())
            raise SystemExit(f"landscape {shown} failed with exit code {code}")
        return buf.getvalue()

    def train(self, config: str, name: str, overrides: list[str]) -> dict[str, Any]:
        out = self.work / "runs" / name
        sets = [a for o in overrides for a in ("--set", o)]
        self("train", str(ROOT / "configs" / "paper" / f"{config}.toml"), "--out", str(out), *sets)
        manifest = json.loads((out / "run.json").read_text())
        last = manifest["checkpoints"][-1]
        return {"dir": out, "final": out / last["file"], "metrics": last, "manifest": manifest}

    def surface(self, ckpt: Path, name: str, *args: str) -> dict[str, np.ndarray]:
        out = self.work / "surfaces" / f"{name}.h5"
        self("surface", str(ckpt), "--out", str(out), *args, *self.extra)
        return read_h5(out)


def read_h5(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        data = {k: np.asarray(v[()]) for k, v in f.items() if isinstance(v, h5py.Dataset)}
        data["_attrs"] = {k: (v.item() if isinstance(v, np.generic) else v) for k, v in f.attrs.items()}  # type: ignore[assignment]
    return data


# --- measures -------------------------------------------------------------------------------------


def mean_rise(z: np.ndarray) -> float:
    """Mean of L − L(0) over the plotted plane (the centre node is the trained model)."""
    c = tuple(s // 2 for s in z.shape)
    return float(np.mean(z - z[c]))


def basin(z: np.ndarray, rise: float = 1.0) -> float:
    """Fraction of the plotted plane where L − L(0) < ``rise``: the area of the basin around the model."""
    c = tuple(s // 2 for s in z.shape)
    return float(np.mean(z - z[c] < rise))


def curvature_at(x: np.ndarray, y: np.ndarray, at: float, half: float) -> float:
    """Second derivative of a quadratic fitted to the points with |x − at| ≤ half (least squares)."""
    keep = np.abs(x - at) <= half + 1e-12
    if keep.sum() < 3:
        keep = np.argsort(np.abs(x - at))[:3]
    coef = np.polyfit(x[keep] - at, y[keep], 2)
    return float(2 * coef[0])


def fmt(v: float, digits: int = 3) -> str:
    return "n/a" if not math.isfinite(v) else f"{v:.{digits}g}"


# --- the experiments ----------------------------------------------------------------------------


def common(s: Scale, epochs: int, step: int, batch: int | None = None) -> list[str]:
    out = [f"data.max_train={s.max_train}", f"train.epochs={epochs}", f"train.step_size={step}"]
    if batch is not None:
        out.append(f"train.batch_size={batch}")
    return out


def grid_args(n: int, two_d: bool = True) -> list[str]:
    spec = f"-1:1:{n}"
    return ["--x", spec, *(["--y", spec] if two_d else [])]


def skip_connections(run: Runner, s: Scale, img: Path) -> tuple[list[str], dict[str, Any]]:
    """Fig. 5 and 7: ResNets with and without shortcut connections at several depths."""
    rows: dict[str, dict[int, dict[str, Any]]] = {"resnet": {}, "noshort": {}}
    for depth in s.depths:
        for kind in rows:
            name = f"resnet{depth}" + ("_noshort" if kind == "noshort" else "")
            r = run.train(name, name, [*common(s, s.resnet_epochs, s.resnet_step, s.resnet_batch), f"model.options.width={s.resnet_width}"])
            surf = run.surface(r["final"], f"{name}_2d", *grid_args(s.grid2d), "--max-samples", str(s.eval_samples))
            eig = run.surface(r["final"], f"{name}_eig", *grid_args(s.eig_grid), "--max-samples", str(s.eig_samples),
                              "--metric", "eig_ratio", "--set", f"hessian.map_max_iter={s.eig_iter}")
            ratio = eig["train_eig_ratio"]
            rows[kind][depth] = {"err": 1 - r["metrics"]["test_acc"], "z": surf["train_loss"], "x": surf["x"],
                                 "ratio": ratio, "ex": eig["x"], "mean_ratio": float(np.nanmean(ratio)),
                                 "max_ratio": float(np.nanmax(ratio)), "rise": mean_rise(surf["train_loss"]),
                                 "basin": basin(surf["train_loss"])}
    fig, axes = plt.subplots(2, len(s.depths), figsize=(3.2 * len(s.depths), 6.0), squeeze=False, constrained_layout=True)
    fig2, axes2 = plt.subplots(2, len(s.depths), figsize=(3.2 * len(s.depths), 6.0), squeeze=False, constrained_layout=True)
    for i, kind in enumerate(rows):
        for j, depth in enumerate(s.depths):
            d = rows[kind][depth]
            label = f"ResNet-{depth}" + ("-noshort" if kind == "noshort" else "")
            ax = axes[i][j]
            cs = ax.contour(d["x"], d["x"], d["z"].T, levels=np.linspace(d["z"].min(), d["z"].min() + 10.0, 21), cmap="viridis")
            ax.clabel(cs, cs.levels[::4], fontsize=6)
            ax.set_title(f"{label}\ntest error {100 * d['err']:.1f} %", fontsize=9)
            ax.set_aspect("equal")
            ax2 = axes2[i][j]
            im = ax2.imshow(d["ratio"].T, origin="lower", extent=(d["ex"][0], d["ex"][-1], d["ex"][0], d["ex"][-1]),
                            vmin=0, vmax=1, cmap="viridis")
            ax2.set_title(f"{label}\nmean |λmin/λmax| {d['mean_ratio']:.3f}", fontsize=9)
    fig2.colorbar(im, ax=axes2, shrink=0.6, label="|λmin/λmax|")
    fig.suptitle("Fig. 5: train loss, filter-normalized random plane (contours: min … min + 10 in steps of 0.5, as the paper's)", fontsize=9)
    fig2.suptitle("Fig. 7: |λmin/λmax| of the Hessian over the same plane", fontsize=9)
    fig.savefig(img / "fig5_skip_connections.png", dpi=72)
    fig2.savefig(img / "fig7_eig_ratio.png", dpi=72)
    plt.close(fig)
    plt.close(fig2)
    lines = ["| model | test error | mean \\|λmin/λmax\\| | max \\|λmin/λmax\\| | mean L − L(0) on the plane | basin: share of the plane with L − L(0) < 1 |",
             "|---|---|---|---|---|---|"]
    for kind in rows:
        for depth in s.depths:
            d = rows[kind][depth]
            lines.append(f"| ResNet-{depth}{'-noshort' if kind == 'noshort' else ''} | {100 * d['err']:.1f} % | "
                         f"{fmt(d['mean_ratio'])} | {fmt(d['max_ratio'])} | {fmt(d['rise'])} | {d['basin']:.2f} |")
    more = all(rows["noshort"][d]["mean_ratio"] > rows["resnet"][d]["mean_ratio"] for d in s.depths)
    grows = all(a < b for a, b in itertools.pairwise([rows["noshort"][d]["mean_ratio"] for d in s.depths]))
    verdict = {"noshort_less_convex_at_every_depth": more, "noshort_nonconvexity_grows_with_depth": grows if len(s.depths) > 1 else None}
    return lines, verdict


def width(run: Runner, s: Scale, img: Path) -> tuple[list[str], dict[str, Any]]:
    """Fig. 6: wider ResNets (shortcut connections) at one depth."""
    depth = s.depths[0]
    res = {}
    for w in s.widths:
        name = f"resnet{depth}"
        tag = f"{name}_w{w}" if w != s.resnet_width else name  # the width of the skip study is shared with it
        r = run.train(name, tag, [*common(s, s.resnet_epochs, s.resnet_step, s.resnet_batch), f"model.options.width={w}"])
        surf = run.surface(r["final"], f"{tag}_2d", *grid_args(s.grid2d), "--max-samples", str(s.eval_samples))
        res[w] = {"err": 1 - r["metrics"]["test_acc"], "z": surf["train_loss"], "x": surf["x"], "rise": mean_rise(surf["train_loss"]),
                  "basin": basin(surf["train_loss"])}
    fig, axes = plt.subplots(1, len(s.widths), figsize=(3.2 * len(s.widths), 3.3), squeeze=False, constrained_layout=True)
    for j, w in enumerate(s.widths):
        d = res[w]
        ax = axes[0][j]
        cs = ax.contour(d["x"], d["x"], d["z"].T, levels=np.linspace(d["z"].min(), d["z"].min() + 10.0, 21), cmap="viridis")
        ax.clabel(cs, cs.levels[::4], fontsize=6)
        ax.set_title(f"ResNet-{depth}, width {w} (k={w / s.widths[0]:g})\ntest error {100 * d['err']:.1f} %", fontsize=9)
        ax.set_aspect("equal")
    fig.suptitle("Fig. 6: wider nets (contours: min … min + 10 in steps of 0.5, as the paper's)", fontsize=9)
    fig.savefig(img / "fig6_width.png", dpi=72)
    plt.close(fig)
    lines = ["| base width | test error | mean L − L(0) on the plane | basin: share of the plane with L − L(0) < 1 |", "|---|---|---|---|"]
    lines += [f"| {w} | {100 * res[w]['err']:.1f} % | {fmt(res[w]['rise'])} | {res[w]['basin']:.2f} |" for w in s.widths]
    rises = [res[w]["rise"] for w in s.widths]
    basins = [res[w]["basin"] for w in s.widths]
    return lines, {"flatter_with_width": all(a > b for a, b in itertools.pairwise(rises)),
                   "basin_grows_with_width": all(a < b for a, b in itertools.pairwise(basins))}


def batch_size(run: Runner, s: Scale, img: Path) -> tuple[list[str], dict[str, Any], dict[str, Any]]:
    """Fig. 3 (interpolation between the small- and large-batch minima) and Fig. 4 (filter-normalized 1D)."""
    runs: dict[str, dict[str, Any]] = {}
    for cfg in ("vgg9_sb", "vgg9_lb", "vgg9_sb_wd", "vgg9_lb_wd"):
        batch = None if "_sb" in cfg else s.max_train  # large batch: the whole training subset
        runs[cfg] = run.train(cfg, cfg, [*common(s, s.vgg_epochs, s.vgg_step, batch), f"model.options.width={s.vgg_width}"])
    interp: dict[str, dict[str, Any]] = {}
    for wd in ("", "_wd"):
        sb, lb = runs[f"vgg9_sb{wd}"], runs[f"vgg9_lb{wd}"]
        line = run.surface(sb["final"], f"interp{wd}", "--target", str(lb["final"]), "--x", f"-0.5:1.5:{2 * s.line_points - 1}",
                           "--split", "both", "--dir-type", "states")
        interp[wd] = line
    fn: dict[str, dict[str, Any]] = {}
    for cfg, r in runs.items():
        fn[cfg] = run.surface(r["final"], f"{cfg}_1d", "--x", f"-1:1:{s.line_points}", "--split", "both")
    fig, axes = plt.subplots(1, 2, figsize=(8.0, 3.2), constrained_layout=True)
    ends: dict[str, tuple[float, float]] = {}
    for ax, wd in zip(axes, ("", "_wd"), strict=True):
        d = interp[wd]
        x = d["x"]
        ax.semilogy(x, d["train_loss"], "b-", label="train loss")
        ax.semilogy(x, d["test_loss"], "b--", label="test loss")
        ax2 = ax.twinx()
        ax2.plot(x, 100 * d["train_acc"], "r-", label="train acc")
        ax2.plot(x, 100 * d["test_acc"], "r--", label="test acc")
        ax2.set_ylim(0, 100)
        ax.set_xlabel("α (0 = small batch, 1 = large batch)")
        ax.set_ylabel("loss", color="b")
        ax2.set_ylabel("accuracy %", color="r")
        ax.set_title(f"weight decay {'5e-4' if wd else '0'}", fontsize=9)
        h = 0.25
        ends[wd] = (curvature_at(x, d["train_loss"], 0.0, h), curvature_at(x, d["train_loss"], 1.0, h))
    axes[0].legend(loc="upper left", fontsize=7)
    fig.suptitle("Fig. 3: linear interpolation between the small-batch and large-batch minima", fontsize=9)
    fig.savefig(img / "fig3_interpolation.png", dpi=72)
    plt.close(fig)
    fig, axes = plt.subplots(1, 2, figsize=(8.0, 3.2), constrained_layout=True)
    sharp: dict[str, float] = {}
    for ax, wd in zip(axes, ("", "_wd"), strict=True):
        ax2 = ax.twinx()
        for cfg, color in ((f"vgg9_sb{wd}", "C0"), (f"vgg9_lb{wd}", "C3")):
            d = fn[cfg]
            label = "small batch" if "_sb" in cfg else f"large batch ({s.max_train})"
            ax.plot(d["x"], d["train_loss"], "-", color=color, label=f"{label}, train loss")
            ax.plot(d["x"], d["test_loss"], "--", color=color, label=f"{label}, test loss")
            ax2.plot(d["x"], 100 * d["test_acc"], ":", color=color)
            sharp[cfg] = curvature_at(d["x"], d["train_loss"], 0.0, 0.25)
        ax2.set_ylim(0, 100)
        ax2.set_ylabel("test accuracy % (dotted)")
        ax.set_xlabel("α (filter-normalized random direction)")
        ax.set_ylabel("loss")
        ax.set_title(f"weight decay {'5e-4' if wd else '0'}", fontsize=9)
    axes[0].legend(loc="upper center", fontsize=6)
    fig.suptitle("Fig. 4: filter-normalized 1D plots of the four minima", fontsize=9)
    fig.savefig(img / "fig4_filter_normalized_1d.png", dpi=72)
    plt.close(fig)
    lines = ["| model | batch | weight decay | test error | train loss | curvature of the filter-normalized 1D plot at 0 | ‖θ‖ (weights with ndim > 1) |",
             "|---|---|---|---|---|---|---|"]
    for cfg, r in runs.items():
        lines.append(f"| {cfg} | {r['manifest']['config']['train']['batch_size']} | {r['manifest']['config']['train']['weight_decay']} | "
                     f"{100 * (1 - r['metrics']['test_acc']):.1f} % | {fmt(r['metrics']['train_loss'])} | {fmt(sharp[cfg])} | "
                     f"{fmt(weight_norm(r['final']))} |")
    lines += ["", "| interpolation | curvature at α = 0 (small batch) | curvature at α = 1 (large batch) |", "|---|---|---|"]
    lines += [f"| weight decay {'5e-4' if wd else '0'} | {fmt(ends[wd][0])} | {fmt(ends[wd][1])} |" for wd in ("", "_wd")]
    err = {cfg: 1 - r["metrics"]["test_acc"] for cfg, r in runs.items()}
    tracks = all((sharp[f"vgg9_sb{wd}"] < sharp[f"vgg9_lb{wd}"]) == (err[f"vgg9_sb{wd}"] < err[f"vgg9_lb{wd}"]) for wd in ("", "_wd"))
    order = sorted(runs, key=lambda c: sharp[c])
    verdict = {"interp_sharper_at_large_batch_no_wd": ends[""][1] > ends[""][0],
               "interp_sharper_at_large_batch_wd": ends["_wd"][1] > ends["_wd"][0],
               "filter_normalized_sharpness_tracks_test_error_within_each_wd": tracks,
               "rank_correlation_sharpness_vs_error_all_four": spearman([sharp[c] for c in runs], [err[c] for c in runs]),
               "flattest_to_sharpest": order}
    return lines, verdict, runs


def weight_norm(checkpoint: Path) -> float:
    """‖θ‖ over the tensors with ndim > 1 (those the filter-normalized directions move)."""
    state = load_checkpoint(checkpoint).state_dict
    return math.sqrt(sum(float((t.double() ** 2).sum()) for k, t in state.items() if t.is_floating_point() and t.ndim > 1))


def spearman(a: list[float], b: list[float]) -> float:
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    return float(np.corrcoef(ra, rb)[0, 1])


def trajectory(run: Runner, s: Scale, img: Path, runs: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """Fig. 9: the optimizer path of the VGG-9 small-batch runs in their PCA planes."""
    fig, axes = plt.subplots(1, 2, figsize=(8.0, 3.6), constrained_layout=True)
    lines = ["| run | PC1 | PC2 | PC1 + PC2 | checkpoints |", "|---|---|---|---|---|"]
    total = {}
    for ax, cfg in zip(axes, ("vgg9_sb", "vgg9_sb_wd"), strict=True):
        tfile = run.work / "surfaces" / f"{cfg}_trajectory.h5"
        run("trajectory", str(runs[cfg]["dir"]), "--out", str(tfile))
        with h5py.File(tfile, "r") as f:
            coords = np.asarray(f["trajectory"]["coords"][()])
            ev = np.asarray(f.attrs["explained_variance"], dtype=float)
            center = bool(f.attrs["center"])
        surf = run.surface(runs[cfg]["final"], f"{cfg}_pca", "--directions", str(tfile), "--max-samples", str(s.eval_samples),
                           "--x", path_axis(coords[:, 0], s.pca_grid, 0.3), "--y", path_axis(coords[:, 1], s.pca_grid, 0.3))
        z = surf["train_loss"]
        lo = max(float(np.nanmin(z)), 1e-4)
        hi = min(float(np.nanmax(z)), lo * 1e4)
        levels = np.geomspace(lo * 1.05, hi, 15) if hi > lo * 1.1 else 10  # log-spaced: the basin and its walls
        cs = ax.contour(surf["x"], surf["y"], z.T, levels=levels, cmap="viridis")
        ax.clabel(cs, cs.levels[::3], fontsize=6, fmt="%.3g")
        ax.plot(coords[:, 0], coords[:, 1], "r.-", ms=4)
        ax.plot(coords[-1, 0], coords[-1, 1], "r*", ms=9)
        which = "centred" if center else "uncentred"
        ax.set_xlabel(f"PC1 ({100 * ev[0]:.1f} %, {which})")
        ax.set_ylabel(f"PC2 ({100 * ev[1]:.1f} %, {which})")
        ax.set_title(f"{cfg}: weight decay {runs[cfg]['manifest']['config']['train']['weight_decay']}", fontsize=9)
        lines.append(f"| {cfg} | {100 * ev[0]:.1f} % | {100 * ev[1]:.1f} % | {100 * (ev[0] + ev[1]):.1f} % | {len(coords)} |")
        total[cfg] = float(ev[0] + ev[1])
    fig.suptitle("Fig. 9: optimizer path (epochs) in the plane of its two principal components", fontsize=9)
    fig.savefig(img / "fig9_trajectory.png", dpi=72)
    plt.close(fig)
    return lines, {"pc1_plus_pc2": total, "most_variance_in_two_components": all(v > 0.5 for v in total.values())}


# --- the report -----------------------------------------------------------------------------------


def yes(v: Any) -> str:
    return {True: "**yes**", False: "**no**", None: "not measured (one depth)"}.get(v, str(v))


def report(s: Scale, sections: dict[str, Any], run: Runner, img_rel: str, wall: float, machine: str) -> str:
    f1_lines, f1 = sections["skip"]
    f2_lines, f2 = sections["width"]
    f3_lines, f3 = sections["batch"]
    f4_lines, f4 = sections["traj"]
    first = [(c, run.first[c]) for c in dict.fromkeys(c for c, _ in run.log)]  # each command once, in order
    train_s = sum(t for c, t in first if c.startswith("train"))
    surf_s = sum(t for c, t in first if not c.startswith("train"))
    notes_file = ROOT / "scripts" / "reproduce_paper_notes.md"
    notes = notes_file.read_text() if s.name == "full" and notes_file.is_file() else ""
    out = f"""# Reproducing Li et al. (2018) on the built-in digits

Written by `bash scripts/reproduce_paper.sh` ({'miniature pipeline check, not a result' if s.name == 'mini' else 'scale: ' + s.name}).
Every number below was computed by that run; the verdicts are computed from the numbers by the
comparison the paper states, not written by hand. Compute time {(train_s + surf_s) / 60:.1f} min ({train_s / 60:.1f} min training,
{surf_s / 60:.1f} min surfaces and curvature; the wall time of the first call of each command) on {machine};
this invocation took {wall / 60:.1f} min.

## What was reduced

The paper trains on CIFAR-10 (50,000 images of 32×32, 300 epochs). Here: the 8×8 digits,
**{s.max_train} training images** (the first {s.max_train} of the fixed 1,437-image training split; test
error on all 360 test images), **{s.resnet_epochs} epochs** for the ResNets (batch {s.resnet_batch}) and **{s.vgg_epochs}
epochs** for VGG-9 (batch 128), the learning rate divided by 10 every {s.resnet_step} (ResNets) and {s.vgg_step} (VGG-9) epochs; ResNets of base width
**{s.resnet_width}** (paper: 16), VGG-9 of width **{s.vgg_width}** (paper: 64). Depths {', '.join(map(str, s.depths))}. 2D surfaces on a {s.grid2d}×{s.grid2d} grid over [−1, 1]² (paper: 51×51),
evaluated on {s.eval_samples} training images; |λmin/λmax| maps on a {s.eig_grid}×{s.eig_grid} grid, {s.eig_samples} images,
{s.eig_iter} Lanczos steps per point (estimates, not converged eigenvalues). 1D plots with {s.line_points} points.
"Large batch" is the whole training subset ({s.max_train} images: one step per epoch), the analogue of the
paper's 8192 of 50,000. Every model is trained from its config in `configs/paper/` with these
`--set` overrides; with CIFAR-10 on disk, `landscape train configs/paper/NAME.toml --set data.name=cifar10`
is the paper's own recipe.

## 1. Skip connections make the landscape convex-looking (paper Fig. 5 and 7)

![Fig. 5]({img_rel}/fig5_skip_connections.png)

![Fig. 7]({img_rel}/fig7_eig_ratio.png)

{chr(10).join(f1_lines)}

- No-shortcut net less convex (larger mean |λmin/λmax|) than the ResNet at every depth: {yes(f1['noshort_less_convex_at_every_depth'])}
- Non-convexity of the no-shortcut nets grows with depth: {yes(f1['noshort_nonconvexity_grows_with_depth'])}

## 2. Wider nets are flatter (paper Fig. 6)

![Fig. 6]({img_rel}/fig6_width.png)

{chr(10).join(f2_lines)}

- The mean loss rise over the plane falls as the width grows: {yes(f2['flatter_with_width'])}
- The basin (share of the plane within 1 of L(0)) grows with the width: {yes(f2['basin_grows_with_width'])}

## 3. Small vs large batch, and why filter normalization (paper Fig. 3 and 4)

![Fig. 3]({img_rel}/fig3_interpolation.png)

![Fig. 4]({img_rel}/fig4_filter_normalized_1d.png)

{chr(10).join(f3_lines)}

- Without weight decay the interpolation is sharper at the large-batch end (paper: yes): {yes(f3['interp_sharper_at_large_batch_no_wd'])}
- With weight decay the interpolation is sharper at the large-batch end (paper: no, it flips): {yes(f3['interp_sharper_at_large_batch_wd'])}
- Filter-normalized sharpness orders the two minima as their test errors do, with and without weight decay (paper: yes): {yes(f3['filter_normalized_sharpness_tracks_test_error_within_each_wd'])}
- Rank correlation of sharpness and test error over the four minima: {f3['rank_correlation_sharpness_vs_error_all_four']:.2f}

Curvatures are the second derivative of a quadratic fitted to the training loss within ±0.25 of the point.

## 4. The optimizer path in its PCA plane (paper Fig. 9)

![Fig. 9]({img_rel}/fig9_trajectory.png)

{chr(10).join(f4_lines)}

- Most of the path's variance lies in PC1 and PC2 (> 50 %): {yes(f4['most_variance_in_two_components'])}

PCA as in the paper's code (sklearn's `PCA`, mean-centred) over the epoch checkpoints; the path is
projected with the dot product on the unit directions.

{notes}
## Commands and their wall time (first call)

| seconds | command |
|---|---|
""" + "\n".join(f"| {t:.1f} | `landscape {c.replace(str(run.work) + '/', '')}` |" for c, t in first).replace(str(ROOT) + "/", "") + "\n"
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--mini", action="store_true", help="tiny models and grids: checks the pipeline, not the findings")
    p.add_argument("--out", type=Path, default=ROOT / "docs", help="folder for REPRODUCTION.md and img/repro/ (default docs/)")
    p.add_argument("--work", type=Path, default=None, help="runs and surface files (default OUT/../runs/repro or OUT/work)")
    p.add_argument("--depths", default="", help="comma-separated ResNet depths (default 20,56,110)")
    p.add_argument("--threads", type=int, default=0, help="torch threads per command (0 = torch's default)")
    p.add_argument("--machine", default="", help="words describing the machine, for the report")
    args = p.parse_args(argv)
    s = MINI if args.mini else FULL
    if args.depths:
        from dataclasses import replace

        s = replace(s, depths=tuple(int(d) for d in args.depths.split(",")))
    out: Path = args.out
    work: Path = args.work or (out / "work" if args.mini else ROOT / "runs" / "repro")
    img = out / "img" / "repro"
    img.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    run = Runner(work, args.threads, s.extra)
    t0 = time.perf_counter()
    sections: dict[str, Any] = {}
    sections["skip"] = skip_connections(run, s, img)
    sections["width"] = width(run, s, img)
    lines, verdict, runs = batch_size(run, s, img)
    sections["batch"] = (lines, verdict)
    sections["traj"] = trajectory(run, s, img, runs)
    machine = args.machine or f"{os.cpu_count()} CPU cores (load average at the end: {os.getloadavg()[0]:.1f})"
    text = report(s, sections, run, "img/repro", time.perf_counter() - t0, machine)
    (out / "REPRODUCTION.md").write_text(text)
    (work / "verdicts.json").write_text(json.dumps({k: v[-1] for k, v in sections.items()}, indent=1, default=str))
    print(f"wrote {out / 'REPRODUCTION.md'} in {(time.perf_counter() - t0) / 60:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
