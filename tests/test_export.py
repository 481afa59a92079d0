"""Exports: every value lands in the right row or point, and the .vtp file is valid VTK XML."""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from landscape.errors import ConfigError, GridError
from landscape.io import export

X = np.linspace(-1.0, 2.0, 5)
Y = np.linspace(-3.0, 3.0, 6)
LOSS = 1.0 + X[:, None] ** 2 + 0.5 * Y[None, :] ** 2  # (5, 6), positive
ACC = X[:, None] + 10.0 * Y[None, :]  # (5, 6), asymmetric: catches a transposed layout


def _read_csv(path: Path) -> tuple[list[str], list[list[float]]]:
    with path.open(newline="") as handle:
        header, *rows = list(csv.reader(handle))
    return header, [[float(v) for v in row] for row in rows]


def _vtp(path: Path) -> dict[str, npt.NDArray[np.float64]]:
    """Parse a .vtp file; returns its arrays by name ('points' for the coordinates)."""
    root = ET.parse(path).getroot()
    assert root.tag == "VTKFile" and root.get("type") == "PolyData"
    piece = root.find("PolyData/Piece")
    assert piece is not None
    arrays = {
        "n_points": np.array([float(piece.get("NumberOfPoints", "nan"))]),
        "n_polys": np.array([float(piece.get("NumberOfPolys", "nan"))]),
    }
    for element in piece.iter("DataArray"):
        name = element.get("Name") or "points"
        arrays[name] = np.array((element.text or "").split(), dtype=np.float64)
    return arrays


def test_csv_2d_has_one_row_per_point_in_x_major_order(tmp_path: Path) -> None:
    target = export.to_csv(tmp_path / "s.csv", X, Y, {"train_loss": LOSS, "train_acc": ACC})
    header, rows = _read_csv(target)
    assert header == ["x", "y", "train_loss", "train_acc"]
    assert len(rows) == X.size * Y.size
    for i, j in [(0, 0), (4, 0), (0, 5), (3, 2)]:
        assert rows[i * Y.size + j] == [X[i], Y[j], LOSS[i, j], ACC[i, j]]  # exact round trip


def test_csv_1d_has_no_y_column_and_keeps_nan(tmp_path: Path) -> None:
    curve = np.array([0.5, np.nan, 0.25, np.inf, 0.125])
    header, rows = _read_csv(export.to_csv(tmp_path / "s.csv", X, None, {"test_loss": curve}))
    assert header == ["x", "test_loss"]
    np.testing.assert_array_equal(np.array(rows), np.stack([X, curve], axis=1))


def test_npz_round_trip(tmp_path: Path) -> None:
    target = export.to_npz(tmp_path / "s", X, Y, {"train_loss": LOSS, "train_acc": ACC})
    assert target.name == "s.npz"
    with np.load(target) as data:
        assert sorted(data.files) == ["train_acc", "train_loss", "x", "y"]
        np.testing.assert_array_equal(data["train_acc"], ACC)
        np.testing.assert_array_equal(data["x"], X)
    with np.load(export.to_npz(tmp_path / "line.npz", X, None, {"loss": LOSS[:, 0]})) as data:
        assert sorted(data.files) == ["loss", "x"]


def test_vtp_full_grid_counts_coordinates_and_upward_triangles(tmp_path: Path) -> None:
    arrays = _vtp(export.to_vtp(tmp_path / "s.vtp", X, Y, ACC, name="train_acc"))
    cells = (X.size - 1) * (Y.size - 1)
    assert arrays["n_points"][0] == X.size * Y.size
    assert arrays["n_polys"][0] == 2 * cells
    points = arrays["points"].reshape(-1, 3)
    grid_x, grid_y = np.meshgrid(X, Y, indexing="ij")
    np.testing.assert_array_equal(points, np.stack([grid_x.ravel(), grid_y.ravel(), ACC.ravel()], axis=1))
    np.testing.assert_array_equal(arrays["train_acc"], ACC.ravel())
    triangles = arrays["connectivity"].astype(np.int64).reshape(-1, 3)
    assert triangles.shape == (2 * cells, 3) and triangles.max() < len(points)
    np.testing.assert_array_equal(arrays["offsets"], 3 * np.arange(1, 2 * cells + 1))
    a, b, c = (points[triangles[:, k], :2] for k in range(3))
    normal_z = (b - a)[:, 0] * (c - a)[:, 1] - (b - a)[:, 1] * (c - a)[:, 0]
    assert np.all(normal_z > 0)  # counter-clockwise from above: normals point up


def test_vtp_skips_cells_touching_nan(tmp_path: Path) -> None:
    z = LOSS.copy()
    z[2, 3] = np.nan  # interior point: touches four cells
    z[0, 0] = np.inf  # corner point: touches one cell
    arrays = _vtp(export.to_vtp(tmp_path / "s.vtp", X, Y, z))
    assert arrays["n_points"][0] == X.size * Y.size - 2
    assert arrays["n_polys"][0] == 2 * ((X.size - 1) * (Y.size - 1) - 4 - 1)
    assert np.all(np.isfinite(arrays["points"]))
    assert arrays["connectivity"].max() < arrays["n_points"][0]


def test_vtp_height_is_clipped_then_log_scaled(tmp_path: Path) -> None:
    arrays = _vtp(export.to_vtp(tmp_path / "s.vtp", X, Y, LOSS, log=True, zmax=3.0))
    heights = arrays["points"].reshape(-1, 3)[:, 2]
    np.testing.assert_allclose(heights, np.log10(np.minimum(LOSS, 3.0)).ravel())
    np.testing.assert_array_equal(arrays["loss"], LOSS.ravel())  # colour by the true value


def test_vtp_name_is_escaped(tmp_path: Path) -> None:
    target = export.to_vtp(tmp_path / "s.vtp", X, Y, LOSS, name='loss "a<b"')
    assert 'loss "a<b"' in _vtp(target)


def test_bad_inputs_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(GridError, match=r"\(6, 5\)"):
        export.to_csv(tmp_path / "s.csv", X, Y, {"loss": LOSS.T})
    with pytest.raises(ConfigError, match="'x'"):
        export.to_csv(tmp_path / "s.csv", X, Y, {"x": LOSS})
    with pytest.raises(ConfigError, match="empty"):
        export.to_npz(tmp_path / "s.npz", X, Y, {})
    with pytest.raises(GridError, match="shape"):
        export.to_vtp(tmp_path / "s.vtp", X, Y, LOSS[:, :3])
