"""The command line's one vocabulary: every flag once, with its config key, type, choices and help.

A subcommand declares the flags it takes by name (:class:`Command`); :func:`add_flags` adds them
to its parser and :func:`config_overrides` turns the ones given into ``section.key=value``
overrides. A flag spelled the same in two commands is the same :class:`Flag`: same type, same
choices, one meaning. Where the value lands in the config may depend on the command (``--seed``
seeds the directions of ``surface`` and the training of ``train``): :attr:`Flag.key` maps the
command to its key. A flag with no key for a command is read by that command's handler.

Old spellings stay for one release: a renamed value (``--bn fixed``) or a flag renamed on one
command (``plot --metric``) is read as the new one after one line on stderr.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from landscape.config import RENAMED_VALUES, Config

Key = str | tuple[str, ...]  # one config key, or several that all take the value (--device of run)
Action = Literal["value", "switch", "bool", "append"]


@dataclass(frozen=True)
class Flag:
    """One flag of the command line.

    ``key``: the config key(s) the value overrides, the same in every command (a string) or per
    command (a mapping; a command it does not name reads the flag itself). ``action``: ``value``
    takes one argument of ``type``; ``switch`` is ``--flag``; ``bool`` is ``--flag/--no-flag``;
    ``append`` repeats. A value for a list key (``surface.losses``) is comma-separated.
    ``renamed``: old values still read, with a one-line notice, as the new ones.
    """

    help: str
    key: Key | Mapping[str, Key] | None = None
    type: type = str
    choices: tuple[str, ...] | None = None
    action: Action = "value"
    metavar: str | None = None
    renamed: Mapping[str, str] = field(default_factory=dict)

    def key_for(self, command: str) -> tuple[str, ...]:
        key = self.key.get(command) if isinstance(self.key, Mapping) else self.key
        return () if key is None else (key,) if isinstance(key, str) else key


_BN_RENAMED = {**RENAMED_VALUES["surface.bn"], **RENAMED_VALUES["connect.bn"]}  # --bn reads what files and --set read
_BY_COMMAND_SEED = {"train": "train.seed", "compare": "train.seed", "surface": "directions.seed", "check": "directions.seed",
                    "hessian": "hessian.seed", "connect": "connect.seed",
                    "sharpness": "sharpness.seed"}

FLAGS: dict[str, Flag] = {
    # --- what is evaluated: every command that evaluates a model takes these six ---
    "--config": Flag("TOML config file whose sections override the defaults (train, run, compare: also the "
                     "positional CONFIG)", type=Path, metavar="FILE"),
    "--model": Flag("model name from the registry, or path/to/file.py:factory / package.module:factory",
                    key="model.name"),
    "--data": Flag("dataset name from the registry, or path/to/file.py:function / package.module:function",
                   key="data.name"),
    "--loss": Flag("loss name(s), comma-separated where several are evaluated in one pass (surface, hessian, animate; "
                   "compare: the losses to train and compare), or path/to/file.py:fn, a batch loss "
                   "fn(model, (inputs, targets)) -> per-sample losses or a mean (a landscape.OutputLoss too), or "
                   "causal_lm / causal_lm_per_sample: a Hugging Face causal LM's next-token loss on dict batches",
                   key={"train": "train.loss", "run": "train.loss", "connect": "train.loss", "compare": "compare.losses",
                        "surface": "surface.losses", "check": "surface.losses", "hessian": "surface.losses", "sharpness": "surface.losses", "animate": "surface.losses"}),
    "--device": Flag("cpu, cuda or cuda:N",
                     key={"train": "train.device", "run": ("train.device", "surface.device"),
                          "compare": ("train.device", "surface.device"), "surface": "surface.device", "check": "surface.device",
                          "hessian": "surface.device", "sharpness": "surface.device", "animate": "surface.device", "connect": "connect.device"}),
    "--set": Flag("override any config value (TOML syntax for the value); repeatable", action="append",
                  metavar="SECTION.KEY=VALUE"),
    "--unsafe-load": Flag("allow checkpoints that need arbitrary code to unpickle (only for files you trust)",
                          action="switch"),
    "--prefix": Flag("read only the checkpoint tensors whose names start with PREFIX, stripped (e.g. model. of a "
                     "Lightning module; default: the one prefix that fits the model)"),
    # --- where results go ---
    "--out": Flag("where the results go", type=Path),
    "--overwrite": Flag("replace results made with other settings instead of refusing (otherwise re-running resumes)",
                        action="switch"),
    # --- training ---
    "--epochs": Flag("epochs of training (connect: of curve training)",
                     type=int, key={"train": "train.epochs", "compare": "train.epochs", "connect": "connect.epochs"}),
    "--lr": Flag("learning rate (connect: of curve training)", type=float,
                 key={"train": "train.lr", "connect": "connect.lr"}),
    "--optimizer": Flag("optimizer of training", choices=("sgd", "adam", "adamw"), key={"train": "train.optimizer"}),
    "--batch-size": Flag("samples per batch: per training step (train); per forward pass or HVP (surface, hessian; "
                         "0 = automatic, the values do not change)", type=int,
                         key={"train": "train.batch_size", "surface": "surface.batch_size", "check": "surface.batch_size", "hessian": "surface.batch_size",
                              "sharpness": "surface.batch_size"}),
    "--seed": Flag("seed of the command's random draws (recorded): training weights and data order (train, compare), "
                   "random directions (surface), Lanczos start vectors and trace probes (hessian), curve training, "
                   "BN batches and alignment order (connect)", type=int, key=_BY_COMMAND_SEED),
    # --- the data a point is evaluated on ---
    "--split": Flag("data split(s) evaluated: train, test or both (hessian, sharpness: one report per split)",
                    choices=("train", "test", "both"),
                    key={"surface": "surface.split", "check": "surface.split", "hessian": "surface.split", "sharpness": "surface.split", "connect": "connect.split"}),
    "--max-samples": Flag("use the first N samples of each split (recorded; 0 = all)", type=int,
                          key={"surface": "surface.max_samples", "check": "surface.max_samples", "hessian": "surface.max_samples", "sharpness": "surface.max_samples",
                               "connect": "connect.max_samples"}),
    "--memory-budget": Flag("user data (--data file.py:fn giving a DataLoader, Dataset or iterable) larger than this "
                            "are streamed batch by batch instead of held in memory (default 2 GiB)", type=int,
                            metavar="BYTES", key="surface.memory_budget"),
    "--bn": Flag("BatchNorm statistics: keep the checkpoint's (surface's default, the paper's) or recompute them at "
                 "every point (connect's default; a model without BatchNorm keeps)", choices=("keep", "recompute"),
                 key={"surface": "surface.bn", "check": "surface.bn", "connect": "connect.bn"}, renamed=_BN_RENAMED),
    # --- directions and grid ---
    "--x": Flag("MIN:MAX:NUM along the first direction (default -1:1:51, config.LINE_GRID; animate: see its help)",
                key={"surface": "surface.x", "check": "surface.x"}),
    "--y": Flag("MIN:MAX:NUM along the second direction (2D when given; run and compare use -1:1:31, "
                "config.PLANE_GRID)", key={"surface": "surface.y", "check": "surface.y"}),
    "--params": Flag("only the tensors whose names match move (surface) or span the Hessian (hessian), e.g. "
                     "'layer3.*'; the rest stay at the checkpoint", metavar="GLOB[,GLOB]", key="surface.params"),
    "--dir-type": Flag("parameters (weights, default) or every float state-dict entry (states)",
                       choices=("weights", "states"), key="directions.dir_type"),
    "--norm": Flag("direction normalization (filter: the paper's)", choices=("filter", "layer", "weight", "none"),
                   key="directions.norm"),
    "--ignore": Flag("tensors with ndim <= 1: biasbn (default) zero (and out of a PCA or Hessian), none (the paper) "
                     "the tensor itself, random1d a random direction rescaled to the tensor's norm",
                     choices=("biasbn", "none", "random1d"), key="directions.ignore"),
    "--directions": Flag("use a saved direction file as is (ours, a trajectory, or the reference layout)", type=Path),
    "--target": Flag("checkpoint B: x = θ_B − θ_A (linear interpolation)", type=Path),
    "--target2": Flag("checkpoint C: y = θ_C − θ_A (plane through three models)", type=Path),
    "--hessian-directions": Flag("x (and y) = the top Hessian eigenvectors at the checkpoint (unit norm; [hessian] "
                                 "tol, max_iter, seed)", action="switch"),
    "--tolerance": Flag("progressive surface: read each point's samples (one seeded random order) until its standard error is "
                        "at most T, in the loss's units (0.01) or a percent of the contour step (2%%); default exact",
                        key="surface.tolerance", metavar="T"),
    "--refine": Flag("with --tolerance: compute a finer level's point only where the coarser cells straddle a contour or "
                     "interpolate worse than T; the rest is interpolated and marked", action="switch",
                     key="surface.refine"),
    "--metric": Flag("what is computed at each point: loss (default), or eig_ratio: Hessian λmax, λmin and "
                     "|λmin/λmax| (datasets <split>_max_eig, _min_eig, _eig_ratio, _eig_converged; settings in "
                     "[hessian] map_tol, map_max_iter)", choices=("loss", "eig_ratio"), key={"surface": "surface.metric"}),
    "--points-per-call": Flag("grid points per vectorized call (0 = choose by timing)", type=int,
                              key="surface.points_per_call"),
    "--max-points": Flag("refuse larger grids (default 250000)", type=int),
    "--preview": Flag("redraw the figure into DIR (PNG) at every flush, to watch the coarse-to-fine grid fill in",
                      type=Path, metavar="DIR"),
    # --- trajectory ---
    "--include-steps": Flag("with a run folder: the step checkpoints too", action="switch"),
    "--center": Flag("mean-centre the differences to the final point before the PCA (default: the paper's code fits "
                     "sklearn's PCA, which centres)", action="switch"),
    "--uncentered": Flag("PCA of the raw differences to the final point (not mean-centred)", action="switch"),
    # --- hessian ---
    "--top-k": Flag("number of largest eigenvalues (default 5)", type=int, key="hessian.top_k"),
    "--tol": Flag("Lanczos residual tolerance (default 1e-6)", type=float, key="hessian.tol"),
    "--max-iter": Flag("HVPs per Lanczos run (default 100)", type=int, key="hessian.max_iter"),
    "--trace-samples": Flag("Hutchinson probes (default 100)", type=int, key="hessian.trace_samples"),
    "--operator": Flag("the curvature matrix: hessian (default), ggn (generalized Gauss-Newton JᵀH_outJ) or fisher "
                       "(empirical Fisher); surface: whose top eigenvectors --hessian-directions takes",
                       choices=("hessian", "ggn", "fisher"), key="hessian.operator"),
    "--trace": Flag("trace estimator with --trace-samples products (default hutch++), with its standard error",
                    choices=("hutch++", "hutchinson"), key="hessian.trace"),
    "--density": Flag("spectral density by SLQ: JSON \"density\" {nodes, weights, runs, steps} and OUT.density.png",
                      action="switch", key="hessian.density"),
    "--density-runs": Flag("SLQ Lanczos runs (default 10)", type=int, key="hessian.density_runs"),
    "--density-steps": Flag("SLQ Lanczos steps per run (default 80)", type=int, key="hessian.density_steps"),
    "--products-per-call": Flag("trace probes and SLQ runs whose Hessian products share one batched backward through "
                                "the kept graph (default 1; pays where one product leaves the device idle)", type=int,
                                key="hessian.products_per_call"),
    "--blocks": Flag("also per diagonal block: top eigenvalue, trace (and density): a table, JSON \"blocks\" and "
                     "OUT.blocks.png", metavar="module|layer|GLOB[,GLOB]", key="hessian.blocks"),
    # --- sharpness ---
    "--measures": Flag("worst_l2, worst_linf, adaptive_worst_l2, adaptive_worst_linf, average, adaptive_average, "
                       "fisher_rao, curvature (default worst_l2,adaptive_worst_l2,average,fisher_rao,curvature)",
                       metavar="NAME[,NAME]", key="sharpness.measures"),
    "--rho": Flag("radii of the worst/average measures (default 0.05)", metavar="R[,R]"),
    "--steps": Flag("projected gradient ascent steps (default 20)", type=int, key="sharpness.steps"),
    "--step": Flag("ascent step length in units of rho (default 1)", type=float, key="sharpness.step"),
    "--samples": Flag("Gaussian draws of the average-case measures (default 20)", type=int, key="sharpness.samples"),
    "--m": Flag("m-sharpness: measure every batch of M samples alone and average (default 0: all data)", type=int,
                key="sharpness.m"),
    "--sharpness": Flag("also these sharpness measures of each final model as columns (radius and steps from "
                        "[sharpness]; see landscape sharpness)", metavar="MEASURE[,MEASURE]", key="compare.sharpness"),
    "--save-directions": Flag("also write the top two eigenvectors as a direction file (landscape surface "
                              "--directions)", type=Path, metavar="FILE.h5"),
    # --- connect ---
    "--curve": Flag("curve to train between A and B (default bezier)", choices=("line", "bezier", "polychain"),
                    key="connect.curve"),
    "--bends": Flag("bends of the curve (default 1: a quadratic Bezier)", type=int, key="connect.bends"),
    "--align": Flag("weights: also the line to B permuted to match A", choices=("none", "weights"), key="connect.align"),
    "--points": Flag("t values over [0, 1] (default 61; plus connect.margin beyond)", type=int, key="connect.points"),
    # --- figures ---
    "--surface": Flag("check this surface file (else the surface the flags describe is computed in memory)", type=Path,
                      metavar="S.h5"),
    "--trajectory": Flag("trajectory file: the path over its PCA-plane surface", type=Path, metavar="FILE.h5"),
    "--kind": Flag("kind(s) of figure, comma-separated: plot contour,filled,heatmap,surface3d,line,trajectory,panels "
                   "(default: every kind of [plot] kinds that applies); animate one of path (default), surface3d, "
                   "evolution", key={"plot": "plot.kinds"}),
    "--format": Flag("file format(s), comma-separated: plot pdf,png,svg,html (default pdf,png; html: one "
                     "self-contained interactive page per 2D surface, needs the interactive extra); export one of "
                     "vtp (ParaView), csv (long format), npz (NumPy)", key={"plot": "plot.formats"}),
    "--column": Flag("a dataset (column) of the surface file: train_loss (default), test_loss, train_acc, ... "
                     "(export csv/npz: only this one; default all)", key={"plot": "plot.metric"}),
    "--levels": Flag("about this many contour levels", type=int, key="plot.levels"),
    "--vmin": Flag("lower end of the colour scale", type=float, key="plot.vmin"),
    "--vmax": Flag("upper end of the colour scale (3D: heights clipped there)", type=float, key="plot.vmax"),
    "--zmax": Flag("vtp: clip heights at this value (in the column's units)", type=float),
    "--log": Flag("log colour scale and log10 heights (default: when a positive loss spans more than a decade; "
                  "export: off)", action="bool", key={"plot": "plot.log"}),
    "--cmap": Flag("matplotlib colormap name (default viridis)", key="plot.cmap"),
    "--width": Flag("printed width: one journal column (3.4 in) or two (7 in)", choices=("single", "double"),
                    key="plot.width"),
    "--dpi": Flag("resolution of raster formats and frames (default: plot 200, animate 100)", type=int,
                  key={"plot": "plot.dpi"}),
    "--title": Flag("a figure title (default on)", action="bool", key="plot.title"),
    "--fps": Flag("frames per second (default 8)", type=float),
    "--frames": Flag("number of frames (default: 48 for a path; one per checkpoint for an evolution)", type=int),
    "--turn": Flag("surface3d: degrees the camera turns (default 90)", type=float),
}

# Flags renamed on some commands, still read there (with one line on stderr) for one release: (command, old) → new.
RENAMED_FLAGS: dict[tuple[str, str], str] = {
    ("plot", "--metric"): "--column", ("export", "--metric"): "--column", ("animate", "--metric"): "--column",
    ("compare", "--losses"): "--loss",
}

# The six flags of every command that evaluates a model; a checkpoint reader also takes --unsafe-load.
EVALUATES = ("--model", "--data", "--loss", "--device", "--config", "--set")


def dest(name: str) -> str:
    return "overrides" if name == "--set" else name.removeprefix("--").replace("-", "_")


def deprecation(old: str, new: str) -> None:
    """The one line that says an old spelling was read as the new one."""
    print(f"landscape: {old} is deprecated; use {new}", file=sys.stderr)


def _value_type(name: str, flag: Flag) -> Any:
    if not flag.renamed:
        return flag.type

    def read(text: str) -> Any:
        if text in flag.renamed:
            deprecation(f"{name} {text}", f"{name} {flag.renamed[text]}")
            return flag.renamed[text]
        return flag.type(text)

    read.__name__ = flag.type.__name__  # argparse names the type in its error messages
    return read


class _Renamed(argparse.Action):
    """A flag renamed on this command: the value goes to the new flag's dest, after one line on stderr."""

    def __init__(self, option_strings: Sequence[str], dest: str, new: str = "", command: str = "", **kwargs: Any) -> None:
        self.new, self.command = new, command
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        deprecation(f"{self.command} {option_string}", self.new)
        setattr(namespace, self.dest, values)


def add_flags(parser: argparse.ArgumentParser, command: str, names: Sequence[str], *, required: Sequence[str] = (),
              details: Mapping[str, str] | None = None) -> None:
    """Add the flags ``names`` of :data:`FLAGS` to ``command``'s ``parser`` (``details``: what a flag
    means for this command, appended to the shared help)."""
    for name in names:
        flag = FLAGS[name]
        text = flag.help + (f"; here: {details[name]}" if details and name in details else "")
        kwargs: dict[str, Any] = {"dest": dest(name), "help": text}
        if flag.action == "switch":
            kwargs.update(action="store_true", default=None)
        elif flag.action == "bool":
            kwargs.update(action=argparse.BooleanOptionalAction, default=None)
        elif flag.action == "append":
            kwargs.update(action="append", default=[], metavar=flag.metavar)
        else:
            kwargs.update(type=_value_type(name, flag), choices=flag.choices, metavar=flag.metavar,
                          required=name in required)
        parser.add_argument(name, **kwargs)
    for (cmd, old), new in RENAMED_FLAGS.items():
        if cmd == command and new in names:
            parser.add_argument(old, dest=dest(new), action=_Renamed, new=new, command=command, help=argparse.SUPPRESS)


def _is_list(key: str) -> bool:
    """Whether the config field ``section.name`` holds a list (a flag's value is then comma-separated)."""
    section, name = key.split(".")
    hints = typing.get_type_hints(Config)
    field_type = typing.get_type_hints(hints[section])[name]
    return typing.get_origin(field_type) is tuple and dataclasses.is_dataclass(hints[section])


def config_overrides(args: argparse.Namespace, command: str, names: Sequence[str]) -> list[str]:
    """``section.key=value`` for every flag of ``names`` given on the command line that has a config key
    on ``command``, then the ``--set`` overrides (which win)."""
    out: list[str] = []
    for name in names:
        value = getattr(args, dest(name), None)
        if name == "--set" or value is None:
            continue
        for key in FLAGS[name].key_for(command):
            if _is_list(key) and isinstance(value, str):
                out.append(f"{key}={json.dumps([v.strip() for v in value.split(',') if v.strip()])}")
            else:
                out.append(f"{key}={json.dumps(value.as_posix() if isinstance(value, Path) else value)}")
    return out + list(getattr(args, "overrides", []))
