"""Command-line interface: a thin shell over the library.

``main(argv) -> int`` parses flags, turns them into config overrides, calls one library
function, and turns any :class:`LandscapeError` into one line on stderr and exit code 1
(2 for usage errors). ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from landscape import __version__
from landscape.config import Config, apply_overrides, config_from_dict, config_to_dict, read_toml
from landscape.errors import ConfigError, LandscapeError

Handler = Callable[[argparse.Namespace], int]
COMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Handler, str]] = {}


def command(name: str, help_text: str) -> Callable[[Callable[[argparse.ArgumentParser], None]], Callable[[argparse.ArgumentParser], None]]:
    """Register ``add_arguments`` for subcommand ``name``; its handler is ``cmd_<name>``."""
    def decorator(add: Callable[[argparse.ArgumentParser], None]) -> Callable[[argparse.ArgumentParser], None]:
        COMMANDS[name] = (add, globals()[f"cmd_{name.replace('-', '_')}"], help_text)
        return add
    return decorator


# --- shared flags ----------------------------------------------------------------------------------

def _common(p: argparse.ArgumentParser, config_positional: bool = False) -> None:
    if not config_positional:
        p.add_argument("--config", type=Path, help="TOML config file whose sections override the defaults")
    p.add_argument("--model", help="model name from the registry, or path/to/file.py:factory / package.module:factory")
    p.add_argument("--data", help="dataset name from the registry, or path/to/file.py:function / package.module:function")
    p.add_argument("--loss", help="loss name (surface, hessian: a comma-separated list is evaluated in one pass), "
                                  "or path/to/file.py:fn, a batch loss fn(model, (inputs, targets)) -> per-sample losses or a mean")
    p.add_argument("--device", help="cpu, cuda or cuda:N")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override any config value (TOML syntax for the value); repeatable")
    p.add_argument("--unsafe-load", action="store_true",
                   help="allow checkpoints that need arbitrary code to unpickle (only for files you trust)")


def _overrides(args: argparse.Namespace, section_device: str, loss_key: str = "train.loss") -> list[str]:
    out: list[str] = []
    if args.model:
        out.append(f"model.name={json.dumps(args.model)}")
    if args.data:
        out.append(f"data.name={json.dumps(args.data)}")
    if args.loss:
        if loss_key == "surface.losses":
            names = [n.strip() for n in args.loss.split(",") if n.strip()]
            out.append(f"surface.losses={json.dumps(names)}")
        else:
            out.append(f"{loss_key}={json.dumps(args.loss)}")
    if args.device:
        out.append(f"{section_device}.device={json.dumps(args.device)}")
    if getattr(args, "params", None):
        out.append(f"surface.params={json.dumps([g.strip() for g in args.params.split(',') if g.strip()])}")
    return out + list(args.overrides)


def _flag_overrides(args: argparse.Namespace, mapping: dict[str, str]) -> list[str]:
    """``--flag value`` pairs that are plain config overrides (only those the user gave)."""
    return [f"{key}={json.dumps(getattr(args, attr))}" for attr, key in mapping.items() if getattr(args, attr) is not None]


def resolve_config(base: dict[str, Any] | None, config_file: Path | None, overrides: Sequence[str]) -> Config:
    """defaults ← base (e.g. a checkpoint's config) ← config file ← flags."""
    data: dict[str, Any] = json.loads(json.dumps(base or {}))
    if config_file is not None:
        for section, table in read_toml(config_file).items():
            if isinstance(table, dict) and isinstance(data.get(section), dict):
                data[section] = {**data[section], **table}
            else:
                data[section] = table
    return config_from_dict(apply_overrides(data, overrides))


def _print(summary: Any) -> None:
    print(json.dumps(summary, indent=2, default=str, allow_nan=True))


# --- train -----------------------------------------------------------------------------------------

def cmd_train(args: argparse.Namespace) -> int:
    from landscape.workflows.train import train

    flags = _flag_overrides(args, {"epochs": "train.epochs", "lr": "train.lr", "seed": "train.seed",
                                   "batch_size": "train.batch_size", "optimizer": "train.optimizer"})
    cfg = resolve_config(None, args.config_file, _overrides(args, "train") + flags)
    out = args.out or Path("runs") / (args.config_file.stem if args.config_file else "default")
    result = train(cfg, out, overwrite=args.overwrite)
    last = result.manifest["checkpoints"][-1]
    print(f"trained {cfg.model.name} on {cfg.data.name} with {cfg.train.loss}: {len(result.checkpoints)} checkpoints in {out}; "
          + ", ".join(f"{k} {last[k]:.4f}" for k in ("train_loss", "test_loss", "train_acc", "test_acc") if k in last))
    return 0


@command("train", "train a model and write a checkpoint every epoch (resumes a stopped run)")
def _add_train(p: argparse.ArgumentParser) -> None:
    p.add_argument("config_file", nargs="?", type=Path, metavar="CONFIG", help="TOML config (defaults: digits + mlp)")
    p.add_argument("--out", type=Path, help="run folder (default runs/<config name>)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--seed", type=int)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--optimizer", choices=["sgd", "adam", "adamw"])
    p.add_argument("--overwrite", action="store_true", help="start afresh even if DIR holds a run with other settings")
    _common(p, config_positional=True)


# --- surface ---------------------------------------------------------------------------------------

SURFACE_FLAGS = {"x": "surface.x", "y": "surface.y", "split": "surface.split", "max_samples": "surface.max_samples",
                 "bn": "surface.bn", "batch_size": "surface.batch_size", "points_per_call": "surface.points_per_call",
                 "dir_type": "directions.dir_type", "norm": "directions.norm", "ignore": "directions.ignore",
                 "seed": "directions.seed", "metric": "surface.metric", "memory_budget": "surface.memory_budget",
                 "operator": "hessian.operator"}


def surface_config(args: argparse.Namespace, ckpt: Any, flags: dict[str, str] = SURFACE_FLAGS) -> Config:
    from landscape.workflows._experiment import checkpoint_config

    saved = checkpoint_config(ckpt)
    base = config_to_dict(saved) if saved is not None else None
    if base is None and not (args.model or args.config):
        raise ConfigError(f"{str(ckpt.path)!r} is not a landscape checkpoint, so it does not say what it is: "
                          "name its model and data with --model/--data/--loss or --config FILE")
    return resolve_config(base, args.config, _overrides(args, "surface", "surface.losses") + _flag_overrides(args, flags))


def cmd_surface(args: argparse.Namespace) -> int:
    from landscape.io.checkpoint import load_checkpoint
    from landscape.workflows.surface import DirectionSource, run_surface

    ckpt = load_checkpoint(args.checkpoint, unsafe=args.unsafe_load)
    cfg = surface_config(args, ckpt)
    if args.directions is not None and args.x is None:
        from landscape.workflows.trajectory import default_grid_overrides

        extra = default_grid_overrides(args.directions, two_d=args.y is not None or cfg.surface.y != "")
        cfg = resolve_config(config_to_dict(cfg), None, extra)
    source = DirectionSource(args.directions, args.target, args.target2, hessian=args.hessian_directions)
    result = run_surface(args.checkpoint, args.out, cfg, source=source, overwrite=args.overwrite,
                         unsafe=args.unsafe_load, max_points=args.max_points, checkpoint_obj=ckpt, preview=args.preview)
    from landscape.workflows.surface import format_summary

    if result.summary is not None:  # under torchrun only rank 0 has the whole picture
        print(format_summary(result.summary))
    return 0


@command("surface", "evaluate the loss landscape on a 1D or 2D grid around a checkpoint (HDF5, resumable)")
def _add_surface(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--out", type=Path, required=True, help="surface file (.h5); re-running resumes it")
    p.add_argument("--x", help="MIN:MAX:NUM along the first direction (default -1:1:51)")
    p.add_argument("--y", help="MIN:MAX:NUM along the second direction (2D when given)")
    p.add_argument("--params", metavar="GLOB[,GLOB]", help="move only the tensors whose names match (e.g. 'layer3.*'); the rest stay at the checkpoint")
    p.add_argument("--dir-type", choices=["weights", "states"])
    p.add_argument("--norm", choices=["filter", "layer", "weight", "none"])
    p.add_argument("--ignore", choices=["biasbn", "none", "random1d"],
                   help="tensors with ndim <= 1: biasbn (default) zero, none (the paper) the tensor itself, random1d a random direction rescaled to the tensor's norm")
    p.add_argument("--seed", type=int, help="seed of the random directions")
    p.add_argument("--directions", type=Path, help="use a saved direction file as is (ours, a trajectory, or the reference layout)")
    p.add_argument("--target", type=Path, help="checkpoint B: x = θ_B − θ_A (linear interpolation)")
    p.add_argument("--target2", type=Path, help="checkpoint C: y = θ_C − θ_A (plane through three models)")
    p.add_argument("--split", choices=["train", "test", "both"])
    p.add_argument("--max-samples", type=int, help="evaluate on the first N samples of each split (recorded)")
    p.add_argument("--bn", choices=["fixed", "recompute"], help="BatchNorm statistics: the checkpoint's (default) or re-estimated")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--points-per-call", type=int, help="grid points per vectorized call (0 = choose by timing)")
    p.add_argument("--memory-budget", type=int, metavar="BYTES",
                   help="user data (--data file.py:fn giving a DataLoader, Dataset or iterable) larger than this are "
                        "streamed batch by batch, several grid points per read, instead of held in memory (default 2 GiB)")
    p.add_argument("--metric", choices=["loss", "eig_ratio"],
                   help="loss (default), or eig_ratio: Hessian λmax, λmin and |λmin/λmax| per point (datasets "
                        "<split>_max_eig, _min_eig, _eig_ratio, _eig_converged; settings in [hessian] map_tol, map_max_iter)")
    p.add_argument("--hessian-directions", action="store_true",
                   help="x (and y) = the top Hessian eigenvectors at the checkpoint (unit norm; [hessian] tol, max_iter, seed)")
    p.add_argument("--operator", choices=["hessian", "ggn", "fisher"],
                   help="with --hessian-directions: the top eigenvectors of the Hessian (default), the Gauss-Newton "
                        "matrix or the empirical Fisher")
    p.add_argument("--max-points", type=int, default=250_000, help="refuse larger grids (default 250000)")
    p.add_argument("--overwrite", action="store_true", help="replace a file made with other settings")
    p.add_argument("--preview", type=Path, metavar="DIR",
                   help="redraw the figure into DIR (PNG) at every flush, to watch the coarse-to-fine grid fill in")
    _common(p)


# --- info ------------------------------------------------------------------------------------------

def cmd_info(args: argparse.Namespace) -> int:
    from landscape.workflows.info import describe

    _print(describe(args.file, unsafe=args.unsafe_load))
    return 0


@command("info", "describe a checkpoint, run folder, surface, trajectory or direction file")
def _add_info(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", type=Path)
    p.add_argument("--unsafe-load", action="store_true")


# --- trajectory ------------------------------------------------------------------------------------

def cmd_trajectory(args: argparse.Namespace) -> int:
    from landscape.api_trajectory import folder_checkpoints
    from landscape.io.trajectory_file import save_trajectory
    from landscape.workflows.trajectory import compute_trajectory, summary

    inputs: list[Path] = args.inputs
    if len(inputs) == 1 and inputs[0].is_dir():  # a run folder (train, Recorder) or a folder of checkpoint files
        checkpoints, source = folder_checkpoints(inputs[0], args.include_steps), str(inputs[0])
    elif any(p.is_dir() for p in inputs):
        raise ConfigError("give one run folder or a list of checkpoint files, not both")
    elif args.include_steps:
        raise ConfigError("--include-steps applies to a run folder; list the step checkpoints you want instead")
    else:
        checkpoints, source = inputs, ""
    model = None
    if args.model or args.data or args.config or args.overrides:  # foreign checkpoints: say what they hold
        from landscape.workflows._experiment import build_experiment

        overrides = _flag_overrides(args, {"model": "model.name", "data": "data.name"}) + list(args.overrides)
        model = build_experiment(resolve_config(None, args.config, overrides), losses=()).model  # no loss is evaluated
    traj = compute_trajectory(checkpoints, model=model, dir_type=args.dir_type, ignore=args.ignore,
                              center=args.center, unsafe=args.unsafe_load, source=source)
    save_trajectory(args.out, traj)
    _print({"file": str(args.out), **summary(traj),
            "next": f"landscape surface {traj.meta['origin']} --directions {args.out} --out SURFACE.h5"})
    return 0


@command("trajectory", "PCA plane of an optimization path (run folder or checkpoints) and the path projected on it")
def _add_trajectory(p: argparse.ArgumentParser) -> None:
    p.add_argument("inputs", nargs="+", type=Path, metavar="RUN_DIR_OR_CHECKPOINTS",
                   help="a run folder (its run.json lists the checkpoints) or checkpoint files in training order, final last")
    p.add_argument("--out", type=Path, required=True, help="trajectory file (.h5); also a direction file for surface --directions")
    p.add_argument("--include-steps", action="store_true", help="with a run folder: the step checkpoints too")
    p.add_argument("--dir-type", choices=["weights", "states"], default="weights")
    p.add_argument("--ignore", choices=["biasbn", "none", "random1d"], default="biasbn",
                   help="biasbn (default, as in the paper): tensors with ndim <= 1 stay out of the PCA, zero in the directions")
    centring = p.add_mutually_exclusive_group()
    centring.add_argument("--center", dest="center", action="store_true", default=True,
                          help="mean-centre the differences to the final point before the PCA (default: "
                               "the paper's code fits sklearn's PCA, which centres)")
    centring.add_argument("--uncentered", dest="center", action="store_false",
                          help="PCA of the raw differences to the final point (not mean-centred)")
    p.add_argument("--config", type=Path, help="for foreign checkpoints: a TOML config naming model and data")
    p.add_argument("--model", help="for foreign checkpoints: model name or path/to/file.py:factory")
    p.add_argument("--data", help="for foreign checkpoints: dataset name (gives the input and output shapes)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a config value (with --model/--data/--config)")
    p.add_argument("--unsafe-load", action="store_true",
                   help="allow checkpoints that need arbitrary code to unpickle (only for files you trust)")


# --- hessian ---------------------------------------------------------------------------------------

HESSIAN_FLAGS = {"split": "surface.split", "max_samples": "surface.max_samples", "batch_size": "surface.batch_size",
                 "dir_type": "directions.dir_type", "ignore": "directions.ignore", "top_k": "hessian.top_k",
                 "tol": "hessian.tol", "max_iter": "hessian.max_iter", "trace_samples": "hessian.trace_samples",
                 "seed": "hessian.seed", "memory_budget": "surface.memory_budget",
                 # curvature family (issue 23)
                 "operator": "hessian.operator", "trace": "hessian.trace", "density": "hessian.density",
                 "density_runs": "hessian.density_runs", "density_steps": "hessian.density_steps"}


def cmd_hessian(args: argparse.Namespace) -> int:
    from landscape.io.checkpoint import load_checkpoint
    from landscape.workflows.hessian import format_hessian, run_hessian

    ckpt = load_checkpoint(args.checkpoint, unsafe=args.unsafe_load)
    if args.blocks:  # a comma-separated list
        args.overrides = [*args.overrides, f"hessian.blocks={json.dumps([b.strip() for b in args.blocks.split(',') if b.strip()])}"]
    cfg = surface_config(args, ckpt, HESSIAN_FLAGS)
    report = run_hessian(args.checkpoint, cfg, out=args.out, save_directions_to=args.save_directions,
                         unsafe=args.unsafe_load, checkpoint_obj=ckpt)
    print(format_hessian(report))
    return 0


@command("hessian", "top eigenvalues, smallest eigenvalue and trace of the loss Hessian at a checkpoint (JSON)")
def _add_hessian(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--out", type=Path, required=True, help="report file (.json)")
    p.add_argument("--params", metavar="GLOB[,GLOB]", help="take the Hessian over the parameters whose names match only")
    p.add_argument("--split", choices=["train", "test"])
    p.add_argument("--max-samples", type=int, help="use the first N samples of the split (recorded)")
    p.add_argument("--batch-size", type=int, help="samples per HVP batch (0 = automatic); does not change the values")
    p.add_argument("--memory-budget", type=int, metavar="BYTES",
                   help="user data (--data file.py:fn giving a DataLoader, Dataset or iterable) larger than this are "
                        "re-read batch by batch at every Hessian-vector product instead of held in memory (default 2 GiB)")
    p.add_argument("--dir-type", choices=["weights", "states"], help="parameters (default) or float state-dict entries")
    p.add_argument("--ignore", choices=["biasbn", "none", "random1d"],
                   help="biasbn (default): restrict the Hessian to tensors with ndim > 1, as the directions")
    p.add_argument("--top-k", type=int, help="number of largest eigenvalues (default 5)")
    p.add_argument("--tol", type=float, help="Lanczos residual tolerance (default 1e-6)")
    p.add_argument("--max-iter", type=int, help="HVPs per Lanczos run (default 100)")
    p.add_argument("--trace-samples", type=int, help="Hutchinson probes (default 100)")
    p.add_argument("--seed", type=int, help="seed of the Lanczos start vectors and trace probes (default 0)")
    p.add_argument("--save-directions", type=Path, metavar="FILE.h5",
                   help="also write the top two eigenvectors as a direction file (landscape surface --directions)")
    p.add_argument("--operator", choices=["hessian", "ggn", "fisher"],
                   help="the curvature matrix: hessian (default), ggn (generalized Gauss-Newton JᵀH_outJ) or fisher "
                        "(empirical Fisher, mean of per-sample gradient outer products)")
    p.add_argument("--trace", choices=["hutch++", "hutchinson"],
                   help="trace estimator with --trace-samples products (default hutch++), with its standard error")
    p.add_argument("--density", action="store_true", default=None,
                   help="spectral density by SLQ: JSON \"density\" {nodes, weights, runs, steps} and OUT.density.png")
    p.add_argument("--density-runs", type=int, help="SLQ Lanczos runs (default 10)")
    p.add_argument("--density-steps", type=int, help="SLQ Lanczos steps per run (default 80)")
    p.add_argument("--blocks", metavar="module|layer|GLOB[,GLOB]",
                   help="also per diagonal block: top eigenvalue, trace (and density): a table, JSON \"blocks\" and OUT.blocks.png")
    _common(p)


# --- sharpness -------------------------------------------------------------------------------------

SHARPNESS_FLAGS = {"split": "surface.split", "max_samples": "surface.max_samples", "batch_size": "surface.batch_size",
                   "memory_budget": "surface.memory_budget", "ignore": "directions.ignore", "steps": "sharpness.steps",
                   "step": "sharpness.step", "samples": "sharpness.samples", "m": "sharpness.m", "seed": "sharpness.seed"}


def cmd_sharpness(args: argparse.Namespace) -> int:
    from landscape.io.checkpoint import load_checkpoint
    from landscape.workflows.sharpness import format_sharpness, run_sharpness

    ckpt = load_checkpoint(args.checkpoint, unsafe=args.unsafe_load)
    if args.measures:
        args.overrides = [*args.overrides, f"sharpness.measures={json.dumps([m.strip() for m in args.measures.split(',') if m.strip()])}"]
    if args.rho:
        try:
            rhos = [float(r) for r in args.rho.split(",") if r.strip()]
        except ValueError as err:
            raise ConfigError(f"--rho {args.rho!r}: expected comma-separated numbers") from err
        args.overrides = [*args.overrides, f"sharpness.rho={json.dumps(rhos)}"]
    cfg = surface_config(args, ckpt, SHARPNESS_FLAGS)
    report = run_sharpness(args.checkpoint, cfg, out=args.out, unsafe=args.unsafe_load, checkpoint_obj=ckpt)
    print(format_sharpness(report))
    return 0


@command("sharpness", "sharpness measures at a checkpoint: worst-case, average-case, m-sharpness, Fisher-Rao, curvature (JSON)")
def _add_sharpness(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--out", type=Path, required=True, help="report file (.json)")
    p.add_argument("--measures", metavar="NAME[,NAME]",
                   help="worst_l2, worst_linf, adaptive_worst_l2, adaptive_worst_linf, average, adaptive_average, "
                        "fisher_rao, curvature (default worst_l2,adaptive_worst_l2,average,fisher_rao,curvature)")
    p.add_argument("--rho", metavar="R[,R]", help="radii of the worst/average measures (default 0.05)")
    p.add_argument("--steps", type=int, help="projected gradient ascent steps (default 20)")
    p.add_argument("--step", type=float, help="ascent step length in units of rho (default 1)")
    p.add_argument("--samples", type=int, help="Gaussian draws of the average-case measures (default 20)")
    p.add_argument("--m", type=int, help="m-sharpness: measure every batch of M samples alone and average (default 0: all data)")
    p.add_argument("--seed", type=int, help="seed of the ascent starts and the draws (default 0)")
    p.add_argument("--params", metavar="GLOB[,GLOB]", help="perturb only the parameters whose names match")
    p.add_argument("--split", choices=["train", "test"])
    p.add_argument("--max-samples", type=int, help="use the first N samples of the split (recorded)")
    p.add_argument("--batch-size", type=int, help="samples per batch (0 = automatic); does not change the values")
    p.add_argument("--memory-budget", type=int, metavar="BYTES", help="stream user data larger than this (default 2 GiB)")
    p.add_argument("--ignore", choices=["biasbn", "none", "random1d"],
                   help="biasbn (default): perturb the tensors with ndim > 1, as the directions")
    _common(p)


# --- compare ---------------------------------------------------------------------------------------

def cmd_compare(args: argparse.Namespace) -> int:
    from landscape.workflows.compare import format_rows, run_compare

    overrides = _flag_overrides(args, {"epochs": "train.epochs", "seed": "train.seed"})
    if args.losses:
        overrides.append(f"compare.losses={json.dumps([n.strip() for n in args.losses.split(',') if n.strip()])}")
    if args.sharpness:  # extra columns: sharpness measures of each final model
        overrides.append(f"compare.sharpness={json.dumps([n.strip() for n in args.sharpness.split(',') if n.strip()])}")
    if args.device:
        overrides += [f"train.device={json.dumps(args.device)}", f"surface.device={json.dumps(args.device)}"]
    cfg = resolve_config(None, args.config_file, overrides + list(args.overrides))
    result = run_compare(cfg, args.out, overwrite=args.overwrite, log=lambda msg: print(f"compare: {msg}", file=sys.stderr))
    print(format_rows(result.rows))
    print(f"\n{'computed: ' + ', '.join(result.work) if result.work else 'nothing to compute: every training and surface was done'}")
    print(f"table: {args.out / 'summary.md'}; figures: {args.out / 'figures'}")
    return 0


@command("compare", "train one model per loss from the same initial weights and compare their landscapes")
def _add_compare(p: argparse.ArgumentParser) -> None:
    p.add_argument("config_file", type=Path, metavar="CONFIG", help="TOML config with model, data, [train] and [compare] losses")
    p.add_argument("--out", type=Path, required=True, help="folder: one run per loss, summary.csv/.md, figures/ (re-running resumes)")
    p.add_argument("--losses", help="comma-separated losses to compare (overrides compare.losses)")
    p.add_argument("--sharpness", metavar="MEASURE[,MEASURE]",
                   help="also these sharpness measures of each final model as columns (compare.sharpness; "
                        "radius and steps from [sharpness]; see landscape sharpness)")
    p.add_argument("--epochs", type=int)
    p.add_argument("--seed", type=int, help="training seed: the initial weights and data order shared by every loss")
    p.add_argument("--device", help="cpu, cuda or cuda:N (training and surfaces)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override any config value (TOML syntax for the value); repeatable")
    p.add_argument("--overwrite", action="store_true", help="replace runs and surfaces made with other settings")


# --- connect ---------------------------------------------------------------------------------------

CONNECT_FLAGS = {"curve": "connect.curve", "bends": "connect.bends", "epochs": "connect.epochs", "align": "connect.align",
                 "points": "connect.points", "split": "connect.split", "bn": "connect.bn", "lr": "connect.lr",
                 "seed": "connect.seed", "max_samples": "connect.max_samples"}


def cmd_connect(args: argparse.Namespace) -> int:
    from landscape.io.checkpoint import load_checkpoint
    from landscape.workflows._experiment import checkpoint_config
    from landscape.workflows.connect import format_result, run_connect

    ckpt = load_checkpoint(args.checkpoint_a, unsafe=args.unsafe_load)
    saved = checkpoint_config(ckpt)
    base = config_to_dict(saved) if saved is not None else None
    if base is None and not (args.model or args.config):
        raise ConfigError(f"{str(ckpt.path)!r} is not a landscape checkpoint, so it does not say what it is: "
                          "name its model and data with --model/--data/--loss or --config FILE")
    cfg = resolve_config(base, args.config, _overrides(args, "connect") + _flag_overrides(args, CONNECT_FLAGS))
    result = run_connect(args.checkpoint_a, args.checkpoint_b, args.out, cfg, unsafe=args.unsafe_load, overwrite=args.overwrite)
    print(format_result(result))
    return 0


@command("connect", "paths between two minima: line, permutation-aligned line, trained Bezier/polygonal curve; barriers")
def _add_connect(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint_a", type=Path, metavar="A.pt")
    p.add_argument("checkpoint_b", type=Path, metavar="B.pt")
    p.add_argument("--out", type=Path, required=True, help="folder: connect.h5, connect.csv/.md, figures (re-running resumes)")
    p.add_argument("--curve", choices=["line", "bezier", "polychain"], help="curve to train between A and B (default bezier)")
    p.add_argument("--bends", type=int, help="bends of the curve (default 1: a quadratic Bezier)")
    p.add_argument("--epochs", type=int, help="epochs of curve training (default 20)")
    p.add_argument("--lr", type=float, help="learning rate of curve training")
    p.add_argument("--seed", type=int, help="seed of curve training, BN batches and alignment order")
    p.add_argument("--align", choices=["none", "weights"], help="weights: also the line to B permuted to match A")
    p.add_argument("--points", type=int, help="t values over [0, 1] (default 61; plus connect.margin beyond)")
    p.add_argument("--split", choices=["train", "test", "both"])
    p.add_argument("--max-samples", type=int, help="evaluate on the first N samples of each split")
    p.add_argument("--bn", choices=["auto", "keep", "recompute"],
                   help="BatchNorm statistics along the path: recompute (default with BN) or keep (interpolated)")
    p.add_argument("--overwrite", action="store_true", help="start afresh even if DIR holds results with other settings")
    _common(p)


# --- plot ------------------------------------------------------------------------------------------

PLOT_FLAGS = {"metric": "plot.metric", "levels": "plot.levels", "vmin": "plot.vmin", "vmax": "plot.vmax",
              "log": "plot.log", "cmap": "plot.cmap", "width": "plot.width", "dpi": "plot.dpi", "title": "plot.title"}


def _is_connect_file(path: Path) -> bool:
    """A ``landscape connect`` file (drawn by its own figures), not a surface file."""
    try:
        import h5py

        with h5py.File(path, "r") as f:
            return bool(f.attrs.get("format") == "landscape-connect")
    except OSError:
        return False


def _comma_list(text: str | None) -> list[str] | None:
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


def cmd_plot(args: argparse.Namespace) -> int:
    from landscape.figures.files import applicable_kinds_of, plot_surface_file

    formats = _comma_list(args.format)
    flags = _flag_overrides(args, PLOT_FLAGS) + ([f"plot.formats={json.dumps(formats)}"] if formats is not None else [])
    p = resolve_config(None, args.config, flags + list(args.overrides)).plot
    if _is_connect_file(args.file):
        from landscape.figures.connect import plot_connect_file

        for path in plot_connect_file(args.file, args.out, formats=p.formats, dpi=p.dpi):
            print(path)
        return 0
    kinds = _comma_list(args.kind)
    written = plot_surface_file(args.file, args.out, p, trajectory=args.trajectory, kinds=p.kinds if kinds is None else kinds,
                                lenient=kinds is None)
    if not written:
        raise LandscapeError(f"none of the kinds {', '.join(p.kinds)} applies to {str(args.file)!r}; "
                             f"it takes --kind {','.join(applicable_kinds_of(args.file, p.metric, args.trajectory is not None))}")
    for path in written:
        print(path)
    return 0


@command("plot", "draw a surface file (and a trajectory over it) as contour, filled, heatmap, 3D, line, trajectory, panels")
def _add_plot(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", type=Path, metavar="FILE.h5", help="surface file")
    p.add_argument("--trajectory", type=Path, metavar="FILE.h5", help="trajectory file: the path over its PCA-plane surface")
    p.add_argument("--out", type=Path, required=True, help="folder of the figures, named <surface stem>_<kind>.<format>")
    p.add_argument("--kind", help="comma-separated: contour,filled,heatmap,surface3d,line,trajectory,panels "
                                  "(default: every kind of [plot] kinds that applies to the file)")
    p.add_argument("--format", help="comma-separated: pdf,png,svg,html (default pdf,png); html: one self-contained "
                                    "interactive page per 2D surface, <stem>_interactive.html (needs the interactive extra)")
    p.add_argument("--metric", help="a dataset of the file: train_loss (default), test_loss, train_acc, train_mse, ...")
    p.add_argument("--levels", type=int, help="about this many contour levels")
    p.add_argument("--vmin", type=float, help="lower end of the colour scale")
    p.add_argument("--vmax", type=float, help="upper end of the colour scale (3D: heights clipped there)")
    p.add_argument("--log", action=argparse.BooleanOptionalAction, default=None, help="log colour scale and log10 heights")
    p.add_argument("--cmap", help="matplotlib colormap name (default viridis)")
    p.add_argument("--width", choices=["single", "double"], help="printed width: one journal column (3.4 in) or two (7 in)")
    p.add_argument("--dpi", type=int, help="resolution of raster formats (default 200)")
    p.add_argument("--no-title", dest="title", action="store_const", const=False, default=None, help="no figure title")
    p.add_argument("--config", type=Path, help="TOML config whose [plot] section sets the defaults")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override a config value (TOML syntax for the value); repeatable")


# --- export ----------------------------------------------------------------------------------------

def cmd_export(args: argparse.Namespace) -> int:
    from landscape.figures.files import export_surface_file

    path = export_surface_file(args.file, args.format, args.out, metric=args.metric, log=args.log, zmax=args.zmax)
    print(path)
    return 0


@command("export", "write a surface file as ParaView .vtp, long-format .csv or NumPy .npz")
def _add_export(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", type=Path, metavar="FILE.h5", help="surface file")
    p.add_argument("--format", choices=["vtp", "csv", "npz"], required=True)
    p.add_argument("--out", type=Path, help="file to write (default: FILE with the format's suffix)")
    p.add_argument("--metric", help="csv/npz: only this metric (default all, plus a done column); vtp: the height "
                                    "(default train_loss)")
    p.add_argument("--log", action="store_true", help="vtp: height = log10 of the metric")
    p.add_argument("--zmax", type=float, help="vtp: clip heights at this value (in the metric's units)")


# --- run -------------------------------------------------------------------------------------------

def cmd_run(args: argparse.Namespace) -> int:
    from landscape.workflows.run import format_stage, run_pipeline

    device = [f"surface.device={json.dumps(args.device)}"] if args.device else []
    cfg = resolve_config(None, args.config_file, _overrides(args, "train") + device)
    out = args.out or Path("runs") / args.config_file.stem
    print(f"landscape run {args.config_file} → {out}", flush=True)
    run_pipeline(cfg, out, overwrite=args.overwrite, report=lambda stage: print("  " + format_stage(stage), flush=True))
    print(f"figures in {out / 'figures'}; surfaces in {out / 'surfaces'}; trajectory {out / 'trajectory.h5'}")
    return 0


@command("run", "the whole job: train, trajectory, random and PCA-plane surfaces, every figure (each stage resumes)")
def _add_run(p: argparse.ArgumentParser) -> None:
    p.add_argument("config_file", type=Path, metavar="CONFIG", help="TOML config ([data], [model], [train], [run], [plot], ...)")
    p.add_argument("--out", type=Path, help="job folder (default runs/<config name>)")
    p.add_argument("--overwrite", action="store_true", help="replace results in DIR made with other settings, training included")
    _common(p, config_positional=True)


# --- animate ---------------------------------------------------------------------------------------

def cmd_animate(args: argparse.Namespace) -> int:
    from landscape.workflows.animate import AnimateOptions, format_animation, run_animation

    options = AnimateOptions(kind=args.kind, fps=args.fps, frames=args.frames, dpi=args.dpi, metric=args.metric,
                             log=args.log, turn=args.turn, x=args.x, y=args.y, max_samples=args.max_samples,
                             overwrite=args.overwrite)
    print(format_animation(run_animation(args.run_dir, args.out, options)))
    return 0


@command("animate", "animate a run folder: the optimizer's path over its landscape, or the landscape over training")
def _add_animate(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a folder made by `landscape run`")
    p.add_argument("--out", type=Path, required=True, help="FILE.gif (Pillow) or FILE.mp4 (needs ffmpeg)")
    p.add_argument("--kind", choices=["path", "surface3d", "evolution"], default="path",
                   help="path: the trajectory over the PCA-plane contour (default); surface3d: over the 3D surface, "
                        "the camera turning; evolution: the landscape around each checkpoint (computed, cached in "
                        "RUN_DIR/evolution/)")
    p.add_argument("--fps", type=float, default=8.0, help="frames per second (default 8)")
    p.add_argument("--frames", type=int, default=0,
                   help="number of frames (default: 48 for a path; one per checkpoint for an evolution)")
    p.add_argument("--dpi", type=int, default=100, help="resolution of the frames (default 100)")
    p.add_argument("--metric", default="train_loss", help="a dataset of the surfaces (default train_loss)")
    p.add_argument("--log", action=argparse.BooleanOptionalAction, default=None,
                   help="log colour scale (default: when the loss spans more than a decade)")
    p.add_argument("--turn", type=float, default=90.0, help="surface3d: degrees the camera turns (default 90)")
    p.add_argument("--x", default="-1:1:21", help="evolution: MIN:MAX:NUM along the first random direction")
    p.add_argument("--y", default="-1:1:21", help="evolution: MIN:MAX:NUM along the second random direction")
    p.add_argument("--max-samples", type=int, default=0, help="evolution: evaluate on the first N training samples")
    p.add_argument("--overwrite", action="store_true", help="evolution: replace cached surfaces made with other settings")


# --- entry points -------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="landscape", description="Filter-normalized loss landscapes (Li et al., 2018).")
    parser.add_argument("--version", action="version", version=f"landscape {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch's default)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (add, _, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        add(p)
        # the global flags are accepted after the command too (SUPPRESS: unset unless given there)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks")
        p.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS, help="no progress bars")
        p.add_argument("--threads", type=int, default=argparse.SUPPRESS, help="torch intra-op threads")
    return parser


def _join_negative_values(argv: Sequence[str]) -> list[str]:
    """``--x -1:1:51`` → ``--x=-1:1:51``: argparse would take ``-1:1:51`` for an option."""
    out: list[str] = []
    for token in argv:
        if out and out[-1].startswith("--") and "=" not in out[-1] and re.match(r"^-\.?\d", token):
            out[-1] = f"{out[-1]}={token}"
        else:
            out.append(token)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(_join_negative_values(sys.argv[1:] if argv is None else argv))
    except SystemExit as exc:  # argparse: usage errors exit 2, --help/--version exit 0
        return int(exc.code or 0)
    from landscape.engine.progress import set_quiet

    set_quiet(args.quiet)
    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    handler = COMMANDS[args.command][1]
    try:
        return handler(args)
    except LandscapeError as err:
        if args.debug:
            raise
        print(f"landscape {args.command}: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"landscape {args.command}: interrupted; finished work is saved (re-run the same command to resume)", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`| head`): stop quietly, as other command-line tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error when Python flushes at exit
        return 141
    except Exception as err:  # a bug or a library error we did not anticipate: still one line
        if args.debug:
            raise
        msg = str(err).strip().splitlines()[0] if str(err).strip() else ""
        print(f"landscape {args.command}: error: {type(err).__name__}: {msg} (run with --debug for the traceback)", file=sys.stderr)
        return 1


def entry() -> None:
    sys.exit(main())
