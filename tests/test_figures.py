"""``landscape plot`` and ``landscape export``: files in, figures and plain formats out.

Synthetic surface files (written through :func:`landscape.io.surface_file.open_surface`, so they are
real surface files with exactly chosen values) cover the shapes that matter: non-square grids,
partial surfaces, diverged points, several criteria, 1D slices and interpolations. One real
trajectory of the session's tiny training run, with the surface of its PCA plane, covers the
path overlay.
"""

from __future__ import annotations

import csv
import xml.etree.ElementTree as ET
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from matplotlib.image import imread

from landscape.cli import main
from landscape.config import Config, PlotConfig, SurfaceConfig, apply_overrides, config_from_dict, config_to_dict
from landscape.engine.directions import Directions
from landscape.engine.grid import Grid
from landscape.errors import ConfigError, LandscapeError
from landscape.figures.files import (
    applicable_kinds_of,
    export_surface_file,
    plot_surface_file,
    plot_training_curves,
    surface_figures,
)
from landscape.figures.views import bilinear, path_heights
from landscape.io.checkpoint import load_checkpoint
from landscape.io.surface_file import open_surface, read_surface
from landscape.io.trajectory_file import load_trajectory, save_trajectory
from landscape.workflows.experiment import checkpoint_config
from landscape.workflows.surface import DirectionSource, run_surface
from landscape.workflows.train import RunResult
from landscape.workflows.trajectory import default_grid_overrides, trajectory_from_run

PNG = PlotConfig(formats=("png",))

# A tilted bowl on a non-square grid (7 × 5): z[i, j] at (X[i], Y[j]).
X = np.linspace(-1.0, 1.0, 7)
Y = np.linspace(-0.5, 0.5, 5)
BOWL = 0.05 + X[:, None] ** 2 + 4.0 * Y[None, :] ** 2 + 0.3 * X[:, None]  # (7, 5)


def write_surface(path: Path, x: np.ndarray, y: np.ndarray | None, values: dict[str, np.ndarray],
                  done: np.ndarray | None = None, kind: str = "random") -> Path:
    """A real surface file holding exactly ``values`` (and ``done``; all done by default)."""
    grid = Grid(x, y)
    w = torch.arange(4.0).reshape(2, 2)
    dirs = Directions({"w": w}, None if y is None else {"w": w.T.contiguous()},
                      {"kind": kind, "dir_type": "weights", "norm": "filter", "ignore": "biasbn", "seed": 0})
    settings = {"model": {"name": "mlp"}, "data": {"name": "digits"}, "max_samples": 0}
    labels = {"x_label": "α (filter-normalized)", "y_label": "" if y is None else "β (filter-normalized)"}
    sf = open_surface(path, grid, list(values), settings, labels, dirs, {"w": [2, 2]})
    for name, v in values.items():
        sf.values[name][...] = v
    sf.done[...] = True if done is None else done
    sf.flush()
    return path


def bowl_values(shape: tuple[int, ...] = BOWL.shape) -> dict[str, np.ndarray]:
    z = BOWL if shape == BOWL.shape else np.linspace(0.1, 2.0, int(np.prod(shape))).reshape(shape)
    return {"train_loss": z, "train_acc": 1.0 - z / z.max(), "test_loss": 1.2 * z, "test_acc": 0.9 - z / z.max() / 2}


def non_blank(path: Path) -> bool:
    pixels = imread(path)[..., :3]
    return bool(pixels.var() > 1e-3)


def names(paths: list[Path]) -> set[str]:
    return {p.name for p in paths}


@pytest.fixture(scope="module")
def pca_files(tiny_run: RunResult, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(surface of the PCA plane, trajectory) of the session's tiny run, on a small non-square grid."""
    folder = tmp_path_factory.mktemp("pca")
    trajectory = folder / "trajectory.h5"
    save_trajectory(trajectory, trajectory_from_run(tiny_run.out_dir))
    cfg = load_cfg(tiny_run)
    cfg = config_from_dict(apply_overrides(config_to_dict(cfg), default_grid_overrides(trajectory, num=6)))
    surface = folder / "pca.h5"
    run_surface(tiny_run.final, surface, cfg, source=DirectionSource(file=trajectory))
    return surface, trajectory


def load_cfg(run: RunResult) -> Config:
    cfg = checkpoint_config(load_checkpoint(run.final))
    assert cfg is not None
    return Config(data=cfg.data, model=cfg.model, train=cfg.train, surface=SurfaceConfig(max_samples=200))


# --- the CLI ----------------------------------------------------------------------------------------


def test_cli_plot_writes_every_kind_that_applies_to_a_pca_surface(pca_files: tuple[Path, Path], tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    surface, trajectory = pca_files
    out = tmp_path / "figs"
    assert main(["plot", str(surface), "--trajectory", str(trajectory), "--out", str(out), "--format", "png,pdf"]) == 0
    kinds = ("contour", "filled", "heatmap", "surface3d", "trajectory")
    expected = {f"pca_{k}.{fmt}" for k in kinds for fmt in ("png", "pdf")}
    assert {p.name for p in out.iterdir()} == expected
    assert all(non_blank(out / f"pca_{k}.png") for k in kinds)
    assert capsys.readouterr().out.split() == [str(out / f"pca_{k}.{fmt}") for k in kinds for fmt in ("png", "pdf")]


def test_cli_plot_of_a_1d_slice_draws_the_line_only(tmp_path: Path) -> None:
    surface = write_surface(tmp_path / "slice.h5", X, None, {k: v[:, 2] for k, v in bowl_values().items()})
    assert main(["plot", str(surface), "--out", str(tmp_path / "f"), "--format", "png", "--no-title"]) == 0
    assert [p.name for p in (tmp_path / "f").iterdir()] == ["slice_line.png"]
    assert non_blank(tmp_path / "f" / "slice_line.png")


def test_cli_options_reach_the_figure(tmp_path: Path) -> None:
    surface = write_surface(tmp_path / "s.h5", X, Y, bowl_values())
    args = ["plot", str(surface), "--out", str(tmp_path), "--kind", "heatmap", "--format", "png", "--dpi", "50",
            "--width", "double", "--log", "--cmap", "magma", "--column", "test_loss"]
    assert main(args) == 0
    _, width = imread(tmp_path / "s_heatmap.png").shape[:2]
    assert width == pytest.approx(7.0 * 50, abs=2)  # the double-column width at 50 dpi


def test_cli_plot_takes_its_defaults_from_the_config(tmp_path: Path) -> None:
    surface = write_surface(tmp_path / "s.h5", X, Y, bowl_values())
    config = tmp_path / "plot.toml"
    config.write_text('[plot]\nkinds = ["contour", "line"]\nformats = ["svg"]\n')
    assert main(["plot", str(surface), "--out", str(tmp_path / "f"), "--config", str(config)]) == 0
    assert [p.name for p in (tmp_path / "f").iterdir()] == ["s_contour.svg"]  # line does not apply: skipped


@pytest.mark.parametrize(("kind", "message"), [
    ("line", "needs a 1D surface"),
    ("trajectory", "needs a trajectory file"),
    ("panels", "several losses"),
    ("bogus", "unknown figure kind 'bogus'"),
])
def test_cli_explicit_kinds_that_do_not_apply_are_one_line_errors(kind: str, message: str, tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    surface = write_surface(tmp_path / "s.h5", X, Y, bowl_values())
    assert main(["plot", str(surface), "--out", str(tmp_path / "f"), "--kind", kind]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("landscape plot: error:") and message in err
    assert not (tmp_path / "f").exists()


def test_unknown_metric_lists_the_available_ones(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    surface = write_surface(tmp_path / "s.h5", X, Y, bowl_values())
    assert main(["plot", str(surface), "--out", str(tmp_path), "--column", "val_loss"]) == 1
    assert "train_loss, train_acc, test_loss, test_acc" in capsys.readouterr().err


# --- surfaces that are not simple ----------------------------------------------------------------------


def test_partial_and_diverged_surfaces_plot_every_2d_kind(tmp_path: Path) -> None:
    values = bowl_values()
    values["train_loss"] = values["train_loss"].copy()
    values["train_loss"][1, 1], values["train_loss"][2, 3] = np.nan, np.inf  # diverged: legitimate values
    done = np.ones(BOWL.shape, dtype=bool)
    done[5:, :] = False  # the last x rows are not computed yet
    surface = write_surface(tmp_path / "partial.h5", X, Y, values, done)
    written = plot_surface_file(surface, tmp_path / "f", PlotConfig(formats=("png",), log=True))
    assert names(written) == {f"partial_{k}.png" for k in ("contour", "filled", "heatmap", "surface3d")}
    assert all(non_blank(p) for p in written)


def test_nothing_computed_yet_still_plots(tmp_path: Path) -> None:
    surface = write_surface(tmp_path / "empty.h5", X, Y, bowl_values(), np.zeros(BOWL.shape, dtype=bool))
    assert len(plot_surface_file(surface, tmp_path, PNG, kinds=["contour", "heatmap"])) == 2


def test_the_heatmap_is_not_transposed_on_a_non_square_grid(tmp_path: Path) -> None:
    """z rises along x only; the heatmap's colours must then change along the image's width."""
    z = np.repeat(np.linspace(0.0, 1.0, 7)[:, None], 5, axis=1)  # (7, 5), A[i, j] = x-rank i
    surface = write_surface(tmp_path / "ramp.h5", X, Y, {"train_loss": z})
    (png,) = plot_surface_file(surface, tmp_path, PlotConfig(formats=("png",), title=False, cmap="gray"), kinds=["heatmap"])
    image = imread(png)[..., :3].mean(axis=2)  # (rows, columns) grey levels
    h, w = image.shape
    middle_row = image[h // 2, int(0.2 * w):int(0.7 * w)]
    middle_column = image[int(0.3 * h):int(0.7 * h), int(0.45 * w)]
    assert np.ptp(middle_row) > 0.5  # dark to light across x
    assert np.ptp(middle_column) < 0.05  # constant along y


def test_several_criteria_give_one_panel_each(tmp_path: Path) -> None:
    values = {"train_loss": BOWL, "train_cross_entropy": BOWL, "train_mse": 40 + 10 * BOWL, "train_acc": 1 - BOWL / 5}
    surface = write_surface(tmp_path / "multi.h5", X, Y, values)
    written = plot_surface_file(surface, tmp_path / "f", PNG)
    assert "multi_panels.png" in names(written)
    assert non_blank(tmp_path / "f" / "multi_panels.png")
    assert "panels" in applicable_kinds_of(surface)
    single = write_surface(tmp_path / "single.h5", X, Y, bowl_values())
    assert "panels" not in applicable_kinds_of(single)


def test_an_interpolation_line_marks_both_models(tmp_path: Path) -> None:
    """A slice between two checkpoints (kind "target") has a dotted line at α = 0 and α = 1, lettered A and B."""
    x = np.linspace(-0.5, 1.5, 9)
    surface = write_surface(tmp_path / "interp.h5", x, None, {"train_loss": (x - 1) ** 2 + 0.1, "train_acc": 1 - x**2 / 4},
                            kind="target")
    (kind, figure), = surface_figures(surface).items()
    assert kind == "line"
    ax = figure.axes[0]
    vertical = sorted(float(line.get_xdata()[0]) for line in ax.get_lines()
                      if line.get_linestyle() == ":" and np.ptp(np.asarray(line.get_xdata(), dtype=float)) == 0)
    assert vertical == [0.0, 1.0]
    top = [child for child in ax.child_axes if child.get_xticks().size]  # the secondary axis holding the letters
    assert len(top) == 1
    assert top[0].get_xticks().tolist() == [0.0, 1.0]
    assert [label.get_text() for label in top[0].get_xticklabels()] == ["A", "B"]
    (png,) = plot_surface_file(surface, tmp_path, PNG)
    assert png.name == "interp_line.png" and non_blank(png)
    # a random-direction slice marks no model
    random = write_surface(tmp_path / "random.h5", x, None, {"train_loss": (x - 1) ** 2 + 0.1}, kind="random")
    (figure,) = surface_figures(random).values()
    assert not figure.axes[0].child_axes
    assert not [line for line in figure.axes[0].get_lines() if line.get_linestyle() == ":"]


# --- the path on the surface ---------------------------------------------------------------------------


def test_bilinear_interpolation_is_exact_for_a_linear_function() -> None:
    rng = np.random.default_rng(0)
    x, y = np.sort(rng.uniform(-1, 1, 6)), np.sort(rng.uniform(-2, 2, 4))  # non-uniform, non-square
    z = 1.5 - 2.0 * x[:, None] + 0.25 * y[None, :]
    inside = np.column_stack([rng.uniform(x[0], x[-1], 50), rng.uniform(y[0], y[-1], 50)])
    np.testing.assert_allclose(bilinear(x, y, z, inside), 1.5 - 2.0 * inside[:, 0] + 0.25 * inside[:, 1], rtol=0, atol=1e-12)
    corners = np.array([[x[0], y[0]], [x[-1], y[-1]]])
    np.testing.assert_allclose(bilinear(x, y, z, corners), [z[0, 0], z[-1, -1]], atol=1e-12)
    outside = np.array([[x[0] - 0.1, 0.0], [0.0, y[-1] + 0.1]])
    assert np.isnan(bilinear(x, y, z, outside)).all()


def test_the_path_height_is_the_recorded_loss_or_the_surface(pca_files: tuple[Path, Path]) -> None:
    surface, trajectory = pca_files
    sf, path = read_surface(surface), load_trajectory(trajectory)
    assert np.isfinite(path.losses).all()
    on_surface = {m: bilinear(sf.grid.x, sf.grid.y, sf.values[m], path.coords) for m in ("train_loss", "train_acc")}
    # the fixture's surface saw 200 training samples: the recorded full-set loss is another quantity
    assert sf.attrs["settings"]["max_samples"] == 200
    np.testing.assert_allclose(path_heights(sf, "train_loss", path), on_surface["train_loss"])
    np.testing.assert_allclose(path_heights(sf, "train_acc", path), on_surface["train_acc"])
    # over the whole training set the record is the loss itself; unknown records fall back to the surface
    full = replace(sf, attrs={**sf.attrs, "settings": {**sf.attrs["settings"], "max_samples": 0}})
    losses = path.losses.copy()
    losses[0] = np.nan
    heights = path_heights(full, "train_loss", replace(path, losses=losses))
    np.testing.assert_array_equal(heights[1:], path.losses[1:])
    assert heights[0] == pytest.approx(on_surface["train_loss"][0])
    # θ_final is the origin, a grid node: there the interpolation is the computed value
    origin = (int(np.abs(sf.grid.x).argmin()), int(np.abs(sf.grid.y).argmin()))  # type: ignore[arg-type]
    assert on_surface["train_acc"][-1] == pytest.approx(sf.values["train_acc"][origin])


def test_a_trajectory_from_another_plane_is_refused(pca_files: tuple[Path, Path], tmp_path: Path) -> None:
    _, trajectory = pca_files
    surface = write_surface(tmp_path / "random.h5", X, Y, bowl_values())
    with pytest.raises(LandscapeError, match="not computed in the plane"):
        plot_surface_file(surface, tmp_path, PNG, trajectory=trajectory)


def test_training_curves_from_a_run(tiny_run: RunResult, tmp_path: Path) -> None:
    written = plot_training_curves(tiny_run.manifest, tmp_path / "curves", PNG)
    assert names(written) == {"curves.png"} and non_blank(written[0])


# --- export ----------------------------------------------------------------------------------------------


def test_export_csv_holds_the_file_arrays(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    values = bowl_values()
    values["train_loss"] = values["train_loss"].copy()
    values["train_loss"][3, 2] = np.inf
    done = np.ones(BOWL.shape, dtype=bool)
    done[0, 0] = False
    values["train_loss"][0, 0] = np.nan
    surface = write_surface(tmp_path / "s.h5", X, Y, values, done)
    assert main(["export", str(surface), "--format", "csv"]) == 0
    target = tmp_path / "s.csv"
    assert capsys.readouterr().out.strip() == str(target)
    with target.open() as fh:
        rows = list(csv.DictReader(fh))
    sf = read_surface(surface)
    assert list(rows[0]) == ["x", "y", *sf.columns, "done"]
    for name in sf.columns:
        got = np.array([float(r[name]) for r in rows]).reshape(len(X), len(Y))
        np.testing.assert_array_equal(got, sf.values[name])  # NaN == NaN here, inf == inf
    np.testing.assert_array_equal(np.array([float(r["done"]) for r in rows]).reshape(BOWL.shape), done)
    np.testing.assert_array_equal(np.array([float(r["x"]) for r in rows]).reshape(BOWL.shape)[:, 0], X)


def test_export_npz_holds_the_file_arrays(tmp_path: Path) -> None:
    surface = write_surface(tmp_path / "s.h5", X, Y, bowl_values())
    assert main(["export", str(surface), "--format", "npz", "--out", str(tmp_path / "out.npz"), "--column", "test_acc"]) == 0
    with np.load(tmp_path / "out.npz") as data:
        assert sorted(data.files) == ["done", "test_acc", "x", "y"]
        np.testing.assert_array_equal(data["test_acc"], read_surface(surface).values["test_acc"])
        np.testing.assert_array_equal(data["y"], Y)


def test_export_vtp_is_a_height_field_with_holes(tmp_path: Path) -> None:
    done = np.ones(BOWL.shape, dtype=bool)
    done[6, 4] = False
    surface = write_surface(tmp_path / "s.h5", X, Y, bowl_values(), done)
    target = export_surface_file(surface, "vtp", tmp_path / "s.vtp", zmax=1.0)
    piece = ET.parse(target).getroot().find("PolyData/Piece")
    assert piece is not None
    assert int(piece.get("NumberOfPoints", -1)) == done.sum()
    # every grid cell with 4 present corners gives two triangles: (6 × 4) cells, one lost
    assert int(piece.get("NumberOfPolys", -1)) == 2 * (6 * 4 - 1)
    points = np.array(piece.findtext("Points/DataArray", "").split(), dtype=float).reshape(-1, 3)
    assert points[:, 2].max() <= 1.0  # clipped at zmax


@pytest.mark.parametrize(("args", "error", "message"), [
    (["--format", "vtp"], LandscapeError, "1D surface"),
    (["--format", "csv", "--log"], ConfigError, "vtp"),
    (["--format", "csv", "--column", "nope"], ConfigError, "available"),
])
def test_export_errors(args: list[str], error: type[Exception], message: str, tmp_path: Path,
                       capsys: pytest.CaptureFixture[str]) -> None:
    surface = write_surface(tmp_path / "line.h5", X, None, {"train_loss": BOWL[:, 0]})
    assert main(["export", str(surface), *args]) == 1
    assert message in capsys.readouterr().err
    with pytest.raises(error, match=message):
        fmt = args[1]
        export_surface_file(surface, fmt, metric=args[3] if "--column" in args else None, log="--log" in args)


def test_log_scale_is_chosen_for_a_loss_spanning_more_than_a_decade() -> None:
    """A trained model's basin (0.035) under a rim of 3.5 gets log levels: round linear levels
    (0.5, 1, …) would leave the basin without a contour."""
    from landscape.figures.views import spans_decades

    assert spans_decades(np.array([0.035, 0.4, 3.5]))
    assert not spans_decades(np.array([0.5, 1.0, 3.5]))  # within a decade: linear
    assert not spans_decades(np.array([0.0, 1.0, 30.0]))  # zero: no log scale
    assert spans_decades(np.array([np.nan, 0.01, np.inf, 0.5]))  # non-finite points ignored
    assert not spans_decades(np.array([0.5, 5.0]))  # exactly a decade: linear (one rule, > 10, everywhere)
    assert spans_decades(np.array([0.5, 1.0]), np.array([20.0]))  # panels that share a scale are judged together


@pytest.mark.parametrize(("column", "log"), [("train_loss", True), ("test_mse", True), ("train_acc", False),
                                             ("train_eig_ratio", False), ("train_eig_converged", False)])
def test_the_automatic_scale_is_one_rule_per_column(column: str, log: bool) -> None:
    """``auto_log``, what every figure (static, interactive, animation) and the check use: log for a column
    spanning more than a decade, never for accuracies, eigenvalue ratios or the Lanczos flag."""
    from landscape.figures.views import auto_log

    assert auto_log(column, np.array([0.035, 0.4, 3.5])) is log
    assert auto_log(column, np.array([0.5, 1.0, 3.5])) is False
