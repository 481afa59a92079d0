"""The options of the checks behind ``landscape check``: one frozen type for the ``[check]`` config
section and the engine (docs/CHECKS.md). It lives apart from :mod:`landscape.engine.check` so that
``config`` can take it without importing the numerics (and, through them, ``zoo``, which imports
``config``)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from landscape.errors import ConfigError


@dataclass(frozen=True)
class CheckOptions:
    """Thresholds of the checks (``[check]`` in a config, ``--set check.KEY=VALUE``; docs/CHECKS.md)."""

    origin_rtol: float = 1e-5  # origin: |surface − plain| / |plain| above this fails
    bn_rtol: float = 0.25  # bn_mode: |L_running − L_batch| / s above this warns
    bn_batch_size: int = 64  # bn_mode: samples per batch of the batch statistics
    seeds: int = 3  # seeds: extra random planes
    seed_points: int = 9  # seeds: at least this many points per axis of their coarse grid
    seed_radius: float = 0.5  # seeds: the disc of the plane summary, a fraction of the grid's half-width
    seed_ratio: float = 1.3  # seeds: the drawn plane's mean increase over the others' median beyond ×/÷ this warns
    seed_spread: float = 3.0  # seeds: largest over smallest mean increase of all planes above this warns
    levels: int = 12  # the contour figures' levels (plot.levels; 12 by default): their spacing is the contour step
    floor: float = 0.1  # loss scale s = max(|L(0)|, floor)
    explode: float = 100.0  # scale: a point above explode · s is exploded (10 for s = 0.1: the paper's vmax)
    exploded_share: float = 0.25  # scale: warn when more of the plane than this is exploded
    flat_step: float = 0.01  # scale: a point within flat_step · s of the minimum is flat
    flat_share: float = 0.5  # scale: warn when more of the plane than this is flat
    min_step: float = 1e-2  # scale: ‖αδ + βη‖ / ‖θ‖ at the grid's corner below this warns
    max_step: float = 10.0  # ... and above this
    resolution: float = 1.0  # resolution: largest |fine − coarse interpolated| in contour steps
    variance: float = 0.5  # trajectory: share of the path's variance the plane must hold
    path_steps: float = 1.0  # trajectory: |own loss − surface at projection| in contour steps
    rounding_share: float = 0.01  # numerics: share of points whose float32 rounding exceeds a contour step
    enabled: bool = True  # run and compare check their surfaces (not a threshold: the checks ignore it)

    def __post_init__(self) -> None:
        positive = {k: v for k, v in asdict(self).items() if k not in ("seeds", "enabled")}
        bad = [k for k, v in positive.items() if not (math.isfinite(v) and v > 0)]
        if bad:
            raise ConfigError(f"check.{bad[0]} must be a positive number, got {getattr(self, bad[0])}")
        if self.seeds < 1 or self.seed_points < 3 or self.levels < 2 or self.bn_batch_size < 2:
            raise ConfigError(f"check.seeds must be ≥ 1, seed_points ≥ 3, levels ≥ 2 and bn_batch_size ≥ 2, got "
                              f"{self.seeds}, {self.seed_points}, {self.levels} and {self.bn_batch_size}")
