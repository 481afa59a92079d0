"""Training with self-describing checkpoints, a run manifest, and exact resume.

The run folder's layout and manifest are :mod:`landscape.io.run_folder`'s. Whether a run is
finished "with the same settings" is decided once, by :func:`is_finished`: the status is
``finished``, the last epoch checkpoint is the asked epoch count, and no training setting differs
except those in :data:`IRRELEVANT`, which never change the weights.

The data order of epoch ``e`` is a permutation seeded by ``(seed, e)``, so a run stopped after
any epoch resumes from its last checkpoint and ends bit-for-bit where an uninterrupted run does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import torch

from landscape.config import Config, TrainConfig, config_from_dict, config_to_dict, save_config
from landscape.engine.connect import make_optimizer
from landscape.engine.evaluate import evaluate
from landscape.engine.losses import get_criterion
from landscape.engine.progress import bar
from landscape.errors import ConfigError, DataError, RunFolderError, TrainingDiverged
from landscape.io.checkpoint import load_checkpoint, load_into, save_checkpoint
from landscape.io.run_folder import RunFolder, diff_settings
from landscape.workflows.experiment import Experiment, build_experiment, resolve_device


@dataclass(frozen=True)
class RunResult:
    out_dir: Path
    manifest: dict[str, Any]

    @property
    def checkpoints(self) -> list[Path]:
        return [self.out_dir / c["file"] for c in self.manifest["checkpoints"]]

    @property
    def final(self) -> Path:
        return self.checkpoints[-1]


TRAINING_SECTIONS = ("data", "model", "train")  # all that a training run depends on
IRRELEVANT = ("train.device", "train.threads")  # may differ between a run and its reuse or resumption


def run_changes(manifest: Mapping[str, Any], config: Config, also_ignore: Sequence[str] = ()) -> list[str]:
    """Training settings that differ between the manifest's config and ``config`` (:func:`diff_settings`).

    Keys the saved config lacks (written by an older version, before the key existed) count as
    their defaults, so upgrading the tool does not make finished runs look different; a saved
    config this version cannot read is compared as it is.
    """
    saved = manifest.get("config", {})
    try:
        old: Mapping[str, Any] = config_to_dict(config_from_dict(saved))
    except ConfigError:
        old = saved
    new = config_to_dict(config)
    ignored = (*IRRELEVANT, *also_ignore)
    changes = diff_settings({k: old.get(k, {}) for k in TRAINING_SECTIONS}, {k: new[k] for k in TRAINING_SECTIONS})
    return [d for d in changes if not d.startswith(ignored)]


def is_finished(folder: RunFolder, config: Config) -> bool:
    """The run in ``folder`` is finished, with ``config.train.epochs`` epochs and the same training settings."""
    try:
        manifest = folder.manifest()
        epochs = [int(c["epoch"]) for c in manifest["checkpoints"] if c["kind"] == "epoch"] if manifest else []
    except (ConfigError, KeyError, TypeError, ValueError):
        return False  # the trainer says what is wrong with it
    return (manifest is not None and manifest.get("status") == "finished" and bool(epochs)
            and epochs[-1] == config.train.epochs and not run_changes(manifest, config))


def make_schedule(cfg: TrainConfig, opt: torch.optim.Optimizer) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-epoch learning-rate schedule."""
    if cfg.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.step_size, gamma=cfg.gamma)
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(cfg.epochs, 1))
    return torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)


def _epoch_metrics(exp: Experiment) -> dict[str, float]:
    """Train and test metrics; the data is already on the model's device."""
    metrics = exp.metrics()
    return {f"{split}_{k}": v for split in ("train", "test")
            for k, v in evaluate(exp.model, exp.data.split(split), metrics).items()}


class Trainer:
    """One training run in ``out_dir``; :meth:`run` starts it or resumes it."""

    def __init__(self, config: Config, out_dir: Path, overwrite: bool = False) -> None:
        self.config = config
        self.cfg = config.train
        self.out_dir = out_dir
        self.folder = RunFolder(out_dir)
        self.ckpt_dir = self.folder.checkpoint_dir
        self.overwrite = overwrite
        self.data_sha256 = ""  # of the run's data, recorded in every checkpoint

    def _load_manifest(self) -> dict[str, Any] | None:
        """The manifest to resume from; None for a fresh start; an error for a run with other settings."""
        manifest = self.folder.manifest()
        if manifest is None:
            return None
        # more epochs resume the run, unless the cosine schedule's T_max (= train.epochs) changes every LR
        resumable = () if self.cfg.schedule == "cosine" else ("train.epochs",)
        changes = run_changes(manifest, self.config, also_ignore=resumable)
        if changes and not self.overwrite:
            raise ConfigError(f"{self.out_dir} holds a run with other settings ({'; '.join(changes[:3])}); "
                              "use another --out or pass --overwrite")
        if not changes:
            done = max((int(c["epoch"]) for c in manifest.get("checkpoints", [])), default=0)
            if done > self.cfg.epochs and not self.overwrite:
                raise ConfigError(f"{self.out_dir} already holds {done} epochs, more than train.epochs = {self.cfg.epochs}; "
                                  "use another --out or pass --overwrite")
        return None if changes else manifest

    def run(self) -> RunResult:
        if self.cfg.threads > 0:
            torch.set_num_threads(self.cfg.threads)
        device = resolve_device(self.cfg.device)
        manifest = self._load_manifest()
        exp = build_experiment(self.config)  # fails early (unknown model, ...) before any folder is made
        try:
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise RunFolderError(f"cannot create the run folder {str(self.ckpt_dir)!r}: {err.strerror or err}") from err
        if manifest is None:  # a fresh start: stale checkpoints of an overwritten run must not linger
            for stale in self.ckpt_dir.glob("*.pt"):
                stale.unlink()
        self.data_sha256 = exp.data.fingerprint()  # before the splits move to the device
        model = exp.model.to(device)
        # both splits go to the device once; every epoch's training and evaluation reuse them
        exp.data = replace(exp.data, train=exp.data.train.to(device), test=exp.data.test.to(device))
        get_criterion(self.cfg.loss, exp.data.task)
        opt = make_optimizer(self.cfg, list(model.parameters()))
        sched = make_schedule(self.cfg, opt)
        start_epoch, step = 1, 0
        if manifest and manifest["checkpoints"]:
            last = [c for c in manifest["checkpoints"] if c["kind"] == "epoch"][-1]
            ckpt = load_checkpoint(self.out_dir / last["file"], map_location=device)
            if ckpt.extra.get("data_sha256", self.data_sha256) != self.data_sha256:
                raise DataError(f"the data differ from those the run in {self.out_dir} was trained on so far (same data "
                                "settings): a data function that is not deterministic, or files that changed; "
                                "use another --out or pass --overwrite")
            load_into(model, ckpt.state_dict, what=f"model {self.config.model.name!r}")
            if "optimizer" in ckpt.extra:
                opt.load_state_dict(ckpt.extra["optimizer"])
                sched.load_state_dict(ckpt.extra["scheduler"])
            start_epoch, step = int(last["epoch"]) + 1, int(last["step"])
            manifest["checkpoints"] = [c for c in manifest["checkpoints"] if c["step"] <= step]
        else:
            manifest = {"config": config_to_dict(self.config), "checkpoints": [], "status": "running"}
            self._save(exp, opt, sched, manifest, epoch=0, step=0)
        manifest["config"] = config_to_dict(self.config)
        save_config(self.config, self.out_dir / "config.toml")
        self._train_epochs(exp, opt, sched, manifest, start_epoch, step, device)
        manifest["status"] = "finished"
        self.folder.write_manifest(manifest)
        return RunResult(self.out_dir, manifest)

    def _save(self, exp: Experiment, opt: torch.optim.Optimizer, sched: Any, manifest: dict[str, Any],
              *, epoch: int, step: int, kind: str = "epoch") -> dict[str, float]:
        metrics = _epoch_metrics(exp)
        name = f"epoch_{epoch:03d}.pt" if kind == "epoch" else f"step_{step:07d}.pt"
        save_checkpoint(self.ckpt_dir / name, exp.model, config_to_dict(self.config), epoch=epoch, step=step, metrics=metrics,
                        input_shape=exp.data.input_shape, output_shape=exp.data.output_shape,
                        extra={"optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "kind": kind,
                               "data_sha256": self.data_sha256})
        manifest["checkpoints"].append({"file": f"checkpoints/{name}", "kind": kind, "epoch": epoch, "step": step, **metrics})
        self.folder.write_manifest(manifest)
        return metrics

    def _train_epochs(self, exp: Experiment, opt: torch.optim.Optimizer, sched: Any, manifest: dict[str, Any],
                      start_epoch: int, step: int, device: torch.device) -> None:
        cfg = self.cfg
        crit = get_criterion(cfg.loss, exp.data.task)
        train = exp.data.train
        n = len(train)
        steps_per_epoch = math.ceil(n / cfg.batch_size)
        model = exp.model
        with bar((cfg.epochs - start_epoch + 1) * steps_per_epoch, "train", unit="step") as pbar:
            for epoch in range(start_epoch, cfg.epochs + 1):
                order = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.seed * 100_003 + epoch)).to(device)
                model.train()
                for start in range(0, n, cfg.batch_size):
                    idx = order[start : start + cfg.batch_size]
                    loss = crit.fn(model(train.inputs[idx]), train.targets[idx], exp.data.num_classes).mean()
                    opt.zero_grad(set_to_none=True)
                    loss.backward()  # type: ignore[no-untyped-call]
                    opt.step()
                    step += 1
                    pbar.update(1)
                    if cfg.save_every_steps and step % cfg.save_every_steps == 0:
                        self._save(exp, opt, sched, manifest, epoch=epoch, step=step, kind="step")
                        model.train()
                sched.step()
                metrics = self._save(exp, opt, sched, manifest, epoch=epoch, step=step)
                if not math.isfinite(metrics["train_loss"]):
                    manifest["status"] = "diverged"
                    self.folder.write_manifest(manifest)
                    raise TrainingDiverged(f"training diverged at epoch {epoch} (train loss {metrics['train_loss']}); "
                                           "lower train.lr — checkpoints so far are kept")
                pbar.set_postfix(epoch=epoch, loss=f"{metrics['train_loss']:.4f}", test_acc=f"{metrics.get('test_acc', float('nan')):.3f}")


def train(config: Config, out_dir: str | Path, overwrite: bool = False) -> RunResult:
    """Train (or resume) the run described by ``config`` in ``out_dir``."""
    return Trainer(config, Path(out_dir), overwrite).run()
