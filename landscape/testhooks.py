"""Test hooks: the environment variables through which the crash tests steer a run (not for users).

``LANDSCAPE_TEST_PAUSE_IN_WRITE=K:FLAG`` holds the K-th atomic write of the process inside its write
window (:func:`pause_in_write`); ``LANDSCAPE_FLUSH_SECONDS=S`` flushes a surface file every ``S``
seconds (0: after every evaluation call) instead of every 5 s stretched to stay under ~5 % of the
time; ``LANDSCAPE_TEST_BREAK_REWRITE=1`` breaks a set-up rewrite of the surface engine
(:func:`break_rewrite`). All three are read here and nowhere else, once per process (:func:`reread` forgets what was read,
for a test that sets one in its own process); docs/RELIABILITY.md, "Test hooks".
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
BREAK_REWRITE_ENV = "LANDSCAPE_TEST_BREAK_REWRITE"
_writes = itertools.count(1)  # atomic writes of this process


@functools.cache
def _pause_spec() -> tuple[int, Path] | None:
    k, _, flag = os.environ.get(PAUSE_ENV, "").partition(":")
    return (int(k), Path(flag)) if flag and k.isdigit() else None


@functools.cache
def break_rewrite() -> bool:
    """``LANDSCAPE_TEST_BREAK_REWRITE=1``: the surface engine's first-layer precomputation is made 0.1 %
    wrong after it passed its equivalence check, a deliberately broken set-up rewrite that only the
    ``origin`` check of ``landscape check`` can see (tests/test_check.py)."""
    return os.environ.get(BREAK_REWRITE_ENV) == "1"


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
    """Count this atomic write (its temporary file ``tmp`` complete and fsynced, the target not yet
    replaced); when it is the K-th, write ``tmp`` into ``FLAG`` (created whole, by a rename) and wait
    until ``FLAG`` is removed. A test kills the process once ``FLAG`` appears, or removes it to let
    the write go on: the kill is known to land in a write, without any timing."""
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
    break_rewrite.cache_clear()
