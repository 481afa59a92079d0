"""One atomic write for every file the package writes.

The new content goes to a temporary file with a unique name in the target's folder; it is
flushed and fsynced, renamed over the target with :func:`os.replace` (atomic on POSIX), and the
folder is fsynced where the platform allows, so that the rename itself survives a power loss.
A crash at any moment leaves the old file or the new one, never half of one; a temporary file
may be left behind (``.<name>.<pid>.<random>.tmp``); no reader mistakes it for the target, and the
next write of the same target removes those whose process is gone.

The crash tests can stop a write inside its window (:func:`landscape.testhooks.pause_in_write`).
"""

from __future__ import annotations

import contextlib
import errno
import glob
import json
import os
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from landscape.testhooks import pause_in_write


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's process
    return True


def _remove_orphans(target: Path) -> None:
    """Temporary files of ``target`` left by a process that no longer runs (killed mid-write)."""
    prefix = f".{target.name}."
    for old in target.parent.glob(f"{glob.escape(prefix)}*.tmp"):
        pid, _, rest = old.name[len(prefix):].partition(".")
        if pid.isdigit() and rest.count(".") == 1 and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                old.unlink()


def _fsync_path(path: Path, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success fsync it and rename it over ``path``.

    The body writes the temporary file by name (h5py, a copy, ...). On any exception the
    temporary file is removed and the exception propagates; ``path`` is untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_orphans(target)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")  # hidden, unique per call
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # reserve the name (umask applies)
    try:
        yield tmp
        _fsync_path(tmp)
        pause_in_write(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    with contextlib.suppress(OSError):  # not every platform or file system can fsync a folder
        _fsync_path(target.parent, directory=True)


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], object]) -> None:
    """Atomically replace ``path`` with what ``write`` writes into the open binary file it is given."""
    with atomic_path(path) as tmp, tmp.open("wb") as fh:
        write(fh)


def write_text_atomic(path: str | Path, text: str) -> None:
    """Atomically replace ``path`` with ``text`` (UTF-8)."""
    atomic_write(path, lambda fh: fh.write(text.encode("utf-8")))


def write_json_atomic(path: str | Path, data: Any, *, allow_nan: bool = True) -> None:
    """Atomically replace ``path`` with ``data`` as indented JSON and a final newline."""
    write_text_atomic(path, json.dumps(data, indent=2, allow_nan=allow_nan) + "\n")


def os_reason(err: BaseException) -> str:
    """A short reason for a failed write: "the disk is full", the OS's words, or the first line."""
    if isinstance(err, OSError) and err.errno == errno.ENOSPC:
        return "the disk is full"
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
