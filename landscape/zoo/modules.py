"""What every capability asks of a user's module as it comes in: the plain module and its dtype.

``torch.compile(net)`` returns an ``OptimizedModule`` around ``net`` (its names carry
``_orig_mod.``, and its compiled graph refuses the double backward of a Hessian-vector product
and the in-place writes of a grid point); ``DataParallel``/``DistributedDataParallel`` wrap
theirs in ``.module``. Each door (the API's functions, the CLI's model factories) calls
:func:`plain_module` once, so the engines always see the module that holds the parameters.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn

_WRAPPERS = {"OptimizedModule": "_orig_mod", "DataParallel": "module", "DistributedDataParallel": "module"}


def plain_module(model: nn.Module) -> nn.Module:
    """``model`` without its ``torch.compile`` / ``DataParallel`` / DDP wrappers (the same parameters)."""
    while (attr := _WRAPPERS.get(type(model).__name__)) is not None and isinstance(inner := getattr(model, attr, None), nn.Module):
        model = inner
    return model


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode and restore each module's own mode afterwards (also on errors)."""
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        yield model
    finally:
        for m, training in modes:
            m.training = training


def floating_dtype(model: nn.Module) -> torch.dtype | None:
    """The one floating dtype of the model's parameters (bfloat16, float64, ...); None when they mix or have none."""
    dtypes = {p.dtype for p in model.parameters() if p.is_floating_point()}
    return dtypes.pop() if len(dtypes) == 1 else None


def double_backward_attention() -> contextlib.AbstractContextManager[None]:
    """Hessian-vector products differentiate twice; fused attention kernels (flash, memory-efficient)
    have no double backward on the CPU, so scaled-dot-product attention runs as plain math here."""
    try:
        from torch.nn.attention import SDPBackend, sdpa_kernel
    except ImportError:  # torch < 2.3: no kernel choice to make
        return contextlib.nullcontext()
    return sdpa_kernel(SDPBackend.MATH)
