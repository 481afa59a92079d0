"""Evaluation of a model on a split: every metric from one forward pass per batch."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

from landscape.engine.losses import MetricSet
from landscape.zoo.data import TensorSplit


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode and restore each module's own mode afterwards."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training


def evaluate(model: nn.Module, split: TensorSplit, metrics: MetricSet, batch_size: int = 1024) -> dict[str, float]:
    """Mean of every metric over ``split`` (which must already be on the model's device)."""
    sums = torch.zeros(len(metrics.names), dtype=torch.float64, device=split.inputs.device)
    with eval_mode(model), torch.inference_mode():
        for start in range(0, len(split), batch_size):
            x = split.inputs[start : start + batch_size]
            y = split.targets[start : start + batch_size]
            out = model(x)
            if start == 0:
                metrics.check(out, y)
            sums += metrics.batch_sums(out, y)
    values = (sums / len(split)).tolist()
    return dict(zip(metrics.names, values, strict=True))
