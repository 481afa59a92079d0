"""The HDF5 file of ``landscape connect``: values along each path, resumable, written atomically.

Layout of ``DIR/connect.h5``:

- ``t`` (float64): the path parameter, 0 and 1 included exactly;
- one group per path (``line``, ``aligned_line``, ``curve``) holding ``<split>_<metric>``
  (float64, one value per t) and ``done`` (bool, per t: a diverged point is a legitimate NaN);
- ``bends/<j>/<tensor name>``: the trained curve's bends, full state dicts (a direction-like group);
- ``bn_indices`` (int64, batches × batch size): the training samples BatchNorm is re-estimated on;
- attributes: ``format``, ``settings`` (JSON of every setting that determines the values),
  ``paths``, ``metrics``, ``barrier_<path>_<split>_<metric>`` (metric ``loss``, ``err``, ...),
  the checkpoints and their sha256.

As surface files: each flush copies the file to a temporary name, writes there, fsyncs and
renames it over the original, so a kill leaves a readable file whose ``done`` points hold exactly
the values computed; a second writer is refused by the lock of
:func:`landscape.io.surface_file.exclusive_lock`; reopening with other settings raises.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch import Tensor

from landscape.atomic import atomic_path, os_reason
from landscape.errors import SurfaceFileError
from landscape.io.surface_file import open_ours, reopen

FORMAT = "landscape-connect"


@dataclass
class ConnectFile:
    """In-memory values of a connect file plus the file they are flushed to."""

    path: Path
    t: np.ndarray
    paths: list[str]
    columns: list[str]
    values: dict[str, dict[str, np.ndarray]]  # path -> column -> (len(t),)
    done: dict[str, np.ndarray]  # path -> (len(t),) bool
    attrs: dict[str, Any]
    bends: list[dict[str, Tensor]]

    def pending(self, path: str) -> np.ndarray:
        return np.flatnonzero(~self.done[path])

    def record(self, path: str, index: int, row: np.ndarray) -> None:
        for c, name in enumerate(self.columns):
            self.values[path][name][index] = row[c]
        self.done[path][index] = True

    def flush(self, extra_attrs: Mapping[str, Any] | None = None) -> None:
        """Atomically replace the file with one holding the current values (and bends, attributes)."""
        try:
            with atomic_path(self.path) as tmp:
                shutil.copyfile(self.path, tmp)
                with h5py.File(tmp, "r+") as f:
                    for p in self.paths:
                        for name in self.columns:
                            f[p][name][...] = self.values[p][name]
                        f[p]["done"][...] = self.done[p]
                    if self.bends and "bends" not in f:
                        group = f.create_group("bends")
                        group.attrs.update(kind="bends", count=len(self.bends))
                        for j, bend in enumerate(self.bends):
                            for k, v in bend.items():
                                group.create_dataset(f"{j}/{k}", data=v.detach().cpu().numpy())
                    for k, v in (extra_attrs or {}).items():
                        f.attrs[k] = v
                        self.attrs[k] = v
        except OSError as err:
            raise SurfaceFileError(f"cannot write {str(self.path)!r}: {os_reason(err)}; "
                                   "the points already on disk are kept") from err


def open_connect(path: Path, t: np.ndarray, paths: Sequence[str], columns: Sequence[str], settings: Mapping[str, Any],
                 attrs: Mapping[str, Any], bn_indices: np.ndarray | None, overwrite: bool = False) -> ConnectFile:
    """Resume ``path`` if it was made with the same ``settings``; create it otherwise (or with ``overwrite``)."""
    if path.exists() and not overwrite:
        return reopen(path, read_connect, settings)
    values = {p: {c: np.full(len(t), np.nan) for c in columns} for p in paths}
    done = {p: np.zeros(len(t), dtype=bool) for p in paths}
    all_attrs = {**attrs, "format": FORMAT, "format_version": 1, "settings": json.dumps(settings),
                 "paths": json.dumps(list(paths)), "metrics": json.dumps(list(columns))}
    try:
        with atomic_path(path) as tmp, h5py.File(tmp, "w") as f:
            f.create_dataset("t", data=np.asarray(t, dtype=np.float64))
            for p in paths:
                g = f.create_group(p)
                for c in columns:
                    g.create_dataset(c, data=values[p][c])
                g.create_dataset("done", data=done[p])
            if bn_indices is not None:
                f.create_dataset("bn_indices", data=bn_indices.astype(np.int64))
            for k, v in all_attrs.items():
                f.attrs[k] = v
    except OSError as err:
        raise SurfaceFileError(f"cannot create {str(path)!r}: {os_reason(err)}") from err
    all_attrs["settings"] = json.loads(all_attrs["settings"])
    return ConnectFile(path, np.asarray(t, dtype=np.float64), list(paths), list(columns), values, done, all_attrs, [])


def read_connect(path: str | Path) -> ConnectFile:
    """Read a connect file: t, every path's values and done mask, the bends and the attributes."""
    p = Path(path)
    with open_ours(p, FORMAT, "connect") as (f, attrs):
        paths = json.loads(attrs["paths"])
        columns = json.loads(attrs["metrics"])
        t = np.asarray(f["t"][()], dtype=np.float64)
        values = {q: {c: np.asarray(f[q][c][()], dtype=np.float64) for c in columns} for q in paths}
        done = {q: np.asarray(f[q]["done"][()], dtype=bool) for q in paths}
        bends = [{k: torch.from_numpy(np.asarray(v[()])) for k, v in f["bends"][str(j)].items()}
                 for j in range(int(f["bends"].attrs["count"]))] if "bends" in f else []
    return ConnectFile(p, t, paths, columns, values, done, attrs, bends)


