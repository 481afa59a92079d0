"""``landscape connect``: the line, the aligned line and a trained curve between two minima.

Orchestration only: the numerics are in :mod:`landscape.engine.connect` (paths, curve finding,
barriers, BatchNorm re-estimation) and :mod:`landscape.engine.align` (weight matching); the file
is :mod:`landscape.io.connect_file`. Outputs in ``DIR``: ``connect.h5``, ``connect.csv`` and
``connect.md`` (one row per path), ``curve_state.pt`` (the curve finder's bends and optimizer
state after each epoch: a killed run resumes from the last one), ``plane.h5`` (a surface file of
the plane through θ_A, θ_B and the bend) and the figures ``connect_paths`` and ``connect_plane``.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import json
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from landscape.atomic import write_text_atomic
from landscape.config import Config, ConnectConfig, config_to_dict
from landscape.engine.align import AlignmentError, align_state
from landscape.engine.connect import (
    CurveTraining,
    PathEvaluator,
    barrier,
    bn_batches,
    check_same_architecture,
    has_batchnorm,
    initial_bends,
    outputs_match,
    path_point,
    t_grid,
    train_curve,
)
from landscape.engine.directions import Directions, model_fingerprint
from landscape.engine.grid import Grid
from landscape.engine.losses import MetricSet
from landscape.engine.progress import bar
from landscape.engine.surface import SurfaceEngine
from landscape.errors import CheckpointError, ConfigError, DataError
from landscape.io.checkpoint import atomic_torch_save, fit_state_dict, load_checkpoint, sha256_file
from landscape.io.connect_file import ConnectFile, open_connect
from landscape.io.run_folder import diff_settings
from landscape.io.surface_file import exclusive_lock, open_surface
from landscape.io.tables import write_csv
from landscape.version import __version__
from landscape.workflows.experiment import experiment_from_checkpoint, resolve_device
from landscape.zoo.data import TensorSplit
from landscape.zoo.modules import eval_mode, plain_module

EpochHook = Callable[[int, float], None]
PATH_TITLES = {"line": "line", "aligned_line": "aligned line", "curve": "curve"}


@dataclass(frozen=True)
class ConnectResult:
    """What a connect run measured: values along every path, barriers, the bends, the files written."""

    out: Path
    t: np.ndarray
    values: dict[str, dict[str, np.ndarray]]  # path -> column (train_loss, ...) -> per t
    barriers: dict[str, float]  # "<path>_<split>_<metric>" -> barrier (metric loss, err, ...)
    bends: list[dict[str, Tensor]]
    rows: list[dict[str, Any]]
    files: list[Path]
    curve_losses: list[float]  # mean training loss of each curve epoch run now (empty when resumed past them)


def _check_settings(cc: ConnectConfig) -> None:
    if cc.bends < 1 and cc.curve != "line":
        raise ConfigError(f"connect.bends = {cc.bends} must be at least 1 for a {cc.curve} curve")
    if cc.epochs < 1 or cc.batch_size < 1 or cc.bn_batches < 1 or not cc.lr > 0:
        raise ConfigError("connect.epochs, batch_size and bn_batches must be ≥ 1 and lr > 0")
    if cc.plane_grid < 0 or cc.plane_grid == 1 or not 0 <= cc.plane_margin <= 5:
        raise ConfigError(f"connect.plane_grid = {cc.plane_grid} must be 0 (no plane) or ≥ 2; plane_margin within 0..5")


# --- the core, shared by the command and the Python API -----------------------------------------------


def connect_states(model: nn.Module, state_a: Mapping[str, Tensor], state_b: Mapping[str, Tensor],
                   train: TensorSplit, splits: Mapping[str, TensorSplit], metrics: MetricSet, cc: ConnectConfig,
                   out: Path, *, extra_settings: Mapping[str, Any] | None = None, attrs: Mapping[str, Any] | None = None,
                   overwrite: bool = False, figures: bool = True, formats: Sequence[str] = ("pdf", "png"), dpi: int = 200,
                   on_epoch: EpochHook | None = None) -> ConnectResult:
    """Compute (or resume) every path between ``state_a`` and ``state_b`` of ``model`` into ``out``."""
    _check_settings(cc)
    device = resolve_device(cc.device)
    extra = dict(extra_settings or {})
    bn = cc.bn if has_batchnorm(model) else "keep"  # a model without BatchNorm has nothing to recompute
    t = t_grid(cc.points, cc.margin)
    paths = ["line"] + (["aligned_line"] if cc.align == "weights" else []) + (["curve"] if cc.curve != "line" else [])
    bn_idx = bn_batches(train, cc.batch_size, cc.bn_batches, cc.seed) if bn == "recompute" else None
    out.mkdir(parents=True, exist_ok=True)
    h5 = out / "connect.h5"
    with exclusive_lock(h5):
        evaluator = PathEvaluator(model, splits, metrics, device=device, bn=bn,
                                  bn_inputs=[train.inputs[torch.from_numpy(r)] for r in bn_idx] if bn_idx is not None else ())
        # everything that determines the values: the plane's grid changes only plane.h5 (which records it), the
        # device none
        own = {k: v for k, v in dataclasses.asdict(cc).items() if k not in ("device", "plane_grid", "plane_margin")}
        settings: dict[str, Any] = json.loads(json.dumps({**own, "bn": bn, **extra}))
        cf = open_connect(h5, t, paths, evaluator.columns, settings,
                          {"landscape_version": __version__, **(attrs or {})}, bn_idx, overwrite)
        a = {k: v.detach().cpu() for k, v in state_a.items()}
        b = {k: v.detach().cpu() for k, v in state_b.items()}
        controls = {"line": [a, b]}
        if "aligned_line" in paths:
            controls["aligned_line"] = [a, aligned_b(model, a, b, train, cc)]
        losses: list[float] = []
        if "curve" in paths and not cf.bends:
            cf.bends, losses = _train_curve(model, a, b, train, metrics, cc, device, out, extra, overwrite, on_epoch)
            cf.flush()
        if "curve" in paths:
            controls["curve"] = [a, *cf.bends, b]
        _evaluate_paths(cf, evaluator, controls, cc.curve)
        barriers = path_barriers(cf)
        cf.flush({f"barrier_{k}": v for k, v in barriers.items()})
    rows = table_rows(cf, barriers)
    files = [h5, *write_tables(rows, out)]
    if figures:
        if "curve" in paths and cc.bends == 1 and cc.plane_grid >= 2:
            files.append(plane_surface(model, a, b, cf.bends[0], {"train": splits.get("train", train)}, metrics, cc,
                                       bn, evaluator.bn_inputs, out / "plane.h5", settings, overwrite))
        from landscape.figures.connect import plot_connect_file

        files += plot_connect_file(h5, out, formats=formats, dpi=dpi)
    return ConnectResult(out, cf.t, cf.values, barriers, cf.bends, rows, files, losses)


def aligned_b(model: nn.Module, a: Mapping[str, Tensor], b: Mapping[str, Tensor], train: TensorSplit,
              cc: ConnectConfig) -> dict[str, Tensor]:
    """B permuted to match A by weight matching; refused if the permuted B is not the same function."""
    permuted, _ = align_state(model, a, b, max_iter=cc.align_iters, seed=cc.seed)
    x = train.inputs[: min(len(train), 256)].float()
    gap = outputs_match(model, b, permuted, x)
    if not gap <= 1e-4:
        raise AlignmentError(f"permuting {type(model).__name__} changed its outputs (relative difference {gap:.3g}): "
                             "its forward is not a plain chain of its layers, so weight matching cannot align it")
    return permuted


def _train_curve(model: nn.Module, a: dict[str, Tensor], b: dict[str, Tensor], train: TensorSplit, metrics: MetricSet,
                 cc: ConnectConfig, device: torch.device, out: Path, extra: Mapping[str, Any], overwrite: bool,
                 on_epoch: EpochHook | None) -> tuple[list[dict[str, Tensor]], list[float]]:
    """Train the bends, resuming from ``curve_state.pt``; returns full bend states (params + buffers)."""
    cfg = CurveTraining(cc.curve, cc.bends, cc.epochs, cc.lr, cc.optimizer, cc.momentum, cc.weight_decay,
                        cc.batch_size, cc.schedule, cc.seed)
    names = [k for k, _ in model.named_parameters()]
    state_file = out / "curve_state.pt"
    keys = ("curve", "bends", "optimizer", "lr", "momentum", "weight_decay", "schedule", "epochs", "batch_size", "seed")
    want = json.loads(json.dumps({**{k: getattr(cc, k) for k in keys}, **extra}))  # what the saved curve must match
    saved = _load_curve_state(state_file, want) if not overwrite else None
    losses: list[float] = list(saved["losses"]) if saved else []
    criterion = metrics.criteria[0]

    def loss_fn(output: Tensor, target: Tensor) -> Tensor:
        return criterion.fn(output, target, metrics.num_classes).mean()

    def save(epoch: int, bends: list[dict[str, Tensor]], opt_state: dict[str, object], mean_loss: float) -> None:
        losses.append(mean_loss)
        atomic_torch_save({"settings": json.dumps(want), "epoch": epoch, "bends": bends, "optimizer": opt_state,
                           "losses": list(losses)}, state_file)
        if on_epoch is not None:
            on_epoch(epoch, mean_loss)

    start = int(saved["epoch"]) if saved else 0
    bends = saved["bends"] if saved else None
    if start < cc.epochs:
        bends = train_curve(model, {k: a[k] for k in names}, {k: b[k] for k in names}, train, loss_fn, cfg,
                            device=device, bends=bends, optimizer_state=saved["optimizer"] if saved else None,
                            start_epoch=start, on_epoch=save)
    assert bends is not None
    # buffers (BatchNorm statistics) of each bend: on the line, where the bend started
    on_line = initial_bends(a, b, cc.bends)
    return [{k: bend[k] if k in bend else line[k] for k in a} for bend, line in zip(bends, on_line, strict=True)], losses


def _load_curve_state(path: Path, want: Mapping[str, Any]) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        old = json.loads(state["settings"])
    except Exception as err:  # any damage: one clear line
        raise CheckpointError(f"{str(path)!r} (the saved curve training) is unreadable: {type(err).__name__}; "
                              "delete it or pass --overwrite") from err
    changes = diff_settings(old, want)
    if changes:
        raise CheckpointError(f"{str(path)!r} holds a curve trained with other settings ({'; '.join(changes[:4])}); "
                              "pass --overwrite or choose another --out")
    return dict(state)


def _evaluate_paths(cf: ConnectFile, evaluator: PathEvaluator, controls: Mapping[str, list[dict[str, Tensor]]],
                    kind: str) -> None:
    """Evaluate the pending t of every path; flush every few seconds and on any exit."""
    todo = [(p, int(i)) for p in cf.paths for i in cf.pending(p)]
    if not todo:
        return
    last = time.monotonic()
    try:
        with bar(len(todo), "paths", unit="pt") as pbar:
            for p, i in todo:
                state = path_point("line" if p != "curve" else kind, float(cf.t[i]), controls[p])
                cf.record(p, i, evaluator.evaluate(state))
                pbar.update(1)
                if time.monotonic() - last > 5.0:
                    cf.flush()
                    last = time.monotonic()
    finally:
        cf.flush()


def path_barriers(cf: ConnectFile) -> dict[str, float]:
    """``<path>_<split>_<metric>`` → barrier; accuracy becomes error (1 − acc) first."""
    out: dict[str, float] = {}
    for p in cf.paths:
        for col in cf.columns:
            v = cf.values[p][col]
            name = col
            if col.endswith("_acc"):
                v, name = 1.0 - v, col[: -len("acc")] + "err"
            out[f"{p}_{name}"] = barrier(cf.t, np.where(cf.done[p], v, np.nan))
    return out


def table_rows(cf: ConnectFile, barriers: Mapping[str, float]) -> list[dict[str, Any]]:
    """One row per path: its barriers and the values at both ends."""
    i0, i1 = int(np.flatnonzero(cf.t == 0.0)[0]), int(np.flatnonzero(cf.t == 1.0)[0])
    rows = []
    for p in cf.paths:
        row: dict[str, Any] = {"path": p}
        row.update({f"barrier_{k[len(p) + 1:]}": v for k, v in barriers.items() if k.startswith(p + "_")})
        for col in cf.columns:
            row[f"{col}_at_0"] = float(cf.values[p][col][i0])
            row[f"{col}_at_1"] = float(cf.values[p][col][i1])
        rows.append(row)
    return rows


def write_tables(rows: Sequence[Mapping[str, Any]], out: Path) -> list[Path]:
    """``connect.csv`` and ``connect.md``: one row per path."""
    if not rows:
        return []
    keys = list(rows[0])
    write_csv(out / "connect.csv", rows)
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r[k]) if k == "path" else f"{float(r[k]):.4g}" for k in keys) + " |" for r in rows]
    write_text_atomic(out / "connect.md", "\n".join(lines) + "\n")
    return [out / "connect.csv", out / "connect.md"]


def format_result(result: ConnectResult) -> str:
    """Lines for the terminal: barriers per path, train/test loss and error."""
    lines = []
    for row in result.rows:
        parts = [f"{k[len('barrier_'):]} {v:.4g}" for k, v in row.items() if k.startswith("barrier_")]
        lines.append(f"{PATH_TITLES.get(row['path'], row['path']):>12} barrier: " + ", ".join(parts))
    if result.curve_losses:
        lines.append(f"curve training: mean loss {result.curve_losses[0]:.4g} (epoch 1) → {result.curve_losses[-1]:.4g} "
                     f"(epoch {len(result.curve_losses)} of this run)")
    lines.append("files: " + ", ".join(str(f) for f in result.files))
    return "\n".join(lines)


# --- the plane through A, B and the bend ------------------------------------------------------------------


def plane_surface(model: nn.Module, a: Mapping[str, Tensor], b: Mapping[str, Tensor], bend: Mapping[str, Tensor],
                  splits: Mapping[str, TensorSplit], metrics: MetricSet, cc: ConnectConfig, bn: str,
                  bn_inputs: Sequence[Tensor], path: Path, settings: Mapping[str, Any], overwrite: bool) -> Path:
    """A surface file of the plane through θ_A, θ_B and the bend (target directions B − A and bend − A)."""
    names = [k for k, _ in model.named_parameters()]
    x = {k: (b[k] - a[k]).float() for k in names}
    y = {k: (bend[k] - a[k]).float() for k in names}
    dirs = Directions(x, y, {"kind": "target", "dir_type": "weights", "norm": "none", "ignore": "none", "seed": -1})
    m = cc.plane_margin
    xs, ys = f"{-m}:{1 + m}:{cc.plane_grid}", f"{-m}:{1 + m}:{cc.plane_grid}"  # A (0, 0), B (1, 0), bend (0, 1)
    grid = Grid.parse(xs, ys)
    with torch.no_grad():
        origin = _with_state(model, a)
    bn_data = TensorSplit(torch.cat(list(bn_inputs)), torch.zeros(sum(len(v) for v in bn_inputs))) if bn_inputs else None
    engine = SurfaceEngine(origin, dirs, splits, metrics, device=resolve_device(cc.device),
                           bn="recompute" if bn == "recompute" else "keep", bn_data=bn_data,
                           bn_batches=max(1, len(bn_inputs)))
    plane_settings = {**settings, "plane": {"x": xs, "y": ys}, "bend_fingerprint": dirs.fingerprint()}
    attrs = {"landscape_version": __version__, "x_label": "α (0 = A, 1 = B)", "y_label": "β (0 = A, 1 = bend)"}
    with exclusive_lock(path):
        sf = open_surface(path, grid, engine.columns, plane_settings, attrs, dirs, model_fingerprint(model), overwrite)
        pending = sf.pending
        coords = grid.coords(pending)
        try:
            with bar(len(pending), "plane", unit="pt") as pbar:
                for start in range(0, len(pending), 16):
                    piece = slice(start, start + 16)
                    sf.record(pending[piece], engine.evaluate(coords[piece]))
                    pbar.update(len(coords[piece]))
                    sf.maybe_flush()
        finally:
            if len(pending):
                sf.flush()
    return path


def _with_state(model: nn.Module, state: Mapping[str, Tensor]) -> nn.Module:
    m = copy.deepcopy(model)
    own = m.state_dict()
    for k, v in state.items():
        own[k].copy_(v)
    return m


# --- the command -----------------------------------------------------------------------------------------------


def run_connect(checkpoint_a: str | Path, checkpoint_b: str | Path, out: str | Path, cfg: Config | None = None, *,
                unsafe: bool = False, overwrite: bool = False, on_epoch: EpochHook | None = None,
                prefix: str | None = None) -> ConnectResult:
    """``landscape connect A.pt B.pt --out DIR``: both checkpoints of one architecture, config from A (or ``cfg``).

    ``prefix``: read only the tensors whose names start with it (:func:`~landscape.io.checkpoint.load_checkpoint`).
    """
    pa, pb = Path(checkpoint_a), Path(checkpoint_b)
    if pa.exists() and pb.exists() and pa.resolve() == pb.resolve():
        raise ConfigError(f"{str(pa)!r} was given twice: connect needs two different models")
    ckpt_a = load_checkpoint(pa, unsafe=unsafe, prefix=prefix)
    ckpt_b = load_checkpoint(pb, unsafe=unsafe, prefix=prefix)
    sha_a, sha_b = sha256_file(pa), sha256_file(pb)
    if sha_a == sha_b:
        raise ConfigError(f"{str(pa)!r} and {str(pb)!r} are the same file (sha256 {sha_a[:12]}): connect needs two different models")
    check_same_architecture(ckpt_a.state_dict, ckpt_b.state_dict, repr(str(pa)), repr(str(pb)))
    exp = experiment_from_checkpoint(ckpt_a, cfg)
    cfg = cfg or exp.config
    cc = cfg.connect
    state_a = exp.model.state_dict()
    model_b = _with_state(exp.model, fit_state_dict(exp.model, ckpt_b.state_dict, what=f"the model of {str(pa)!r}"))
    state_b = model_b.state_dict()
    names = ["train", "test"] if cc.split == "both" else [cc.split]
    splits = {n: exp.data.split(n).subset(cc.max_samples) for n in names}
    full = config_to_dict(cfg)
    extra = {"checkpoint_a_sha256": sha_a, "checkpoint_b_sha256": sha_b, "data": full["data"], "model": full["model"],
             "loss": cfg.train.loss}
    attrs = {"checkpoint_a": str(pa), "checkpoint_b": str(pb)}
    return connect_states(exp.model, state_a, state_b, exp.data.train, splits, exp.metrics(), cc, Path(out),
                          extra_settings=extra, attrs=attrs, overwrite=overwrite, formats=cfg.plot.formats, dpi=cfg.plot.dpi,
                          on_epoch=on_epoch)


# --- the Python API ---------------------------------------------------------------------------------------------


DataLike = TensorSplit | tuple[Tensor, Tensor]


def _as_split(data: DataLike, what: str) -> TensorSplit:
    if isinstance(data, TensorSplit):
        return data
    if isinstance(data, tuple | list) and len(data) == 2 and all(isinstance(t, Tensor) for t in data):
        return TensorSplit(data[0], data[1])
    raise DataError(f"{what} must be an (inputs, targets) pair of tensors or a TensorSplit, got {type(data).__name__}")


def connect(model_a: nn.Module, model_b: nn.Module, data: DataLike | tuple[DataLike, DataLike], *,
            loss: str = "cross_entropy", out: str | Path | None = None, config: ConnectConfig | None = None,
            overwrite: bool = False, figures: bool = True, **settings: Any) -> ConnectResult:
    """Paths between two trained models: line, aligned line (``align="weights"``), trained curve.

    The straight line ``(1 − t)θ_A + tθ_B``; with ``curve="bezier"`` or ``"polychain"`` a curve
    whose bends minimize ``E_{t~U(0,1)} L(θ(t))`` (Garipov et al., 2018); with ``align="weights"``
    also the line to B with its hidden units permuted to match A by weight matching (Ainsworth
    et al., 2023). Barriers ``max_t L(t) − ((1 − t)L(0) + tL(1))`` per path, split and metric.

    ``data`` is the training split or ``(train, test)``, each an ``(inputs, targets)`` pair or a
    :class:`~landscape.zoo.data.TensorSplit`; integer targets are class labels. ``loss`` names a
    registered loss. ``settings`` override :class:`~landscape.config.ConnectConfig` fields
    (``curve``, ``bends``, ``epochs``, ``align``, ``points``, ``bn``, ``lr``, ...). With ``out``
    the files (and, with ``figures``, the figures) are written there and a repeated call resumes;
    without, nothing is kept.
    The models are not modified.

    Args:
        model_a: the first trained model (t = 0); its architecture is the path's.
        model_b: the second (t = 1), the same architecture (state-dict names and shapes).
        data: the training data ``(inputs, targets)`` ((n, ...), (n,) or (n, k)), or ``(train, test)``.
        loss: a registry name (``cross_entropy``, ``mse``, ...): what is trained along and reported.
        out: a folder for ``connect.h5`` (resumable) and the figures; None: a temporary one.
        config: a :class:`~landscape.config.ConnectConfig`; ``settings`` override its fields.
        overwrite: start again in ``out`` although its settings differ (otherwise refused).
        figures: draw the figures into ``out``.

    Returns:
        :class:`ConnectResult`: ``t`` (m,) path parameters; ``values[path][column]`` (m,) (loss
        units; ``_acc`` a fraction); ``barriers["<path>_<split>_<metric>"]`` (the metric's units).
    """
    try:
        cc = dataclasses.replace(config or ConnectConfig(), **settings)
    except TypeError as err:
        raise ConfigError(f"connect(): {err}") from err
    pair = isinstance(data, tuple | list) and len(data) == 2 and not all(isinstance(t, Tensor) for t in data)
    train = _as_split(data[0] if pair else data, "the training data")  # type: ignore[arg-type,index]
    test = _as_split(data[1], "the test data") if pair else None  # type: ignore[arg-type,index]
    splits = {"train": train, **({"test": test} if test is not None else {})}
    if cc.split != "both":
        if cc.split not in splits:
            raise ConfigError(f"split {cc.split!r} was asked for but no {cc.split} data was given")
        splits = {cc.split: splits[cc.split]}
    model_a, model_b = plain_module(model_a), plain_module(model_b)  # torch.compile / DataParallel: the modules inside
    check_same_architecture(model_a.state_dict(), model_b.state_dict(), "model_a", "model_b")
    metrics = _metrics_for(model_a, train, loss)
    state_a = {k: v.detach().clone() for k, v in model_a.state_dict().items()}
    state_b = {k: v.detach().clone() for k, v in model_b.state_dict().items()}
    with contextlib.ExitStack() as stack:
        where = Path(out) if out is not None else Path(stack.enter_context(tempfile.TemporaryDirectory()))
        return connect_states(model_a, state_a, state_b, train, splits, metrics, cc, where, overwrite=overwrite,
                              figures=figures and out is not None, extra_settings={"loss": loss})


def _metrics_for(model: nn.Module, train: TensorSplit, loss: str) -> MetricSet:
    """The task from the targets: integer labels → classification (classes from the output width)."""
    if train.targets.dtype == torch.long:
        with eval_mode(model), torch.no_grad():
            width = int(model(train.inputs[:2]).shape[1])
        return MetricSet([loss], "classification", width)
    if not train.targets.is_floating_point():
        raise DataError(f"targets of dtype {train.targets.dtype} are neither class labels (int64) nor values (float)")
    return MetricSet([loss], "regression", 0)


__all__ = ["ConnectResult", "connect", "format_result", "run_connect"]
