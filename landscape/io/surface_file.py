"""The HDF5 surface file: created once, updated atomically, resumable, locked against a second writer.

Layout (see docs/FORMATS.md): ``x``, ``y`` (2D), one float64 dataset per metric column,
``done`` (bool), ``directions/`` (the direction layout), and attributes recording the settings.
A progressive surface (``--tolerance``, ``--refine``) also holds grid-shaped *extras*: per column
``<column>_stderr``, per split ``<split>_samples``, the running sums ``progressive/<column>_sum`` and
``progressive/<column>_sumsq``, the ``above`` and ``computed`` masks (:func:`extra_names`).
Updates are crash-safe: each flush copies the file to a temporary name, writes the new values
there, fsyncs and renames it over the original (:mod:`landscape.atomic`), so a kill at any moment leaves a readable file
whose ``done`` points hold exactly the values that were computed.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import h5py
import numpy as np

from landscape.atomic import atomic_path, os_reason
from landscape.engine.directions import Directions, plain_attr, write_directions
from landscape.engine.grid import Grid
from landscape.errors import SurfaceFileError
from landscape.io.run_folder import diff_settings
from landscape.testhooks import flush_seconds


class _HasSettings(Protocol):
    @property
    def attrs(self) -> dict[str, Any]: ...


_File = TypeVar("_File", bound=_HasSettings)

FORMAT = "landscape-surface"
CONVENTION = "metric arrays have shape (len(x), len(y)); A[i, j] is the value at (x[i], y[j])"


@contextlib.contextmanager
def exclusive_lock(path: Path) -> Iterator[None]:
    """Hold ``<path>.lock`` for the duration; a second writer gets a clear error at once."""
    if path.name in ("", ".", "..") or path.is_dir():
        raise SurfaceFileError(f"{str(path)!r} is a folder; name the surface file, e.g. {str(path / 'surface.h5')!r}")
    lock_path = path.with_name(path.name + ".lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)  # --out may name a folder that does not exist yet
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise SurfaceFileError(f"cannot create lock file {str(lock_path)!r}: {err.strerror}") from err
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise SurfaceFileError(f"{str(path)!r} is being written by another process (lock {lock_path.name} is held)") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        yield
    finally:
        os.close(fd)


@dataclass
class SurfaceFile:
    """In-memory values of a surface plus the file they are flushed to."""

    path: Path
    grid: Grid
    columns: list[str]
    values: dict[str, np.ndarray]
    done: np.ndarray
    attrs: dict[str, Any]
    # grid-shaped datasets beside the metric columns (a progressive surface's errors, samples, sums,
    # masks), by dataset path; :meth:`record` takes their values after the columns' in each row
    extra: dict[str, np.ndarray] = field(default_factory=dict)
    # seconds between flushes: 5, stretched so flushing stays under ~5 % of the time; the test
    # hook LANDSCAPE_FLUSH_SECONDS fixes it instead (landscape.testhooks: crash tests flush very often)
    flush_interval: float = field(default_factory=lambda: 5.0 if (s := flush_seconds()) is None else s)
    adaptive_flush: bool = field(default_factory=lambda: flush_seconds() is None)
    # called after every flush, with the file on disk (``landscape surface --preview`` redraws figures);
    # its time counts in the adaptive interval, so a slow preview makes flushes rarer, not the run slower
    on_flush: Callable[[SurfaceFile], None] | None = None
    _last_flush: float = 0.0

    @property
    def pending(self) -> np.ndarray:
        """Flat (C-order) indices of the points not yet computed."""
        return np.flatnonzero(~self.done.reshape(-1))

    def record(self, flat_indices: np.ndarray, rows: np.ndarray) -> None:
        """Values at ``flat_indices``: each row holds the columns, then the extras (when it is that wide)."""
        for c, name in enumerate(self.columns):
            self.values[name].reshape(-1)[flat_indices] = rows[:, c]
        if rows.shape[1] > len(self.columns):
            for c, name in enumerate(self.extra, start=len(self.columns)):
                self.extra[name].reshape(-1)[flat_indices] = rows[:, c]
        self.done.reshape(-1)[flat_indices] = True

    def maybe_flush(self) -> bool:
        if time.monotonic() - self._last_flush >= self.flush_interval:
            self.flush()
            return True
        return False

    def flush(self) -> None:
        """Atomically replace the file with one holding the current values."""
        start = time.monotonic()
        try:
            with atomic_path(self.path) as tmp:
                shutil.copyfile(self.path, tmp)
                with h5py.File(tmp, "r+") as f:
                    for name in self.columns:
                        f[name][...] = self.values[name]
                    for name, array in self.extra.items():
                        if name in f:
                            f[name][...] = array
                        else:
                            f.create_dataset(name, data=array)
                    f["done"][...] = self.done
                    f.attrs["n_done"] = int(self.done.sum())
                    for key in PROGRESSIVE_ATTRS:
                        if key in self.attrs:
                            value = self.attrs[key]
                            f.attrs[key] = json.dumps(value) if isinstance(value, dict) else value
        except OSError as err:
            raise SurfaceFileError(f"cannot write {str(self.path)!r}: {os_reason(err)}; "
                                   "the points already on disk are kept") from err
        if self.on_flush is not None:
            self.on_flush(self)
        if self.adaptive_flush:  # never spend more than ~5 % of the time flushing, whatever the file size
            self.flush_interval = max(self.flush_interval, 20 * (time.monotonic() - start))
        self._last_flush = time.monotonic()


# attributes of a progressive surface that a run may change (a new tolerance, a refined grid): written at every flush
PROGRESSIVE_ATTRS = ("progressive", "refine", "tolerance", "tolerance_relative", "tolerance_spec", "samples_total",
                     "sample_seed", "top", "scale", "computed_share")


def make_progressive(sf: SurfaceFile, samples_total: Mapping[str, int], refine: bool) -> None:
    """Give ``sf`` the extras of a progressive surface (:func:`extra_names`) that it lacks.

    Points done before (an exact file, or one made without ``--refine``) are exact and computed:
    standard error 0, every sample read, the running sums those of the exact mean (the second
    moment unknown: NaN, never read again since the point is complete).
    """
    sf.attrs["progressive"] = True
    sf.attrs["refine"] = bool(refine or sf.attrs.get("refine"))
    sf.attrs["samples_total"] = dict(samples_total)
    for name in extra_names(sf.columns, sf.attrs):
        if name in sf.extra:
            continue
        kind = name.rsplit("_", 1)[-1] if "/" in name or name.endswith(("_stderr", "_samples")) else name
        split = name.split("/")[-1].split("_", 1)[0]
        done = sf.done
        if kind == "stderr":
            array = np.where(done, 0.0, np.nan)
        elif kind == "samples":
            array = np.where(done, samples_total[split], 0).astype(np.int64)
        elif kind == "sum":
            array = np.where(done, sf.values[name.split("/")[-1][: -len("_sum")]] * samples_total[split], 0.0)
        elif kind == "sumsq":
            array = np.where(done, np.nan, 0.0)
        else:  # the masks: "above" (none stopped so yet), "computed" (every point done so far was computed)
            array = done.copy() if name == "computed" else np.zeros(done.shape, dtype=bool)
        sf.extra[name] = array


def reopen(path: Path, read: Callable[[Path], _File], settings: Mapping[str, Any]) -> _File:
    """The existing file at ``path`` (read by ``read``), provided it was made with the same ``settings``.

    A file that cannot be read, or one made with other settings, raises :class:`SurfaceFileError`
    naming the differences and the way out (``--overwrite`` or another ``--out``).
    """
    try:
        existing = read(path)
    except SurfaceFileError as err:
        raise SurfaceFileError(f"{err}; pass --overwrite to start it afresh or choose another --out") from err
    changes = diff_settings(existing.attrs["settings"], settings)
    if changes:
        raise SurfaceFileError(f"{str(path)!r} was computed with other settings ({'; '.join(changes[:4])}); "
                               "pass --overwrite to replace it or choose another --out")
    return existing


def open_surface(path: Path, grid: Grid, columns: list[str], settings: Mapping[str, Any], attrs: Mapping[str, Any],
                 directions: Directions, model_fp: Mapping[str, list[int]], overwrite: bool = False) -> SurfaceFile:
    """Resume ``path`` if it was made with the same ``settings``; create it when it does not exist.

    Different settings raise :class:`SurfaceFileError` naming the differences (or, with
    ``overwrite``, start afresh).
    """
    if path.exists() and not overwrite:
        existing = reopen(path, read_surface, settings)
        return SurfaceFile(path, existing.grid, existing.columns, existing.values, existing.done, existing.attrs,
                           extra=existing.extra)
    values = {c: np.full(grid.shape, np.nan) for c in columns}
    done = np.zeros(grid.shape, dtype=bool)
    all_attrs = {**attrs, "settings": json.dumps(settings), "format": FORMAT, "format_version": 1,
                 "convention": CONVENTION, "dims": 1 if grid.y is None else 2, "metrics": json.dumps(columns),
                 "model_fingerprint": json.dumps(model_fp), "directions_fingerprint": directions.fingerprint()}
    try:
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            f.create_dataset("x", data=grid.x)
            if grid.y is not None:
                f.create_dataset("y", data=grid.y)
            for c in columns:
                f.create_dataset(c, data=values[c])
            f.create_dataset("done", data=done)
            write_directions(f.create_group("directions"), directions, model_fp)
            for k, v in all_attrs.items():
                f.attrs[k] = v
            f.attrs["n_done"] = 0
    except OSError as err:
        raise SurfaceFileError(f"cannot create {str(path)!r}: {os_reason(err)}") from err
    all_attrs["settings"] = json.loads(all_attrs["settings"])
    return SurfaceFile(path, grid, columns, values, done, all_attrs)


@contextlib.contextmanager
def open_ours(path: str | Path, fmt: str, kind: str) -> Iterator[tuple[h5py.File, dict[str, Any]]]:
    """Open an HDF5 file of ours (``format`` attribute ``fmt``) to read: the file and its attributes
    as plain values (:func:`plain_attr`), ``settings`` parsed from JSON.

    A missing file, another format and damaged bytes (h5py or JSON errors in the ``with`` body
    too) are each one :class:`SurfaceFileError` naming the ``kind`` of file ("surface", "connect").
    """
    p = Path(path)
    if not p.is_file():
        raise SurfaceFileError(f"{kind} file {str(p)!r} does not exist")
    try:
        with h5py.File(p, "r") as f:
            if f.attrs.get("format") != fmt:
                raise SurfaceFileError(f"{str(p)!r} is not a landscape {kind} file (no format attribute)")
            attrs = {k: plain_attr(v) for k, v in f.attrs.items()}
            attrs["settings"] = json.loads(attrs["settings"])
            yield f, attrs
    except (OSError, KeyError, ValueError, TypeError, AttributeError) as err:  # h5py/json on damaged bytes
        raise SurfaceFileError(f"{kind} file {str(p)!r} is corrupt or truncated: {err}") from err


def read_surface(path: str | Path) -> SurfaceFile:
    """Read a surface file's coordinates, metric arrays, ``done`` mask and attributes."""
    p = Path(path)
    with open_ours(p, FORMAT, "surface") as (f, attrs):
        if f.attrs.get("metrics") is None:
            raise SurfaceFileError(f"{f.filename!r} lacks the 'metrics' attribute: not a landscape surface file")
        columns = json.loads(f.attrs["metrics"])
        if not (isinstance(columns, list) and all(isinstance(c, str) for c in columns)):
            raise SurfaceFileError(f"surface file {str(p)!r} is corrupt: its 'metrics' attribute is not a list of names")
        grid = Grid(np.asarray(f["x"][()]), np.asarray(f["y"][()]) if "y" in f else None)
        values = {c: np.asarray(f[c][()], dtype=np.float64) for c in columns}
        done = np.asarray(f["done"][()], dtype=bool)
        for key in ("tolerance", "tolerance_relative", "samples_total", "top", "scale"):  # a progressive file's tables (JSON)
            if isinstance(attrs.get(key), str):
                attrs[key] = json.loads(attrs[key])
        extra = {name: np.asarray(f[name][()]) for name in extra_names(columns, attrs) if name in f}
        if not isinstance(attrs["settings"], dict):
            raise SurfaceFileError(f"surface file {str(p)!r} is corrupt: its 'settings' attribute is not a table")
        if "directions" in f:
            d = f["directions"]
            attrs["directions"] = {k: plain_attr(v) for k, v in d.attrs.items()}
    if done.shape != grid.shape or any(v.shape != grid.shape for v in [*values.values(), *extra.values()]):
        raise SurfaceFileError(f"surface file {str(p)!r} is inconsistent: array shapes do not match the grid {grid.shape}")
    return SurfaceFile(p, grid, columns, values, done, attrs, extra=extra)


def extra_names(columns: list[str], attrs: Mapping[str, Any]) -> list[str]:
    """The extras a progressive surface file holds, in the order :meth:`SurfaceFile.record` fills them:
    ``<column>_stderr`` per column, ``<split>_samples`` per split, ``progressive/<column>_sum`` and
    ``progressive/<column>_sumsq`` per column, ``above``; ``computed`` when refined. None for an exact file."""
    if not attrs.get("progressive"):
        return []
    splits = dict.fromkeys(c.split("_", 1)[0] for c in columns)  # in order of first appearance
    return ([f"{c}_stderr" for c in columns] + [f"{s}_samples" for s in splits]
            + [f"progressive/{c}_{k}" for k in ("sum", "sumsq") for c in columns] + ["above"]
            + (["computed"] if attrs.get("refine") else []))
