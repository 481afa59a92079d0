"""What ``info``, ``plot`` and the interactive page show of a progressive surface (``--tolerance``, ``--refine``).

The files are written by hand (:func:`open_surface` + :func:`make_progressive`, then known numbers in
the values and extras), so every number and every mark is checked against what the test itself
put there: info's largest errors and shares of data read against sums written out in loops here,
the 1D band's polygon against value ± 2·stderr, the hatched cells against cells counted by hand,
the hover against the arrays. An exact file's figures gain nothing (counted artist by artist).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from chromium import Browser, find_chromium
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure
from required import need

import landscape
from landscape.cli import main
from landscape.config import PlotConfig
from landscape.engine.directions import Directions
from landscape.engine.grid import Grid
from landscape.figures.curves import BAND_GID, BAND_LABEL
from landscape.figures.estimates import ESTIMATE_GID, HATCH_GID, INTERPOLATED_GID
from landscape.figures.files import plot_surface_file, surface_figures
from landscape.io.surface_file import make_progressive, open_surface, read_surface
from landscape.io.trajectory_file import TrajectoryPoints

X = np.linspace(-1.0, 1.0, 7)
Y = np.linspace(-0.5, 0.5, 5)
BOWL = 0.5 + X[:, None] ** 2 + 4.0 * Y[None, :] ** 2  # (7, 5), z[i, j] at (X[i], Y[j])
N = {"train": 1000, "test": 200}
T = {"train_loss": 0.05, "test_loss": 0.08}
PNG = PlotConfig(formats=("png",))


def new_file(path: Path, x: np.ndarray, y: np.ndarray | None, values: dict[str, np.ndarray]) -> Any:
    """An open surface file holding ``values``, every point done (not yet flushed)."""
    w = torch.arange(4.0).reshape(2, 2)
    dirs = Directions({"w": w}, None if y is None else {"w": w.T.contiguous()},
                      {"kind": "random", "dir_type": "weights", "norm": "filter", "ignore": "biasbn", "seed": 0})
    settings = {"model": {"name": "mlp"}, "data": {"name": "digits"}, "max_samples": 0}
    sf = open_surface(path, Grid(x, y), list(values), settings, {"x_label": "α", "y_label": "" if y is None else "β"},
                      dirs, {"w": [2, 2]})
    for name, v in values.items():
        sf.values[name][...] = v
    sf.done[...] = True
    return sf


def progressive(path: Path, x: np.ndarray, y: np.ndarray | None, values: dict[str, np.ndarray],
                extras: dict[str, np.ndarray], *, refine: bool = False, done: np.ndarray | None = None,
                share: float | None = None) -> Path:
    """A progressive surface file: ``values``, then ``extras`` over what make_progressive gives, T and N as above."""
    sf = new_file(path, x, y, values)
    if done is not None:
        sf.done[...] = done
    make_progressive(sf, {s: n for s, n in N.items() if any(c.startswith(s) for c in values)}, refine)
    for name, v in extras.items():
        sf.extra[name][...] = v
    sf.attrs.update(tolerance={c: t for c, t in T.items() if c in values}, tolerance_spec="0.05", sample_seed=7,
                    top={c: 10.0 for c in T if c in values})
    if share is not None:
        sf.attrs["computed_share"] = share
    sf.flush()
    return path


def exact(path: Path, x: np.ndarray, y: np.ndarray | None, values: dict[str, np.ndarray]) -> Path:
    new_file(path, x, y, values).flush()
    return path


def plane_values() -> dict[str, np.ndarray]:
    return {"train_loss": BOWL, "train_acc": 1.0 - BOWL / 10, "test_loss": 1.2 * BOWL, "test_acc": 0.9 - BOWL / 10}


def gids(figure: Figure) -> list[str]:
    return [a.get_gid() for a in figure.findobj() if a.get_gid() is not None]


# --- info ---------------------------------------------------------------------------------------------


def test_info_reports_tolerance_largest_error_data_read_above_and_computed_share(tmp_path: Path,
                                                                                capsys: pytest.CaptureFixture[str]) -> None:
    rng = np.random.default_rng(3)
    shape = BOWL.shape
    err = {c: rng.uniform(0.0, 0.06, shape) for c in plane_values()}
    samples = {s: rng.integers(1, n + 1, shape) for s, n in N.items()}
    above = np.zeros(shape, dtype=bool)
    above[0, 0] = above[6, 4] = True
    err["train_loss"][0, 0] = 0.9  # stopped above the range: early, with a large error, left out of the largest
    computed = np.ones(shape, dtype=bool)
    computed[1::2, 1::2] = False  # 3 × 2 points filled by interpolation: no samples read there
    for s in N:
        samples[s][~computed] = 0
    done = np.ones(shape, dtype=bool)
    done[3, 2] = False  # not computed yet: its numbers do not count
    err["test_loss"][3, 2] = 5.0
    samples["train"][3, 2] = 999
    extras = {f"{c}_stderr": e for c, e in err.items()} | {f"{s}_samples": v for s, v in samples.items()}
    path = progressive(tmp_path / "p.h5", X, Y, plane_values(), {**extras, "above": above, "computed": computed},
                       refine=True, done=done)

    assert main(["info", str(path)]) == 0
    out = json.loads(capsys.readouterr().out)["progressive"]

    largest = {}
    for c in T:  # by hand: every done point that did not stop above the range
        largest[c] = max(err[c][i, j] for i in range(7) for j in range(5) if done[i, j] and not above[i, j])
    read = {}
    for s, n in N.items():  # samples over the done computed points / (N × those points)
        points = [(i, j) for i in range(7) for j in range(5) if done[i, j] and computed[i, j]]
        read[s] = 100.0 * sum(int(samples[s][p]) for p in points) / (n * len(points))
    assert out["tolerance_spec"] == "0.05" and out["tolerance"] == T
    assert out["max_stderr"] == pytest.approx(largest, rel=1e-12)
    assert out["max_stderr_in_T"] == pytest.approx({c: largest[c] / T[c] for c in T}, rel=1e-12)
    assert out["data_read_percent"] == pytest.approx(read, rel=1e-12)
    assert out["above"] == 2
    assert out["computed_percent"] == pytest.approx(100.0 * 28 / 34)  # 35 points, 1 not done, 6 interpolated
    assert out["sample_seed"] == 7
    assert "computed_percent" not in _info(progressive(tmp_path / "q.h5", X, Y, plane_values(), {}), capsys)


def _info(path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main(["info", str(path)]) == 0
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    return out.get("progressive", out)


def test_info_of_an_exact_file_says_nothing_of_estimates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(exact(tmp_path / "e.h5", X, Y, plane_values()))]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["type"] == "surface" and "progressive" not in out


# --- 1D: ±2 standard-error bands ---------------------------------------------------------------------


XL = np.linspace(-1.0, 1.0, 11)
LINE = {"train_loss": 0.4 + XL**2, "test_loss": 0.6 + XL**2, "train_acc": 0.9 - 0.2 * XL**2, "test_acc": 0.85 - 0.2 * XL**2}
LINE_ERR = {"train_loss": 0.02 + 0.05 * np.abs(XL), "test_loss": np.full(11, 0.03), "train_acc": 0.01 + 0.01 * XL**2,
            "test_acc": np.zeros(11)}  # test_acc exact everywhere: no band


def bands(figure: Figure) -> list[PolyCollection]:
    return [a for a in figure.findobj(PolyCollection) if a.get_gid() == BAND_GID]


def check_band(band: PolyCollection, value: np.ndarray, err: np.ndarray) -> None:
    """The polygon spans value − 2·err … value + 2·err at every x (top edge and bottom edge)."""
    vertices = np.concatenate([p.vertices for p in band.get_paths()])
    for k, x in enumerate(XL):
        at = vertices[np.isclose(vertices[:, 0], x), 1]
        assert at.min() == pytest.approx(value[k] - 2 * err[k], abs=1e-12)
        assert at.max() == pytest.approx(value[k] + 2 * err[k], abs=1e-12)


def test_a_line_draws_a_band_of_two_standard_errors_in_the_curves_colour(tmp_path: Path) -> None:
    path = progressive(tmp_path / "line.h5", XL, None, LINE, {f"{c}_stderr": e for c, e in LINE_ERR.items()})
    figure = surface_figures(path, PNG, kinds=["line"])["line"]
    drawn = bands(figure)
    assert len(drawn) == 3  # train loss, test loss, train accuracy; test accuracy has none
    for band, column, colour in zip(drawn, ["train_loss", "test_loss", "train_acc"], ["C0", "C0", "C3"], strict=True):
        check_band(band, LINE[column], LINE_ERR[column])
        assert band.get_facecolor()[0][:3] == pytest.approx(to_rgba(colour)[:3])
    legend = [t.get_text() for lg in figure.legends for t in lg.get_texts()]
    assert BAND_LABEL in legend and BAND_LABEL == "±2 s.e."

    api = landscape.plot(landscape.load_surface(path), "line")  # the Python API draws the same bands
    assert isinstance(api, Figure)
    check_band(bands(api)[0], LINE["train_loss"], LINE_ERR["train_loss"])
    written = plot_surface_file(path, tmp_path / "fig", PNG, kinds=["line"])
    assert written[0].stat().st_size > 0


def test_a_saved_api_surface_keeps_its_extras_and_attributes(tmp_path: Path) -> None:
    path = progressive(tmp_path / "line.h5", XL, None, LINE, {f"{c}_stderr": e for c, e in LINE_ERR.items()})
    s = landscape.load_surface(path)
    np.testing.assert_array_equal(s.extra["train_loss_stderr"], LINE_ERR["train_loss"])
    again = read_surface(s.save(tmp_path / "again.h5"))
    assert again.attrs["tolerance"] == {"train_loss": 0.05, "test_loss": 0.08} and again.attrs["progressive"]
    for name, array in s.extra.items():
        np.testing.assert_array_equal(again.extra[name], array)


# --- 2D: hatched cells where s.e. > T -------------------------------------------------------------------


def plane_errors() -> tuple[dict[str, np.ndarray], set[tuple[int, int]], np.ndarray]:
    """Errors below T but at three points (one of them stopped above the range); accuracy errors all large."""
    err = np.full(BOWL.shape, 0.01)
    err[2, 1] = 0.06  # > T = 0.05
    err[6, 4] = 0.2  # a corner point
    err[4, 3] = 0.9  # above the range: settled, not hatched
    err[5, 0] = 0.05  # exactly T: settled
    above = np.zeros(BOWL.shape, dtype=bool)
    above[4, 3] = True
    bad = {(2, 1), (6, 4)}
    extras = {"train_loss_stderr": err, "train_acc_stderr": np.full(BOWL.shape, 0.3), "above": above}
    return extras, bad, above


def rectangles(figure: Figure) -> set[tuple[float, float, float, float]]:
    hatches = [a for a in figure.findobj(PolyCollection) if a.get_gid() == HATCH_GID]
    assert len(hatches) <= 1
    return {(round(v[:, 0].min(), 9), round(v[:, 0].max(), 9), round(v[:, 1].min(), 9), round(v[:, 1].max(), 9))
            for h in hatches for v in (p.vertices for p in h.get_paths())}


def test_contours_hatch_exactly_the_cells_with_a_corner_whose_error_exceeds_t(tmp_path: Path) -> None:
    extras, bad, _ = plane_errors()
    path = progressive(tmp_path / "plane.h5", X, Y, {"train_loss": BOWL, "train_acc": 1 - BOWL / 10}, extras)
    expected = set()
    for i in range(len(X) - 1):  # by hand: a cell between four grid points is hatched when a corner is unsettled
        for j in range(len(Y) - 1):
            if {(i, j), (i + 1, j), (i, j + 1), (i + 1, j + 1)} & bad:
                expected.add((round(X[i], 9), round(X[i + 1], 9), round(Y[j], 9), round(Y[j + 1], 9)))
    assert len(expected) == 5  # (2, 1) touches four cells, the corner (6, 4) one
    figures = surface_figures(path, PNG, kinds=["contour", "filled", "heatmap"])
    for kind in ("contour", "filled"):
        assert rectangles(figures[kind]) == expected
        notes = [a.get_text() for a in figures[kind].findobj() if a.get_gid() == ESTIMATE_GID]
        assert notes == ["hatched: s.e. > T = 0.05"]
    xe = np.concatenate([[X[0] - (X[1] - X[0]) / 2], (X[:-1] + X[1:]) / 2, [X[-1] + (X[-1] - X[-2]) / 2]])
    ye = np.concatenate([[Y[0] - (Y[1] - Y[0]) / 2], (Y[:-1] + Y[1:]) / 2, [Y[-1] + (Y[-1] - Y[-2]) / 2]])
    pixels = {(round(xe[i], 9), round(xe[i + 1], 9), round(ye[j], 9), round(ye[j + 1], 9)) for i, j in bad}
    assert rectangles(figures["heatmap"]) == pixels  # a heatmap cell is its own point
    accuracy = surface_figures(path, PlotConfig(formats=("png",), metric="train_acc"), kinds=["contour"])["contour"]
    assert rectangles(accuracy) == set() and ESTIMATE_GID not in gids(accuracy)  # no tolerance for accuracy
    api = landscape.plot(landscape.load_surface(path), "contour")
    assert isinstance(api, Figure) and rectangles(api) == expected
    coords = np.array([[-0.8, 0.4], [-0.3, 0.1], [0.0, 0.0]])
    points = TrajectoryPoints(coords, np.arange(3), np.arange(3), np.full(3, np.nan), ("a", "b", "c"), np.array([0.9, 0.1]), {})
    over = landscape.plot(landscape.load_surface(path), "trajectory", trajectory=points)  # the path over the contours
    assert isinstance(over, Figure) and rectangles(over) == expected


def test_a_refined_surface_dots_its_interpolated_points_and_says_how_many_were_computed(tmp_path: Path) -> None:
    computed = np.zeros(BOWL.shape, dtype=bool)
    computed[::2, ::2] = True  # the coarse level: 4 × 3 = 12 of 35 points computed
    path = progressive(tmp_path / "refined.h5", X, Y, {"train_loss": BOWL}, {"computed": computed}, refine=True,
                       share=12 / 35)
    figure = surface_figures(path, PNG, kinds=["contour"])["contour"]
    dots = [a for a in figure.findobj() if a.get_gid() == INTERPOLATED_GID]
    assert len(dots) == 1 and len(dots[0].get_xdata()) == 35 - 12  # type: ignore[attr-defined]
    xs, ys = dots[0].get_xdata(), dots[0].get_ydata()  # type: ignore[attr-defined]
    marked = {(round(float(a), 9), round(float(b), 9)) for a, b in zip(xs, ys, strict=True)}
    assert marked == {(round(X[i], 9), round(Y[j], 9)) for i in range(7) for j in range(5) if not computed[i, j]}
    notes = [a.get_text() for a in figure.findobj() if a.get_gid() == ESTIMATE_GID]
    assert notes == ["refine: 34 % of points computed (· interpolated)"]  # 12/35 = 34.3 %
    line_computed = np.arange(11) % 4 == 0  # 3 of 11 points; no computed_share attribute: from the mask
    line = progressive(tmp_path / "line.h5", XL, None, {"train_loss": LINE["train_loss"]}, {"computed": line_computed},
                       refine=True)
    drawn = surface_figures(line, PNG, kinds=["line"])["line"]
    assert [a.get_text() for a in drawn.findobj() if a.get_gid() == ESTIMATE_GID] == ["refine: 27 % of points computed"]


# --- an exact file gains nothing ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["contour", "filled", "heatmap", "line"])
def test_an_exact_file_draws_nothing_extra(tmp_path: Path, kind: str) -> None:
    x, y, values = (XL, None, LINE) if kind == "line" else (X, Y, plane_values())
    plain = surface_figures(exact(tmp_path / "e.h5", x, y, values), PNG, kinds=[kind])[kind]
    assert not {BAND_GID, HATCH_GID, INTERPOLATED_GID, ESTIMATE_GID} & set(gids(plain))
    # a progressive file whose every point read all its samples (errors 0) is drawn exactly as the exact one
    settled = surface_figures(progressive(tmp_path / "p.h5", x, y, values, {}), PNG, kinds=[kind])[kind]
    assert len(settled.findobj()) == len(plain.findobj())
    extras = ({f"{c}_stderr": e for c, e in LINE_ERR.items()} if kind == "line" else plane_errors()[0])
    marked = surface_figures(progressive(tmp_path / "m.h5", x, y, values, extras), PNG, kinds=[kind])[kind]
    assert len(marked.findobj()) > len(plain.findobj())


# --- the interactive page ---------------------------------------------------------------------------------


def need_plotly() -> None:
    try:
        import plotly  # noqa: F401
    except ImportError:
        need("plotly (pip install plotly, the 'interactive' extra)", False)


def test_hover_shows_value_plus_minus_error_and_names_interpolated_points(tmp_path: Path) -> None:
    need_plotly()
    from landscape.figures.interactive import interactive_figure

    extras, _, above = plane_errors()
    computed = np.ones(BOWL.shape, dtype=bool)
    computed[1, 1] = False
    path = progressive(tmp_path / "h.h5", X, Y, {"train_loss": BOWL, "train_acc": 1 - BOWL / 10},
                       {**extras, "computed": computed}, refine=True)
    page = interactive_figure(path)
    heat = next(t for t in page.figure.data if t.type == "heatmap")
    assert "training loss = %{customdata[0]:.4g} ± %{customdata[2]:.2g}" in heat.hovertemplate
    assert "training accuracy = %{customdata[1]:.4g} ± %{customdata[3]:.2g}" in heat.hovertemplate
    custom = heat.customdata  # (ny, nx, k): rows are y
    assert custom[1][2][2] == pytest.approx(0.06) and custom[1][2][0] == pytest.approx(BOWL[2, 1], rel=1e-5)
    assert custom[1][1][4] == "interpolated" and custom[3][4][4] == "stopped above the range" and custom[0][0][4] == ""
    plain = interactive_figure(exact(tmp_path / "e.h5", X, Y, {"train_loss": BOWL}))
    assert "±" not in next(t for t in plain.figure.data if t.type == "heatmap").hovertemplate
    assert above[4, 3]


# Hovers the visible heatmap at grid node (I, J) and returns the hover label's text.
HOVER = """
new Promise(function (resolve) {
  (function poll(n) {
    var gd = document.querySelector('.js-plotly-plot');
    if (!gd || !gd.getAttribute('data-shown')) {
      if (n > 0) { setTimeout(function () { poll(n - 1); }, 100); } else { resolve('no plot'); }
      return;
    }
    var heat = gd._fullData.filter(function (t) { return t.visible === true && t.type === 'heatmap'; })[0];
    Plotly.Fx.hover(gd, {xval: heat.x[I], yval: heat.y[J], target: gd}, 'xy');
    setTimeout(function () {
      resolve(Array.prototype.map.call(document.querySelectorAll('.hovertext'), function (e) {
        return Array.prototype.map.call(e.querySelectorAll('tspan.line'), function (l) { return l.textContent; }).join('|');
      }).join('\\n'));
    }, 300);
  })(600);
})
"""


def test_the_hover_in_chromium_reads_value_plus_minus_error(tmp_path: Path) -> None:
    need_plotly()
    executable = find_chromium()
    need("chromium (apt-get install chromium)", executable is not None)
    assert executable is not None
    from landscape.figures.interactive import write_interactive

    extras, _, _ = plane_errors()
    computed = np.ones(BOWL.shape, dtype=bool)
    computed[1, 1] = False
    path = progressive(tmp_path / "h.h5", X, Y, {"train_loss": BOWL, "train_acc": 1 - BOWL / 10},
                       {**extras, "computed": computed}, refine=True)
    page = write_interactive(path, tmp_path)[0]
    with Browser(executable) as browser:
        browser.open(page.resolve().as_uri())
        texts = {(i, j): browser.evaluate(HOVER.replace("I", str(i)).replace("J", str(j))) for i, j in [(2, 1), (1, 1)]}
    assert f"training loss = {BOWL[2, 1]:.4g} ± 0.06" in texts[(2, 1)] and "interpolated" not in texts[(2, 1)]
    assert f"training loss = {BOWL[1, 1]:.4g} ± 0.01" in texts[(1, 1)] and texts[(1, 1)].endswith("interpolated")


def test_panels_hatch_each_criterion_with_its_own_tolerance(tmp_path: Path) -> None:
    values = {"train_loss": BOWL, "train_cross_entropy": BOWL, "train_mse": BOWL / 2}
    err = np.full(BOWL.shape, 0.01)
    err[0, 0] = 0.07  # above T of cross-entropy (0.05), below that of mse (0.1)
    sf = new_file(tmp_path / "panels.h5", X, Y, values)
    make_progressive(sf, {"train": 100}, False)
    for c in values:
        sf.extra[f"{c}_stderr"][...] = err
    sf.attrs["tolerance"] = {"train_loss": 0.05, "train_cross_entropy": 0.05, "train_mse": 0.1}
    sf.flush()
    figure = surface_figures(tmp_path / "panels.h5", PNG, kinds=["panels"])["panels"]
    hatched = [a for a in figure.findobj(PolyCollection) if a.get_gid() == HATCH_GID]
    assert len(hatched) == 1 and hatched[0].axes is figure.axes[0] and len(hatched[0].get_paths()) == 1


def test_a_partial_file_is_hatched_on_the_coarse_level_it_shows(tmp_path: Path) -> None:
    done = np.zeros(BOWL.shape, dtype=bool)
    done[::2, ::4] = True  # the first coarse level of a 7 × 5 grid (strides 2, 4): 4 × 2 points, complete
    done[1, 1] = True  # and one point of the next level
    err = np.full(BOWL.shape, 0.01)
    err[2, 4] = 0.2
    path = progressive(tmp_path / "partial.h5", X, Y, {"train_loss": BOWL}, {"train_loss_stderr": err}, done=done)
    figure = surface_figures(path, PNG, kinds=["contour"])["contour"]
    xs, ys = X[::2], Y[::4]
    expected = {(round(xs[i], 9), round(xs[i + 1], 9), round(ys[0], 9), round(ys[1], 9)) for i in (0, 1)}
    assert rectangles(figure) == expected  # the two coarse cells with (x[2], y[4]) as a corner


def test_export_adds_the_errors_samples_and_masks_of_a_progressive_surface(tmp_path: Path) -> None:
    err = np.linspace(0.0, 0.1, BOWL.size).reshape(BOWL.shape)
    samples = np.arange(BOWL.size).reshape(BOWL.shape)
    above = BOWL > 1.5
    path = progressive(tmp_path / "p.h5", X, Y, plane_values(),
                       {"train_loss_stderr": err, "train_samples": samples, "above": above})
    assert main(["export", str(path), "--format", "npz", "--out", str(tmp_path / "p.npz"), "--column", "train_loss"]) == 0
    with np.load(tmp_path / "p.npz") as data:
        assert sorted(data.files) == ["above", "done", "train_loss", "train_loss_stderr", "train_samples", "x", "y"]
        np.testing.assert_array_equal(data["train_loss_stderr"], err)
        np.testing.assert_array_equal(data["train_samples"], samples)
        np.testing.assert_array_equal(data["above"], above.astype(np.float64))
    assert main(["export", str(exact(tmp_path / "e.h5", X, Y, plane_values())), "--format", "npz",
                 "--out", str(tmp_path / "e.npz"), "--column", "train_loss"]) == 0
    with np.load(tmp_path / "e.npz") as data:
        assert sorted(data.files) == ["done", "train_loss", "x", "y"]


def test_a_runs_index_table_shows_how_settled_each_progressive_surface_is(tmp_path: Path) -> None:
    from landscape.figures.index_page import run_tables

    err = np.full(BOWL.shape, 0.02)
    err[3, 3] = 0.04  # largest: 0.8 T
    samples = np.full(BOWL.shape, 250)  # a quarter of the training set at every point
    computed = np.ones(BOWL.shape, dtype=bool)
    computed[0, :] = False  # 5 of 35 interpolated: 30 computed
    samples[~computed] = 0
    plain = exact(tmp_path / "exact.h5", X, Y, {"train_loss": BOWL})
    estimated = progressive(tmp_path / "p.h5", X, Y, {"train_loss": BOWL},
                            {"train_loss_stderr": err, "train_samples": samples, "computed": computed}, refine=True)
    table = run_tables({}, [plain, estimated])[0]
    assert [row["surface"] for row in table.rows] == ["exact", "p"]
    assert list(table.rows[0]) == list(table.rows[1])  # the exact file's row has the columns too, empty
    assert table.rows[0]["largest s.e. / T"] is None
    assert table.rows[1]["largest s.e. / T"] == pytest.approx(0.04 / 0.05)
    assert table.rows[1]["data read %"] == pytest.approx(25.0)
    assert table.rows[1]["points computed %"] == pytest.approx(100 * 30 / 35)
