"""``landscape.load_checkpoint``: from a checkpoint file back to a model and its data in a notebook.

The file is read by :func:`landscape.io.checkpoint.load_checkpoint` (``weights_only=True`` unless
``unsafe``): a ``landscape train`` checkpoint rebuilds its model and data from the config saved in
it, as ``landscape surface`` does; a foreign file (a bare state dict, ``{"model": ...}``,
``{"state_dict": ...}``) needs the architecture, as a module or a factory.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from landscape.config import config_to_dict
from landscape.errors import CheckpointError, ModelError
from landscape.io import checkpoint as files
from landscape.workflows.experiment import checkpoint_config, experiment_with_user_data
from landscape.zoo.data import DataBundle, load_data
from landscape.zoo.userdata import UserBatches, UserStreams, user_data

ModelSpec = nn.Module | Callable[[], nn.Module] | None


@dataclass(frozen=True)
class LoadedCheckpoint:
    """A checkpoint back in memory: ``model`` (weights loaded, eval mode) and what the file knows.

    ``data``: the data its config names, as :func:`landscape.surface` takes them — ``((x_train,
    y_train), (x_test, y_test))`` tensors, or ``{"train": ..., "test": ...}`` batches for data read
    batch by batch — or None for a foreign file; ``config``: the saved config as a plain dict (None
    for a foreign file); ``epoch``, ``step``: where training was (None where the file does not say);
    ``metrics``: what training recorded at that point (``train_loss``, ...); ``path``: the file.
    """

    model: nn.Module
    data: Any
    config: dict[str, Any] | None
    epoch: int | None
    step: int | None
    path: Path
    metrics: dict[str, float] = field(default_factory=dict)


def load_checkpoint(path: str | Path, model: ModelSpec = None, *, unsafe: bool = False) -> LoadedCheckpoint:
    """The model of a checkpoint file with its weights loaded, and its data.

    Args:
        path: a checkpoint written by ``landscape train`` or :class:`landscape.Recorder`, or a foreign
            file: a bare state dict, ``{"model": ...}`` or ``{"state_dict": ...}`` (``module.``
            prefixes of DataParallel/DDP stripped).
        model: None to build the architecture from the checkpoint's own config; else an
            ``nn.Module`` of the architecture (copied: the one passed is not changed) or a factory
            called with no arguments that returns one. Weights load strictly: a missing,
            unexpected or misshaped tensor is an error naming it.
        unsafe: load with ``weights_only=False`` (only files you trust: they can run code).

    Returns:
        :class:`LoadedCheckpoint`: ``.model``, ``.data``, ``.config``, ``.epoch``, ``.step``.
    """
    ckpt = files.load_checkpoint(path, unsafe=unsafe)
    config = checkpoint_config(ckpt)
    if model is None:
        if config is None:
            raise CheckpointError(f"{str(ckpt.path)!r} does not say which model it holds (no landscape config): "
                                  "pass model=an nn.Module of the architecture or a factory returning one")
        exp = experiment_with_user_data(ckpt, config)
        net, data = exp.model, _api_data(exp.batches or exp.data)
    else:
        net = _instance(model)
        files.load_into(net, ckpt.state_dict, what=f"the {type(net).__name__} passed as model")
        # the data the config names, read as ``landscape surface`` reads them
        data = None if config is None else _api_data(user_data(config.data, config.surface.memory_budget)
                                                     or load_data(config.data))
    return LoadedCheckpoint(net.eval(), data, config_to_dict(config) if config is not None else None, ckpt.epoch,
                            ckpt.step, ckpt.path, dict(ckpt.metrics))


def _instance(model: nn.Module | Callable[[], nn.Module]) -> nn.Module:
    if isinstance(model, nn.Module):
        return copy.deepcopy(model)
    if not callable(model):
        raise ModelError(f"model must be an nn.Module or a factory returning one, got {type(model).__name__}")
    built = model()
    if not isinstance(built, nn.Module):
        raise ModelError(f"the model factory returned a {type(built).__name__}, not an nn.Module")
    return built


def _api_data(data: DataBundle | UserStreams | UserBatches) -> Any:
    """Data as the API takes them: ``(train, test)`` tensor pairs, or each split's batches."""
    if isinstance(data, UserStreams):
        return dict(data.splits)
    if isinstance(data, UserBatches):
        return dict(data.sources)
    return (data.train.inputs, data.train.targets), (data.test.inputs, data.test.targets)
