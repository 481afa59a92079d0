"""Optimizer trajectories in the plane of their first two principal components (Li et al., 2018, §7).

Two random directions in a space of millions of dimensions are nearly orthogonal to any
optimization path, so the paper plots the path in the plane spanned by the top two principal
components of the matrix ``M`` whose row ``i`` is ``Δ_i = θ_i − θ_final`` (one row per checkpoint,
oldest first; the final checkpoint is the origin and its row is zero).

Algorithm (:mod:`landscape.engine.pca`), without ever forming ``M`` as a dense ``n × P`` matrix:

1. load the checkpoints one at a time and keep only ``Δ_i`` over the included tensors, in the
   checkpoint's own float dtype (float32 for most models: ``n × P × 4`` bytes in all);
2. accumulate the Gram matrix ``G = M Mᵀ`` (``n × n``) in float64, tensor by tensor and block of
   columns by block of columns;
3. centre it, ``G ← J G J`` with ``J = I − 11ᵀ/n`` (the Gram matrix of the mean-centred rows);
4. eigendecompose ``G = U Λ Uᵀ`` (numpy ``eigh``): ``λ_k`` are the squared singular values of
   ``J M`` and ``λ_k / trace G`` the explained-variance ratios;
5. the principal directions are ``v_k = Mᵀ J u_k / ‖Mᵀ J u_k‖``, the right singular vectors of
   ``J M``, accumulated block by block again;
6. each checkpoint's coordinates are the least-squares projection of ``Δ_i`` (not centred: the
   origin of the plane is θ_final) onto ``(v_1, v_2)`` (:func:`project`); the directions are
   orthonormal, so this is the paper's dot product ``⟨Δ_i, v_k⟩``.

As in the paper's code (``projection.setup_PCA_directions`` fits ``sklearn.decomposition.PCA``,
which always subtracts the mean of the rows), the PCA is **mean-centred** by default: the plane
is oriented along the path's own spread and still passes through θ_final. ``center=False``
(CLI ``--uncentered``) skips step 3: the components then describe how the path approaches
θ_final. The choice is recorded in the file (attribute ``center``) and in the axis labels.

Directions live on the same tensors as surface directions (:func:`landscape.engine.directions.target_tensors`):
parameters (``dir_type = "weights"``) or float state-dict entries (``"states"``). With
``ignore = "biasbn"`` (the default) tensors with ``ndim ≤ 1`` are left out of ``M`` and their
direction entries are zero, so a trajectory file is a valid direction file for
``landscape surface --directions``.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from landscape.config import PCA_GRID
from landscape.engine.directions import Directions, dot, model_fingerprint, target_tensors
from landscape.engine.pca import principal_directions
from landscape.errors import CheckpointError, ConfigError, DirectionError, GridError
from landscape.io.checkpoint import Checkpoint, fit_state_dict, load_checkpoint, sha256_file
from landscape.io.run_folder import run_checkpoints
from landscape.io.trajectory_file import Trajectory, TrajectoryPoints, stored_coords
from landscape.workflows.experiment import checkpoint_config
from landscape.zoo.modules import plain_module

TensorDict = dict[str, Tensor]
_IGNORE = ("biasbn", "none", "random1d")  # PCA: "none" and "random1d" both keep ndim ≤ 1 tensors


# --- projection ---------------------------------------------------------------------------------


def project_all(deltas: Sequence[Mapping[str, Tensor]], d1: Mapping[str, Tensor], d2: Mapping[str, Tensor]) -> np.ndarray:
    """Least-squares coordinates ``(a, b)`` of each ``Δ ≈ a·d1 + b·d2``; returns (n, 2) float64.

    Solves the normal equations ``[[d1·d1, d1·d2], [d2·d1, d2·d2]] [a, b]ᵀ = [d1·Δ, d2·Δ]ᵀ`` in
    float64, so the answer is exact for directions that are neither orthogonal nor of unit norm.
    A tensor of the directions that ``Δ`` lacks counts as zero in ``Δ``.
    """
    if set(d1) != set(d2):
        raise DirectionError("the two directions must hold the same tensors")
    gram = np.array([[dot(d1, d1), dot(d1, d2)], [dot(d2, d1), dot(d2, d2)]])  # (2, 2)
    if not gram[0, 0] * gram[1, 1] - gram[0, 1] ** 2 > 1e-12 * gram[0, 0] * gram[1, 1]:
        raise DirectionError("the two directions are parallel or zero: they span no plane to project onto")
    rhs = np.zeros((len(deltas), 2))  # (n, 2)
    for i, delta in enumerate(deltas):
        unknown = [k for k in delta if k not in d1]
        if unknown:
            raise DirectionError(f"the directions lack tensors {', '.join(unknown[:3])} of the point to project")
        rhs[i] = dot(delta, d1), dot(delta, d2)
    return np.asarray(np.linalg.solve(gram, rhs.T).T)


# --- checkpoints --------------------------------------------------------------------------------


def model_from_checkpoint(ckpt: Checkpoint, dir_type: str = "weights") -> nn.Module:
    """A model of the checkpoint's architecture (for the API and the CLI); only its tensor names and shapes are used."""
    from landscape.io.recorder import skeleton_model
    from landscape.zoo.models import build_model

    in_shape, out_shape = ckpt.extra.get("input_shape"), ckpt.extra.get("output_shape")
    if ckpt.config is None and isinstance(ckpt.extra.get("parameters"), list):  # saved by landscape.Recorder
        return skeleton_model(ckpt.state_dict, [str(k) for k in ckpt.extra["parameters"]])
    if ckpt.extra.get("kind") == "huggingface":  # built from its config.json (the hf extra)
        from landscape.zoo.hf import model_from_hf_config

        return model_from_hf_config(ckpt.extra["hf_config"], str(ckpt.path))
    config = checkpoint_config(ckpt)
    if config is not None and in_shape is not None and out_shape is not None:
        return build_model(config.model.name, in_shape, out_shape, dict(config.model.options))
    if dir_type == "states":  # every float state-dict entry moves: names and shapes are all it takes
        return skeleton_model(ckpt.state_dict, None)
    raise CheckpointError(f"{str(ckpt.path)!r} is not a landscape checkpoint, so it does not say which of its tensors are "
                          "parameters: pass model= (any instance of the architecture; its weights are not used; CLI: "
                          "--model and --data, or --config FILE) or dir_type='states' (--dir-type states)")


def _included(model: nn.Module, dir_type: str, ignore: str) -> tuple[TensorDict, list[str]]:
    """The direction's tensors and, among them, those that enter the PCA."""
    if ignore not in _IGNORE:
        raise DirectionError(f"unknown ignore {ignore!r}; choose {' or '.join(repr(i) for i in _IGNORE)}")
    targets = target_tensors(model, dir_type)
    names = [k for k, t in targets.items() if not (ignore == "biasbn" and t.ndim <= 1)]
    if not names:
        raise DirectionError(f"the model has no {dir_type} tensor with ndim > 1 to move (try ignore='none')")
    return targets, names


def _delta(state: Mapping[str, Tensor], origin: Mapping[str, Tensor]) -> TensorDict:
    """``θ − θ_final`` computed in float64, kept in the checkpoint's float dtype (at least float32)."""
    out: TensorDict = {}
    for k, o in origin.items():
        t = state[k].detach().cpu()
        out[k] = (t.double() - o.double()).to(torch.promote_types(t.dtype, torch.float32))
    return out


def _record(ckpt: Checkpoint) -> tuple[int, int, float]:
    loss = ckpt.metrics.get("train_loss", math.nan)
    return (-1 if ckpt.epoch is None else ckpt.epoch, -1 if ckpt.step is None else ckpt.step, float(loss))


# --- the trajectory -------------------------------------------------------------------------------


def compute_trajectory(checkpoints: Sequence[str | Path | Checkpoint], *, model: nn.Module | None = None, dir_type: str = "weights",
                       ignore: str = "biasbn", center: bool = True, unsafe: bool = False,
                       source: str = "", prefix: str | None = None,
                       load: Callable[..., Checkpoint] = load_checkpoint) -> Trajectory:
    """PCA directions of an optimization path and each checkpoint's coordinates in their plane.

    ``checkpoints`` are in training order; the last one is the origin θ_final. ``model`` gives
    the architecture (tensor names and shapes; its weights are not used nor changed) and is
    rebuilt from the final checkpoint when omitted (our checkpoints record their model). Each
    checkpoint's recorded ``train_loss`` (the value in the run's ``run.json``) is kept, NaN when
    it has none. ``source`` (e.g. the run folder) is recorded in the file. An item may be a
    :class:`Checkpoint` already in memory (the API's models and state dicts). ``center`` chooses
    the mean-centred PCA (default, the paper's) or the uncentred one. ``prefix``: read only the
    tensors under it (:func:`~landscape.io.checkpoint.load_checkpoint`); else each checkpoint's names
    meet the model's as saved or under the one prefix that fits (:func:`~landscape.io.checkpoint.fit_state_dict`).
    ``load`` reads a checkpoint file, called as :func:`~landscape.io.checkpoint.load_checkpoint` is (``landscape
    run`` passes one that keeps the weights it read for its check stage).
    """
    paths = [p if isinstance(p, Checkpoint) else Path(p) for p in checkpoints]
    if len(paths) < 3:
        raise DirectionError(f"a PCA plane needs at least 3 checkpoints, got {len(paths)}")
    final = _load(paths[-1], unsafe, prefix, load)
    model = plain_module(model) if model is not None else model_from_checkpoint(final, dir_type)
    targets, names = _included(model, dir_type, ignore)
    fp = model_fingerprint(model)
    final = _fitted(final, model)
    origin = {k: final.state_dict[k].detach().cpu() for k in names}
    deltas: list[TensorDict] = []
    records: list[tuple[int, int, float]] = []
    for p in paths[:-1]:  # one checkpoint in memory at a time; only its Δ is kept
        ckpt = _fitted(_load(p, unsafe, prefix, load), model)
        deltas.append(_delta(ckpt.state_dict, origin))
        records.append(_record(ckpt))
    deltas.append(_delta(final.state_dict, origin))  # zero row: θ_final − θ_final
    records.append(_record(final))
    vecs, ratios = principal_directions(deltas, names, center)
    # the directions as they are saved (float32, zero on excluded tensors), so the coordinates
    # are those of the exact vectors a surface will use
    d1, d2 = ({k: (v[k].float() if k in v else torch.zeros(t.shape)) for k, t in targets.items()} for v in vecs)
    coords = project_all(deltas, d1, d2)
    meta: dict[str, Any] = {
        "kind": "pca", "dir_type": dir_type, "norm": "none", "ignore": ignore, "seed": -1,
        "explained_variance": np.asarray(ratios[:2], dtype=np.float64), "center": center,
        "origin": str(final.path), "origin_sha256": sha256_file(final.path) if final.path.exists() else "", "source": source,
        "num_checkpoints": len(paths),
    }
    epochs, steps, losses = zip(*records, strict=True)
    return Trajectory(coords=coords, epochs=np.asarray(epochs, dtype=np.int64), steps=np.asarray(steps, dtype=np.int64),
                      losses=np.asarray(losses, dtype=np.float64),
                      names=tuple(str(p.path if isinstance(p, Checkpoint) else p) for p in paths),
                      explained_variance=np.asarray(ratios[:2], dtype=np.float64), meta=meta,
                      directions=Directions(d1, d2, meta), spectrum=ratios, fingerprint=fp)


def _load(item: Path | Checkpoint, unsafe: bool, prefix: str | None, load: Callable[..., Checkpoint]) -> Checkpoint:
    return item if isinstance(item, Checkpoint) else load(item, unsafe=unsafe, prefix=prefix)


def _fitted(ckpt: Checkpoint, model: nn.Module) -> Checkpoint:
    """The checkpoint under the model's names (a ``model.`` prefix found, tied tensors filled in): exactly the
    model's tensors with the model's shapes (:func:`~landscape.io.checkpoint.fit_state_dict` refuses any other)."""
    try:
        state = fit_state_dict(model, ckpt.state_dict, what="the trajectory's model")
    except CheckpointError as err:
        raise CheckpointError(f"{str(ckpt.path)!r}: {err}") from err
    return dataclasses.replace(ckpt, state_dict=state)


def trajectory_from_run(run_dir: str | Path, *, include_steps: bool = False, **kwargs: Any) -> Trajectory:
    """:func:`compute_trajectory` over a run folder's checkpoints (see :func:`run_checkpoints`)."""
    return compute_trajectory(run_checkpoints(run_dir, include_steps), source=str(run_dir), **kwargs)


def summary(traj: TrajectoryPoints) -> dict[str, Any]:
    """A short description: explained variance, number of checkpoints, extent of the path."""
    c = traj.coords
    return {"checkpoints": len(c), "explained_variance": [round(float(r), 6) for r in traj.explained_variance],
            "x_extent": [float(c[:, 0].min()), float(c[:, 0].max())],
            "y_extent": [float(c[:, 1].min()), float(c[:, 1].max())],
            "start": [float(c[0, 0]), float(c[0, 1])], "origin": traj.meta.get("origin")}


# --- files ----------------------------------------------------------------------------------------


def path_axis(values: np.ndarray, num: int = 31, margin: float = 0.3) -> str:
    """``MIN:MAX:NUM`` covering ``values`` and 0 with ``margin`` (a fraction of the range) on each side.

    The spacing is chosen so that 0 falls on a grid node: the surface is evaluated at θ_final.
    """
    if num < 3:
        raise GridError(f"a grid around a path needs at least 3 points per axis, got {num}")
    if not (math.isfinite(margin) and margin >= 0):
        raise ConfigError(f"the margin around a path must be a fraction ≥ 0, got {margin}")
    lo, hi = min(float(np.min(values)), 0.0), max(float(np.max(values)), 0.0)
    span = hi - lo if hi > lo else 1.0
    lo, hi = lo - margin * span, hi + margin * span
    h = (hi - lo) / (num - 2)  # one interval spare for the shift that puts 0 on a node
    below = math.ceil(-lo / h)  # nodes left of the origin, 1 ≤ below ≤ num − 2
    start = -below * h
    stop = start + (num - 1) * h  # ≥ hi
    return f"{float(start)!r}:{float(stop)!r}:{num}"


def default_grid_overrides(path: Path, num: int = PCA_GRID, margin: float = 0.3) -> list[str]:
    """Config overrides for ``landscape surface --directions FILE`` without ``--x``.

    For a trajectory file: ``surface.x`` and ``surface.y`` covering the projected path and the
    origin with ``margin`` on each side, ``num`` points per axis (a PCA plane is 2D: ``y`` is always
    set, whatever the config's ``surface.y``). Any other direction file keeps the default grid ([]).
    """
    coords = stored_coords(Path(path))
    if coords is None or coords.ndim != 2 or coords.shape[1] != 2 or len(coords) == 0:
        return []
    x, y = path_axis(coords[:, 0], num, margin), path_axis(coords[:, 1], num, margin)
    return [f"surface.x={json.dumps(x)}", f"surface.y={json.dumps(y)}"]
