"""Figures: drawn the right way round, not blank, masked where they should be, savable.

The orientation tests use an asymmetric plane ``z = x + 10 y`` on a non-square grid (5 × 9):
a transposed array would put the steep direction on the wrong axis, and the exact linearity
lets each drawn point be checked against the closed form.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import numpy.typing as npt
import pytest
from matplotlib.axes import Axes
from matplotlib.collections import QuadMesh
from matplotlib.colors import LogNorm
from matplotlib.contour import ContourSet
from matplotlib.figure import Figure
from matplotlib.image import imread
from matplotlib.path import Path as MplPath
from matplotlib.text import Annotation
from mpl_toolkits.mplot3d.art3d import Poly3DCollection

from landscape.errors import ConfigError, GridError
from landscape.figures import plot

# The asymmetric plane: largest at (x, y) = (2, 3), rising 10× faster along y.
PX = np.linspace(-1.0, 2.0, 5)
PY = np.linspace(-3.0, 3.0, 9)
PZ = PX[:, None] + 10.0 * PY[None, :]  # (5, 9) = (len(x), len(y))

# A smooth bowl with a spiral path into its minimum, for rendering checks.
BX = np.linspace(-1.0, 1.0, 21)
BY = np.linspace(-0.8, 0.8, 17)
BZ = 0.1 + BX[:, None] ** 2 + 3.0 * BY[None, :] ** 2  # (21, 17)
_T = np.linspace(0.0, 1.0, 25)
SPIRAL = np.stack([0.8 * (1 - _T) * np.cos(5 * _T), 0.6 * (1 - _T) * np.sin(5 * _T)], axis=1)


def _render(fig: Figure, tmp_path: Path) -> npt.NDArray[np.float32]:
    target = tmp_path / "figure.png"
    fig.savefig(target, dpi=72)
    return np.asarray(imread(target))[..., :3]


def _coloured(pixels: npt.NDArray[np.float32]) -> float:
    """Fraction of saturated pixels: data drawn in a colour map, not grey axes and text."""
    saturation = pixels.max(axis=-1) - pixels.min(axis=-1)
    return float(np.mean(saturation > 0.15))


def _main_axes(fig: Figure) -> Axes:
    return fig.axes[0]


def _contour_sets(ax: Axes) -> list[ContourSet]:
    return [c for c in ax.collections if isinstance(c, ContourSet)]


def _data_mesh(ax: Axes) -> QuadMesh:
    meshes = [c for c in ax.collections if isinstance(c, QuadMesh) and c.get_gid() != plot.MISSING_GID]
    assert len(meshes) == 1
    return meshes[0]


def _mesh_values(mesh: QuadMesh) -> np.ma.MaskedArray[Any, Any]:
    values = mesh.get_array()
    assert values is not None
    return np.ma.asarray(values)


def _notes(fig: Figure) -> str:
    texts = [t.get_text() for ax in fig.axes for t in ax.texts if t.get_gid() == plot.NOTE_GID]
    return "\n".join(texts)


def _colourbar_labels(fig: Figure, main: Axes) -> list[str]:
    return [ax.get_ylabel() for ax in fig.axes if ax is not main and ax.get_ylabel()]


def _level_vertices(cs: ContourSet, k: int) -> npt.NDArray[np.float64]:
    path = cs.get_paths()[k]
    vertices = np.asarray(path.vertices, dtype=np.float64)
    return vertices if path.codes is None else vertices[np.asarray(path.codes) != MplPath.CLOSEPOLY]


KINDS: dict[str, tuple[Callable[[], Figure], float]] = {
    # name: (figure, minimum fraction of coloured pixels)
    "contour": (lambda: plot.contour(BX, BY, BZ), 0.01),
    "filled": (lambda: plot.filled_contour(BX, BY, BZ, log=True), 0.3),
    "heatmap": (lambda: plot.heatmap(BX, BY, BZ), 0.3),
    "surface3d": (lambda: plot.surface3d(BX, BY, BZ, width="double"), 0.1),
    "trajectory": (lambda: plot.trajectory(BX, BY, BZ, SPIRAL, labels=[str(e) for e in range(25)]), 0.01),
    "panels": (lambda: plot.panels(BX, BY, {"a": BZ, "b": 2 * BZ}, kind="filled"), 0.2),
    "line": (lambda: plot.line(BX, {"train_loss": BZ[:, 8]}, acc_curves={"test_acc": 1 - BZ[:, 8]}), 0.005),
    "lines_overlay": (lambda: plot.lines_overlay(BX, {"mse": BZ[:, 8], "hinge": BZ[:, 4]}), 0.005),
    "training_curves": (lambda: plot.training_curves({"train": (np.arange(10), np.exp(-np.arange(10.0)))}), 0.003),
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_every_kind_draws_something(kind: str, tmp_path: Path) -> None:
    make, min_coloured = KINDS[kind]
    pixels = _render(make(), tmp_path)
    assert pixels.var() > 1e-3
    assert _coloured(pixels) > min_coloured


def test_width_presets_set_the_printed_width() -> None:
    assert plot.contour(BX, BY, BZ, width="single").get_size_inches()[0] == pytest.approx(3.4)
    assert plot.contour(BX, BY, BZ, width="double").get_size_inches()[0] == pytest.approx(7.0)
    with pytest.raises(ConfigError, match="triple"):
        plot.contour(BX, BY, BZ, width="triple")  # type: ignore[arg-type]


def test_heatmap_cells_are_centred_on_their_grid_points() -> None:
    mesh = _data_mesh(_main_axes(plot.heatmap(PX, PY, PZ)))
    values = _mesh_values(mesh).data.reshape(len(PY), len(PX))  # (ny, nx)
    corners = np.asarray(mesh.get_coordinates(), dtype=np.float64)  # (ny + 1, nx + 1, 2)
    centres = 0.25 * (corners[:-1, :-1] + corners[1:, :-1] + corners[:-1, 1:] + corners[1:, 1:])
    np.testing.assert_allclose(values, centres[..., 0] + 10.0 * centres[..., 1])
    j, i = np.unravel_index(np.argmax(values), values.shape)
    np.testing.assert_allclose(centres[j, i], [2.0, 3.0])  # the largest value sits at y = 3


def test_heatmap_edges_follow_a_non_uniform_grid() -> None:
    x = np.array([0.0, 1.0, 3.0, 7.0])
    mesh = _data_mesh(_main_axes(plot.heatmap(x, PY, np.ones((4, len(PY))))))
    corners = np.asarray(mesh.get_coordinates(), dtype=np.float64)
    np.testing.assert_allclose(corners[0, :, 0], [-0.5, 0.5, 2.0, 5.0, 9.0])


@pytest.mark.parametrize("draw", [plot.contour, plot.filled_contour])
def test_contours_lie_where_the_plane_has_their_value(draw: Callable[..., Figure]) -> None:
    levels = [-25.0, -10.0, 0.0, 10.0, 28.0]
    cs = _contour_sets(_main_axes(draw(PX, PY, PZ, levels=levels)))[0]
    if draw is plot.contour:  # iso-lines: every vertex is on its level line
        for k, level in enumerate(cs.levels):
            vertices = _level_vertices(cs, k)
            assert len(vertices) > 0
            np.testing.assert_allclose(vertices[:, 0] + 10.0 * vertices[:, 1], level, atol=1e-9)
    top = _level_vertices(cs, -1)  # the 28 line, or the open band above 28 (data reach 32)
    assert np.all(top[:, 0] + 10.0 * top[:, 1] >= 28.0 - 1e-9)
    assert top[:, 1].min() > 2.5  # the highest values are at the top (y = 3), not on the right


def test_contour_has_inline_labels_and_a_labelled_colourbar() -> None:
    fig = plot.contour(
        BX,
        BY,
        BZ,
        metric_label="train loss",
        x_label="α (filter-normalized)",
        y_label="β (filter-normalized)",
        title="demo",
    )
    ax = _main_axes(fig)
    cs = _contour_sets(ax)[0]
    assert len(cs.labelTexts) >= 2
    assert _colourbar_labels(fig, ax) == ["train loss"]
    assert ax.get_xlabel() == "α (filter-normalized)"
    assert ax.get_ylabel() == "β (filter-normalized)"
    assert ax.get_title() == "demo"


def test_log_scale_uses_a_log_norm_and_positive_levels() -> None:
    cs = _contour_sets(_main_axes(plot.filled_contour(BX, BY, BZ, log=True)))[0]
    assert isinstance(cs.norm, LogNorm)
    assert np.all(np.asarray(cs.levels) > 0)
    with pytest.raises(ConfigError, match="vmin"):
        plot.contour(BX, BY, BZ, log=True, vmin=0.0)


def test_diverged_and_uncomputed_points_are_masked_and_noted() -> None:
    z = PZ.copy()
    z[0, 0], z[1, 1], z[2, 2] = np.nan, np.inf, -np.inf
    done = np.ones(z.shape, dtype=bool)
    done[4, :] = False  # a partial surface: the last x column is not computed yet
    z[4, :] = np.nan
    fig = plot.heatmap(PX, PY, z, done=done)
    values = _mesh_values(_data_mesh(_main_axes(fig)))
    assert int(np.ma.getmaskarray(values).sum()) == 3 + len(PY)
    assert "3 points diverged (NaN/inf), masked" in _notes(fig)
    assert f"{z.size - len(PY)}/{z.size} points computed" in _notes(fig)
    for draw in (plot.contour, plot.filled_contour):
        assert "3 points diverged" in _notes(draw(PX, PY, z, done=done))


def test_nothing_computed_yet_still_makes_a_figure() -> None:
    empty = np.full(PZ.shape, np.nan)
    fig = plot.contour(PX, PY, empty, done=np.zeros(PZ.shape, dtype=bool))
    assert f"0/{PZ.size} points computed" in _notes(fig)


def test_surface3d_is_a_real_surface_with_one_face_per_cell() -> None:
    path = (SPIRAL[:, 0], SPIRAL[:, 1], 0.1 + SPIRAL[:, 0] ** 2 + 3.0 * SPIRAL[:, 1] ** 2)
    fig = plot.surface3d(BX, BY, BZ, trajectory=path, metric_label="train loss", vmax=1.0)
    fig.draw_without_rendering()  # projects the faces
    ax = _main_axes(fig)
    assert ax.name == "3d"
    surfaces = [c for c in ax.collections if isinstance(c, Poly3DCollection)]
    assert len(surfaces) == 1
    assert len(surfaces[0].get_paths()) == (len(BX) - 1) * (len(BY) - 1)
    assert float(np.max(surfaces[0].get_array())) <= 1.0  # clipped at vmax
    assert ax.get_zlabel() == "train loss"  # type: ignore[attr-defined]
    (line,) = ax.get_lines()
    assert line.get_marker() == "o" and line.get_zorder() > surfaces[0].get_zorder()
    assert "clipped at 1" in _notes(fig)


def test_trajectory_marks_start_end_and_some_epochs() -> None:
    labels = [str(epoch) for epoch in range(len(SPIRAL))]
    fig = plot.trajectory(BX, BY, BZ, SPIRAL, labels=labels, x_label="PC1 (61.2 %)", y_label="PC2 (23.4 %)")
    ax = _main_axes(fig)
    legend = ax.get_legend()
    assert legend is not None
    assert [t.get_text() for t in legend.get_texts()] == ["start", "end"]
    placed = [t.get_text() for t in ax.texts if isinstance(t, Annotation)]
    assert "0" in placed and str(len(SPIRAL) - 1) in placed
    assert 2 <= len(placed) <= 8  # every k-th point, not all 25
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("PC1 (61.2 %)", "PC2 (23.4 %)")
    with pytest.raises(GridError, match="labels"):
        plot.trajectory(BX, BY, BZ, SPIRAL, labels=["0"])


@pytest.mark.parametrize("kind", ["contour", "filled", "heatmap"])
def test_shared_panels_share_levels_limits_and_one_colourbar(kind: plot.PanelKind) -> None:
    zs = {"ce": BZ, "mse": 3.0 * BZ + 1.0, "hinge": BZ / 2.0}
    fig = plot.panels(BX, BY, zs, shared=True, kind=kind, paths={"ce": SPIRAL})
    panel_axes = fig.axes[:3]
    assert [ax.get_title() for ax in panel_axes] == list(zs)
    assert len(fig.axes) == 3 + 1  # one colourbar for all
    if kind == "heatmap":
        norms = [_data_mesh(ax).norm for ax in panel_axes]
    else:
        sets = [_contour_sets(ax)[0] for ax in panel_axes]
        norms = [cs.norm for cs in sets]
        for cs in sets[1:]:
            np.testing.assert_array_equal(cs.levels, sets[0].levels)
    assert len({(norm.vmin, norm.vmax) for norm in norms}) == 1


def test_unshared_panels_have_their_own_scales_and_wrap_after_four() -> None:
    zs = {f"loss{k}": (k + 1.0) * BZ for k in range(6)}
    fig = plot.panels(BX, BY, zs, shared=False, kind="contour")
    panel_axes = [ax for ax in fig.axes if ax.get_title()]
    assert len(panel_axes) == 6 and len(fig.axes) == 12  # a colourbar each
    rows = [ax.get_subplotspec().rowspan.start for ax in panel_axes]  # type: ignore[union-attr]
    assert rows == [0, 0, 0, 0, 1, 1]
    tops = {_contour_sets(ax)[0].norm.vmax for ax in panel_axes}
    assert len(tops) == 6


def test_line_styles_twin_axis_and_endpoints() -> None:
    a = np.linspace(-0.5, 1.5, 41)
    loss = 0.1 + (a * (1 - a)) ** 2
    fig = plot.line(
        a,
        {"train_loss": loss, "test_loss": loss + 0.1},
        acc_curves={"train_acc": 1 - loss},
        log=True,
        endpoints=[0.0, 1.0],
        x_label="λ",
    )
    ax = _main_axes(fig)
    styles = {line.get_label(): line.get_linestyle() for line in ax.get_lines()}
    assert styles["train_loss"] == "-" and styles["test_loss"] == "--"
    assert ax.get_yscale() == "log"
    twins = [other for other in fig.axes if other is not ax and other.get_ylabel() == "accuracy"]
    assert len(twins) == 1
    top_axis = ax.child_axes[0]
    assert [t.get_text() for t in top_axis.get_xticklabels()] == ["A", "B"]
    np.testing.assert_allclose(top_axis.get_xticks(), [0.0, 1.0])
    assert len(fig.legends[0].get_texts()) == 3


def test_line_masks_non_finite_values_and_notes_them() -> None:
    curve = np.linspace(1.0, 2.0, 11)
    curve[3] = np.nan
    fig = plot.line(np.linspace(0, 1, 11), {"train_loss": curve})
    assert "1 point diverged (NaN/inf), masked" in _notes(fig)


def test_wrong_shapes_are_rejected_with_the_shapes() -> None:
    with pytest.raises(GridError, match=r"\(9, 5\)"):
        plot.contour(PX, PY, PZ.T)  # transposed: the classic mistake
    with pytest.raises(GridError, match="increasing"):
        plot.heatmap(PX[::-1], PY, PZ)


def test_no_global_matplotlib_state_changes() -> None:
    before = dict(matplotlib.rcParams)
    plot.contour(BX, BY, BZ, width="double")
    plot.line(BX, {"train_loss": BZ[:, 0]}, log=True)
    assert dict(matplotlib.rcParams) == before


def test_save_figure_writes_each_format(tmp_path: Path) -> None:
    fig = plot.heatmap(BX, BY, BZ)
    written = plot.save_figure(fig, tmp_path / "figs" / "surface_lr0.1", formats=("pdf", "png", "svg"), dpi=60)
    assert [p.name for p in written] == ["surface_lr0.1.pdf", "surface_lr0.1.png", "surface_lr0.1.svg"]
    heads = [p.read_bytes()[:64] for p in written]
    assert heads[0].startswith(b"%PDF")
    assert heads[1].startswith(b"\x89PNG")
    assert b"<svg" in written[2].read_bytes()[:2000]
    again = plot.save_figure(plot.heatmap(BX, BY, BZ), tmp_path / "again", formats=("pdf",), dpi=60)
    assert again[0].read_bytes() == written[0].read_bytes()  # no timestamps: reproducible
    with pytest.raises(ConfigError, match="eps"):
        plot.save_figure(fig, tmp_path / "x", formats=("eps",))
