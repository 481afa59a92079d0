"""``landscape sharpness``: sharpness measures of the loss at a checkpoint (JSON and a table).

The model, data, loss, split and parameter set are resolved exactly as for ``landscape hessian``
(:func:`landscape.workflows.hessian.setup`: any model, streamed data, dict batches and batch
losses, ``--params``); the measures are :mod:`landscape.engine.sharpness`'s. The ``curvature``
measure uses the random filter-normalized directions of the ``[directions]`` section, the ones
``landscape surface`` draws, so it is the curvature at the centre of that surface.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from landscape.atomic import write_json_atomic
from landscape.config import Config, config_to_dict
from landscape.engine.directions import random_directions
from landscape.engine.progress import bar
from landscape.engine.sharpness import SharpnessResult, sharpness
from landscape.errors import ConfigError
from landscape.io.checkpoint import Checkpoint, load_checkpoint, sha256_file
from landscape.version import __version__
from landscape.workflows._distributed import Group, close_group, init_group, local_device, samples_per_rank
from landscape.workflows.experiment import experiment_with_user_data, resolve_device
from landscape.workflows.hessian import each_split, setup


def result_row(r: SharpnessResult) -> dict[str, Any]:
    """One measure as a JSON-ready row (NaN/inf as None)."""
    row = {"measure": r.measure, "value": r.value, "stderr": r.stderr, "rho": r.rho, "iterations": r.iterations,
           "m": r.m, "seconds": r.seconds, **r.details}
    return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}


def run_sharpness(checkpoint: str | Path, cfg: Config | None = None, *, out: str | Path | None = None,
                  unsafe: bool = False, checkpoint_obj: Checkpoint | None = None,
                  group: Group | None = None) -> dict[str, Any]:
    """The ``sharpness`` section's measures at ``checkpoint``; returns the report (written to ``out``).

    Under ``torchrun`` every rank takes a shard of the data (as ``landscape hessian``): losses,
    gradients and curvature products are summed over the ranks and m-sharpness averages the m-sample
    batches of all ranks, so every rank runs the same ascent and draws; only rank 0 writes (the other
    ranks' reports carry their ``rank``). ``group``: a process group already joined (else joined and left here).
    """
    own = group is None
    group = group or init_group(resolve_device(cfg.surface.device if cfg else "cpu").type)
    try:
        return _run_sharpness(checkpoint, cfg, out=out, unsafe=unsafe, checkpoint_obj=checkpoint_obj, group=group)
    finally:
        if own:
            close_group(group)


def _run_sharpness(checkpoint: str | Path, cfg: Config | None, *, out: str | Path | None, unsafe: bool,
                   checkpoint_obj: Checkpoint | None, group: Group) -> dict[str, Any]:
    t_start = time.perf_counter()
    ckpt = checkpoint_obj or load_checkpoint(checkpoint, unsafe=unsafe)
    exp = experiment_with_user_data(ckpt, cfg)
    cfg = cfg or exp.config
    sc = cfg.sharpness
    device = resolve_device(local_device(cfg.surface.device, group))
    s = setup(exp, cfg, device, allow_both=False, group=group)
    dirs = None
    if "curvature" in sc.measures:
        if cfg.directions.dir_type != "weights":
            raise ConfigError(f"the curvature measure is along parameter directions; directions.dir_type = "
                              f"{cfg.directions.dir_type!r} is not 'weights'")
        drawn = random_directions(exp.model, cfg.directions, 2)  # [directions] is DirectionOptions
        assert drawn.y is not None
        dirs = (drawn.x, drawn.y)
    results: list[SharpnessResult] = []
    with bar(len(sc.measures) if group.is_main else 0, "sharpness", unit="measure") as pbar:
        for name in sc.measures:
            results += sharpness(s.problem, [name], sc.rho, steps=sc.steps, step=sc.step, samples=sc.samples, m=sc.m,
                                 seed=sc.seed, directions=dirs, prefix=s.prefix)
            pbar.update(1)
    loss, _ = s.problem.loss_and_grad()
    full = config_to_dict(cfg)
    report: dict[str, Any] = {
        "checkpoint": str(ckpt.path), "checkpoint_sha256": sha256_file(ckpt.path), "landscape_version": __version__,
        "settings": {"loss": s.loss, "split": s.split, "num_samples": s.problem.num_samples,
                     "max_samples": cfg.surface.max_samples, **full["sharpness"], "directions": full["directions"]},
        "parameters": {"dim": s.problem.dim, "names": [k.removeprefix(s.prefix) for k in s.problem.names]},
        "loss": loss,
        "measures": [result_row(r) for r in results],
        "seconds": time.perf_counter() - t_start,
    }
    if group.distributed:  # a collective: before rank 0 alone writes
        report["ranks"] = {"world_size": group.world_size, "samples": samples_per_rank(group, s.problem.local_samples, device)}
        if not group.is_main:
            return {**report, "rank": group.rank}
    if out is not None:
        write_json_atomic(out, report, allow_nan=False)
        report["file"] = str(out)
    return report


def run_sharpness_per_split(checkpoint: str | Path, cfg: Config, *, out: str | Path | None = None,
                            unsafe: bool = False, checkpoint_obj: Checkpoint | None = None) -> dict[str, Any]:
    """``surface.split = "both"``: :func:`run_sharpness` on the training split, then on the test split.

    The report is ``{"split": "both", "reports": {"train": ..., "test": ...}}``, each as :func:`run_sharpness`
    returns it (same seed and directions, so the two differ only by their data), written to ``out`` when
    given: the layout of ``landscape hessian --split both``.
    """
    return each_split(run_sharpness, checkpoint, cfg, out=out, unsafe=unsafe, checkpoint_obj=checkpoint_obj)


def format_sharpness(report: Mapping[str, Any]) -> str:
    """A table for the terminal: measure, ρ, value ± standard error, steps or draws (per split for
    :func:`run_sharpness_per_split`)."""
    if "reports" in report:
        text = "\n".join(f"[{name}]\n{format_sharpness(r)}" for name, r in report["reports"].items())
        return text + (f"\nwrote {report['file']}" if report.get("file") else "")
    st = report["settings"]
    lines = [f"sharpness of {st['loss']} on {st['split']} ({st['num_samples']} samples), P = {report['parameters']['dim']:,}, "
             f"loss {report['loss']:.6g}" + (f", m = {st['m']}" if st["m"] else ""),
             f"{'measure':<22} {'rho':>8} {'value':>13} {'± stderr':>10} {'steps':>6}"]
    for r in report["measures"]:
        rho = "" if r["rho"] is None else f"{r['rho']:.4g}"
        err = "" if r["stderr"] is None else f"{r['stderr']:.2g}"
        lines.append(f"{r['measure']:<22} {rho:>8} {r['value']:>13.6g} {err:>10} {r['iterations']:>6}")
    if report.get("file"):
        lines.append(f"wrote {report['file']}")
    return "\n".join(lines)


def sharpness_columns(checkpoint: str | Path, cfg: Config) -> dict[str, Any]:
    """``cfg.sharpness``'s measures at ``checkpoint`` as table columns: ``<measure>`` for the measures
    without a radius, ``<measure>@<rho>`` for the others (``landscape compare --sharpness``); with
    ``surface.split = "both"`` each split's, as ``train_<column>`` and ``test_<column>``."""
    if cfg.surface.split == "both":
        reports = run_sharpness_per_split(checkpoint, cfg)["reports"]
        return {f"{split}_{k}": v for split, r in reports.items() for k, v in _columns(r).items()}
    return _columns(run_sharpness(checkpoint, cfg))


def _columns(report: Mapping[str, Any]) -> dict[str, Any]:
    return {r["measure"] if r["rho"] is None else f"{r['measure']}@{r['rho']:g}": r["value"] for r in report["measures"]}
