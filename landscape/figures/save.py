"""Saving a figure in several formats at once, byte-reproducibly (no timestamps)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.figure import Figure

from landscape.errors import ConfigError, LandscapeError

__all__ = ["save_figure"]

_FORMATS = ("pdf", "png", "svg")
# No timestamps in the files, so re-running a figure script gives identical bytes.
_METADATA: dict[str, dict[str, Any]] = {
    "pdf": {"CreationDate": None},
    "svg": {"Date": None},
    "png": {},
}


def save_figure(
    fig: Figure,
    path_without_suffix: Path | str,
    formats: Sequence[str] = ("pdf", "png"),
    dpi: int = 200,
) -> list[Path]:
    """Write ``fig`` once per format (pdf, png, svg) next to each other; returns the paths.

    ``figure.pdf`` is appended to the name, not substituted for a suffix, so names containing
    dots (``surface_lr0.1``) survive. PDFs embed TrueType fonts (Type 42), as journals ask,
    and no file carries a timestamp, so re-running a figure script is byte-reproducible.
    Parent folders are created. Nothing is closed: figures made with ``Figure()`` need no
    closing.
    """
    unknown = [f for f in formats if f not in _FORMATS]
    if unknown:
        raise ConfigError(f"unknown figure formats {unknown}; choose from {list(_FORMATS)}")
    stem = Path(path_without_suffix)
    try:
        stem.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # a file where the folder should be, no permission, ...
        raise LandscapeError(f"cannot create the figure folder {str(stem.parent)!r}: {err.strerror or err}") from err
    written = []
    # A local rc_context: restored on exit, so the caller's settings are untouched.
    with matplotlib.rc_context({"pdf.fonttype": 42, "svg.hashsalt": "landscape"}):
        for fmt in dict.fromkeys(formats):
            target = stem.with_name(f"{stem.name}.{fmt}")
            try:
                fig.savefig(target, format=fmt, dpi=dpi, metadata=_METADATA[fmt])
            except OSError as err:
                raise LandscapeError(f"cannot write {str(target)!r}: {err.strerror or err}") from err
            written.append(target)
    return written
