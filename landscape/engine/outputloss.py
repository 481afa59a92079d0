"""Batch losses given in two halves, the model's output and a loss of that output (issue 23).

A batch loss ``fn(model, batch)`` such as ``m(**b).loss`` hides the model's output, and the
generalized Gauss-Newton matrix ``Jᵀ H_out J`` needs it: J is the Jacobian of the output, H_out the
Hessian of the loss in the output. :class:`OutputLoss` keeps the halves apart,
``output(model, batch) -> Tensor`` (e.g. the logits) and ``loss(output, batch) -> Tensor`` (per-sample
values ``(n,)`` or a batch mean), and called as ``fn(model, batch)`` it is their composition, so it is a
batch loss wherever one is taken (surfaces, Hessian, Fisher, sharpness, the CLI's ``--loss``).

:func:`causal_lm_loss` is the ready one for Hugging Face causal language models: the shifted
next-token cross-entropy of ``logits`` against ``labels`` with ``ignore_index = -100``, equal to the
model's own ``m(**b).loss``. ``--loss causal_lm`` (and ``causal_lm_per_sample``) names it on the CLI.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from landscape.errors import ConfigError, ModelError
from landscape.zoo.registry import Registry, is_user_spec, load_callable

IGNORE_INDEX = -100  # the label Hugging Face models skip in their loss (padding, prompt tokens)


@dataclass(frozen=True)
class OutputLoss:
    """A batch loss as ``loss(output(model, batch), batch)``, with the model's output kept apart.

    Called as ``fn(model, batch)`` it is an ordinary batch loss (``landscape.surface``,
    ``landscape.hessian``, ``landscape.sharpness``, ``--loss file.py:name``); what it adds is the
    output, so ``operator="ggn"`` can form the Gauss-Newton matrix ``Jᵀ H_out J`` of any batch loss.

    Args:
        output: ``output(model, batch) -> Tensor``, the network's output (e.g. ``m(**b).logits``);
            the Gauss-Newton matrix differentiates it with respect to the parameters.
        loss: ``loss(output, batch) -> Tensor``, per-sample values ``(n,)`` (or ``(n, ...)``, averaged
            over the rest) or a batch mean (0-d, weighted by the batch's n samples); it must be twice
            differentiable in ``output``.
        name: what reports and figures call the loss.
    """

    output: Callable[[nn.Module, Any], Tensor]
    loss: Callable[[Tensor, Any], Tensor]
    name: str = "output_loss"

    def __post_init__(self) -> None:
        for what in ("output", "loss"):
            if not callable(getattr(self, what)):
                raise ConfigError(f"OutputLoss {what}= must be callable, got {type(getattr(self, what)).__name__}")

    def __call__(self, model: nn.Module, batch: Any) -> Tensor:
        return self.loss(self.output_of(model, batch), batch)

    def output_of(self, model: nn.Module, batch: Any) -> Tensor:
        """The model's output on ``batch``, checked to be a tensor."""
        out = self.output(model, batch)
        if not isinstance(out, Tensor):
            raise ModelError(f"OutputLoss {self.name!r}: output(model, batch) returned a {type(out).__name__}, not a tensor")
        return out

    @property
    def __name__(self) -> str:  # reports label a callable loss by its __name__
        return self.name


class OutputModel(nn.Module):
    """The output half of an :class:`OutputLoss` as a module: ``forward(batch) = output(inner, batch)``.

    Its parameters are the model's, named ``inner.<name>`` as in
    :class:`~landscape.engine.batchloss.BatchLossModel`, so one dict of tensors serves both.
    """

    def __init__(self, model: nn.Module, fn: OutputLoss) -> None:
        super().__init__()
        self.inner = model
        self.fn = fn

    def forward(self, batch: Any) -> Tensor:
        return self.fn.output_of(self.inner, batch)


# --- Hugging Face causal language models -------------------------------------------------------------


def _lm_batch(batch: Any) -> Mapping[str, Any]:
    if not isinstance(batch, Mapping) or "labels" not in batch:
        keys = ", ".join(map(str, batch)) if isinstance(batch, Mapping) else type(batch).__name__
        raise ModelError(f"the causal LM loss needs dict batches with 'labels' (and the model's inputs); got {keys}")
    return batch


def lm_logits(model: nn.Module, batch: Any) -> Tensor:
    """``model(**inputs).logits`` (batch, tokens, vocabulary), the labels left out of the call."""
    out = model(**{k: v for k, v in _lm_batch(batch).items() if k != "labels"})
    logits = getattr(out, "logits", None)
    if logits is None and isinstance(out, Mapping):
        logits = out.get("logits")
    if not isinstance(logits, Tensor):
        raise ModelError(f"the causal LM loss reads the model's logits; its output ({type(out).__name__}) has none")
    return logits


def _token_losses(logits: Tensor, batch: Any) -> tuple[Tensor, Tensor]:
    """Cross-entropy of each position's logits against the next label, and which of them count: (n, T-1) each."""
    labels = _lm_batch(batch)["labels"]
    if logits.ndim != 3 or labels.shape != logits.shape[:2]:
        raise ModelError(f"the causal LM loss needs logits (batch, tokens, vocabulary) and labels (batch, tokens); "
                         f"got {tuple(logits.shape)} and {tuple(labels.shape)}")
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()  # as transformers does: the softmax in float32
    shifted, target = logits[:, :-1], labels[:, 1:].to(logits.device)  # position t predicts token t + 1
    per_token = F.cross_entropy(shifted.reshape(-1, shifted.shape[-1]), target.reshape(-1), ignore_index=IGNORE_INDEX,
                                reduction="none").view(target.shape)
    return per_token, target != IGNORE_INDEX


def _lm_mean(logits: Tensor, batch: Any) -> Tensor:
    per_token, valid = _token_losses(logits, batch)
    return per_token.sum() / valid.sum()  # the mean over the batch's predicted tokens, as m(**b).loss


def _lm_rows(logits: Tensor, batch: Any) -> Tensor:
    per_token, valid = _token_losses(logits, batch)
    return per_token.sum(dim=1) / valid.sum(dim=1).clamp(min=1)  # each row's mean over its predicted tokens


def causal_lm_loss(per_sample: bool = False) -> OutputLoss:
    """The next-token cross-entropy of a Hugging Face causal LM as an :class:`OutputLoss`.

    The output is ``model(**inputs).logits`` (the batch's ``labels`` are not passed to the model); the
    loss compares the logits at position t with ``labels`` at t + 1, skipping labels ``-100``.

    Args:
        per_sample: False: the batch's mean over its predicted tokens, equal to the model's own
            ``m(**b).loss`` (a batch is then weighted by its rows, which equals weighting by tokens
            when every row predicts as many). True: each row's own mean, ``(n,)``, which the empirical
            Fisher and estimates to a tolerance need.
    """
    if per_sample:
        return OutputLoss(lm_logits, _lm_rows, "causal_lm_per_sample")
    return OutputLoss(lm_logits, _lm_mean, "causal_lm")


# --- names for the CLI's --loss ----------------------------------------------------------------------

BATCH_LOSSES: Registry[OutputLoss] = Registry("batch loss")
BATCH_LOSSES.add("causal_lm", causal_lm_loss())
BATCH_LOSSES.add("causal_lm_per_sample", causal_lm_loss(per_sample=True))


def is_batch_loss(name: str) -> bool:
    """True for a loss of (model, batch): a user's ``file.py:fn`` / ``pkg.mod:fn`` or a name of :data:`BATCH_LOSSES`."""
    return is_user_spec(name) or name in BATCH_LOSSES


def load_batch_loss(name: str) -> Callable[[nn.Module, Any], Tensor]:
    """The batch loss ``name`` (see :func:`is_batch_loss`) as a callable ``fn(model, batch)``."""
    if name in BATCH_LOSSES:
        return BATCH_LOSSES.get(name)
    return load_callable(name)  # type: ignore[return-value]
