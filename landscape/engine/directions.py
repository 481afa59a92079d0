"""Directions in parameter space: random filter-normalized, target (interpolation), saved.

The paper's method (Li et al., 2018, §4): draw a Gaussian direction ``d`` with the shape of the
parameters and rescale each filter to the norm of the matching filter of the weights,
``d_f ← d_f · ‖θ_f‖ / ‖d_f‖``, where a filter is one output unit of the module that owns the
tensor (:mod:`landscape.engine.filters`: a row of ``Linear``, an output channel of ``Conv*d``, a
column of ``transformers``' ``Conv1D``, dim 1 within each group of ``ConvTranspose*d``, ...).
Parametrized weights (``weight_norm``, ``spectral_norm``, ...) get their direction on the effective
weight the forward uses, under the module's name for it (``0.weight``).
Tensors that hold no filters (ndim ≤ 1: biases, BatchNorm affine parameters, and under ``states``
the BatchNorm running statistics) get a zero direction by default (``ignore = "biasbn"``). With
``ignore = "none"`` each gets the tensor itself as its direction, ``d = θ`` (the paper's code,
``net_plotter.normalize_directions_for_weights``: moving by ``α`` scales it by ``1 + α``); with
``ignore = "random1d"`` each keeps its Gaussian draw, rescaled as one block to the tensor's norm
(``norm = "filter"``/``"layer"``; otherwise per ``norm``). The Gaussian is drawn for every tensor
in all three cases, so the directions of the other tensors do not depend on ``ignore``. Directions are
dicts ``name → tensor`` keyed by parameter name (``dir_type = "weights"``) or state-dict key
(``"states"``, BatchNorm running statistics included).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args

import h5py
import numpy as np
import torch
from torch import Tensor, nn

from landscape.engine.filters import Filters, effective_model, filters_of, is_parametrized
from landscape.errors import ConfigError, DirectionError

TensorDict = dict[str, Tensor]
_EPS = 1e-10


DirType = Literal["weights", "states"]
Norm = Literal["filter", "layer", "weight", "none"]
Ignore = Literal["biasbn", "none", "random1d"]


@dataclass(frozen=True)
class DirectionOptions:
    """How random directions are drawn: which tensors (``dir_type``), the rescaling (``norm``), the
    rule for tensors with ndim ≤ 1 (``ignore``) and the generator's ``seed``. Also the config's
    ``[directions]`` section (``landscape.config.DirectionsConfig`` is this class): one type, one
    default seed (123, the paper's) for the API and the CLI."""

    dir_type: DirType = "weights"
    norm: Norm = "filter"
    ignore: Ignore = "biasbn"
    seed: int = 123

    def __post_init__(self) -> None:
        for key, choices in (("dir_type", DirType), ("norm", Norm), ("ignore", Ignore)):
            if getattr(self, key) not in get_args(choices):
                raise DirectionError(f"unknown {key} {getattr(self, key)!r}; choose {', '.join(map(repr, get_args(choices)))}")


@dataclass(frozen=True)
class Directions:
    """One (1D) or two (2D) directions plus what produced them.

    ``x`` and ``y`` (None for 1D) map parameter (and, with ``dir_type="states"``, buffer) names
    to float32 tensors shaped like them: the displacement per unit of α (β). ``meta`` holds
    ``kind`` (random|target|pca|hessian), ``dir_type``, ``norm``, ``ignore``, ``seed`` and
    optional extras such as ``explained_variance``.
    """

    x: TensorDict
    y: TensorDict | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def dims(self) -> int:
        return 1 if self.y is None else 2

    @property
    def dir_type(self) -> str:
        return str(self.meta.get("dir_type", "weights"))

    def cosine(self) -> float | None:
        """Cosine of the angle between the two directions (None in 1D)."""
        if self.y is None:
            return None
        nx, ny = norm(self.x), norm(self.y)
        return dot(self.x, self.y) / (nx * ny) if nx > 0 and ny > 0 else float("nan")

    def fingerprint(self) -> str:
        """sha256 over names, shapes and bytes of both directions."""
        h = hashlib.sha256()
        for which, d in (("x", self.x), ("y", self.y or {})):
            for k in sorted(d):
                t = d[k].detach().cpu().contiguous()
                h.update(f"{which}/{k}/{tuple(t.shape)}/{t.dtype}".encode())
                h.update(t.numpy().tobytes())
        return h.hexdigest()


# --- the small algebra over tensor dicts ------------------------------------------------------


def nonzero(t: Tensor, chunk: int = 1 << 20) -> bool:
    """Whether any entry of ``t`` is non-zero, in chunks (``t.any()`` allocates a bool copy of ``t``)."""
    flat = t.reshape(-1)
    return any(bool(flat[i : i + chunk].any()) for i in range(0, flat.numel(), chunk))


def norm(d: Mapping[str, Tensor]) -> float:
    return math.sqrt(sum(float((t.double() ** 2).sum()) for t in d.values()))


def dot(a: Mapping[str, Tensor], b: Mapping[str, Tensor]) -> float:
    return float(sum(float((a[k].double() * b[k].double()).sum()) for k in a))


def target_tensors(model: nn.Module, dir_type: str) -> TensorDict:
    """The tensors a direction moves: parameters (``weights``) or float state-dict entries (``states``)."""
    if dir_type == "weights":
        return {k: p.detach() for k, p in model.named_parameters()}
    if dir_type == "states":
        return {k: v.detach() for k, v in model.state_dict().items() if v.is_floating_point()}
    raise DirectionError(f"unknown dir_type {dir_type!r}; choose 'weights' or 'states'")


def normalize_(d: Tensor, w: Tensor, how: str, filters: Filters | None = None) -> Tensor:
    """Rescale direction ``d`` in place relative to weights ``w`` (filter/layer/weight/none).

    ``filters`` says how ``w`` splits into filters (:func:`~landscape.engine.filters.filters_of`);
    None with ``how="filter"``: the whole tensor as one (as ``layer``).
    """
    if how == "filter" and filters is not None:
        # per filter f (one output unit of the layer): d_f ← d_f · ‖w_f‖ / ‖d_f‖
        view = d.view(filters.shape)
        view.mul_(filters.norms(w) / (filters.norms(d) + _EPS))
    elif how in ("filter", "layer"):
        d.mul_(w.norm() / (d.norm() + _EPS))
    elif how == "weight":
        d.mul_(w)
    elif how != "none":
        raise DirectionError(f"unknown norm {how!r}; choose filter, layer, weight or none")
    return d


def random_direction(model: nn.Module, cfg: DirectionOptions, generator: torch.Generator) -> TensorDict:
    """One Gaussian direction shaped like the targets of ``cfg.dir_type``, normalized per ``cfg.norm``.

    Drawn on the CPU in float32 in name order from ``generator``, so a seed gives the same
    direction bit for bit on any device. Parametrized tensors are drawn on their effective value
    (:func:`~landscape.engine.filters.effective_model`); a filter is an output unit of the tensor's module
    (:func:`~landscape.engine.filters.filters_of`); tensors without filters follow ``cfg.ignore``.
    """
    eff = effective_model(model)
    out: TensorDict = {}
    for name, w in target_tensors(eff, cfg.dir_type).items():
        w32 = w.detach().float().cpu()
        d = torch.randn(w32.shape, generator=generator, dtype=torch.float32)
        filters = filters_of(eff, name, w32)
        if cfg.ignore == "biasbn" and filters is None:
            d.zero_()
        elif cfg.ignore == "none" and filters is None:
            d.copy_(w32)  # the paper's choice: the tensor itself
        else:
            normalize_(d, w32, cfg.norm, filters)
        out[name] = d
    return out


def model_fingerprint(model: nn.Module) -> dict[str, list[int]]:
    return {k: list(v.shape) for k, v in model.state_dict().items()}


def random_directions(model: nn.Module, cfg: DirectionOptions, dims: int) -> Directions:
    """The paper's default: ``dims`` (1 or 2) seeded Gaussian directions, filter-normalized."""
    g = torch.Generator().manual_seed(cfg.seed)
    x = random_direction(model, cfg, g)
    y = random_direction(model, cfg, g) if dims == 2 else None
    meta = {"kind": "random", "dir_type": cfg.dir_type, "norm": cfg.norm, "ignore": cfg.ignore, "seed": cfg.seed}
    return Directions(x, y, meta)


def target_direction(origin: Mapping[str, Tensor], target: Mapping[str, Tensor]) -> TensorDict:
    """``θ_B − θ_A`` over the tensors of ``origin`` (no normalization: α = 1 lands exactly on B)."""
    missing = [k for k in origin if k not in target]
    if missing:
        raise DirectionError(f"the target checkpoint lacks {', '.join(missing[:4])}: it is another architecture")
    out: TensorDict = {}
    for k, a in origin.items():
        b = target[k]
        if tuple(a.shape) != tuple(b.shape):
            raise DirectionError(f"target checkpoint tensor {k!r} has shape {tuple(b.shape)}, the model has {tuple(a.shape)}")
        out[k] = b.detach().float().cpu() - a.detach().float().cpu()
    return out


def target_directions(model: nn.Module, state_b: Mapping[str, Tensor], state_c: Mapping[str, Tensor] | None,
                      dir_type: str) -> Directions:
    """Interpolation (Goodfellow et al.): x = θ_B − θ_A; y = θ_C − θ_A spans the plane through three models.

    ``state_b``/``state_c`` are state dicts, which hold every parameter and buffer by name.
    """
    origin = target_tensors(model, dir_type)
    x = target_direction(origin, state_b)
    y = target_direction(origin, state_c) if state_c is not None else None
    return Directions(x, y, {"kind": "target", "dir_type": dir_type, "norm": "none", "ignore": "none", "seed": -1})


# --- files ------------------------------------------------------------------------------------


def write_directions(group: h5py.Group, dirs: Directions, model_fp: Mapping[str, list[int]] | None = None) -> None:
    """Write ``dirs`` into ``group`` (a file root or a surface file's ``directions`` group)."""
    for which, d in (("x", dirs.x), ("y", dirs.y)):
        if d is None:
            continue
        g = group.require_group(which)
        for k, t in d.items():
            g.create_dataset(k, data=t.detach().cpu().float().numpy())
    group.attrs["format"] = "landscape-directions"
    for key, value in dirs.meta.items():
        group.attrs[key] = value if not isinstance(value, dict | list) else json.dumps(value)
    if model_fp is not None:
        group.attrs["model_fingerprint"] = json.dumps(model_fp)
    cos = dirs.cosine()
    if cos is not None:
        group.attrs["cosine"] = cos
    group.attrs["fingerprint"] = dirs.fingerprint()


def save_directions(path: str | Path, dirs: Directions, model: nn.Module | None = None) -> None:
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(f".{p.name}.tmp")
    with h5py.File(tmp, "w") as f:
        write_directions(f, dirs, model_fingerprint(model) if model is not None else None)
    tmp.replace(p)


def plain_attr(value: Any) -> Any:
    """An HDF5 attribute as a plain Python value: bytes decoded, NumPy arrays as lists, NumPy scalars as Python
    numbers (``tolist`` of a scalar is its item)."""
    if isinstance(value, bytes):
        return value.decode()
    return value.tolist() if isinstance(value, np.ndarray | np.generic) else value


def read_directions_group(group: h5py.Group) -> Directions:
    """Directions stored in our layout in ``group`` (a direction file's root or a surface file's ``directions/``)."""
    x = {k: torch.from_numpy(np.asarray(v[()], dtype=np.float32)) for k, v in group["x"].items()}
    y = {k: torch.from_numpy(np.asarray(v[()], dtype=np.float32)) for k, v in group["y"].items()} if "y" in group else None
    meta = {k: plain_attr(v) for k, v in group.attrs.items() if k not in ("format", "fingerprint", "cosine", "model_fingerprint")}
    return Directions(x, y, meta)


def _read_reference(f: h5py.File, model: nn.Module, path: Path) -> Directions:
    """The reference implementation's layout: ``xdirection``/``ydirection`` holding "0".."n-1"."""
    xs = [np.asarray(f["xdirection"][str(i)][()]) for i in range(len(f["xdirection"]))]
    ys = [np.asarray(f["ydirection"][str(i)][()]) for i in range(len(f["ydirection"]))] if "ydirection" in f else None
    params = dict(model.named_parameters())
    states = model.state_dict()
    if len(xs) == len(params):
        names, dir_type = list(params), "weights"
    elif len(xs) == len(states):
        names, dir_type = list(states), "states"
    else:
        raise DirectionError(f"direction file {str(path)!r} holds {len(xs)} tensors; the model has {len(params)} "
                             f"parameters and {len(states)} state-dict entries: it was made for another architecture")
    ref = params if dir_type == "weights" else states

    def build(arrays: list[np.ndarray]) -> TensorDict:
        out: TensorDict = {}
        for i, (name, a) in enumerate(zip(names, arrays, strict=True)):
            if tuple(a.shape) != tuple(ref[name].shape):
                raise DirectionError(f"direction file {str(path)!r}: tensor {i} has shape {tuple(a.shape)} but "
                                     f"{name!r} has {tuple(ref[name].shape)}: it was made for another architecture")
            if ref[name].is_floating_point():
                out[name] = torch.from_numpy(a.astype(np.float32))
        return out

    meta = {"kind": "reference", "dir_type": dir_type, "norm": "as-saved", "ignore": "as-saved", "seed": -1}
    return Directions(build(xs), build(ys) if ys is not None else None, meta)


def load_directions(path: str | Path, model: nn.Module) -> Directions:
    """Read a direction file (ours, a surface or trajectory file's, or the reference layout) for ``model``.

    The directions are used as saved: no normalization is applied again.
    """
    p = Path(path)
    if not p.is_file():
        raise DirectionError(f"direction file {str(p)!r} does not exist")
    try:
        with h5py.File(p, "r") as f:
            if "xdirection" in f:
                dirs = _read_reference(f, model, p)
            elif "x" in f and isinstance(f["x"], h5py.Group):  # a surface file has a dataset "x"
                dirs = read_directions_group(f)
            elif "directions" in f and "x" in f["directions"]:
                dirs = read_directions_group(f["directions"])
            else:
                raise DirectionError(f"{str(p)!r} holds no directions (expected groups x/y, directions/, or xdirection/ydirection)")
    except OSError as err:
        raise DirectionError(f"direction file {str(p)!r} is not a readable HDF5 file: {err}") from err
    except (KeyError, ValueError, TypeError, AttributeError) as err:  # damaged layout: a group for a dataset, text for numbers
        raise DirectionError(f"direction file {str(p)!r} is damaged: {str(err).strip() or type(err).__name__}") from err
    check_directions(dirs, model, p)
    return dirs


def direction_targets(model: nn.Module, dirs: Directions) -> TensorDict:
    """The tensors of ``model`` that ``dirs`` are keyed by: effective ones (``0.weight`` of a
    parametrized layer at its effective value, as random directions are drawn: read from a copy,
    ``model`` is not written to) unless the directions name a parametrization's own tensors
    (``0.parametrizations.weight.original0``: a target checkpoint's)."""
    return target_tensors(effective_model(model) if uses_effective(model, dirs) else model, dirs.dir_type)


def uses_effective(model: nn.Module, dirs: Directions) -> bool:
    """Whether ``dirs`` move the effective tensors of a parametrized ``model`` (see :func:`direction_targets`)."""
    return is_parametrized(model) and not any(".parametrizations." in f".{k}" for k in dirs.x)


def only(dirs: Directions, chosen: Callable[[str], bool], label: str) -> Directions:
    """``dirs`` restricted to the tensors ``chosen`` selects, ``meta["params"] = label``: the
    subset saved with them, so that reusing them moves exactly these tensors."""
    x = {k: v for k, v in dirs.x.items() if chosen(k)}
    if not x:
        raise ConfigError(f"params selects no tensor: {label} matches none of the directions' names, which look like {', '.join(list(dirs.x)[:4])}")
    y = {k: v for k, v in dirs.y.items() if chosen(k)} if dirs.y is not None else None
    return Directions(x, y, {**dirs.meta, "params": label})


def check_directions(dirs: Directions, model: nn.Module, source: Path | str = "directions") -> None:
    """Names and shapes must match the model's targets for the directions' ``dir_type``; directions
    of a chosen subset (``params``; the others stay at θ*) may leave tensors out."""
    targets = direction_targets(model, dirs)
    for which, d in (("x", dirs.x), ("y", dirs.y)):
        if d is None:
            continue
        unknown = [k for k in d if k not in targets]
        missing = [k for k in targets if k not in d] if not dirs.meta.get("params") else []
        bad = [f"{k} {tuple(d[k].shape)} vs {tuple(targets[k].shape)}" for k in d
               if k in targets and tuple(d[k].shape) != tuple(targets[k].shape)]
        if unknown or missing or bad:
            detail = "; ".join(p for p in (
                f"unknown tensors {', '.join(unknown[:3])}" if unknown else "",
                f"missing tensors {', '.join(missing[:3])}" if missing else "",
                f"shape mismatches {', '.join(bad[:3])}" if bad else "") if p)
            raise DirectionError(f"{source}: direction {which} was made for another architecture ({detail})")
