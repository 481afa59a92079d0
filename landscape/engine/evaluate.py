"""Evaluation of a model on a split: every metric from one forward pass per batch."""

from __future__ import annotations

import torch
from torch import nn

from landscape.engine.losses import MetricSet
from landscape.zoo.data import TensorSplit
from landscape.zoo.modules import eval_mode as eval_mode  # re-exported: the curvature code takes it from here


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
