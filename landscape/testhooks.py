"""Test hooks: the two environment variables through which the crash tests steer a run. Not for users.

- ``LANDSCAPE_TEST_PAUSE_IN_WRITE=K:FLAG``: the K-th atomic write of the process (1-based) stops
  inside its write window (the temporary file complete and fsynced, the target not yet
  replaced), writes the temporary file's path into ``FLAG`` (created whole, by a rename) and
  waits until ``FLAG`` is removed. A test waits for ``FLAG`` to appear and then kills the
  process, or removes ``FLAG`` to let it go on: a kill is thereby known to land in a write,
  without any timing (:func:`landscape.atomic.atomic_path` calls :func:`pause_in_write`).
- ``LANDSCAPE_FLUSH_SECONDS=S``: a surface file is flushed every ``S`` seconds (0: after every
  evaluation call) instead of every 5 s stretched to keep flushing under ~5 % of the time.

Both are read here and nowhere else, once per process, at their first use; a test that sets one
in its own process calls :func:`reread` (docs/RELIABILITY.md, "Test hooks").
"""

from __future__ import annotations

import functools
import itertools
import os
import time
from pathlib import Path

from landscape.errors import SurfaceFileError

PAUSE_ENV = "LANDSCAPE_TEST_PAUSE_IN_WRITE"
FLUSH_ENV = "LANDSCAPE_FLUSH_SECONDS"
_writes = itertools.count(1)  # atomic writes of this process


@functools.cache
def _pause_spec() -> tuple[int, Path] | None:
    k, _, flag = os.environ.get(PAUSE_ENV, "").partition(":")
    return (int(k), Path(flag)) if flag and k.isdigit() else None


@functools.cache
def flush_seconds() -> float | None:
    """``LANDSCAPE_FLUSH_SECONDS`` as a number of seconds ≥ 0, or None when it is not set."""
    raw = os.environ.get(FLUSH_ENV, "").strip()
    if not raw:
        return None
    try:
        seconds = float(raw)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0 or seconds == float("inf"):
        raise SurfaceFileError(f"{FLUSH_ENV}={raw!r} must be a number of seconds ≥ 0")
    return seconds


def pause_in_write(tmp: Path) -> None:
    """Count this atomic write; when it is the K-th, say so in ``FLAG`` and wait until ``FLAG`` is removed."""
    count = next(_writes)
    spec = _pause_spec()
    if spec is None or spec[0] != count:
        return
    part = spec[1].with_name(spec[1].name + ".part")
    part.write_text(str(tmp))
    os.rename(part, spec[1])  # not os.replace: tests count the package's os.replace calls
    while spec[1].exists():
        time.sleep(0.01)


def reread() -> None:
    """Forget what was read: the next use reads the environment again (for tests that set it in-process)."""
    _pause_spec.cache_clear()
    flush_seconds.cache_clear()
