"""Export surfaces to plain formats: long-format CSV, NumPy ``.npz`` and ParaView ``.vtp``.

Pure functions over arrays (the CLI reads the surface file and calls them). Array convention
as everywhere (docs/CONTRACTS.md): a 2D metric has shape ``(len(x), len(y))`` and ``m[i, j]`` is
the value at ``(x[i], y[j])``; a 1D metric has shape ``(len(x),)`` and ``y`` is None.

The ``.vtp`` writer follows the paper's practice of rendering surfaces in ParaView: a
triangulated height field in VTK's XML PolyData format (ASCII), readable by ParaView and VTK.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from xml.sax.saxutils import quoteattr

import numpy as np
import numpy.typing as npt

from landscape.atomic import atomic_path, atomic_write, write_text_atomic
from landscape.errors import ConfigError, GridError

__all__ = ["to_csv", "to_npz", "to_vtp"]

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def _axis(values: npt.ArrayLike, name: str) -> FloatArray:
    axis = np.asarray(values, dtype=np.float64)
    if axis.ndim != 1 or axis.size == 0:
        raise GridError(f"{name} must be a non-empty 1D array, got shape {axis.shape}")
    return axis


def _columns(x: npt.ArrayLike, y: npt.ArrayLike | None,
             metrics: Mapping[str, npt.ArrayLike]) -> tuple[FloatArray, FloatArray | None, dict[str, FloatArray]]:
    """The axes and the metrics of a table (:func:`to_csv`, :func:`to_npz`), checked; no metric may be named x or y."""
    xs, ys = _axis(x, "x"), None if y is None else _axis(y, "y")
    arrays = _metrics(metrics, (xs.size,) if ys is None else (xs.size, ys.size))
    clashes = sorted({"x", "y"} & set(arrays))
    if clashes:
        raise ConfigError(f"metric names {clashes} clash with the coordinates x and y")
    return xs, ys, arrays


def _metrics(metrics: Mapping[str, npt.ArrayLike], shape: tuple[int, ...]) -> dict[str, FloatArray]:
    """The metrics as float64 arrays, each checked against the grid shape."""
    if not metrics:
        raise ConfigError("nothing to export: metrics is empty")
    arrays = {}
    for name, values in metrics.items():
        array = np.asarray(values, dtype=np.float64)
        if array.shape != shape:
            raise GridError(f"metric {name!r} has shape {array.shape}, expected {shape}")
        arrays[name] = array
    return arrays


def to_csv(
    path: Path | str,
    x: npt.ArrayLike,
    y: npt.ArrayLike | None,
    metrics: Mapping[str, npt.ArrayLike],
) -> Path:
    """Write a long-format CSV: header ``x,y,<metric>...``, one row per grid point.

    Rows run over x first, then y (``i`` outer, ``j`` inner), so row ``i * len(y) + j`` holds
    ``(x[i], y[j])``. 1D surfaces (``y`` None) have no y column. Values are written with
    full precision; missing points stay ``nan``. Returns the path written.
    """
    xs, ys, arrays = _columns(x, y, metrics)
    columns = [xs] if ys is None else [np.repeat(xs, ys.size), np.tile(ys, xs.size)]  # C order: x[i] with every y[j]
    columns += [a.reshape(-1) for a in arrays.values()]
    target = Path(path)
    with atomic_path(target) as tmp, tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["x", *([] if ys is None else ["y"]), *arrays])
        writer.writerows([repr(float(v)) for v in row] for row in zip(*columns, strict=True))  # repr: reads back exactly
    return target


def to_npz(
    path: Path | str,
    x: npt.ArrayLike,
    y: npt.ArrayLike | None,
    metrics: Mapping[str, npt.ArrayLike],
) -> Path:
    """Write ``x``, ``y`` (2D only) and one array per metric to an uncompressed ``.npz``.

    Arrays keep the library's ``(len(x), len(y))`` layout. NumPy appends ``.npz`` to a name
    without it; the path actually written is returned.
    """
    xs, ys, arrays = _columns(x, y, metrics)
    target = Path(path)
    if target.suffix != ".npz":
        target = target.with_name(target.name + ".npz")
    payload: dict[str, Any] = {"x": xs} if ys is None else {"x": xs, "y": ys}
    payload.update(arrays)
    atomic_write(target, lambda fh: np.savez(fh, **payload))
    return target


def to_vtp(
    path: Path | str,
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    z: npt.ArrayLike,
    *,
    log: bool = False,
    zmax: float | None = None,
    name: str = "loss",
) -> Path:
    """Write a 2D surface as a triangulated height field in VTK XML PolyData (``.vtp``, ASCII).

    Each finite grid point becomes a point ``(x[i], y[j], h)`` with height ``h`` = the value
    clipped at ``zmax`` (in the value's units), then ``log10`` of it when ``log`` (values
    ≤ 0 then count as missing). Each grid cell whose four corners are present becomes two
    triangles; cells touching a missing (NaN/inf) point are skipped, so holes stay holes. The
    point array ``name`` carries the original, unclipped value, for colouring in ParaView.
    Returns the path written.
    """
    xs, ys = _axis(x, "x"), _axis(y, "y")
    values = _metrics({name: z}, (xs.size, ys.size))[name]
    if zmax is not None and not math.isfinite(zmax):
        raise ConfigError(f"zmax must be finite, got {zmax}")
    height = _height(values, log, zmax)
    index = _point_index(np.isfinite(height))
    triangles = _triangles(index)
    present = index >= 0  # (nx, ny)
    grid_x, grid_y = np.meshgrid(xs, ys, indexing="ij")  # (nx, ny), like the values
    # Boolean indexing walks (i, j) in C order, the order _point_index numbered the points.
    points = np.stack([grid_x[present], grid_y[present], height[present]], axis=1)  # (n, 3)
    target = Path(path)
    write_text_atomic(target, _vtp_document(points, values[present], triangles, name))
    return target


def _height(values: FloatArray, log: bool, zmax: float | None) -> FloatArray:
    """Height of each point: clipped at ``zmax``, then log10; NaN where it cannot be drawn."""
    clipped = values if zmax is None else np.minimum(values, zmax)
    if not log:
        return np.where(np.isfinite(clipped), clipped, np.nan)
    positive = np.isfinite(clipped) & (clipped > 0)
    return np.where(positive, np.log10(np.where(positive, clipped, 1.0)), np.nan)


def _point_index(present: npt.NDArray[np.bool_]) -> IntArray:
    """Number the present grid points 0..n-1 in (i, j) order; -1 marks a missing point."""
    index = np.full(present.shape, -1, dtype=np.int64)
    index[present] = np.arange(int(present.sum()), dtype=np.int64)
    return index


def _triangles(index: IntArray) -> IntArray:
    """Two triangles per grid cell with four present corners: (m, 3) point ids.

    The cell between grid points (i, j) and (i+1, j+1) has corners a=(i, j), b=(i+1, j),
    c=(i+1, j+1), d=(i, j+1), split along a–c into (a, b, c) and (a, c, d); both keep the
    counter-clockwise order seen from +z, so normals point up.
    """
    a, b = index[:-1, :-1], index[1:, :-1]
    c, d = index[1:, 1:], index[:-1, 1:]
    whole = (a >= 0) & (b >= 0) & (c >= 0) & (d >= 0)  # (nx-1, ny-1)
    first = np.stack([a[whole], b[whole], c[whole]], axis=1)
    second = np.stack([a[whole], c[whole], d[whole]], axis=1)
    # Interleave so the two halves of one cell are neighbours in the file.
    return np.stack([first, second], axis=1).reshape(-1, 3)


def _numbers(values: npt.NDArray[np.generic], per_line: int) -> str:
    flat = [repr(v.item()) for v in np.ravel(values)]
    lines = [" ".join(flat[k : k + per_line]) for k in range(0, len(flat), per_line)]
    return "\n".join(lines)


def _vtp_document(points: FloatArray, values: FloatArray, triangles: IntArray, name: str) -> str:
    """The XML text of one PolyData piece: points, one point array, triangle polys."""
    offsets = 3 * np.arange(1, len(triangles) + 1, dtype=np.int64)
    return "\n".join(
        [
            '<?xml version="1.0"?>',
            '<VTKFile type="PolyData" version="0.1" byte_order="LittleEndian">',
            "  <PolyData>",
            f'    <Piece NumberOfPoints="{len(points)}" NumberOfVerts="0" NumberOfLines="0"'
            f' NumberOfStrips="0" NumberOfPolys="{len(triangles)}">',
            f"      <PointData Scalars={quoteattr(name)}>",
            f'        <DataArray type="Float64" Name={quoteattr(name)} format="ascii">',
            _numbers(values, 6),
            "        </DataArray>",
            "      </PointData>",
            "      <Points>",
            '        <DataArray type="Float64" NumberOfComponents="3" format="ascii">',
            _numbers(points, 3),
            "        </DataArray>",
            "      </Points>",
            "      <Polys>",
            '        <DataArray type="Int64" Name="connectivity" format="ascii">',
            _numbers(triangles, 3),
            "        </DataArray>",
            '        <DataArray type="Int64" Name="offsets" format="ascii">',
            _numbers(offsets, 12),
            "        </DataArray>",
            "      </Polys>",
            "    </Piece>",
            "  </PolyData>",
            "</VTKFile>",
            "",
        ]
    )
