"""Can this surface be trusted? Pure numerics of the checks behind ``landscape check``.

Each check turns arrays (a surface, its coarse level, a few more planes, a path) into one
:class:`CheckResult`: ``pass``, ``warn`` or ``fail``, the measured ``value`` against its
``threshold``, and one sentence of advice. The thresholds and their reasons are in
docs/CHECKS.md; the options are :class:`CheckOptions` (``[check]`` in a config).

Two units recur:

- the **contour step**: the spacing of the figure's iso-lines, in the figure's units ``u``
  (``log10`` of the loss when the figure is drawn on a log scale, the loss itself otherwise).
  A checkpoint's own loss and the surface under it are compared by :func:`level_positions`: how
  many drawn levels lie between them, so the step is the one drawn at that height (round log
  levels such as 1-2-5 are 0.30 and 0.40 decades apart); the other checks use the mean spacing
  of the drawn levels. A difference below one step does not move a contour line by more than
  one level, so it cannot change the picture;
- the **loss scale** ``s = max(|L(0)|, floor)``: the loss at the trained model, floored so that
  a loss near zero (a training loss of 0.003) does not make every number relative to noise.

Everything here is evaluated elsewhere: the surface engine gives every value; the one other
evaluation is :func:`plain_evaluation`, the ``origin`` check's independent reference (the
user's own forward in eval mode, float64 accumulation, no set-up rewrite of the engine).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor, nn

from landscape.engine.batchloss import BatchSums
from landscape.engine.checkoptions import CheckOptions as CheckOptions  # re-exported: the checks take it
from landscape.engine.flatness import curvature, mean_increase
from landscape.engine.grid import level_strides
from landscape.engine.moved import working_copy
from landscape.engine.rewrites import is_bn
from landscape.errors import GridError
from landscape.zoo.userdata import batch_to

Status = Literal["pass", "warn", "fail"]
FloatArray = npt.NDArray[np.float64]

CHECK_NAMES = ("origin", "bn_mode", "seeds", "scale", "resolution", "trajectory", "numerics")
RANK: dict[str, int] = {"pass": 0, "warn": 1, "fail": 2}
_EPS32 = float(np.finfo(np.float32).eps)


@dataclass(frozen=True)
class CheckResult:
    """One verdict: ``value`` against ``threshold`` (None where not applicable), with advice."""

    name: str
    status: Status
    value: float | None
    threshold: float | None
    advice: str
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        def plain(v: Any) -> Any:
            if isinstance(v, float | np.floating):
                return float(v) if math.isfinite(float(v)) else None
            if isinstance(v, np.integer):
                return int(v)
            if isinstance(v, Mapping):
                return {str(k): plain(w) for k, w in v.items()}
            if isinstance(v, list | tuple | np.ndarray):
                return [plain(w) for w in v]
            return v
        return {"name": self.name, "status": self.status, "value": plain(self.value), "threshold": self.threshold,
                "advice": self.advice, **({"details": plain(self.details)} if self.details else {})}


def not_applicable(name: str, why: str) -> CheckResult:
    """A check with nothing to check (no BatchNorm, no trajectory): it passes, and says why."""
    return CheckResult(name, "pass", None, None, f"not applicable: {why}")


def worst(results: Sequence[CheckResult]) -> CheckResult:
    """The most severe of several results of one check (e.g. over the surfaces of a run), with each one's verdict."""
    if not results:
        raise ValueError("worst() of no results")
    top = max(results, key=lambda r: (RANK[r.status], r.value is not None))
    where = {str(r.details.get("surface", i)): {"status": r.status, "value": r.value} for i, r in enumerate(results)}
    return CheckResult(top.name, top.status, top.value, top.threshold, top.advice, {**top.details, "surfaces": where})


# --- units ----------------------------------------------------------------------------------------


def display_units(z: npt.ArrayLike, log: bool) -> FloatArray:
    """The figure's units: ``log10(z)`` on a log scale (non-positive values become NaN), else ``z``."""
    a = np.asarray(z, dtype=np.float64)
    if not log:
        return a
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(a > 0, np.log10(np.where(a > 0, a, 1.0)), np.nan)


def contour_step(u: npt.ArrayLike, levels: int) -> float:
    """``(u_max − u_min) / levels`` over the finite values (0 when fewer than two)."""
    a = np.asarray(u, dtype=np.float64)
    finite = a[np.isfinite(a)]
    return float((finite.max() - finite.min()) / levels) if finite.size > 1 else 0.0


def level_positions(u: npt.ArrayLike, levels: npt.ArrayLike) -> FloatArray:
    """Where values ``u`` lie among the drawn levels (both in the figure's units): ``k + t`` a fraction
    ``t`` of the way from level ``k`` to level ``k + 1``, beyond the ends extrapolated with the end
    spacings; NaN stays NaN. The difference of two positions is their difference in contour steps
    as the figure draws them at that height: 1 is one iso-line crossed."""
    lv = np.asarray(levels, dtype=np.float64)
    a = np.asarray(u, dtype=np.float64)
    if lv.ndim != 1 or lv.size < 2 or not np.all(np.diff(lv) > 0):
        raise ValueError(f"levels must be at least 2 increasing values, got {lv.tolist()}")
    inside = np.interp(np.where(np.isfinite(a), a, lv[0]), lv, np.arange(lv.size, dtype=np.float64))
    below = (a - lv[0]) / (lv[1] - lv[0])
    above = lv.size - 1 + (a - lv[-1]) / (lv[-1] - lv[-2])
    pos = np.where(a < lv[0], below, np.where(a > lv[-1], above, inside))
    return np.where(np.isfinite(a), pos, np.nan)


def _in_steps(a: FloatArray, b: FloatArray, step: float, levels: npt.ArrayLike | None) -> FloatArray:
    """``|a − b|`` (figure units) in contour steps: drawn levels crossed when ``levels`` is given, else over ``step``."""
    if levels is not None and np.asarray(levels).size >= 2:
        return np.asarray(np.abs(level_positions(a, levels) - level_positions(b, levels)), dtype=np.float64)
    return np.asarray(np.abs(a - b) / step if step > 0 else np.zeros(np.broadcast(a, b).shape), dtype=np.float64)


def loss_scale(origin: float, floor: float) -> float:
    return max(abs(origin), floor) if math.isfinite(origin) else floor


# --- origin: the independent plain evaluation -----------------------------------------------------------


def plain_evaluation(model: nn.Module, splits: Mapping[str, Iterable[Any]], sums: BatchSums, names: Sequence[str],
                     device: torch.device, *, batch_statistics: bool = False) -> dict[str, float]:
    """``<split>_<metric>`` means of ``model`` as the user would evaluate it, none of the engine's rewrites.

    A copy of the model (its buffers its own, so nothing reaches the caller's model) in eval mode
    runs its own forward on each batch as given; each batch's metric sums are added up in float64
    on the host. ``batch_statistics``: BatchNorm layers in training mode (they normalize with each
    batch's own statistics) with momentum 0 (their running statistics are not updated).
    """
    copy = working_copy(model, (), device)
    if batch_statistics:
        for m in copy.modules():
            if is_bn(m):
                m.train()
                m.momentum = 0.0  # running = (1 − 0)·running + 0·batch: never updated
    out: dict[str, float] = {}
    with torch.inference_mode():
        for split, batches in splits.items():
            total = np.zeros(len(names), dtype=np.float64)
            count = 0
            for batch in batches:
                s, n = sums(copy, batch_to(batch, device))
                total += s.detach().to("cpu", torch.float64).numpy()
                count += n
            for name, value in zip(names, total / max(count, 1), strict=True):
                out[f"{split}_{name}"] = float(value)
    return out


def origin_check(surface: Mapping[str, float], plain: Mapping[str, float], rtol: float) -> CheckResult:
    """The surface at (0, 0) against the plain evaluation, every loss column (accuracies are counts
    of argmax decisions, which a last-bit difference in a tied output may flip)."""
    columns = [c for c in surface if c in plain and not c.endswith("_acc")]
    if not columns:
        return not_applicable("origin", "no loss column in common with the plain evaluation")
    rel = {c: abs(surface[c] - plain[c]) / max(abs(plain[c]), 1e-30) for c in columns}
    if not all(math.isfinite(surface[c]) and math.isfinite(plain[c]) for c in columns):
        rel = {c: (0.0 if surface[c] == plain[c] or (math.isnan(surface[c]) and math.isnan(plain[c])) else math.inf)
               for c in columns}
    col = max(rel, key=lambda c: rel[c])
    value = rel[col]
    details = {"column": col, "surface": surface[col], "plain": plain[col]}
    if value <= rtol:
        return CheckResult("origin", "pass", value, rtol, "the surface's origin equals the model's own evaluation", details)
    return CheckResult("origin", "fail", value, rtol,
                       f"{col} at (0, 0) is {surface[col]:.8g} on the surface but {plain[col]:.8g} in the model's own "
                       "evaluation: the data (split, --max-samples, loss) or the engine's set-up rewrites differ; "
                       "recompute the surface with the settings you evaluate the model with", details)


# --- bn_mode ------------------------------------------------------------------------------------------


def has_batchnorm(model: nn.Module) -> bool:
    return any(is_bn(m) and getattr(m, "track_running_stats", False) for m in model.modules())


def bn_mode_check(running: float, batch: float, recomputed: float | None, opts: CheckOptions) -> CheckResult:
    """The loss with the stored running statistics against the loss with batch statistics."""
    value = abs(running - batch) / loss_scale(batch, opts.floor)
    details = {"loss_running_stats": running, "loss_batch_stats": batch,
               **({"loss_bn_recompute": recomputed} if recomputed is not None else {})}
    if value <= opts.bn_rtol or (not math.isfinite(value) and running == batch):
        return CheckResult("bn_mode", "pass", value, opts.bn_rtol,
                           "the BatchNorm running statistics fit the data: the surface is the landscape training saw", details)
    gives = f" (at the origin it gives {recomputed:.4g})" if recomputed is not None else ""
    return CheckResult("bn_mode", "warn", value, opts.bn_rtol,
                       f"the loss at the origin is {running:.4g} with the stored BatchNorm statistics but {batch:.4g} with "
                       f"batch statistics: the statistics do not fit these data; pass --bn recompute{gives}", details)


# --- seeds ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlaneSummary:
    """The flatness figures of one plane on the seeds' coarse grid (:mod:`landscape.engine.flatness`)."""

    mean_increase: float
    curvature_mean: float


def seed_grid_stride(axis: npt.ArrayLike, points: int) -> int | None:
    """The stride of the coarsest sub-grid ``axis[::s]`` with ≥ ``points`` points that holds both
    ends and the origin node (1, the whole grid, when it has fewer); None when it has no node at 0."""
    a = np.asarray(axis, dtype=np.float64)
    n = len(a)
    zero = np.flatnonzero(np.isclose(a, 0.0, atol=1e-12 * max(1.0, float(np.abs(a).max()))))
    if zero.size == 0:
        return None
    for s in range(n - 1, 0, -1):
        if (n - 1) % s == 0 and int(zero[0]) % s == 0 and (n - 1) // s + 1 >= points:
            return s
    return 1  # a grid coarser than that: the whole grid


def plane_summary(x: npt.ArrayLike, y: npt.ArrayLike, z: npt.ArrayLike, radius: float) -> PlaneSummary:
    try:
        fit = curvature(x, y, z, radius).mean
    except GridError:
        fit = math.nan
    return PlaneSummary(mean_increase(x, y, z, radius), fit)


def seeds_check(drawn: PlaneSummary, others: Sequence[PlaneSummary], opts: CheckOptions,
                seeds: Sequence[int] = ()) -> CheckResult:
    """Is the drawn plane typical? Its mean increase against the other planes' median, and the spread of all."""
    values = np.array([o.mean_increase for o in others], dtype=np.float64)
    details = {"drawn_mean_increase": drawn.mean_increase, "drawn_curvature_mean": drawn.curvature_mean,
               "seeds": list(seeds), "mean_increase": values.tolist(),
               "curvature_mean": [o.curvature_mean for o in others]}
    every = np.append(values, drawn.mean_increase)
    if not np.all(np.isfinite(every)) or np.any(every <= 0):
        return CheckResult("seeds", "warn", None, opts.seed_ratio,
                           "a plane's mean increase is not a positive finite number (diverged points, or the loss falls "
                           "around the model): the planes cannot be compared; see the scale and numerics checks", details)
    median = float(np.median(values))
    ratio = drawn.mean_increase / median
    spread = float(every.max() / every.min())
    details |= {"ratio_to_median": ratio, "spread": spread, "spread_threshold": opts.seed_spread}
    value = max(ratio, 1.0 / ratio)
    if value > opts.seed_ratio:
        which = "sharper" if ratio > 1 else "flatter"
        return CheckResult("seeds", "warn", value, opts.seed_ratio,
                           f"the drawn plane is {which} than planes of other seeds (mean increase ×{ratio:.3g} their "
                           "median): draw it with another --seed, or show several seeds", details)
    if spread > opts.seed_spread:
        return CheckResult("seeds", "warn", value, opts.seed_ratio,
                           f"planes of different seeds differ by ×{spread:.3g} in mean increase: one plane says little "
                           "about the landscape; show several seeds (or a Hessian direction)", details)
    return CheckResult("seeds", "pass", value, opts.seed_ratio,
                       f"the drawn plane is typical of {len(others)} other seeds (spread ×{spread:.3g})", details)


# --- scale ----------------------------------------------------------------------------------------------


def step_ratio(dx: Mapping[str, Tensor], dy: Mapping[str, Tensor] | None, weights: Mapping[str, Tensor],
               x: npt.ArrayLike, y: npt.ArrayLike | None) -> float:
    """``max ‖α·δ + β·η‖ / ‖θ‖`` over the grid's corners, ‖θ‖ over the tensors the directions move."""
    moved = [k for k in dx if bool(dx[k].ne(0).any()) or (dy is not None and bool(dy[k].ne(0).any()))]
    if not moved:
        return 0.0
    xx = float(sum(float(dx[k].double().pow(2).sum()) for k in moved))
    yy = float(sum(float(dy[k].double().pow(2).sum()) for k in moved)) if dy is not None else 0.0
    xy = float(sum(float((dx[k].double() * dy[k].double()).sum()) for k in moved)) if dy is not None else 0.0
    theta = math.sqrt(sum(float(weights[k].double().pow(2).sum()) for k in moved if k in weights))
    xs = np.asarray(x, dtype=np.float64)
    ys = np.asarray(y, dtype=np.float64) if y is not None else np.zeros(1)
    corners = [(a, b) for a in (xs[0], xs[-1]) for b in (ys[0], ys[-1])]
    step = max(math.sqrt(max(a * a * xx + 2 * a * b * xy + b * b * yy, 0.0)) for a, b in corners)
    return step / theta if theta > 0 else math.inf


def _on_edge(index: tuple[int, ...], shape: tuple[int, ...]) -> bool:
    return any(i in (0, n - 1) for i, n in zip(index, shape, strict=True))


def _range_text(x: FloatArray, y: FloatArray | None, factor: float) -> str:
    half = factor * max(abs(float(x[0])), abs(float(x[-1])))
    text = f"--x {-half:.3g}:{half:.3g}:{len(x)}"
    if y is not None:
        half_y = factor * max(abs(float(y[0])), abs(float(y[-1])))
        text += f" --y {-half_y:.3g}:{half_y:.3g}:{len(y)}"
    return text


def scale_check(x: npt.ArrayLike, y: npt.ArrayLike | None, z: npt.ArrayLike, done: npt.ArrayLike, origin: float,
                step: float, opts: CheckOptions) -> CheckResult:
    """Does the range fit? Exploded and flat shares, the step at the edge, and a minimum on the edge."""
    xs = np.asarray(x, dtype=np.float64)
    ys = None if y is None else np.asarray(y, dtype=np.float64)
    values = np.asarray(z, dtype=np.float64)
    computed = np.asarray(done, dtype=bool)
    s = loss_scale(origin, opts.floor)
    v = values[computed]
    finite = np.isfinite(v)
    exploded = float(np.mean(~finite | (v > opts.explode * s))) if v.size else 0.0
    low = float(v[finite].min()) if finite.any() else math.nan
    flat = float(np.mean(finite & (v - low <= opts.flat_step * s))) if v.size else 0.0
    where = np.where(computed & np.isfinite(values), values, np.inf)
    at = tuple(int(i) for i in np.unravel_index(int(np.argmin(where)), values.shape)) if finite.any() else None
    edge = at is not None and _on_edge(at, values.shape) and flat <= opts.flat_share
    lowest_at = None if at is None else [float(xs[at[0]])] + ([float(ys[at[1]])] if ys is not None else [])
    details = {"edge_step": step, "exploded_share": exploded, "flat_share": flat, "lowest_at": lowest_at,
               "lowest": low, "loss_scale": s, "min_step": opts.min_step, "max_step": opts.max_step,
               "exploded_threshold": opts.exploded_share, "flat_threshold": opts.flat_share}
    # (value, threshold, advice) of each problem found; a lowest value on the edge is value 1, no threshold
    problems: list[tuple[float, float | None, str]] = []
    if exploded > opts.exploded_share:
        problems.append((exploded, opts.exploded_share,
                         f"{exploded:.0%} of the plane is above {opts.explode:g}× the loss scale ({opts.explode * s:.3g}) "
                         f"or diverged: the basin is a speck; shrink the range, e.g. {_range_text(xs, ys, 0.1)}"))
    if flat > opts.flat_share:
        problems.append((flat, opts.flat_share,
                         f"{flat:.0%} of the plane lies within {opts.flat_step * s:.3g} of its minimum: nothing moves; "
                         f"widen the range, e.g. {_range_text(xs, ys, 1.0 / max(step, 1e-12))}"))
    if edge:
        at_text = ", ".join(f"{c:+.3g}" for c in lowest_at or [])
        problems.append((1.0, None, f"the lowest value lies on the grid's edge at ({at_text}): the basin runs off "
                         "the plane; widen the range on that side (for a PCA plane: raise run.pca_margin)"))
    if not problems and not opts.min_step <= step <= opts.max_step:
        size = "a huge" if step > 1 else "a tiny"
        problems.append((step, opts.max_step if step > 1 else opts.min_step,
                         f"the grid's corner is {step:.3g}× the weights away from them: {size} step; a range such as "
                         f"{_range_text(xs, ys, 1.0 / step if step > 0 else 1.0)} moves about one weight norm"))
    if problems:
        value, threshold, _ = problems[0]
        return CheckResult("scale", "warn", value, threshold, "; ".join(p[2] for p in problems), details)
    return CheckResult("scale", "pass", step, opts.max_step,
                       f"the range fits: {exploded:.0%} exploded, {flat:.0%} flat, the lowest value inside the plane", details)


# --- resolution -----------------------------------------------------------------------------------------


def _interp_axis(a: FloatArray, idx: npt.NDArray[np.int64], axis: int, n: int) -> FloatArray:
    """``a`` (given at the indices ``idx`` along ``axis``) linearly interpolated to every index ``0..n-1``."""
    moved = np.moveaxis(a, axis, 0)
    flat = moved.reshape(len(idx), -1)
    out = np.stack([np.interp(np.arange(n), idx, flat[:, c]) for c in range(flat.shape[1])], axis=1)
    return np.moveaxis(out.reshape((n, *moved.shape[1:])), 0, axis)


def resolution_check(z: npt.ArrayLike, done: npt.ArrayLike, log: bool, opts: CheckOptions,
                     step: float | None = None) -> CheckResult:
    """The surface against its own coarse level (the coarse-to-fine order's level before the last,
    every other point), interpolated (bi)linearly in the figure's units: the largest difference in
    (mean) contour steps, over the fine points the coarse level encloses."""
    values = np.asarray(z, dtype=np.float64)
    computed = np.asarray(done, dtype=bool)
    u = np.where(computed, display_units(values, log), np.nan)
    strides = level_strides(values.shape)
    if len(strides) < 2:
        return not_applicable("resolution", f"a {'×'.join(map(str, values.shape))} grid has no coarse level")
    coarse = [np.arange(0, n, s, dtype=np.int64) for n, s in zip(values.shape, strides[-2], strict=True)]
    interp = u[np.ix_(*coarse)]
    for axis, idx in enumerate(coarse):  # one axis after the other: bilinear on the product grid
        interp = _interp_axis(interp, idx, axis, values.shape[axis])
    inside = np.ones(values.shape, dtype=bool)
    for axis, idx in enumerate(coarse):
        shape = [1] * values.ndim
        shape[axis] = values.shape[axis]
        inside &= (np.arange(values.shape[axis]) <= idx[-1]).reshape(shape)
    step = contour_step(u, opts.levels) if step is None else step
    diff = np.abs(u - interp)
    use = inside & np.isfinite(diff)
    if step <= 0 or not use.any():
        return CheckResult("resolution", "pass", 0.0, opts.resolution, "nothing to resolve: the surface is constant", {})
    worst_at = np.unravel_index(int(np.argmax(np.where(use, diff, -1.0))), values.shape)
    value = float(diff[worst_at] / step)
    details = {"contour_step": step, "log": log, "coarse_shape": [len(c) for c in coarse],
               "worst_index": [int(i) for i in worst_at]}
    if value <= opts.resolution:
        return CheckResult("resolution", "pass", value, opts.resolution,
                           "the contours are converged: the coarse level draws the same picture", details)
    finer = [2 * (n - 1) + 1 for n in values.shape]
    return CheckResult("resolution", "warn", value, opts.resolution,
                       f"the surface differs from its own coarse level by {value:.3g} contour steps: the contours are not "
                       f"converged; use a finer grid (e.g. {'×'.join(map(str, finer))} points)", details)


# --- trajectory -----------------------------------------------------------------------------------------


def trajectory_check(own: npt.ArrayLike, on_surface: npt.ArrayLike, off_plane: npt.ArrayLike, variance: float,
                     labels: Sequence[str], step: float, log: bool, opts: CheckOptions,
                     levels: npt.ArrayLike | None = None) -> CheckResult:
    """Does the path sit on its plane? Explained variance, distances from the plane, and each
    checkpoint's own loss against the surface's value at its projection, in contour steps: the
    drawn ``levels`` (figure units) between the two when given, else their difference over ``step``."""
    own_u = display_units(own, log)
    surf_u = display_units(on_surface, log)
    gap = _in_steps(own_u, surf_u, step, levels)
    # a known own loss over no surface value (outside the grid, a diverged corner) cannot be drawn there;
    # an unknown own loss (no weights, no record) is not judged
    gap = np.where(np.isfinite(own_u) & ~np.isfinite(surf_u), np.inf, gap)
    off = np.asarray(off_plane, dtype=np.float64)
    flagged = [i for i in range(len(gap)) if bool(gap[i] > opts.path_steps)]
    details = {"explained_variance": variance, "variance_threshold": opts.variance,
               "off_plane": off.tolist(), "steps": gap.tolist(),
               "own_loss": np.asarray(own, dtype=np.float64).tolist(),
               "surface_at_projection": np.asarray(on_surface, dtype=np.float64).tolist(),
               "flagged": flagged, "flagged_labels": [labels[i] for i in flagged], "contour_step": step, "log": log,
               **({"levels": _loss_units(levels, log)} if levels is not None else {})}
    value = float(np.max(gap[np.isfinite(gap)])) if np.isfinite(gap).any() else math.inf
    problems = []
    if variance < opts.variance:
        problems.append(f"the plane holds only {variance:.0%} of the path's variance")
    if flagged:
        names = ", ".join(labels[i] for i in flagged)
        far = max(off[i] for i in flagged)
        problems.append(f"checkpoints {names} leave the plane: their own loss differs from the surface under them by more "
                        f"than {opts.path_steps:g} contour step (up to {far:.0%} of their distance from the origin lies "
                        "off the plane)")
    if problems:
        return CheckResult("trajectory", "warn", value, opts.path_steps,
                           "; ".join(problems) + ": the path is not on these contours; draw the plane of these "
                           "checkpoints (landscape trajectory) or mark the path as projected", details)
    return CheckResult("trajectory", "pass", value, opts.path_steps,
                       f"the path lies in its plane ({variance:.0%} of its variance) and on its contours", details)


def _loss_units(levels: npt.ArrayLike, log: bool) -> list[float]:
    lv = np.asarray(levels, dtype=np.float64)
    return [float(v) for v in (10.0 ** lv if log else lv)]


def residual_ratios(diffs: Sequence[Mapping[str, Tensor]], dx: Mapping[str, Tensor], dy: Mapping[str, Tensor]) -> FloatArray:
    """Per checkpoint ``‖r_i‖ / ‖θ_i − θ*‖``, ``r_i`` the part of ``θ_i − θ*`` outside span(δ, η) (least squares)."""
    keys = list(dx)
    gram = np.array([[_dot(dx, dx, keys), _dot(dx, dy, keys)], [_dot(dx, dy, keys), _dot(dy, dy, keys)]])
    out = []
    for d in diffs:
        total = _dot(d, d, keys, full=True)
        b = np.array([_dot(d, dx, keys), _dot(d, dy, keys)])
        coef = np.linalg.lstsq(gram, b, rcond=None)[0]
        inside = float(coef @ gram @ coef)
        out.append(math.sqrt(max(total - inside, 0.0) / total) if total > 0 else 0.0)
    return np.asarray(out, dtype=np.float64)


def _dot(a: Mapping[str, Tensor], b: Mapping[str, Tensor], keys: Sequence[str], full: bool = False) -> float:
    names = list(a) if full else keys
    return float(sum(float((a[k].double() * b[k].double()).sum()) for k in names if k in b))


# --- numerics -------------------------------------------------------------------------------------------


def numerics_check(z: npt.ArrayLike, done: npt.ArrayLike, log: bool, opts: CheckOptions,
                   step: float | None = None, stderr: npt.ArrayLike | None = None) -> CheckResult:
    """Non-finite values, and points whose float32 rounding (``16·ε·|L|``) or, on a progressive surface,
    twice the standard error of the estimate (``stderr``) is larger than a contour step."""
    mask = np.asarray(done, dtype=bool)
    values = np.asarray(z, dtype=np.float64)[mask]
    bad = int(np.sum(~np.isfinite(values)))
    keep = np.isfinite(values)
    finite = values[keep]
    u = display_units(finite, log)
    step = contour_step(u, opts.levels) if step is None else step
    # float32 rounding of a mean of float32 losses, in the figure's units
    noise = 16 * _EPS32 / math.log(10) * np.ones_like(finite) if log else 16 * _EPS32 * np.abs(finite)
    if stderr is not None:  # an estimate's error, in the figure's units
        se = np.nan_to_num(np.asarray(stderr, dtype=np.float64)[mask][keep], nan=0.0)
        noise = np.maximum(noise, 2 * se / (np.maximum(finite, 1e-300) * math.log(10)) if log else 2 * se)
    rounding = float(np.mean(noise >= step)) if finite.size and step > 0 else (1.0 if finite.size > 1 else 0.0)
    if finite.size > 1 and step == 0 and float(np.ptp(finite)) == 0:
        rounding = 1.0
    details = {"non_finite": bad, "rounding_share": rounding, "contour_step": step, "points": int(values.size)}
    problems = []
    if bad:
        problems.append(f"{bad} of {values.size} points are NaN or infinite (diverged): they are masked in the figures; "
                        "shrink the range to stay where the model is finite")
    if rounding > opts.rounding_share:
        problems.append(f"at {rounding:.0%} of the points float32 rounding is larger than a contour step: the contours "
                        "are rounding noise; widen the range (see scale) or evaluate in float64 (model.double())"
                        if stderr is None else
                        f"at {rounding:.0%} of the points float32 rounding or twice the estimate's standard error is larger "
                        "than a contour step: the contours are noise; give a smaller --tolerance, or evaluate exactly")
    if problems:
        return CheckResult("numerics", "warn", bad / max(values.size, 1) + rounding, opts.rounding_share,
                           "; ".join(problems), details)
    return CheckResult("numerics", "pass", 0.0, opts.rounding_share, "every point is finite and above rounding noise", details)
