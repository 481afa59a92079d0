"""Frozen, typed configs loaded from TOML, with flag and ``--set section.key=value`` overrides.

A config file has one table per section (``[data]``, ``[model]``, ``[train]``, ...). Unknown
sections or keys and values of the wrong type raise :class:`ConfigError` naming the key. The
resolved config is saved beside every output (``config.toml`` in run folders, JSON in HDF5
attributes).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import tomllib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

from landscape.atomic import write_text_atomic
from landscape.engine.checkoptions import CheckOptions
from landscape.engine.directions import DirectionOptions
from landscape.errors import ConfigError

DirectionsConfig = DirectionOptions  # the [directions] section is the engine's own (frozen) options type
CheckConfig = CheckOptions  # so is the [check] section (its thresholds, and whether run and compare check)

T = TypeVar("T")

Optimizer = Literal["sgd", "adam", "adamw"]
Schedule = Literal["constant", "step", "cosine"]
Split = Literal["train", "test", "both"]
BNMode = Literal["keep", "recompute"]  # BatchNorm statistics: the checkpoint's, or re-estimated at every point
Target = Literal["label", "input"]
SurfaceMetric = Literal["loss", "eig_ratio"]

# Values renamed in 0.x, still read for one release (config files, --set, saved configs): key → {old: new}.
# config_from_dict reads the old value as the new one silently; the command line says so in one line.
RENAMED_VALUES: dict[str, dict[str, str]] = {
    "surface.bn": {"fixed": "keep"},
    "connect.bn": {"auto": "recompute"},  # recompute on a model without BatchNorm is keep
}

# The default grids, one per kind (points per axis; odd, so the origin is a node), used by every command.
LINE_GRID = "-1:1:51"  # a 1D line through the origin (surface, run and compare 1D slices)
PLANE_GRID = "-1:1:31"  # each axis of a 2D random plane (run, compare): 31 × 31 = 961 points
PCA_GRID = 31  # points per axis of the PCA plane of an optimization path (run, compare, surface --directions TRAJ)


def _renamed(section: Any, name: str) -> None:
    """A config built in Python with a value spelled as before a rename (:data:`RENAMED_VALUES`) takes the new one."""
    for key, renames in RENAMED_VALUES.items():
        prefix, field_name = key.split(".")
        old = getattr(section, field_name)
        if prefix == name and isinstance(old, str) and old in renames:
            object.__setattr__(section, field_name, renames[old])


@dataclass(frozen=True)
class DataConfig:
    """Which data, where it lives, and how it is cut."""

    name: str = "digits"
    root: str = "data"  # folder of file datasets (mnist, cifar10, ...)
    download: bool = False  # fetch file datasets when missing (needs network)
    target: Target = "label"  # "input": reconstruct the input (autoencoder task)
    classes: tuple[int, ...] = ()  # keep only these classes, relabelled 0..k-1
    binary: bool = False  # with two classes: one logit, targets 0/1
    max_train: int = 0  # 0 = all
    max_test: int = 0
    options: dict[str, Any] = field(default_factory=dict)  # passed to the dataset builder
    resize: int = 0  # images (n, c, h, w) resampled to resize × resize (bilinear); 0 = as they come


@dataclass(frozen=True)
class ModelConfig:
    name: str = "mlp"
    options: dict[str, Any] = field(default_factory=dict)  # passed to the factory


@dataclass(frozen=True)
class TrainConfig:
    loss: str = "cross_entropy"
    optimizer: Optimizer = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 0.0
    schedule: Schedule = "constant"
    step_size: int = 10  # epochs between LR drops ("step")
    gamma: float = 0.1
    batch_size: int = 64
    epochs: int = 10
    seed: int = 0
    device: str = "cpu"
    save_every_steps: int = 0  # 0 = one checkpoint per epoch only
    threads: int = 0  # torch intra-op threads; 0 = torch's default

    def __post_init__(self) -> None:
        if self.epochs < 0 or self.batch_size < 1 or not math.isfinite(self.lr) or self.lr <= 0:
            raise ConfigError(f"train.epochs must be ≥ 0, train.batch_size ≥ 1 and train.lr a positive number, "
                              f"got {self.epochs}, {self.batch_size} and {self.lr}")


@dataclass(frozen=True)
class SurfaceConfig:
    x: str = LINE_GRID
    y: str = ""  # empty: 1D
    losses: tuple[str, ...] = ()  # extra criteria; empty = the training loss
    split: Split = "train"
    max_samples: int = 0  # 0 = all
    bn: BNMode = "keep"
    bn_batches: int = 8
    batch_size: int = 0  # 0 = automatic
    device: str = "cpu"
    points_per_call: int = 0  # 0 = automatic (vectorized evaluation of several points)
    metric: SurfaceMetric = "loss"  # "eig_ratio": λmax, λmin and |λmin/λmax| of the Hessian per point
    params: tuple[str, ...] = ()  # glob patterns: only these tensors move (and the Hessian is over them); empty = all
    memory_budget: int = 2 << 30  # bytes: user data (file.py:fn giving loaders, Datasets, iterables) over it are streamed
    tolerance: str = ""  # progressive: "0.01" (standard error, loss units) or "2%" (of the contour step); "" = exact
    refine: bool = False  # progressive: compute finer levels only where the contours need them
    sample_seed: int = 0  # progressive: the seed of the one random order the samples are read in

    def __post_init__(self) -> None:
        _renamed(self, "surface")
        if self.max_samples < 0 or self.bn_batches < 1 or self.batch_size < 0 or self.points_per_call < 0:
            raise ConfigError(f"surface.max_samples, batch_size and points_per_call must be ≥ 0 and bn_batches ≥ 1, got "
                              f"{self.max_samples}, {self.batch_size}, {self.points_per_call} and {self.bn_batches}")
        if self.memory_budget < 1:
            raise ConfigError(f"surface.memory_budget must be a positive number of bytes, got {self.memory_budget}")


@dataclass(frozen=True)
class PlotConfig:
    kinds: tuple[str, ...] = ("contour", "filled", "heatmap", "surface3d", "line", "trajectory", "panels")
    formats: tuple[str, ...] = ("pdf", "png")
    metric: str = "train_loss"
    levels: int | None = None  # about this many contour levels; None: automatic (12 lines, 20 bands)
    vmin: float | None = None
    vmax: float | None = None
    log: bool | None = None  # None: log scale when a positive loss spans more than a decade
    cmap: str = "viridis"
    width: Literal["single", "double"] = "single"
    dpi: int = 200
    title: bool = True


@dataclass(frozen=True)
class RunConfig:
    """The main job: train → trajectory → surfaces → plots."""

    random_x: str = PLANE_GRID
    random_y: str = PLANE_GRID
    line_x: str = LINE_GRID
    pca_grid: int = PCA_GRID  # points per axis of the PCA-plane surface
    pca_margin: float = 0.3
    pca_center: bool = True  # mean-centred PCA of the path (the paper's, via sklearn); false: uncentred


@dataclass(frozen=True)
class CompareConfig:
    """``landscape compare``: one training per loss from the same seed, landscapes side by side."""

    losses: tuple[str, ...] = ("cross_entropy", "mse")
    target_acc: float = 0.9  # steps/epochs until the test accuracy first reaches this
    radius: float = 0.5  # flatness: mean increase and quadratic fit within this radius (α, β units)
    x: str = PLANE_GRID  # 2D random-direction surface around each final model
    y: str = PLANE_GRID
    line_x: str = LINE_GRID  # 1D slice along the same first direction
    pca_grid: int = PCA_GRID  # points per axis (odd) of the PCA-plane surfaces: ±(1 + pca_margin)·R, R = path radius
    pca_margin: float = 0.3
    floor: float = 1e-3  # ε of the relative loss 1 + (L − L(0)) / max(L(0), ε) and of the doubling radius
    sharpness: tuple[str, ...] = ()  # extra columns: these [sharpness] measures at each final model (own loss)

    def __post_init__(self) -> None:
        if not (math.isfinite(self.floor) and self.floor > 0):
            raise ConfigError(f"compare.floor must be a positive number, got {self.floor}")
        if not 0 <= self.target_acc <= 1:
            raise ConfigError(f"compare.target_acc must lie in [0, 1], got {self.target_acc}")
        if self.pca_grid < 3 or self.pca_grid % 2 == 0 or not (math.isfinite(self.pca_margin) and self.pca_margin >= 0):
            raise ConfigError(f"compare.pca_grid must be odd and ≥ 3 (so the final model is a node) and pca_margin ≥ 0, "
                              f"got {self.pca_grid} and {self.pca_margin}")
        if not (math.isfinite(self.radius) and self.radius > 0):
            raise ConfigError(f"compare.radius must be a positive number, got {self.radius}")


@dataclass(frozen=True)
class HessianConfig:
    """Curvature settings: ``landscape hessian``, Hessian directions and eig_ratio maps.

    The parameter set is the directions' rule (``directions.dir_type`` and ``ignore``).
    """

    top_k: int = 5
    tol: float = 1e-6  # Lanczos residual test, relative to each eigenvalue (λmin: to ‖H‖)
    max_iter: int = 100  # HVPs per Lanczos run
    trace_samples: int = 100  # Hutchinson probes
    seed: int = 0  # start vectors and probes
    map_tol: float = 1e-3  # eig_ratio maps: per-point test relative to ‖H‖ (ratio accurate to ~tol)
    map_max_iter: int = 100
    operator: Literal["hessian", "ggn", "fisher"] = "hessian"  # the curvature matrix (GGN, empirical Fisher)
    trace: Literal["hutch++", "hutchinson"] = "hutch++"  # trace estimator (trace_samples products)
    density: bool = False  # SLQ spectral density (density_runs Lanczos runs of density_steps steps)
    density_runs: int = 10
    density_steps: int = 80
    blocks: tuple[str, ...] = ()  # per diagonal block: ("module",), ("layer",) or glob patterns, one block each
    products_per_call: int = 1  # trace probes / SLQ runs whose products share one batched backward (kept graph)


@dataclass(frozen=True)
class SharpnessConfig:
    """``landscape sharpness``: sharpness measures at a checkpoint (docs/CURVATURE.md).

    The loss, split, samples, parameter set and device are those of the Hessian (``surface`` and
    ``directions``); the curvature measure uses the random directions of ``directions``.
    """

    measures: tuple[str, ...] = ("worst_l2", "adaptive_worst_l2", "average", "fisher_rao", "curvature")
    rho: tuple[float, ...] = (0.05,)  # radii: each worst/average measure at each
    steps: int = 20  # projected gradient ascent steps (worst-case measures)
    step: float = 1.0  # ascent step length, in units of rho
    samples: int = 20  # Gaussian draws (average-case measures)
    m: int = 0  # m-sharpness: samples per batch, each batch measured alone (0 = the whole data)
    seed: int = 0  # random starts and draws


@dataclass(frozen=True)
class ConnectConfig:
    """``landscape connect``: paths between two minima (Garipov et al. 2018; Ainsworth et al. 2023)."""

    curve: Literal["line", "bezier", "polychain"] = "bezier"  # "line": no curve is trained
    bends: int = 1  # bends of the curve (bezier: degree bends + 1)
    align: Literal["none", "weights"] = "none"  # "weights": also the line to B permuted to match A
    points: int = 61  # t values over [0, 1]
    margin: float = 0.2  # t also runs over [-margin, 0) and (1, 1 + margin]
    split: Split = "both"
    bn: BNMode = "recompute"  # a model without BatchNorm has nothing to recompute: keep
    bn_batches: int = 8  # recorded training batches (of batch_size) for BatchNorm re-estimation
    optimizer: Optimizer = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 0.0
    schedule: Literal["constant", "cosine"] = "cosine"
    epochs: int = 20
    batch_size: int = 64
    seed: int = 0  # batch order and t's of curve training; BN batches; alignment sweep order
    align_iters: int = 100  # sweeps of weight matching at most
    plane_grid: int = 21  # points per axis of the plane through A, B and the bend (0: no plane)
    plane_margin: float = 0.25
    max_samples: int = 0  # evaluate on the first N samples of each split (0 = all)
    device: str = "cpu"

    def __post_init__(self) -> None:
        _renamed(self, "connect")


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    directions: DirectionsConfig = field(default_factory=DirectionsConfig)
    surface: SurfaceConfig = field(default_factory=SurfaceConfig)
    plot: PlotConfig = field(default_factory=PlotConfig)
    run: RunConfig = field(default_factory=RunConfig)
    compare: CompareConfig = field(default_factory=CompareConfig)
    hessian: HessianConfig = field(default_factory=HessianConfig)
    sharpness: SharpnessConfig = field(default_factory=SharpnessConfig)
    connect: ConnectConfig = field(default_factory=ConnectConfig)
    check: CheckConfig = field(default_factory=CheckConfig)


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in get_args(tp))
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it in the field's own type."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if value not in get_args(tp):
            raise ConfigError(f"{key} = {value!r} is not allowed; choose one of {_type_name(tp)}")
        return value
    if origin in (types.UnionType, typing.Union):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key} = {value!r} has the wrong type; expected {' or '.join(_type_name(a) for a in args)}")
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key} = {value!r} has the wrong type; expected a list")
        (item,) = get_args(tp)[:1]
        return tuple(_coerce(v, item, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key} = {value!r} has the wrong type; expected a table")
        _check_plain(value, key)
        return dict(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key} = {value!r} has the wrong type; expected a number")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key} = {value!r} has the wrong type; expected an integer")
        return value
    if tp is bool or tp is str:
        if not isinstance(value, tp):
            raise ConfigError(f"{key} = {value!r} has the wrong type; expected {tp.__name__}")
        return value
    raise ConfigError(f"{key}: unsupported config type {tp!r}")  # pragma: no cover


_MAX_DEPTH = 32  # deeper nesting is no config anyone writes; it would only exhaust the stack


def _check_plain(value: Any, key: str) -> None:
    """Free-form tables (``options``) may hold strings, numbers, booleans, lists and tables only:
    what JSON (HDF5 attributes, run.json) and TOML (config.toml) can both write back."""
    stack = [(value, key, 0)]
    while stack:
        item, where, depth = stack.pop()
        if depth > _MAX_DEPTH:
            raise ConfigError(f"{key} is nested more than {_MAX_DEPTH} levels deep")
        if isinstance(item, Mapping):
            stack.extend((v, f"{where}.{k}", depth + 1) for k, v in item.items())
        elif isinstance(item, list | tuple):
            stack.extend((v, f"{where}[{i}]", depth + 1) for i, v in enumerate(item))
        elif not isinstance(item, str | int | float | bool):
            raise ConfigError(f"{where} = {item!r} has the wrong type; expected a string, number, boolean, list or table")


def _build(cls: type[T], data: Mapping[str, Any], prefix: str) -> T:
    if not isinstance(data, Mapping):
        raise ConfigError(f"[{prefix}] must be a table, got {data!r}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - names)
    if unknown:
        where = f"[{prefix}]" if prefix else "the top level"
        raise ConfigError(f"unknown key {unknown[0]!r} in {where}; known: {', '.join(sorted(names))}")
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        key = f"{prefix}.{name}" if prefix else name
        tp = hints[name]
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, value, key)  # type: ignore[arg-type]
        else:
            kwargs[name] = _coerce(RENAMED_VALUES.get(key, {}).get(value, value) if isinstance(value, str) else value, tp, key)
    return cls(**kwargs)


def config_from_dict(data: Mapping[str, Any]) -> Config:
    """Build a :class:`Config` from nested mappings, rejecting unknown keys and wrong types."""
    return _build(Config, data, "")


def renamed_values(data: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """(key, old, new) for every value of ``data`` (nested config tables) spelled as before a rename."""
    found = []
    for key, renames in RENAMED_VALUES.items():
        section, name = key.split(".")
        table = data.get(section)
        value = table.get(name) if isinstance(table, Mapping) else None
        if isinstance(value, str) and value in renames:
            found.append((key, value, renames[value]))
    return found


def config_to_dict(config: Config) -> dict[str, Any]:
    """Plain nested dict (tuples become lists) suitable for JSON, TOML and checkpoints."""
    plain: dict[str, Any] = json.loads(json.dumps(dataclasses.asdict(config)))
    return plain


def parse_override(text: str) -> tuple[list[str], Any]:
    """Parse ``section.key=value``; the value is read as TOML, falling back to a bare string."""
    path, sep, raw = text.partition("=")
    if not sep or not path.strip():
        raise ConfigError(f"override {text!r} must look like section.key=value")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw
    except RecursionError:
        raise ConfigError(f"override {path.strip()!r}: the value is nested too deeply") from None
    _check_plain(value, path.strip())
    return [p.strip() for p in path.strip().split(".")], value


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Return a copy of ``data`` with each ``section.key=value`` override applied."""
    merged = copy.deepcopy(data)  # not a JSON round trip: TOML dates would break it (they are refused later, by key)
    for text in overrides:
        keys, value = parse_override(text)
        node = merged
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {text!r}: {k!r} is not a section")
        node[keys[-1]] = value
    return merged


def read_toml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        with p.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"config file {str(p)!r} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config path {str(p)!r} is a folder, not a TOML file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise ConfigError(f"config file {str(p)!r} is not valid TOML: {err}") from err
    except RecursionError:
        raise ConfigError(f"config file {str(p)!r} nests tables or arrays too deeply") from None
    except (OSError, ValueError) as err:  # a file in the path, a NUL byte, no permission
        raise ConfigError(f"config file {str(p)!r} cannot be read: {getattr(err, 'strerror', None) or err}") from err


def layered_config(base: Mapping[str, Any] | None, config_file: str | Path | None, overrides: Sequence[str]) -> Config:
    """defaults ← ``base`` (e.g. a checkpoint's config) ← the TOML ``config_file``'s sections ← ``overrides``."""
    data: dict[str, Any] = json.loads(json.dumps(base or {}))
    if config_file is not None:
        for section, table in read_toml(config_file).items():
            if isinstance(table, dict) and isinstance(data.get(section), dict):
                data[section] = {**data[section], **table}
            else:
                data[section] = table
    return config_from_dict(apply_overrides(data, overrides))


def load_config(path: str | Path | None, overrides: Sequence[str] = ()) -> Config:
    """Load a TOML config (or the defaults when ``path`` is None) and apply overrides."""
    return layered_config(None, path, overrides)


def _toml_string(text: str) -> str:
    """A pure-ASCII TOML basic string. (``json.dumps`` is not one: it escapes characters beyond
    U+FFFF as surrogate pairs, which TOML rejects; TOML has ``\\UXXXXXXXX`` for them.)"""
    out = []
    for ch in text:
        code = ord(ch)
        if ch in '"\\':
            out.append("\\" + ch)
        elif 0x20 <= code < 0x7F:
            out.append(ch)
        else:
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
    return '"' + "".join(out) + '"'


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _toml_string(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_string(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, float):
        return repr(value) if value == value and abs(value) != float("inf") else ("nan" if value != value else ("inf" if value > 0 else "-inf"))
    return str(value)


def dumps_toml(data: Mapping[str, Any]) -> str:
    """Write a two-level config dict as TOML (None values are left out: TOML has no null)."""
    lines: list[str] = []
    for section, table in data.items():
        lines.append(f"[{section}]")
        for key, value in table.items():
            if value is not None:
                lines.append(f"{key} = {_toml_value(value)}")
        lines.append("")
    return "\n".join(lines)


def save_config(config: Config, path: Path) -> None:
    """Write ``config`` as TOML atomically (:mod:`landscape.atomic`), so a crash never leaves half a file."""
    write_text_atomic(path, dumps_toml(config_to_dict(config)))
