"""``landscape check``: can this surface be trusted? Seven checks, a verdict each, and what to change.

The checks (:mod:`landscape.engine.check`; thresholds and reasons in docs/CHECKS.md) run on a
:class:`View` of a surface (its grid, values and directions) and a :class:`Subject` (the model,
its data and loss, and a factory of the surface engine that computed it), both built in
:mod:`landscape.workflows.check_inputs`. Every value a check
needs beyond the surface itself comes from that same engine — the planes of other seeds, the
loss with re-estimated BatchNorm statistics, a checkpoint's loss at its real weights — except the
``origin`` check's reference: :func:`~landscape.engine.check.plain_evaluation`, the model's own
forward in eval mode with float64 accumulation, which is the point of that check.

Doors: ``landscape check`` (:func:`run_check`), ``landscape.check`` (the API), and the ``check``
stage of ``landscape run`` and ``landscape compare`` (:func:`check_run_folder`), which write
``check.json`` and the check figures into the folder; ``index.html`` shows the verdicts.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from landscape.atomic import write_json_atomic
from landscape.config import Config
from landscape.engine import check as chk
from landscape.engine.directions import DirectionOptions, Directions, random_directions
from landscape.engine.grid import MAX_POINTS, Grid
from landscape.engine.progress import bar
from landscape.engine.surface import Evaluator
from landscape.errors import LandscapeError
from landscape.figures.check import contour_levels, path_figure, seeds_figure
from landscape.figures.save import save_figure
from landscape.figures.views import bilinear
from landscape.io.checkpoint import Checkpoint, load_checkpoint
from landscape.io.run_folder import run_checkpoints
from landscape.version import __version__
from landscape.workflows.check_inputs import (
    PathInput,
    Subject,
    View,
    path_from_file,
    subject_from_experiment,
    view_of_file,
)
from landscape.workflows.surface import DirectionSource

REPORT = "check.json"


@dataclass
class CheckRun:
    """The verdicts on one view, plus what the check figures draw."""

    view: View
    results: list[chk.CheckResult]
    seed_planes: dict[str, np.ndarray] = field(default_factory=dict)
    seed_grid: tuple[np.ndarray, np.ndarray] | None = None
    path: PathInput | None = None
    flagged: list[int] = field(default_factory=list)
    seconds: float = 0.0


@dataclass(frozen=True)
class CheckReport:
    """Every check's verdict: ``checks``, one :class:`~landscape.engine.check.CheckResult` per name of
    :data:`~landscape.engine.check.CHECK_NAMES`, in that order; ``seconds`` the time the checks took;
    ``figures`` the check figures written (with ``out=``, or in a run folder); ``runs`` the
    per-surface results they were merged from (a run checks several surfaces)."""

    checks: list[chk.CheckResult]
    seconds: float = 0.0
    figures: list[Path] = field(default_factory=list)
    runs: list[CheckRun] = field(default_factory=list)

    @property
    def status(self) -> str:
        return max((c.status for c in self.checks), key=lambda s: chk.RANK[s], default="pass")

    def __getitem__(self, name: str) -> chk.CheckResult:
        for c in self.checks:
            if c.name == name:
                return c
        raise KeyError(f"no check {name!r}; the checks are {', '.join(c.name for c in self.checks)}")

    def to_dict(self) -> dict[str, Any]:
        return {"status": self.status, "checks": [c.to_dict() for c in self.checks], "seconds": self.seconds,
                "check_seconds": sum(r.seconds for r in self.runs),  # the checks themselves, without loading and figures
                "figures": [p.name for p in self.figures], "landscape_version": __version__}

    def save(self, path: str | Path) -> Path:
        write_json_atomic(Path(path), self.to_dict(), allow_nan=False)
        return Path(path)

    def warnings(self) -> list[str]:
        """One line per check that did not pass."""
        return [f"{c.status}: {c.name}: {c.advice}" for c in self.checks if c.status != "pass"]

    def table(self) -> str:
        rows = [f"{'check':<11} {'status':<6} {'value':>10} {'threshold':>10}"]
        for c in self.checks:
            value = "–" if c.value is None else f"{c.value:.3g}"
            threshold = "–" if c.threshold is None else f"{c.threshold:.3g}"
            rows.append(f"{c.name:<11} {c.status:<6} {value:>10} {threshold:>10}")
        return "\n".join(rows)

    def __repr__(self) -> str:
        return f"CheckReport({self.status})\n{self.table()}"


# --- the checks of one view ------------------------------------------------------------------------------


def _origin_index(axis: np.ndarray) -> int | None:
    hits = np.flatnonzero(np.isclose(axis, 0.0, atol=1e-12 * max(1.0, float(np.abs(axis).max()))))
    return int(hits[0]) if hits.size else None


def _origin_values(view: View, engine: Callable[[], Evaluator]) -> dict[str, float]:
    """Every column at (0, 0): the surface's own node, else the engine evaluates it there."""
    i = _origin_index(view.x)
    j = None if view.y is None else _origin_index(view.y)
    if i is not None and (view.y is None or j is not None):
        at = (i,) if view.y is None else (i, j)
        if bool(view.done[at]) and (view.exact is None or bool(view.exact[at])):  # (not an estimate)
            return {c: float(v[at]) for c, v in view.values.items()}
    e = engine()
    row = e.evaluate(np.zeros((1, 2)))[0]
    return dict(zip(e.columns, (float(v) for v in row), strict=True))


def check_view(subject: Subject, view: View, opts: chk.CheckOptions, *, path: PathInput | None = None,
               names: Sequence[str] = chk.CHECK_NAMES) -> CheckRun:
    """Run the checks ``names`` on ``view`` (see the module docstring)."""
    t0 = time.perf_counter()
    run = CheckRun(view, [])
    engine_cache: dict[str, Evaluator] = {}

    def drawn_engine() -> Evaluator:
        if "keep" not in engine_cache:
            engine_cache["keep"] = subject.make_engine(view.directions, "keep")
        return engine_cache["keep"]

    origin = _origin_values(view, drawn_engine)
    plain: dict[str, float] | None = None
    if "origin" in names or "bn_mode" in names:
        plain = chk.plain_evaluation(subject.model, subject.batches(opts.bn_batch_size), subject.sums, subject.names,
                                     subject.device)
    for name in names:
        result = _ONE[name](subject, view, opts, run, origin, plain, path)
        run.results.append(replace(result, details={**result.details, "surface": view.name}))
    run.seconds = time.perf_counter() - t0
    return run


def _origin(subject: Subject, view: View, opts: chk.CheckOptions, run: CheckRun, origin: dict[str, float],
            plain: dict[str, float] | None, path: PathInput | None) -> chk.CheckResult:
    assert plain is not None
    return chk.origin_check(origin, plain, opts.origin_rtol)


def _bn_mode(subject: Subject, view: View, opts: chk.CheckOptions, run: CheckRun, origin: dict[str, float],
             plain: dict[str, float] | None, path: PathInput | None) -> chk.CheckResult:
    if not chk.has_batchnorm(subject.model):
        return chk.not_applicable("bn_mode", "the model has no BatchNorm layer with running statistics")
    assert plain is not None
    col = view.column
    batch = chk.plain_evaluation(subject.model, subject.batches(opts.bn_batch_size), subject.sums, subject.names,
                                 subject.device, batch_statistics=True)
    running = origin[col] if view.bn == "recompute" else plain[col]
    result = chk.bn_mode_check(running, batch[col], None, opts)
    if result.status == "pass" or view.bn == "recompute":
        return result
    try:
        e = subject.make_engine(view.directions, "recompute")
        recomputed = float(e.evaluate(np.zeros((1, 2)))[0][e.columns.index(col)])
    except (LandscapeError, ValueError):
        recomputed = None  # --bn recompute is not available with this loss or data: advise without a number
    return chk.bn_mode_check(running, batch[col], recomputed, opts)


def _seed_axes(view: View, opts: chk.CheckOptions) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None:
    """Coarse axes of the seeds' planes and, when they are sub-grids of the view, the indices."""
    assert view.y is not None
    sx, sy = chk.seed_grid_stride(view.x, opts.seed_points), chk.seed_grid_stride(view.y, opts.seed_points)
    if sx is None or sy is None:
        return None
    ix, iy = np.arange(0, len(view.x), sx), np.arange(0, len(view.y), sy)
    return view.x[ix], view.y[iy], ix, iy


def _seeds(subject: Subject, view: View, opts: chk.CheckOptions, run: CheckRun, origin: dict[str, float],
           plain: dict[str, float] | None, path: PathInput | None) -> chk.CheckResult:
    meta = view.directions.meta
    if view.y is None or meta.get("kind", "random") != "random" or "seed" not in meta:
        return chk.not_applicable("seeds", f"the plane is not random ({meta.get('kind', 'user')} directions)"
                                  if view.y is not None else "a 1D line (the 2D plane checks the seeds)")
    axes = _seed_axes(view, opts)
    if axes is None:
        return chk.not_applicable("seeds", "the grid has no node at 0 or no coarse sub-grid through it")
    x, y, ix, iy = axes
    half = min(abs(float(x[0])), abs(float(x[-1])), abs(float(y[0])), abs(float(y[-1])))
    radius = opts.seed_radius * half
    drawn = view.z[np.ix_(ix, iy)]
    base = DirectionOptions(dir_type=str(meta.get("dir_type", "weights")), norm=str(meta.get("norm", "filter")),  # type: ignore[arg-type]
                            ignore=str(meta.get("ignore", "biasbn")), seed=int(meta["seed"]))  # type: ignore[arg-type]
    seeds = [base.seed + k for k in range(1, opts.seeds + 1)]
    coords = Grid(x, y).coords()
    planes = {f"seed {base.seed} (drawn)": drawn}
    summaries = []
    try:
        for seed in seeds:
            dirs = random_directions(subject.model, replace(base, seed=seed), 2)
            e = subject.make_engine(dirs, view.bn)
            z = e.evaluate(coords)[:, e.columns.index(view.column)].reshape(len(x), len(y))
            planes[f"seed {seed}"] = z
            summaries.append(chk.plane_summary(x, y, z, radius))
        drawn_summary = chk.plane_summary(x, y, drawn, radius)
    except LandscapeError as err:
        return chk.CheckResult("seeds", "warn", None, opts.seed_ratio, f"the planes of other seeds cannot be compared: {err}")
    run.seed_planes, run.seed_grid = planes, (x, y)
    result = chk.seeds_check(drawn_summary, summaries, opts, seeds)
    return replace(result, details={**result.details, "grid": [len(x), len(y)], "radius": radius})


def _scale(subject: Subject, view: View, opts: chk.CheckOptions, run: CheckRun, origin: dict[str, float],
           plain: dict[str, float] | None, path: PathInput | None) -> chk.CheckResult:
    weights = dict(subject.model.named_parameters()) | dict(subject.model.named_buffers())
    step = chk.step_ratio(view.directions.x, view.directions.y, {k: v.detach() for k, v in weights.items()}, view.x, view.y)
    return chk.scale_check(view.x, view.y, view.values[view.column], view.done, origin[view.column], step, opts)


def _resolution(subject: Subject, view: View, opts: chk.CheckOptions, run: CheckRun, origin: dict[str, float],
                plain: dict[str, float] | None, path: PathInput | None) -> chk.CheckResult:
    done = view.done if view.computed is None else view.done & view.computed  # interpolated points prove nothing
    return chk.resolution_check(view.values[view.column], done, view.log, opts, _units(view, opts)[0])


def _numerics(subject: Subject, view: View, opts: chk.CheckOptions, run: CheckRun, origin: dict[str, float],
              plain: dict[str, float] | None, path: PathInput | None) -> chk.CheckResult:
    return chk.numerics_check(view.values[view.column], view.done, view.log, opts, _units(view, opts)[0], view.stderr)


def _trajectory(subject: Subject, view: View, opts: chk.CheckOptions, run: CheckRun, origin: dict[str, float],
                plain: dict[str, float] | None, path: PathInput | None) -> chk.CheckResult:
    if path is None:
        return chk.not_applicable("trajectory", "no trajectory was given")
    if view.y is None:
        return chk.not_applicable("trajectory", "a path lies in a plane, and this surface is a 1D line")
    on_surface = bilinear(view.x, view.y, view.z, path.coords)
    own = path.losses.copy()
    off = np.full(len(own), np.nan)
    if path.states is not None:
        origin_state = _float_state(subject.model)
        diffs = [{k: v.detach().to("cpu", torch.float32) - origin_state[k] for k, v in s.items()
                  if k in origin_state and v.shape == origin_state[k].shape} for s in path.states]
        dy = view.directions.y or {}
        off = np.array([chk.residual_ratios([d], view.directions.x, dy)[0] if any(bool(t.ne(0).any()) for t in d.values())
                        else 0.0 for d in diffs])
        for i in np.flatnonzero(~np.isfinite(own)):  # not recorded: the engine at the checkpoint's real weights
            own[i] = _loss_at(subject, diffs[i], view.column)
    step, levels = _units(view, opts)
    result = chk.trajectory_check(own, on_surface, np.nan_to_num(off, nan=0.0), path.variance, path.labels, step,
                                  view.log, opts, levels)
    run.path, run.flagged = path, list(result.details.get("flagged", []))
    return result


def _units(view: View, opts: chk.CheckOptions) -> tuple[float, np.ndarray | None]:
    """The levels the view's contour figure draws, in its units (None: fewer than two), and their mean spacing."""
    levels = contour_levels(view.z, view.log, opts.levels)
    return (float((levels[-1] - levels[0]) / (levels.size - 1)), levels) if levels.size >= 2 else (0.0, None)


def _float_state(model: nn.Module) -> dict[str, Tensor]:
    return {k: v.detach().to("cpu", torch.float32) for k, v in model.state_dict().items() if v.is_floating_point()}


def _loss_at(subject: Subject, diff: Mapping[str, Tensor], column: str) -> float:
    """The loss at ``θ* + diff`` (a checkpoint's weights and statistics): the engine at α = 1 along ``diff``."""
    if not any(bool(t.ne(0).any()) for t in diff.values()):
        return math.nan
    dirs = Directions(dict(diff), None, {"kind": "target", "dir_type": "states", "norm": "none", "ignore": "none", "seed": -1})
    e = subject.make_engine(dirs, "keep")
    return float(e.evaluate(np.array([[1.0, 0.0]]))[0][e.columns.index(column)])


_ONE: dict[str, Callable[..., chk.CheckResult]] = {
    "origin": _origin, "bn_mode": _bn_mode, "seeds": _seeds, "scale": _scale, "resolution": _resolution,
    "trajectory": _trajectory, "numerics": _numerics,
}


# --- reports and figures ----------------------------------------------------------------------------------


def merge(runs: Sequence[CheckRun]) -> list[chk.CheckResult]:
    """One result per check name, the worst over the views it ran on (a check no view ran on: not applicable)."""
    out = []
    for name in chk.CHECK_NAMES:
        found = [r for run in runs for r in run.results if r.name == name]
        applicable = [r for r in found if r.value is not None or r.status != "pass"] or found
        out.append(chk.worst(applicable) if applicable else chk.not_applicable(name, "no surface of this kind"))
    return out


def write_figures(runs: Sequence[CheckRun], folder: Path, prefix: str = "check", dpi: int = 120) -> list[Path]:
    """``<prefix>_seeds.png`` (the planes of other seeds) and, when checkpoints leave their plane,
    ``<prefix>_trajectory.png`` (the path with those checkpoints circled) of the views that have them."""
    written: list[Path] = []
    for run in runs:
        v = run.view
        if run.seed_planes and run.seed_grid is not None:
            fig = seeds_figure(*run.seed_grid, run.seed_planes, log=v.log, x_label=v.x_label, y_label=v.y_label)
            written += save_figure(fig, folder / f"{prefix}_seeds", formats=["png"], dpi=dpi)
        if run.path is not None and v.y is not None and run.flagged:  # else the run's own trajectory figure says it all
            fig = path_figure(v.x, v.y, v.z, run.path.coords, run.flagged, run.path.labels, log=v.log,
                              x_label=v.x_label, y_label=v.y_label)
            written += save_figure(fig, folder / f"{prefix}_trajectory", formats=["png"], dpi=dpi)
    return written


def report(runs: Sequence[CheckRun], seconds: float, figures: Sequence[Path] = ()) -> CheckReport:
    return CheckReport(merge(runs), seconds, list(figures), list(runs))


# --- the run folder's stage ---------------------------------------------------------------------------------


def check_run_folder(cfg: Config, out: Path, surfaces: Mapping[str, Path], trajectory: Path | None,
                     plane: str = "", *, figures: Path | None = None, prefix: str = "check",
                     states: Mapping[str, Mapping[str, Tensor]] | None = None) -> CheckReport:
    """The checks of a ``landscape run`` (or of one loss of ``landscape compare``) folder: every check on
    the random plane, scale/resolution/numerics on every surface, the trajectory on the PCA plane
    ``plane``; ``check.json`` and the check figures into ``out``. ``states``: the trajectory's
    checkpoints' weights already in memory, by name (:func:`~landscape.workflows.check_inputs.path_input`)."""
    from landscape.workflows.experiment import experiment_from_checkpoint, resolve_device

    t0 = time.perf_counter()
    opts = options(cfg)
    final = run_checkpoints(out)[-1]
    exp = experiment_from_checkpoint(load_checkpoint(final), cfg)
    subject = subject_from_experiment(exp, cfg, resolve_device(cfg.surface.device))
    runs = []
    for i, (name, path) in enumerate(surfaces.items()):
        view = view_of_file(path, name, scale=cfg.plot.log)
        which: list[str] = ["scale", "resolution", "numerics"]
        if i == 0:
            which = ["origin", "bn_mode", "seeds", *which]
        path_in = None
        if name == plane and trajectory is not None:
            which.append("trajectory")
            path_in = path_from_file(trajectory, recorded_losses_apply(cfg, view.column), states)
        runs.append(check_view(subject, view, opts, path=path_in, names=which))
    drawn = write_figures(runs, figures or out / "figures", prefix)
    result = report(runs, time.perf_counter() - t0, drawn)
    result.save(out / REPORT)
    return result


def recorded_losses_apply(cfg: Config, column: str) -> bool:
    """A checkpoint's recorded loss (its training loss over the whole training split) is what ``column`` shows."""
    s = cfg.surface
    return column == "train_loss" and not s.max_samples and (not s.losses or s.losses[0] == cfg.train.loss)


def options(cfg: Config) -> chk.CheckOptions:
    return replace(cfg.check, levels=cfg.plot.levels) if cfg.plot.levels else cfg.check  # the figures' own levels


def check_stage(cfg: Config, out: Path, surfaces: Mapping[str, Path], trajectory: Path | None,
                plane: str, states: Mapping[str, Mapping[str, Tensor]] | None = None) -> tuple[str, str]:
    """``landscape run``'s check stage: (action, detail) with one warning line per check that did not pass;
    ``states``: the checkpoints' weights the trajectory stage read (:func:`check_run_folder`)."""
    if not cfg.check.enabled:
        return "skipped", "check.enabled = false"
    result = check_run_folder(cfg, out, surfaces, trajectory, plane, states=states)
    counts = {s: sum(c.status == s for c in result.checks) for s in ("pass", "warn", "fail")}
    head = f"{counts['pass']} passed, {counts['warn']} warned, {counts['fail']} failed → {out / REPORT}"
    return "done", "\n".join([head, *("    " + w for w in result.warnings())])


def check_compare(cfg: Config, out: Path, surfaces: Mapping[str, Config], log: Callable[[str], None]) -> list[Path]:
    """``landscape compare``'s checks: each loss's folder as a run (``DIR/<loss>/check.json``, figures
    ``DIR/<loss>/figures/check_*.png``), and ``DIR/check.json`` with the worst verdict of each check
    over the losses. ``surfaces``: each loss's surface config. Returns the files written (none when
    ``check.enabled`` is false)."""
    if not cfg.check.enabled:
        return []
    t0 = time.perf_counter()
    runs: list[CheckRun] = []
    written: list[Path] = []
    for loss, surface_cfg in surfaces.items():
        folder = out / loss
        lcfg = replace(surface_cfg, check=cfg.check, plot=cfg.plot)
        one = check_run_folder(lcfg, folder, {"surface_2d": folder / "surface_2d.h5", "slice_1d": folder / "slice_1d.h5",
                                              "surface_pca": folder / "surface_pca.h5"},
                               folder / "trajectory.h5", "surface_pca")
        written += [folder / REPORT, *one.figures]
        for run in one.runs:
            runs.append(replace(run, results=[replace(r, details={**r.details, "surface": f"{loss}/{r.details.get('surface')}"})
                                              for r in run.results]))
    result = report(runs, time.perf_counter() - t0, [f for f in written if f.suffix == ".png"])
    result.save(out / REPORT)
    for line in result.warnings():
        log(line)
    return [*written, out / REPORT]


def _evaluate_all(engine: Evaluator, coords: np.ndarray) -> np.ndarray:
    rows = []
    with bar(len(coords), "check: surface", unit="pt") as pbar:
        for start in range(0, len(coords), 256):
            rows.append(engine.evaluate(coords[start : start + 256]))
            pbar.update(len(rows[-1]))
    return np.concatenate(rows)


# --- landscape check -----------------------------------------------------------------------------------------


def run_check(checkpoint: str | Path, out: str | Path, cfg: Config, *, surface: Path | None = None,
              trajectory: Path | None = None, source: DirectionSource | None = None, unsafe: bool = False,
              checkpoint_obj: Checkpoint | None = None, max_points: int = MAX_POINTS) -> CheckReport:
    """``landscape check CKPT``: check ``surface`` (a file), or the surface the config describes,
    computed here in memory by the engine; ``trajectory`` checks a path over it (and gives the
    plane when neither ``surface`` nor ``directions`` does)."""
    from landscape.workflows.experiment import experiment_with_user_data, resolve_device
    from landscape.workflows.surface import axis_label, make_directions

    t0 = time.perf_counter()
    ckpt = checkpoint_obj or load_checkpoint(checkpoint, unsafe=unsafe)
    exp = experiment_with_user_data(ckpt, cfg)
    subject = subject_from_experiment(exp, cfg, resolve_device(cfg.surface.device))
    opts = options(cfg)
    if surface is not None:
        view = view_of_file(Path(surface), scale=cfg.plot.log)
    else:
        s = cfg.surface
        grid = Grid.parse(s.x, s.y, max_points)
        given = source or DirectionSource()
        if given.file is None and given.target is None and not given.hessian and trajectory is not None:
            given = replace(given, file=Path(trajectory))  # the trajectory's own plane
        dirs = make_directions(exp, cfg, given, 1 if grid.y is None else 2, unsafe)
        engine = subject.make_engine(dirs, s.bn)
        flat = _evaluate_all(engine, grid.coords())
        values = {c: flat[:, i].reshape(grid.shape) for i, c in enumerate(engine.columns)}
        col = next(c for c in engine.columns if c.endswith("_loss"))
        view = View("surface", grid.x, grid.y, values, np.ones(grid.shape, dtype=bool), col, dirs, s.bn,
                    axis_label(dirs, "x"), axis_label(dirs, "y") if grid.y is not None else "", scale=cfg.plot.log)
    path_in = path_from_file(Path(trajectory), recorded_losses_apply(cfg, view.column)) if trajectory is not None else None
    run = check_view(subject, view, opts, path=path_in)
    target = Path(out)
    figures = write_figures([run], target.parent, target.stem)
    result = report([run], time.perf_counter() - t0, figures)
    result.save(target)
    return result
