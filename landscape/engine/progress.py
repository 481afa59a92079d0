"""tqdm progress bars that stay quiet when stderr is not a terminal or when asked; in a Jupyter
kernel with ``ipywidgets``, tqdm's notebook (widget) bar."""

from __future__ import annotations

import os
import sys
from typing import Any

from tqdm.std import tqdm

_QUIET = False


def set_quiet(quiet: bool) -> None:
    global _QUIET
    _QUIET = quiet


def _notebook_bar() -> type[tqdm] | None:
    """tqdm's widget bar when running in a Jupyter kernel that has ``ipywidgets``, else None.

    A kernel's stderr is no terminal, so the plain bar would stay off there. IPython is looked up
    only when something already imported it: no import is paid for, nor a warning shown, elsewhere.
    """
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    shell = get() if callable(get) else None
    if shell is None or "IPKernelApp" not in getattr(shell, "config", {}):
        return None
    try:
        import ipywidgets  # noqa: F401  (tqdm.notebook draws with it)
        from tqdm.notebook import tqdm as notebook_tqdm
    except ImportError:
        return None
    return notebook_tqdm  # type: ignore[no-any-return]


def bar(total: int, desc: str, unit: str = "it", **kwargs: Any) -> tqdm:
    """A progress bar with rate and ETA; disabled when quiet, under CI, or without a TTY (a widget
    bar in a Jupyter kernel with ``ipywidgets``)."""
    quiet = _QUIET or bool(os.environ.get("LANDSCAPE_QUIET"))
    notebook = None if quiet or total == 0 else _notebook_bar()
    if notebook is not None:
        return notebook(total=total, desc=desc, unit=unit, leave=False, **kwargs)
    disable = quiet or not sys.stderr.isatty()
    return tqdm(total=total, desc=desc, unit=unit, disable=disable, dynamic_ncols=True, leave=False, **kwargs)
