"""Build model and data from a config or from a checkpoint (the glue every command shares).

Here a checkpoint's saved config dict becomes a :class:`Config`, and a config is split into what
the zoo needs (its data and model sections) and what the engine needs (the losses).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from landscape.config import Config, config_from_dict
from landscape.engine.losses import MetricSet
from landscape.engine.outputloss import is_batch_loss
from landscape.errors import CheckpointError, ConfigError, ModelError
from landscape.io.checkpoint import Checkpoint, load_into
from landscape.zoo.data import DataBundle, TensorSplit, load_data
from landscape.zoo.hf import HF_MODEL
from landscape.zoo.models import build_model, build_unshaped_model
from landscape.zoo.modules import floating_dtype
from landscape.zoo.userdata import UserBatches, UserStreams, user_data


@dataclass
class Experiment:
    """A config, its data and its model. ``batches``: the user's data when ``data`` does not hold
    them as tensors — streamed (inputs, targets) batches (``data`` then holds a first batch per
    split, for shapes and task) or batches of another shape (``data`` then holds no samples)."""

    config: Config
    data: DataBundle
    model: nn.Module
    batches: UserStreams | UserBatches | None = None

    def metrics(self, losses: tuple[str, ...] | list[str] = ()) -> MetricSet:
        return MetricSet(list(losses) or [self.config.train.loss], self.data.task, self.data.num_classes)


def checkpoint_config(ckpt: Checkpoint) -> Config | None:
    """The config a checkpoint of ours was trained with; None for a foreign one (or one saved by a Recorder)."""
    if ckpt.config is None:
        return None
    try:
        return config_from_dict(ckpt.config)
    except (ConfigError, KeyError) as err:
        raise CheckpointError(f"checkpoint {str(ckpt.path)!r} has an unreadable config: {err}") from err


def inputs_in(data: DataBundle, dtype: torch.dtype | None) -> DataBundle:
    """The data with floating inputs cast once to ``dtype``, the model's (a bfloat16 or float64 model
    on float32 data); integer inputs (token ids) and the targets stay as they are."""
    def cast(s: TensorSplit) -> TensorSplit:
        ok = dtype is None or not s.inputs.is_floating_point() or s.inputs.dtype == dtype
        return s if ok else TensorSplit(s.inputs.to(dtype), s.targets)
    return dataclasses.replace(data, train=cast(data.train), test=cast(data.test))


def checkpoint_model(ckpt: Checkpoint, config: Config) -> nn.Module | None:
    """The model a Hugging Face folder's config.json describes, when the config names model ``hf``
    (the default for such a folder); None for any other model name."""
    if config.model.name != HF_MODEL:
        return None
    if ckpt.extra.get("kind") != "huggingface":
        raise ModelError(f"model {HF_MODEL!r} is built from a Hugging Face folder's config.json, and {str(ckpt.path)!r} "
                         "is not one: name the model with --model")
    from landscape.zoo.hf import model_from_hf_config

    return model_from_hf_config(ckpt.extra["hf_config"], str(ckpt.path))


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda`` or ``cuda:N``; a missing GPU is a clear error, not a crash later."""
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ConfigError(f"device {name!r} is not a valid torch device (use cpu, cuda or cuda:N)") from err
    if device.type not in ("cpu", "cuda"):  # meta, mps, xpu, ...: tensors without data or an untested backend
        raise ConfigError(f"device {name!r} is not supported; use cpu, cuda or cuda:N")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"device {name!r} was asked for but CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"device {name!r}: only {torch.cuda.device_count()} CUDA device(s) present")
    return device


def build_experiment(config: Config, data: DataBundle | None = None, losses: Sequence[str] | None = None,
                     model: nn.Module | None = None) -> Experiment:
    """Load the data and build a freshly initialised model (seeded by ``train.seed``), or take ``model``.

    ``losses`` are the losses the command will use, checked against the task before anything
    long starts: None means the training loss (``train``), ``()`` none (a command that evaluates
    no loss). A command that evaluates a loss the user named must not be refused because the
    default training loss does not fit the task.
    """
    data = data if data is not None else load_data(config.data)
    torch.manual_seed(config.train.seed)
    if model is None:
        model = build_model(config.model.name, data.input_shape, data.output_shape, dict(config.model.options))
    data = inputs_in(data, floating_dtype(model))
    wanted = [n for n in ([config.train.loss] if losses is None else losses) if not is_batch_loss(n)]  # file.py:fn, causal_lm: a batch loss
    if wanted:
        MetricSet(wanted, data.task, data.num_classes)
    return Experiment(config, data, model)


def experiment_from_checkpoint(ckpt: Checkpoint, config: Config | None = None, data: DataBundle | None = None) -> Experiment:
    """Rebuild the experiment a checkpoint came from and load its weights.

    ``config`` replaces the checkpoint's own (foreign checkpoints need one: they do not say which
    model and data they belong to). ``data``: the data already loaded (else loaded from the config).
    """
    config = config if config is not None else checkpoint_config(ckpt)
    if config is None:
        raise CheckpointError(
            f"{str(ckpt.path)!r} is not a landscape checkpoint, so it does not say what it is: "
            "name its model and data with --model/--data/--loss or a config file"
        )
    # surface, hessian and compare evaluate surface.losses when the user named them
    exp = build_experiment(config, data, losses=list(config.surface.losses) or [config.train.loss],
                           model=checkpoint_model(ckpt, config))
    load_into(exp.model, ckpt.state_dict, what=f"model {config.model.name!r}")
    return exp


def experiment_with_user_data(ckpt: Checkpoint, config: Config | None = None) -> Experiment:
    """:func:`experiment_from_checkpoint` with the user's data (``data.name`` a ``file.py:fn``) read by
    :func:`~landscape.zoo.userdata.user_data`: streamed when over ``surface.memory_budget``, and
    batches that are not (inputs, targets) tuples (dicts) kept as they are, for a batch loss."""
    given = config or checkpoint_config(ckpt)
    loaded = user_data(given.data, given.surface.memory_budget) if given is not None else None
    if isinstance(loaded, UserBatches):
        assert given is not None
        return _batches_experiment(ckpt, given, loaded)
    if isinstance(loaded, UserStreams):
        exp = experiment_from_checkpoint(ckpt, config, loaded.bundle)
        exp.batches = loaded
        return exp
    return experiment_from_checkpoint(ckpt, config, loaded)


def _batches_experiment(ckpt: Checkpoint, config: Config, batches: UserBatches) -> Experiment:
    """The model of a checkpoint whose data are batches of another shape than (inputs, targets):
    built without shapes (:func:`~landscape.zoo.models.build_unshaped_model`), for a batch loss only."""
    losses = list(config.surface.losses) or [config.train.loss]
    named = [n for n in losses if not is_batch_loss(n)]
    if named:
        raise ConfigError(f"loss {named[0]!r} compares a model output with targets, which the {batches.kind} batches of "
                          f"{batches.name!r} do not hold apart: pass a batch loss --loss file.py:fn, fn(model, batch) -> loss (or causal_lm)")
    torch.manual_seed(config.train.seed)
    model = checkpoint_model(ckpt, config) or build_unshaped_model(config.model.name, dict(config.model.options))
    load_into(model, ckpt.state_dict, what=f"model {config.model.name!r}")
    empty = TensorSplit(torch.empty(0), torch.empty(0))  # no tensors: the batches are in ``batches``
    return Experiment(config, DataBundle(batches.name, empty, empty, "regression", 0), model, batches)
