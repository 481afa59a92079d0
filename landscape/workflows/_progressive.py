"""``landscape surface --tolerance/--refine``: a progressive surface's options, its file's extras and
its summary (the engine is :mod:`landscape.engine.progressive`)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from landscape.config import Config
from landscape.engine.directions import plain_attr
from landscape.engine.progressive import LEVELS, Progress, ProgressiveEvaluator, ProgressiveOptions, Tolerance
from landscape.engine.refine import refine
from landscape.errors import ConfigError
from landscape.io.surface_file import SurfaceFile, make_progressive
from landscape.workflows._distributed import Group, decode_array, encode_array, share_setup

Fill = Callable[..., tuple[list[int], float]]  # workflows.surface._fill: (sf, engine, group, pending, coords, tag)
_END = b"end"


def progressive_options(cfg: Config, out: Path, overwrite: bool) -> ProgressiveOptions | None:
    """What ``--tolerance``/``--refine`` ask for; None for an exact surface.

    A file made progressive before goes on progressively even without ``--tolerance``: with a tolerance
    of 0 (every sample read, so exact), continuing from the samples it has read instead of starting over.
    """
    s = cfg.surface
    tol = Tolerance.parse(s.tolerance)
    prior: dict[str, Any] = {}  # the progressive attributes of an existing file at ``out`` (none: exact or damaged)
    if not overwrite and out.is_file():
        with contextlib.suppress(OSError, KeyError), h5py.File(out, "r") as f:
            prior = {k: plain_attr(f.attrs[k]) for k in ("progressive", "sample_seed", "refine") if k in f.attrs}
    if tol is None and s.refine:
        raise ConfigError("--refine needs --tolerance T: T is what interpolation between computed points must meet")
    if tol is not None and s.metric != "loss":
        raise ConfigError(f"--tolerance estimates losses from samples; --metric {s.metric} is computed exactly (drop --tolerance)")
    if tol is None and not prior.get("progressive"):
        return None
    seed = int(prior.get("sample_seed", s.sample_seed))
    if tol is not None and seed != s.sample_seed:
        raise ConfigError(f"{str(out)!r} was read in the sample order of surface.sample_seed = {seed}, not {s.sample_seed}; "
                          f"pass --set surface.sample_seed={seed} to go on, or --overwrite")
    # a file refined before keeps its ``computed`` mask (the points filled then are computed now, unless --refine)
    return ProgressiveOptions(tol if tol is not None else Tolerance(0.0), seed=seed, vmax=cfg.plot.vmax,
                              levels=cfg.plot.levels or LEVELS, refine=s.refine or bool(prior.get("refine")))


def attach(sf: SurfaceFile, engine: ProgressiveEvaluator) -> None:
    """Make ``sf`` a progressive file, hand its running sums to ``engine``, resolve the tolerance, and
    mark done exactly the points that the tolerance (now) finds settled: a smaller one reopens points,
    which go on from the samples already read; a larger one is already met."""
    make_progressive(sf, dict(zip(engine.splits, engine.total.tolist(), strict=True)), engine.options.refine)
    engine.state = engine.sums_of(sf.extra)
    on_file = engine.state.n.copy()  # the samples the file holds, before the scale is read
    if isinstance(sf.attrs.get("scale"), dict):  # the scale its points were read against, not one read again
        engine.apply_scale(sf.attrs["scale"])
    else:
        engine.resolve()
    settled = engine.settled_points().reshape(sf.done.shape)  # (which also marks those above the range)
    read = np.flatnonzero((engine.state.n[:-1] != on_file[:-1]).any(axis=1))
    if len(read):  # the points the scale was read from (the coarsest level) hold more than the file: record them
        sf.record(read, engine.rows(read))
    sf.done[...] = settled
    sf.attrs.update({k: v for k, v in engine.attrs().items() if k != "refine"})  # (a refined file stays refined)
    sf.flush()  # the extras, the scale and what was read for it are on disk even when no point is left to compute


def encode_state(state: Progress) -> np.ndarray:
    """The state as one float64 array (for the other ranks of a torchrun job)."""
    return np.concatenate([state.s1, state.s2, state.n.astype(np.float64), state.above[:, None].astype(np.float64)], axis=1)


def decode_state(array: np.ndarray, columns: int) -> Progress:
    c = columns
    return Progress(array[:, :c].copy(), array[:, c : 2 * c].copy(), array[:, 2 * c : -1].astype(np.int64), array[:, -1] > 0)


def summary_lines(info: dict[str, Any]) -> list[str]:
    """The terminal lines of :func:`landscape.figures.estimates.progressive_summary`'s numbers."""
    read = ", ".join(f"{v:.1f} % of the {s} samples" for s, v in info["data_read_percent"].items() if v is not None)
    lines = [f"progressive (--tolerance {info['tolerance_spec']}): read {read} (per computed point, on average)"]
    for c, se in info["max_stderr"].items():
        if se is not None:
            ratio = info["max_stderr_in_T"].get(c)
            lines.append(f"largest standard error of {c}: {se:.3g}" + (f"; largest in units of its T: {ratio:.2f}" if ratio is not None else ""))
    if info["above"]:
        lines.append(f"{info['above']} points stopped above the figure's range (by more than 3 standard errors)")
    if "computed_percent" in info:
        lines.append(f"refined: {info['computed_percent']:.1f} % of the points computed, the rest interpolated")
    return lines


def fill_refined(sf: SurfaceFile | None, engine: ProgressiveEvaluator, group: Group, fill: Fill) -> tuple[list[int], float, int]:
    """``--refine``: rank 0 decides level by level (:func:`~landscape.engine.refine.refine`) which points
    to compute, every rank computes its claims of them (one round of ``fill`` per level), rank 0 fills
    the others by interpolation. Returns the points per rank, the seconds and the points computed."""
    grid = engine.grid
    counts = [0] * group.world_size
    seconds, computed, rounds = 0.0, 0, 0

    def compute(idx: np.ndarray) -> None:
        nonlocal seconds, computed, rounds
        share_setup(group, f"landscape/round{rounds}", encode_array(idx))
        got, secs = fill(sf, engine, group, idx, grid.coords(idx), f"r{rounds}")
        counts[:] = [a + b for a, b in zip(counts, got, strict=True)] if got else counts
        seconds, computed, rounds = seconds + secs, computed + len(idx), rounds + 1

    if sf is None:  # another rank: compute what rank 0 hands out, round after round
        while (raw := share_setup(group, f"landscape/round{rounds}", None)) != _END:
            idx = decode_array(raw)
            got, _ = fill(None, engine, group, idx, grid.coords(idx), f"r{rounds}")
            rounds += 1
        return got, seconds, computed
    column, scale = engine.scale()

    def interpolated(idx: np.ndarray, coarse: tuple[np.ndarray, ...], error: np.ndarray) -> None:
        if len(idx):
            sf.record(idx, engine.filled_rows([sf.values[c] for c in sf.columns], coarse, idx, error, column))

    refine(grid.shape, sf.done.copy(), scale, lambda: sf.values[column], compute, interpolated)
    share_setup(group, f"landscape/round{rounds}", _END)
    sf.attrs["computed_share"] = float(sf.extra["computed"].mean())
    sf.flush()
    return counts, seconds, computed
