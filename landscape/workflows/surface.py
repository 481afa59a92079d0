"""Surface jobs: checkpoint + directions + grid → a resumable HDF5 surface file.

This is the orchestration behind ``landscape surface``; the CLI only parses flags into a
:class:`~landscape.config.Config` and calls :func:`run_surface`.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from landscape.config import Config, PlotConfig, config_to_dict
from landscape.engine.batchloss import BatchSums, batch_sums_of
from landscape.engine.directions import (
    Directions,
    load_directions,
    model_fingerprint,
    only,
    random_directions,
    target_directions,
)
from landscape.engine.evaluator import EngineOptions, surface_evaluator
from landscape.engine.flat import flat_message, is_flat
from landscape.engine.grid import MAX_POINTS, Grid, coarse_to_fine
from landscape.engine.moved import params_label, selector
from landscape.engine.outputloss import is_batch_loss, load_batch_loss
from landscape.engine.pca import pca_axis_label
from landscape.engine.progress import bar
from landscape.engine.progressive import ProgressiveEvaluator, ProgressiveOptions
from landscape.engine.surface import Evaluator
from landscape.errors import ConfigError, DirectionError, LandscapeError
from landscape.io.checkpoint import Checkpoint, fit_state_dict, load_checkpoint, sha256_file
from landscape.io.surface_file import SurfaceFile, exclusive_lock, open_surface
from landscape.version import __version__
from landscape.workflows._distributed import (
    Group,
    WorkQueue,
    close_group,
    decode_array,
    encode_array,
    flush_on_sigterm,
    gather_counts,
    init_group,
    local_device,
    share_setup,
    wait_a_little,
)
from landscape.workflows._progressive import (
    attach,
    decode_state,
    encode_state,
    fill_refined,
    progressive_options,
    summary_lines,
)
from landscape.workflows.experiment import Experiment, checkpoint_config, experiment_with_user_data, resolve_device
from landscape.workflows.hessian import eig_map_settings, eig_ratio_engine, hessian_directions
from landscape.zoo.data import TensorSplit
from landscape.zoo.modules import floating_dtype
from landscape.zoo.userdata import Prepared, Streamed, UserBatches, UserStreams, batch_size_of


@dataclass(frozen=True)
class DirectionSource:
    """Where the directions come from: random (default), a saved file, target checkpoints, or the Hessian."""

    file: Path | None = None
    target: Path | None = None
    target2: Path | None = None
    hessian: bool = False  # the top Hessian eigenvectors at the checkpoint (see landscape.workflows.hessian)


def make_directions(exp: Experiment, cfg: Config, source: DirectionSource, dims: int, unsafe: bool = False) -> Directions:
    if source.hessian:
        if source.file is not None or source.target is not None or source.target2 is not None:
            raise ConfigError("give either --hessian-directions or --directions/--target, not both")
        return hessian_directions(exp, cfg, dims)
    if source.file is not None:
        if source.target is not None:
            raise ConfigError("give either --directions or --target, not both")
        dirs = load_directions(source.file, exp.model)
    elif source.target is not None:
        b = fit_state_dict(exp.model, load_checkpoint(source.target, unsafe=unsafe).state_dict, what="the model (--target)")
        c = (fit_state_dict(exp.model, load_checkpoint(source.target2, unsafe=unsafe).state_dict, what="the model (--target2)")
             if source.target2 is not None else None)
        dirs = target_directions(exp.model, b, c, cfg.directions.dir_type)
        # float state (BatchNorm statistics) that differs between the models but is not moved
        state = exp.model.state_dict()
        unmoved = [k for k, v in state.items() if k not in dirs.x and v.is_floating_point() and k in b
                   and b[k].shape == v.shape and not torch.equal(b[k].to(v.device, v.dtype), v)]
        if unmoved:
            dirs.meta["unmoved"] = len(unmoved)
    else:
        if source.target2 is not None:
            raise ConfigError("--target2 needs --target")
        return random_directions(exp.model, cfg.directions, dims)
    if dirs.dims < dims:
        raise DirectionError(f"a 2D grid (--y) needs two directions; {source.file or source.target} gives one")
    return dirs if dirs.dims == dims else Directions(dirs.x, None, dirs.meta)


def axis_label(dirs: Directions, which: str) -> str:
    kind, (greek, i) = dirs.meta.get("kind", "random"), (("α", 0) if which == "x" else ("β", 1))
    if kind == "pca":
        ev, center = dirs.meta.get("explained_variance", [float("nan")] * 2), dirs.meta.get("center")
        return pca_axis_label(i, float(ev[i]), None if center is None else bool(center))
    if kind == "target":
        return f"{greek} (0 = A, 1 = {('B', 'C')[i]})"
    if kind == "hessian":
        return f"{greek} (Hessian eigenvector {i + 1})"
    norm = dirs.meta.get("norm", "filter")
    return greek if norm in ("none", "as-saved") else f"{greek} ({norm}-normalized)"


def batch_loss_sums(losses: Sequence[str]) -> BatchSums:
    """The one user batch loss ``file.py:fn`` among ``losses`` as (model, batch) → (sums, n): column ``loss``.

    Such a loss is evaluated alone; naming others beside it is an error.
    """
    if len(losses) != 1:
        raise ConfigError(f"a batch loss file.py:fn is evaluated alone; got --loss {','.join(losses)}")
    return batch_sums_of([("loss", load_batch_loss(losses[0]))], batch_size_of)


def _data_splits(exp: Experiment, cfg: Config, device: torch.device) -> dict[str, Prepared]:
    """Each split the surface is evaluated on, as :func:`~landscape.engine.evaluator.surface_evaluator` takes it.

    Tensors (cut to ``max_samples``); the user's data over ``surface.memory_budget`` streamed; batches
    of another shape than (inputs, targets) (dicts) cached when they fit, else streamed. The settings
    that need tensors are refused here, naming their flags.
    """
    s = cfg.surface
    names = ["train", "test"] if s.split == "both" else [s.split]
    if isinstance(exp.batches, UserStreams):
        if s.metric != "loss" or s.bn != "keep":
            raise ConfigError(f"the data are streamed (over surface.memory_budget = {s.memory_budget:,} bytes): --metric "
                              "eig_ratio and --bn recompute need the data in memory; raise --memory-budget")
        return {n: Streamed(exp.batches.splits[n].limited(s.max_samples), device, floating_dtype(exp.model)) for n in names}
    if isinstance(exp.batches, UserBatches):
        what = f"the {exp.batches.kind} batches of {exp.batches.name!r} are read by a batch loss only"
        if s.metric != "loss" or s.bn != "keep":
            raise ConfigError(f"{what}: --metric eig_ratio and --bn recompute need (inputs, targets) data")
        if s.max_samples:
            raise ConfigError(f"{what}: --max-samples {s.max_samples} cuts (inputs, targets) data; cut the batches in your data function")
        return dict(exp.batches.placed(names, device, s.memory_budget, floating_dtype(exp.model)))
    return {n: exp.data.split(n).subset(s.max_samples) for n in names}


def surface_engine(exp: Experiment, cfg: Config, dirs: Directions, splits: Mapping[str, Prepared],
                   device: torch.device, progressive: tuple[ProgressiveOptions, Grid] | None = None) -> Evaluator:
    """The evaluator of ``landscape surface``: the eig-ratio engine for ``--metric eig_ratio``, else the
    one :func:`~landscape.engine.evaluator.surface_evaluator` the API's ``landscape.surface`` calls too."""
    s = cfg.surface
    if s.metric == "eig_ratio":
        return eig_ratio_engine(exp, cfg, dirs, {k: v for k, v in splits.items() if isinstance(v, TensorSplit)}, device)
    losses = list(s.losses) or [cfg.train.loss]
    moved = selector(s.params) if s.params else None
    options = EngineOptions(batch_size=s.batch_size, points_per_call=s.points_per_call, bn=s.bn, bn_batches=s.bn_batches)
    if any(is_batch_loss(n) for n in losses):  # a batch loss fn(model, (inputs, targets)) or fn(model, batch)
        return surface_evaluator(exp.model, dirs, splits, batch_loss=(["loss"], batch_loss_sums(losses)),
                                 options=options, device=device, moved=moved, progressive=progressive)
    return surface_evaluator(exp.model, dirs, splits, exp.metrics(s.losses), options=options,
                             bn_data=exp.data.train if s.bn == "recompute" else None, device=device, moved=moved,
                             progressive=progressive)


def _user_data_notes(exp: Experiment, splits: Mapping[str, Any], cfg: Config) -> list[str]:
    """How the user's data (``file.py:fn``) are read: streamed over ``surface.memory_budget``, or cached."""
    b, budget = exp.batches, f"surface.memory_budget = {cfg.surface.memory_budget:,}"
    if isinstance(b, UserStreams):
        return [f"the data ({b.nbytes:,} bytes) are over {budget}: streamed from the loader, several grid points "
                "per read"]
    if isinstance(b, UserBatches) and any(isinstance(split, Streamed) for split in splits.values()):
        return [f"the {b.kind} batches are over {budget} bytes: streamed from the loader, several grid points per read"]
    return [f"the {b.kind} batches are cached on the device (within surface.memory_budget)"] if b is not None else []


def surface_settings(cfg: Config, ckpt_sha: str, dirs: Directions, grid_spec: tuple[str, str]) -> dict[str, Any]:
    """Everything that determines the values in the file (device and batch size do not)."""
    full = config_to_dict(cfg)
    s = cfg.surface
    return {
        "checkpoint_sha256": ckpt_sha,
        "data": full["data"],
        "model": full["model"],
        "losses": list(s.losses) or [cfg.train.loss],
        "split": s.split,
        "max_samples": s.max_samples,
        "bn": s.bn,
        "bn_batches": s.bn_batches if s.bn == "recompute" else 0,
        "directions": {**{k: v for k, v in dirs.meta.items() if isinstance(v, str | int | float)}, "fingerprint": dirs.fingerprint()},
        "x": grid_spec[0],
        "y": grid_spec[1],
        # only non-default metrics are recorded, so files made before the key existed still resume
        **({"metric": s.metric, "metric_options": eig_map_settings(cfg)} if s.metric != "loss" else {}),
        **({"params": list(s.params)} if s.params else {}),
    }


@dataclass(frozen=True)
class SurfaceResult:
    """What :func:`run_surface` did, the same type on every rank.

    ``computed``: the points this call computed, the whole grid's on the writing rank (rank 0,
    the only one that holds the file) and this rank's share elsewhere. ``summary`` (see
    :func:`summarize`) only on the writing rank, None on the others.
    """

    rank: int
    computed: int
    summary: dict[str, Any] | None = None


def run_surface(checkpoint: str | Path, out: str | Path, cfg: Config | None = None, *, source: DirectionSource = DirectionSource(),
                overwrite: bool = False, unsafe: bool = False, max_points: int = MAX_POINTS,
                checkpoint_obj: Checkpoint | None = None, preview: str | Path | None = None) -> SurfaceResult:
    """Compute (or resume) the surface around ``checkpoint`` into ``out``.

    ``cfg`` defaults to the checkpoint's own config; its ``surface`` and ``directions`` sections
    choose the grid, metrics and directions. Under ``torchrun`` the pending points are shared
    among the ranks (see :mod:`landscape.workflows._distributed`); only rank 0 writes, and only rank 0
    gets a summary. The points are computed coarse levels first (:func:`pending_coarse_to_fine`);
    ``preview`` names a folder where rank 0 redraws the file's figures after every flush.
    """
    t_start = time.perf_counter()
    ckpt = checkpoint_obj or load_checkpoint(checkpoint, unsafe=unsafe)
    # user data (file.py:fn) over surface.memory_budget are streamed, not held; dict batches stay batches
    exp = experiment_with_user_data(ckpt, cfg)
    cfg = cfg or exp.config
    notes = _data_notes(ckpt, cfg, exp) if exp.batches is None else []
    s = cfg.surface
    grid = Grid.parse(s.x, s.y, max_points)
    dirs = make_directions(exp, cfg, source, 1 if grid.y is None else 2, unsafe)
    if s.params:  # the file's directions hold only what moves: reusing them (--directions) moves the same subset
        dirs = only(dirs, selector(s.params), params_label(s.params))  # type: ignore[arg-type]
    if dirs.meta.get("unmoved"):  # target directions
        notes.append(f"α = 1 is not exactly the target: {dirs.meta['unmoved']} state entries (BatchNorm statistics) "
                     "differ between the models and stay at the first one's with --dir-type weights; pass --dir-type "
                     "states to move them too")
    popts = progressive_options(cfg, Path(out), overwrite)
    group = init_group(resolve_device(s.device).type if s.device else "cpu")  # a bad name: one line, before any group
    try:
        device = resolve_device(local_device(s.device, group))
        splits = _data_splits(exp, cfg, device)
        engine = surface_engine(exp, cfg, dirs, splits, device, None if popts is None else (popts, grid))
        notes += _user_data_notes(exp, splits, cfg)
        settings = surface_settings(cfg, sha256_file(ckpt.path), dirs, (s.x, s.y))
        with contextlib.ExitStack() as stack:
            sf = None
            if group.is_main:
                attrs = {"landscape_version": __version__, "checkpoint": str(ckpt.path),
                         "checkpoint_sha256": settings["checkpoint_sha256"], "x_label": axis_label(dirs, "x"),
                         "y_label": axis_label(dirs, "y") if grid.y is not None else ""}
                try:
                    stack.enter_context(exclusive_lock(Path(out)))
                    sf = open_surface(Path(out), grid, engine.columns, settings, attrs, dirs,
                                      model_fingerprint(exp.model), overwrite)
                    if isinstance(engine, ProgressiveEvaluator):
                        attach(sf, engine)
                except LandscapeError as err:
                    share_setup(group, "landscape/setup", None, str(err))
                    raise
                pending = pending_coarse_to_fine(sf.done)  # type: ignore[union-attr]
                if preview is not None:
                    sf.on_flush = functools.partial(draw_preview, folder=Path(preview))  # type: ignore[union-attr]
                share_setup(group, "landscape/setup", encode_array(pending))
                if isinstance(engine, ProgressiveEvaluator):  # the other ranks go on from the same sums and scale
                    share_setup(group, "landscape/state", encode_array(encode_state(engine.state)))
                    share_setup(group, "landscape/scale", json.dumps(engine.scale_table()).encode())
            else:
                pending = decode_array(share_setup(group, "landscape/setup", None))
                if isinstance(engine, ProgressiveEvaluator):
                    engine.state = decode_state(decode_array(share_setup(group, "landscape/state", None)), len(engine.columns))
                    engine.apply_scale(json.loads(share_setup(group, "landscape/scale", None)))
            if isinstance(engine, ProgressiveEvaluator) and s.refine:
                counts, seconds, computed = fill_refined(sf, engine, group, _fill)
            else:
                (counts, seconds), computed = _fill(sf, engine, group, pending, grid.coords(pending)), len(pending)
                if sf is not None and "computed" in sf.extra:  # a refined file computed whole: its share follows
                    sf.attrs["computed_share"] = float(sf.extra["computed"].mean())
                    sf.flush()
    finally:
        close_group(group)
    if sf is None:
        return SurfaceResult(group.rank, counts[0] if counts else 0)
    summary = summarize(sf, computed=computed, seconds=seconds, total_seconds=time.perf_counter() - t_start,
                        points_per_call=engine.points_per_call, cosine=dirs.cosine(), notes=notes,
                        **({"points_per_rank": counts} if group.distributed else {}))
    if sf.done.all() and is_flat(sf.values):
        summary["warnings"] = [flat_message(list(s.params) or dirs.meta.get("params"))]
    if sf.attrs.get("progressive"):
        from landscape.figures.estimates import progressive_summary  # (matplotlib only when needed)

        summary["progressive"] = progressive_summary(sf)
    return SurfaceResult(group.rank, computed, summary)


def pending_coarse_to_fine(done: np.ndarray) -> np.ndarray:
    """Flat indices of the points not done, coarse levels first (:func:`~landscape.engine.grid.coarse_to_fine`).

    An interrupted file then holds complete uniform coarse grids of the whole landscape, which
    ``landscape plot`` draws; the values of each point do not depend on the order.
    """
    order, _ = coarse_to_fine(done.shape)
    pending: np.ndarray = order[~done.reshape(-1)[order]]
    return pending


PREVIEW_ERRORS = (LandscapeError, OSError, ValueError)


def draw_preview(sf: SurfaceFile, folder: Path) -> None:
    """Redraw the contour (2D) or line (1D) figure of the file on disk into ``folder`` (PNG).

    A partial file is drawn at its finest complete coarse level, marked "partial". A preview that
    cannot be drawn says so in one line and the computation goes on: it never costs a point.
    """
    from landscape.figures.files import plot_surface_file

    kind = "line" if sf.grid.y is None else "contour"
    metric = "train_loss" if "train_loss" in sf.columns else sf.columns[0]
    try:
        plot_surface_file(sf.path, folder, PlotConfig(formats=("png",), metric=metric, dpi=100), kinds=[kind])
    except PREVIEW_ERRORS as err:
        print(f"landscape surface: preview not drawn: {err}", file=sys.stderr)


def _data_notes(ckpt: Checkpoint, cfg: Config, exp: Experiment) -> list[str]:
    """Say so when the checkpoint's own data settings now give other data than it was trained on."""
    recorded = ckpt.extra.get("data_sha256")
    saved = checkpoint_config(ckpt)
    if not recorded or saved is None or cfg.data != saved.data or exp.data.fingerprint() == recorded:
        return []
    return [f"the data differ from those this checkpoint was trained on (data settings {cfg.data.name!r} unchanged): "
            "a data function that is not deterministic, or files that changed; the surface is not around the "
            "model's own training loss"]


def _fill(sf: SurfaceFile | None, engine: Evaluator, group: Group, pending: np.ndarray,
          coords: np.ndarray, tag: str = "") -> tuple[list[int], float]:
    """Evaluate this rank's claims of the pending points; rank 0 records everything and flushes.

    The first claim calibrates the points per call; after that each evaluation call is sized to
    about a second of this rank's work, so flushes (every few seconds), progress and load
    balance stay fine-grained whatever the model costs.
    """
    queue = WorkQueue(group, len(pending), prefix=f"landscape/work{tag}")
    # claims of about a second of work, but never more than an eighth of a rank's fair share
    fair_share = max(1, -(-len(pending) // (8 * group.world_size))) if group.distributed else 1 << 30
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
        if sf is not None:
            stack.enter_context(flush_on_sigterm())
        mine = _evaluate_claims(sf, engine, queue, pending, coords, fair_share)
    return gather_counts(group, f"landscape/counts{tag}", mine), time.perf_counter() - t0


def _evaluate_claims(sf: SurfaceFile | None, engine: Evaluator, queue: WorkQueue, pending: np.ndarray,
                     coords: np.ndarray, fair_share: int) -> int:
    """The claim loop of :func:`_fill`; returns how many points this rank evaluated."""
    mine, rate = 0, 1.0
    t0 = time.perf_counter()
    with bar(len(pending) if sf is not None else 0, "surface", unit="pt") as pbar:

        def deliver(where: slice | None, rows: np.ndarray) -> None:
            """This rank's rows: posted to rank 0, or (rank 0) recorded with the others' (None: theirs only)."""
            if sf is None:
                queue.post(where, rows)  # type: ignore[arg-type]
                return
            for w, r in [*([(where, rows)] if where is not None else []), *queue.collect()]:
                sf.record(pending[w], r)
                queue.received += len(r)
                pbar.update(len(r))
            sf.maybe_flush()

        try:
            first = queue.claim(min(fair_share, 86) if engine.points_per_call == 0 else engine.points_per_call)
            if first is not None:
                vals, used = engine.calibrate(coords[first])
                if used:
                    deliver(slice(first.start, first.start + used), vals)
                    mine, rate = used, used / max(time.perf_counter() - t0, 1e-9)
                where: slice | None = slice(first.start + used, first.stop)
                while where is not None:
                    start = where.start
                    while start < where.stop:
                        piece = slice(start, min(where.stop, start + max(engine.points_per_call, min(1024, int(rate)))))
                        t1 = time.perf_counter()
                        rows = engine.evaluate(coords[piece])
                        rate = len(rows) / max(time.perf_counter() - t1, 1e-9)
                        deliver(piece, rows)
                        mine += len(rows)
                        start = piece.stop
                    where = queue.claim(max(engine.points_per_call, min(fair_share, int(rate))))
            while sf is not None and not queue.finished:  # rank 0 waits for the others' last rows
                deliver(None, np.empty(0))
                wait_a_little()
        finally:
            if sf is not None and queue.received:  # an untouched file keeps its bytes and its mtime
                sf.flush()  # on success, Ctrl-C, SIGTERM or error: whatever was computed is on disk
    return mine


def summarize(sf: SurfaceFile, **extra: Any) -> dict[str, Any]:
    """Grid, done/total, diverged points, and the minimum of each loss with where it is."""
    out: dict[str, Any] = {"file": str(sf.path), "grid": list(sf.grid.shape), "done": int(sf.done.sum()),
                           "total": sf.grid.size, **extra}
    diverged = np.zeros(sf.grid.shape, dtype=bool)
    mins: dict[str, Any] = {}
    for name in sf.columns:
        ok = np.isfinite(sf.values[name])
        diverged |= sf.done & ~ok
        finite = np.where(sf.done & ok, sf.values[name], np.nan)
        if np.isfinite(finite).any():
            idx = np.unravel_index(np.nanargmin(finite) if not name.endswith("_acc") else np.nanargmax(finite), sf.grid.shape)
            coord = [float(sf.grid.x[idx[0]])] + ([float(sf.grid.y[idx[1]])] if sf.grid.y is not None else [])
            mins[name] = {"best": float(finite[idx]), "at": coord}
    out["diverged"] = int(diverged.sum())
    out["best"] = mins
    if "seconds" in extra and extra.get("computed"):
        out["points_per_second"] = extra["computed"] / max(extra["seconds"], 1e-9)
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in out.items()}


def format_summary(summary: dict[str, Any]) -> str:
    """A few human-readable lines for the terminal."""
    grid = "×".join(str(n) for n in summary["grid"])
    lines = [f"{summary['file']}: {len(summary['grid'])}D grid {grid}, {summary['done']}/{summary['total']} points done, "
             f"{summary['diverged']} diverged (NaN/inf)"]
    if summary.get("computed"):
        lines.append(f"computed {summary['computed']} points in {summary['seconds']:.1f} s "
                     f"({summary['points_per_second']:.1f} points/s, {summary.get('points_per_call', 1)} per call)")
    elif "computed" in summary:
        lines.append("nothing to compute: every point was already done")
    if summary.get("points_per_rank"):
        lines.append("points per rank: " + ", ".join(f"rank {r}: {n}" for r, n in enumerate(summary["points_per_rank"])))
    if summary.get("cosine") is not None:
        lines.append(f"cosine between the two directions: {summary['cosine']:+.4f}")
    if summary.get("progressive"):
        lines += summary_lines(summary["progressive"])
    lines += [f"note: {n}" for n in summary.get("notes", [])]
    lines += [f"warning: {w}" for w in summary.get("warnings", [])]
    for name, best in summary.get("best", {}).items():
        word = "max" if name.endswith("_acc") else "min"
        at = ", ".join(f"{c:+.3g}" for c in best["at"])
        lines.append(f"{word} {name} = {best['best']:.6g} at ({at})")
    return "\n".join(lines)
