"""Optional frameworks in tests: skipped locally when missing, a failure under CI (CI set).

.ci/run installs the extras these tests need (``lightning``, ``tensorboard``, ``wandb``, ``notebook``),
so under CI a missing one means the suite did not test what it claims.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

import pytest


def need(module: str, extra: str) -> ModuleType:
    """``module`` imported; without it skip (locally) or fail (under CI), naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        message = f"{module} is missing (pip install the {extra!r} extra)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}: CI must run these tests (.ci/run installs it)")
        pytest.skip(message)
