"""A surface that cannot be right: every point equals the origin to rounding.

A fresh LoRA adapter (B = 0) moved only in its A matrices, or ``params`` choosing tensors the
loss does not depend on, gives an exactly flat surface: a picture of nothing that looks like a
very flat minimum. :func:`is_flat` finds it; the API warns with
:class:`~landscape.errors.FlatSurfaceWarning` and the CLI prints the same line.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

FLAT_RTOL = 1e-6  # float32 forwards agree to ~1e-7 relative: a spread below this is rounding


def is_flat(values: Mapping[str, np.ndarray], done: np.ndarray | None = None) -> bool:
    """Whether in every column all computed points (``done``; all when None) are finite and
    equal to rounding: ``max − min ≤ FLAT_RTOL · max |v|`` (exactly equal when that is 0)."""
    if not values:
        return False
    for column in values.values():
        v = np.asarray(column, dtype=np.float64)
        v = v[done] if done is not None else v.reshape(-1)
        if v.size < 2 or not np.all(np.isfinite(v)):
            return False
        if float(v.max() - v.min()) > FLAT_RTOL * float(np.abs(v).max()):
            return False
    return True


def flat_message(params: object = None) -> str:
    """The one-line warning, naming ``params`` when a subset was moved."""
    moved = f"the tensors params={params!r} selects" if params else "the directions"
    return (f"every point of the surface equals the origin to rounding (relative spread ≤ {FLAT_RTOL:g}): moving "
            f"{moved} does not change the loss (a fresh LoRA adapter, B = 0? then B's filter-normalized direction "
            "is zero too and A alone changes nothing; tensors the loss does not use?); the figure would show nothing")
