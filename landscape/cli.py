"""Command-line interface: a thin shell over the library.

``main(argv) -> int`` parses flags (the one vocabulary of :mod:`landscape.flags`), turns them
into config overrides, calls one library function, and turns any :class:`LandscapeError` into one line on stderr and exit code 1
(2 for usage errors). ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from landscape.config import Config, apply_overrides, config_to_dict, layered_config, read_toml, renamed_values
from landscape.errors import ConfigError, LandscapeError
from landscape.flags import EVALUATES, add_flags, config_overrides, deprecation
from landscape.version import __version__

Handler = Callable[[argparse.Namespace], int]


@dataclass(frozen=True)
class Command:
    """A subcommand: its handler, positional arguments, and the flags of :data:`landscape.flags.FLAGS` it takes."""

    help: str
    handler: Handler
    flags: tuple[str, ...]
    positionals: tuple[tuple[str, dict[str, Any]], ...] = ()
    required: tuple[str, ...] = ()  # flags that must be given
    details: dict[str, str] = field(default_factory=dict)  # what a shared flag means for this command


COMMANDS: dict[str, Command] = {}


def command(name: str, help_text: str, flags: Sequence[str], positionals: Sequence[tuple[str, dict[str, Any]]] = (), *,
            required: Sequence[str] = (), details: dict[str, str] | None = None) -> Callable[[Handler], Handler]:
    """Register the decorated handler as subcommand ``name`` taking ``flags`` (names in :data:`FLAGS`)."""
    def decorator(handler: Handler) -> Handler:
        COMMANDS[name] = Command(help_text, handler, tuple(flags), tuple(positionals), tuple(required), details or {})
        return handler
    return decorator


# --- from flags to a config ------------------------------------------------------------------------

CONFIG_ARG = ("config_file", {"nargs": "?", "type": Path, "metavar": "CONFIG", "help": "TOML config (or --config FILE)"})


def _config_file(args: argparse.Namespace) -> Path | None:
    positional = getattr(args, "config_file", None)
    if positional is not None and args.config is not None:
        raise ConfigError(f"two configs given ({str(positional)!r} and --config {str(args.config)!r}); give one")
    return positional if positional is not None else args.config  # type: ignore[no-any-return]


def resolve_config(args: argparse.Namespace, base: dict[str, Any] | None = None) -> Config:
    """defaults ← ``base`` (e.g. a checkpoint's config) ← the config file ← flags ← ``--set``.

    A value the user wrote in an old spelling (config file or ``--set``) is read as the new one
    after one line on stderr; an old spelling inside ``base`` (a saved config) is read silently.
    """
    file, overrides = _config_file(args), config_overrides(args, args.command, COMMANDS[args.command].flags)
    for key, old, new in renamed_values(apply_overrides(read_toml(file) if file is not None else {}, overrides)):
        deprecation(f"{key} = {old!r}", repr(new))
    return layered_config(base, file, overrides)


def checkpoint_based_config(args: argparse.Namespace, ckpt: Any) -> Config:
    """The checkpoint's own config (ours record it) under the user's; a foreign checkpoint must be described."""
    from landscape.workflows.experiment import checkpoint_config

    saved = checkpoint_config(ckpt)
    if saved is None and not (args.model or args.config) and ckpt.extra.get("kind") == "huggingface":
        return resolve_config(args, {"model": {"name": "hf"}})  # the model is built from the folder's config.json
    if saved is None and not (args.model or args.config):
        raise ConfigError(f"{str(ckpt.path)!r} is not a landscape checkpoint, so it does not say what it is: "
                          "name its model and data with --model/--data/--loss or --config FILE")
    return resolve_config(args, config_to_dict(saved) if saved is not None else None)


def _comma_list(text: str | None) -> list[str] | None:
    return None if text is None else [t.strip() for t in text.split(",") if t.strip()]


def _print(summary: Any) -> None:
    print(json.dumps(summary, indent=2, default=str, allow_nan=True))


CHECKPOINT = ("checkpoint", {"type": Path})
SURFACE_FILE = ("file", {"type": Path, "metavar": "FILE.h5", "help": "surface file"})


# --- train -----------------------------------------------------------------------------------------

@command("train", "train a model and write a checkpoint every epoch (resumes a stopped run)",
         (*EVALUATES, "--out", "--epochs", "--lr", "--seed", "--batch-size", "--optimizer", "--overwrite"), (CONFIG_ARG,),
         details={"--out": "run folder (default runs/<config name>)"})
def cmd_train(args: argparse.Namespace) -> int:
    from landscape.workflows.train import train

    cfg, file = resolve_config(args), _config_file(args)
    out = args.out or Path("runs") / (file.stem if file else "default")
    result = train(cfg, out, overwrite=bool(args.overwrite))
    last = result.manifest["checkpoints"][-1]
    print(f"trained {cfg.model.name} on {cfg.data.name} with {cfg.train.loss}: {len(result.checkpoints)} checkpoints in {out}; "
          + ", ".join(f"{k} {last[k]:.4f}" for k in ("train_loss", "test_loss", "train_acc", "test_acc") if k in last))
    return 0


# --- surface ---------------------------------------------------------------------------------------

@command("surface", "evaluate the loss landscape on a 1D or 2D grid around a checkpoint (HDF5, resumable)",
         (*EVALUATES, "--unsafe-load", "--prefix", "--out", "--x", "--y", "--params", "--dir-type", "--norm", "--ignore", "--seed",
          "--directions", "--target", "--target2", "--split", "--max-samples", "--bn", "--batch-size",
          "--points-per-call", "--memory-budget", "--metric", "--hessian-directions", "--operator", "--max-points",
          "--tolerance", "--refine", "--vmax", "--overwrite", "--preview"), (CHECKPOINT,), required=("--out",),
         details={"--out": "surface file (.h5); re-running resumes it",
                  "--x": "with --directions TRAJECTORY.h5 the default covers the path, config.PCA_GRID points per axis"})
def cmd_surface(args: argparse.Namespace) -> int:
    from landscape.workflows.surface import format_summary, run_surface

    ckpt, cfg, source = _surface_request(args, args.directions)
    result = run_surface(args.checkpoint, args.out, cfg, source=source, overwrite=bool(args.overwrite),
                         unsafe=bool(args.unsafe_load), checkpoint_obj=ckpt, preview=args.preview,
                         **({"max_points": args.max_points} if args.max_points is not None else {}))
    if result.summary is not None:  # under torchrun only rank 0 has the whole picture
        print(format_summary(result.summary))
    return 0


def _surface_request(args: argparse.Namespace, plane: Path | None) -> tuple[Any, Config, Any]:
    """The checkpoint, config and direction source of ``surface`` and ``check``. Without ``--x`` a trajectory
    file's ``plane`` gets the (2D) grid that holds its path."""
    from landscape.io.checkpoint import load_checkpoint
    from landscape.workflows.surface import DirectionSource

    ckpt = load_checkpoint(args.checkpoint, unsafe=bool(args.unsafe_load), prefix=args.prefix)
    cfg = checkpoint_based_config(args, ckpt)
    if plane is not None and args.x is None:
        from landscape.workflows.trajectory import default_grid_overrides

        cfg = layered_config(config_to_dict(cfg), None, default_grid_overrides(plane))
    return ckpt, cfg, DirectionSource(args.directions, args.target, args.target2, hessian=bool(args.hessian_directions))


# --- info ------------------------------------------------------------------------------------------

@command("info", "describe a checkpoint, run folder, surface, trajectory or direction file", ("--unsafe-load",),
         (("file", {"type": Path}),))
def cmd_info(args: argparse.Namespace) -> int:
    from landscape.workflows.info import describe

    _print(describe(args.file, unsafe=bool(args.unsafe_load)))
    return 0


# --- trajectory ------------------------------------------------------------------------------------

@command("trajectory", "PCA plane of an optimization path (run folder or checkpoints) and the path projected on it",
         ("--model", "--data", "--config", "--set", "--unsafe-load", "--prefix", "--out", "--include-steps", "--dir-type", "--ignore",
          "--center", "--uncentered"),
         (("inputs", {"nargs": "+", "type": Path, "metavar": "RUN_DIR_OR_CHECKPOINTS",
                      "help": "a run folder (its run.json lists the checkpoints) or checkpoint files in training order, final last"}),),
         required=("--out",),
         details={"--out": "trajectory file (.h5); also a direction file for surface --directions",
                  "--model": "for foreign checkpoints (with --data, --config or --set): what they hold"})
def cmd_trajectory(args: argparse.Namespace) -> int:
    from landscape.io.foreign import checkpoint_files
    from landscape.io.trajectory_file import save_trajectory
    from landscape.workflows.trajectory import compute_trajectory, summary

    inputs: list[Path] = args.inputs
    if len(inputs) == 1 and inputs[0].is_dir():  # a run folder (train, Recorder) or a folder of checkpoint files
        checkpoints, source = checkpoint_files(inputs[0], bool(args.include_steps)), str(inputs[0])
    elif any(p.is_dir() for p in inputs):
        raise ConfigError("give one run folder or a list of checkpoint files, not both")
    elif args.include_steps:
        raise ConfigError("--include-steps applies to a run folder; list the step checkpoints you want instead")
    else:
        checkpoints, source = inputs, ""
    if args.center and args.uncentered:
        raise ConfigError("--center and --uncentered exclude each other; give one")
    cfg = resolve_config(args)  # --dir-type, --ignore (and [directions] of --config/--set) choose the tensors
    model = None
    if args.model or args.data or args.config or any(o.strip().startswith(("model.", "data.")) for o in args.overrides):
        # foreign checkpoints: say what they hold (our own record their model)
        from landscape.workflows.experiment import build_experiment

        model = build_experiment(cfg, losses=()).model  # no loss is evaluated
    traj = compute_trajectory(checkpoints, model=model, dir_type=cfg.directions.dir_type, ignore=cfg.directions.ignore,
                              center=not args.uncentered, unsafe=bool(args.unsafe_load), source=source, prefix=args.prefix)
    save_trajectory(args.out, traj)
    _print({"file": str(args.out), **summary(traj),
            "next": f"landscape surface {traj.meta['origin']} --directions {args.out} --out SURFACE.h5"})
    return 0


# --- hessian ---------------------------------------------------------------------------------------

@command("hessian", "top eigenvalues, smallest eigenvalue, trace, spectral density and blocks of the loss Hessian, "
         "Gauss-Newton matrix or empirical Fisher at a checkpoint (JSON)",
         (*EVALUATES, "--unsafe-load", "--prefix", "--out", "--params", "--split", "--max-samples", "--batch-size", "--memory-budget",
          "--dir-type", "--ignore", "--top-k", "--tol", "--max-iter", "--trace-samples", "--seed", "--save-directions",
          "--operator", "--trace", "--density", "--density-runs", "--density-steps", "--blocks", "--products-per-call"),
         (CHECKPOINT,), required=("--out",), details={"--out": "report file (.json)"})
def cmd_hessian(args: argparse.Namespace) -> int:
    from landscape.io.checkpoint import load_checkpoint
    from landscape.workflows.hessian import format_hessian, run_hessian, run_hessian_per_split

    ckpt = load_checkpoint(args.checkpoint, unsafe=bool(args.unsafe_load), prefix=args.prefix)
    cfg = checkpoint_based_config(args, ckpt)
    run = run_hessian_per_split if cfg.surface.split == "both" else run_hessian
    report = run(args.checkpoint, cfg, out=args.out, save_directions_to=args.save_directions,
                 unsafe=bool(args.unsafe_load), checkpoint_obj=ckpt)
    if "rank" not in report:  # under torchrun rank 0 reports for all
        print(format_hessian(report))
    return 0


# --- sharpness -------------------------------------------------------------------------------------

@command("sharpness", "sharpness measures at a checkpoint: worst-case, average-case, m-sharpness, Fisher-Rao, curvature (JSON)",
         (*EVALUATES, "--unsafe-load", "--prefix", "--out", "--measures", "--rho", "--steps", "--step", "--samples", "--m",
          "--seed", "--params", "--split", "--max-samples", "--batch-size", "--memory-budget", "--ignore"),
         (CHECKPOINT,), required=("--out",), details={"--out": "report file (.json)"})
def cmd_sharpness(args: argparse.Namespace) -> int:
    from landscape.io.checkpoint import load_checkpoint
    from landscape.workflows.sharpness import format_sharpness, run_sharpness, run_sharpness_per_split

    ckpt = load_checkpoint(args.checkpoint, unsafe=bool(args.unsafe_load), prefix=args.prefix)
    if args.rho:  # comma-separated numbers
        try:
            rhos = [float(r) for r in args.rho.split(",") if r.strip()]
        except ValueError as err:
            raise ConfigError(f"--rho {args.rho!r}: expected comma-separated numbers") from err
        args.overrides = [f"sharpness.rho={json.dumps(rhos)}", *args.overrides]
    cfg = checkpoint_based_config(args, ckpt)
    run = run_sharpness_per_split if cfg.surface.split == "both" else run_sharpness
    report = run(args.checkpoint, cfg, out=args.out, unsafe=bool(args.unsafe_load), checkpoint_obj=ckpt)
    if "rank" not in report:  # under torchrun rank 0 reports for all
        print(format_sharpness(report))
    return 0


# --- compare ---------------------------------------------------------------------------------------

@command("compare", "train one model per loss from the same initial weights and compare their landscapes",
         (*EVALUATES, "--out", "--epochs", "--seed", "--sharpness", "--overwrite"), (CONFIG_ARG,), required=("--out",),
         details={"--out": "folder: one run per loss, summary.csv/.md, figures/ (re-running resumes)"})
def cmd_compare(args: argparse.Namespace) -> int:
    from landscape.workflows.compare import format_rows, run_compare

    cfg = resolve_config(args)
    result = run_compare(cfg, args.out, overwrite=bool(args.overwrite), log=lambda msg: print(f"compare: {msg}", file=sys.stderr))
    print(format_rows(result.rows))
    print(f"\n{'computed: ' + ', '.join(result.work) if result.work else 'nothing to compute: every training and surface was done'}")
    print(f"table: {args.out / 'summary.md'}; figures: {args.out / 'figures'}")
    return 0


# --- connect ---------------------------------------------------------------------------------------

@command("connect", "paths between two minima: line, permutation-aligned line, trained Bezier/polygonal curve; barriers",
         (*EVALUATES, "--unsafe-load", "--prefix", "--out", "--curve", "--bends", "--epochs", "--lr", "--seed", "--align", "--points",
          "--split", "--max-samples", "--bn", "--overwrite"),
         (("checkpoint_a", {"type": Path, "metavar": "A.pt"}), ("checkpoint_b", {"type": Path, "metavar": "B.pt"})),
         required=("--out",), details={"--out": "folder: connect.h5, connect.csv/.md, figures (re-running resumes)"})
def cmd_connect(args: argparse.Namespace) -> int:
    from landscape.io.checkpoint import load_checkpoint
    from landscape.workflows.connect import format_result, run_connect

    cfg = checkpoint_based_config(args, load_checkpoint(args.checkpoint_a, unsafe=bool(args.unsafe_load), prefix=args.prefix))
    result = run_connect(args.checkpoint_a, args.checkpoint_b, args.out, cfg, unsafe=bool(args.unsafe_load),
                         overwrite=bool(args.overwrite), prefix=args.prefix)
    print(format_result(result))
    return 0


# --- plot ------------------------------------------------------------------------------------------

def _is_connect_file(path: Path) -> bool:
    """A ``landscape connect`` file (drawn by its own figures), not a surface file."""
    try:
        import h5py

        with h5py.File(path, "r") as f:
            return bool(f.attrs.get("format") == "landscape-connect")
    except OSError:
        return False


@command("plot", "draw a surface file (and a trajectory over it) as contour, filled, heatmap, 3D, line, trajectory, panels",
         ("--config", "--set", "--trajectory", "--out", "--kind", "--format", "--column", "--levels", "--vmin", "--vmax",
          "--log", "--cmap", "--width", "--dpi", "--title"), (SURFACE_FILE,), required=("--out",),
         details={"--out": "folder of the figures, named <surface stem>_<kind>.<format>"})
def cmd_plot(args: argparse.Namespace) -> int:
    from landscape.figures.files import applicable_kinds_of, plot_surface_file

    p = resolve_config(args).plot
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


# --- export ----------------------------------------------------------------------------------------

@command("export", "write a surface file as ParaView .vtp, long-format .csv or NumPy .npz",
         ("--format", "--out", "--column", "--log", "--zmax"), (SURFACE_FILE,), required=("--format",),
         details={"--out": "file to write (default: FILE with the format's suffix)", "--log": "vtp: height = log10 of the column"})
def cmd_export(args: argparse.Namespace) -> int:
    from landscape.figures.files import export_surface_file

    formats = _comma_list(args.format) or []
    if len(formats) != 1:
        raise ConfigError(f"export writes one format at a time; got --format {args.format!r}")
    print(export_surface_file(args.file, formats[0], args.out, metric=args.column, log=bool(args.log), zmax=args.zmax))
    return 0


# --- run -------------------------------------------------------------------------------------------

@command("run", "the whole job: train, trajectory, random and PCA-plane surfaces, every figure (each stage resumes)",
         (*EVALUATES, "--out", "--overwrite"), (CONFIG_ARG,),
         details={"--out": "job folder (default runs/<config name>)"})
def cmd_run(args: argparse.Namespace) -> int:
    from landscape.workflows.run import format_stage, run_pipeline

    file = _config_file(args)
    if file is None:
        raise ConfigError("landscape run needs a config: CONFIG or --config FILE ([data], [model], [train], [run], ...)")
    cfg = resolve_config(args)
    out = args.out or Path("runs") / file.stem
    print(f"landscape run {file} → {out}", flush=True)
    run_pipeline(cfg, out, overwrite=bool(args.overwrite), report=lambda stage: print("  " + format_stage(stage), flush=True))
    print(f"figures in {out / 'figures'}; surfaces in {out / 'surfaces'}; trajectory {out / 'trajectory.h5'}")
    return 0


# --- animate ---------------------------------------------------------------------------------------

@command("animate", "animate a run folder: the optimizer's path over its landscape, or the landscape over training",
         (*EVALUATES, "--out", "--kind", "--fps", "--frames", "--dpi", "--column", "--log", "--turn", "--x", "--y",
          "--max-samples", "--overwrite"),
         (("run_dir", {"type": Path, "metavar": "RUN_DIR", "help": "a folder made by `landscape run`"}),), required=("--out",),
         details={"--out": "FILE.gif (Pillow) or FILE.mp4 (needs ffmpeg)",
                  "--kind": "path: the trajectory over the PCA-plane contour; surface3d: over the 3D surface, the camera "
                            "turning; evolution: the landscape around each checkpoint (computed, cached in RUN_DIR/evolution/)",
                  "--x": "evolution: default -1:1:21, coarser than one surface's grid: a plane is computed per checkpoint",
                  "--y": "evolution: default -1:1:21 (see --x)",
                  "--model": "with --data, --loss, --device, --config, --set: change the evolution's surfaces"})
def cmd_animate(args: argparse.Namespace) -> int:
    from landscape.workflows.animate import AnimateOptions, format_animation, run_animation

    given = {"kind": args.kind, "fps": args.fps, "frames": args.frames, "dpi": args.dpi, "metric": args.column,
             "log": args.log, "turn": args.turn, "x": args.x, "y": args.y, "max_samples": args.max_samples,
             "overwrite": args.overwrite}
    settings = config_overrides(args, "animate", EVALUATES)
    for key, old, new in renamed_values(apply_overrides({}, settings)):
        deprecation(f"{key} = {old!r}", repr(new))
    options = AnimateOptions(**{k: v for k, v in given.items() if v is not None}, config_file=args.config,
                             settings=tuple(settings))
    print(format_animation(run_animation(args.run_dir, args.out, options)))
    return 0


# --- check ---------------------------------------------------------------------------------------

@command("check", "can this surface be trusted? origin, BatchNorm, seeds, scale, resolution, trajectory, numerics (JSON)",
         (*EVALUATES, "--unsafe-load", "--prefix", "--out", "--x", "--y", "--params", "--dir-type", "--norm", "--ignore",
          "--seed", "--directions", "--target", "--target2", "--split", "--max-samples", "--bn", "--batch-size",
          "--memory-budget", "--hessian-directions", "--max-points", "--surface", "--trajectory"), (CHECKPOINT,),
         required=("--out",),
         details={"--out": "report file (check.json); the check figures are written beside it",
                  "--trajectory": "a path over the plane (trajectory file); without --surface/--directions its plane is checked"})
def cmd_check(args: argparse.Namespace) -> int:
    from landscape.workflows.check import run_check

    if args.target2 is not None and args.target is None:
        raise ConfigError("--target2 needs --target")
    ckpt, cfg, source = _surface_request(args, args.directions or (args.trajectory if args.surface is None else None))
    result = run_check(args.checkpoint, args.out, cfg, surface=args.surface, trajectory=args.trajectory, source=source,
                       unsafe=bool(args.unsafe_load), checkpoint_obj=ckpt,
                       **({"max_points": args.max_points} if args.max_points is not None else {}))
    print(result.table())
    for line in result.warnings():
        print(f"landscape check: {line}", file=sys.stderr)
    print(f"report: {args.out}" + (f"; figures: {', '.join(str(f) for f in result.figures)}" if result.figures else ""))
    return 0


# --- entry points -------------------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="landscape", description="Filter-normalized loss landscapes (Li et al., 2018).")
    parser.add_argument("--version", action="version", version=f"landscape {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--threads", type=int, default=0, help="torch intra-op threads (0 = torch's default)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, spec in COMMANDS.items():
        p = sub.add_parser(name, help=spec.help, description=spec.help)
        for positional, kwargs in spec.positionals:
            p.add_argument(positional, **kwargs)
        add_flags(p, name, spec.flags, required=spec.required, details=spec.details)
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
    handler = COMMANDS[args.command].handler
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
