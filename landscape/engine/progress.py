"""tqdm progress bars that stay quiet when stderr is not a terminal or when asked."""

from __future__ import annotations

import os
import sys
from typing import Any

from tqdm.auto import tqdm

_QUIET = False


def set_quiet(quiet: bool) -> None:
    global _QUIET
    _QUIET = quiet


def bar(total: int, desc: str, unit: str = "it", **kwargs: Any) -> tqdm:
    """A progress bar with rate and ETA; disabled when quiet, under CI, or without a TTY."""
    disable = _QUIET or not sys.stderr.isatty() or bool(os.environ.get("LANDSCAPE_QUIET"))
    return tqdm(total=total, desc=desc, unit=unit, disable=disable, dynamic_ncols=True, leave=False, **kwargs)
