"""Interactive HTML views (``landscape plot --format html``) and the index page of a run.

The figure's arrays are checked against values written into synthetic surface files (closed
forms, transposed by hand), the trajectory's heights against a plane (where bilinear
interpolation is exact), and the page itself in a real headless Chromium: a screenshot with the
surface and the path drawn on both views, the trace count and the buttons read from the page's
own JavaScript, and every request the page made (none may leave the machine).

plotly (the ``interactive`` extra) and Chromium are optional locally: without them these tests
skip. Under CI (the environment variable CI set) a missing one is a failure, not a skip.
"""

from __future__ import annotations

import html
import json
import re
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from chromium import Browser, find_chromium
from matplotlib.image import imread
from required import need

from landscape.cli import main
from landscape.config import Config, SurfaceConfig, apply_overrides, config_from_dict, config_to_dict
from landscape.engine.directions import Directions
from landscape.engine.grid import Grid
from landscape.errors import GridError, MissingExtraError
from landscape.figures.index_page import INDEX, Table, write_index, write_run_index
from landscape.io.checkpoint import load_checkpoint
from landscape.io.surface_file import open_surface, read_surface
from landscape.io.trajectory_file import TrajectoryPoints, load_trajectory, save_trajectory
from landscape.workflows.experiment import checkpoint_config
from landscape.workflows.surface import DirectionSource, run_surface
from landscape.workflows.train import RunResult
from landscape.workflows.trajectory import default_grid_overrides, trajectory_from_run


def need_plotly() -> None:
    try:
        import plotly  # noqa: F401
    except ImportError:
        need("plotly (pip install plotly, the 'interactive' extra)", False)


# A plane tilted along x, a bowl along y, on a non-square grid (9 × 7): A[i, j] at (X[i], Y[j]).
X = np.linspace(-1.0, 1.0, 9)
Y = np.linspace(-0.6, 0.6, 7)
LOSS = 1.0 + 0.5 * X[:, None] + 2.0 * Y[None, :] ** 2  # (9, 7), between 0.5 and 2.22: positive
ACC = 0.9 - 0.1 * X[:, None] - Y[None, :] ** 2


def write_surface(path: Path, values: dict[str, np.ndarray], done: np.ndarray | None = None,
                  x: np.ndarray = X, y: np.ndarray | None = Y) -> Path:
    """A real surface file (through open_surface) holding exactly ``values``."""
    w = torch.arange(4.0).reshape(2, 2)
    dirs = Directions({"w": w}, None if y is None else {"w": w.T.contiguous()},
                      {"kind": "random", "dir_type": "weights", "norm": "filter", "ignore": "biasbn", "seed": 0})
    settings = {"model": {"name": "mlp"}, "data": {"name": "digits"}, "max_samples": 0}
    labels = {"x_label": "α (filter-normalized)", "y_label": "" if y is None else "β (filter-normalized)"}
    sf = open_surface(path, Grid(x, y), list(values), settings, labels, dirs, {"w": [2, 2]})
    for name, v in values.items():
        sf.values[name][...] = v
    sf.done[...] = True if done is None else done
    sf.flush()
    return path


def four_columns() -> dict[str, np.ndarray]:
    return {"train_loss": LOSS, "train_acc": ACC, "test_loss": 1.5 * LOSS, "test_acc": ACC - 0.05}


def path_points(losses: np.ndarray | None = None) -> TrajectoryPoints:
    """Four checkpoints inside the grid, the last at the origin."""
    coords = np.array([[-0.8, 0.5], [-0.5, 0.3], [-0.2, 0.1], [0.0, 0.0]])
    n = len(coords)
    return TrajectoryPoints(coords, np.arange(n, dtype=np.int64), np.arange(n, dtype=np.int64) * 10,
                            np.full(n, np.nan) if losses is None else losses, tuple(f"epoch_{i:03d}.pt" for i in range(n)),
                            np.array([0.9, 0.05]), {})


def traces(figure: Any, key: str) -> dict[str, Any]:
    """The traces of one (column, scale) group, by type: surface, heatmap, contour, scatter3d."""
    spec = json.loads(re.search(r"var v = (\{.*\});", figure.script).group(1))  # type: ignore[union-attr]
    return {figure.figure.data[i].type: figure.figure.data[i] for i in spec["groups"][key]}


def as_array(nested: Any) -> np.ndarray:
    return np.array([[np.nan if v is None else v for v in row] for row in nested], dtype=np.float64)


# --- the figure's arrays -----------------------------------------------------------------------------


def test_both_views_hold_the_values_transposed_with_gaps_where_not_computed(tmp_path: Path) -> None:
    need_plotly()
    from landscape.figures.interactive import interactive_figure

    done = np.ones(LOSS.shape, dtype=bool)
    done[6:, 4:] = False  # a corner not computed yet
    values = four_columns()
    values["train_loss"] = LOSS.copy()
    values["train_loss"][1, 2] = np.nan  # a diverged point (done, NaN): a gap too
    fig = interactive_figure(write_surface(tmp_path / "s.h5", values, done))
    group = traces(fig, "train_loss|linear")
    expected = np.where(done, values["train_loss"], np.nan).T  # plotly: rows are y, columns x
    for kind in ("surface", "heatmap"):
        z = as_array(group[kind].z)
        assert z.shape == (len(Y), len(X))
        np.testing.assert_allclose(z, expected, rtol=1e-5, equal_nan=True)
        assert np.isnan(z[2, 1]) and np.isnan(z[5, 7])  # diverged, not computed
        np.testing.assert_allclose(group[kind].x, X, rtol=1e-5)
        np.testing.assert_allclose(group[kind].y, Y, rtol=1e-5)
    assert "contour" not in group  # contour lines would interpolate across the gaps
    assert "partial: 54 of 63 points" in fig.figure.layout.title.text


def test_a_partial_coarse_to_fine_file_shows_its_finest_complete_level(tmp_path: Path) -> None:
    need_plotly()
    from landscape.engine.grid import level_indices, level_strides
    from landscape.figures.interactive import interactive_figure

    idx = level_indices(LOSS.shape, level_strides(LOSS.shape)[-2])  # the level below the full grid
    done = np.zeros(LOSS.shape, dtype=bool)
    done[np.ix_(*idx)] = True
    done[1, 1] = True  # and one point of the next level
    fig = interactive_figure(write_surface(tmp_path / "s.h5", four_columns(), done))
    heatmap = traces(fig, "train_loss|linear")["heatmap"]
    np.testing.assert_allclose(heatmap.x, X[idx[0]], rtol=1e-5)
    np.testing.assert_allclose(heatmap.y, Y[idx[1]], rtol=1e-5)
    np.testing.assert_allclose(as_array(heatmap.z), LOSS[np.ix_(*idx)].T, rtol=1e-5)  # complete: no gap
    n = len(idx[0]) * len(idx[1])
    assert f"partial: {n + 1} of 63 points; {len(idx[0])}×{len(idx[1])} level shown" in fig.figure.layout.title.text


def test_log_scale_is_log10_of_losses_and_accuracy_stays_linear(tmp_path: Path) -> None:
    need_plotly()
    from landscape.figures.interactive import interactive_figure

    fig = interactive_figure(write_surface(tmp_path / "s.h5", four_columns()), log=True)
    np.testing.assert_allclose(as_array(traces(fig, "test_loss|log")["heatmap"].z), np.log10(1.5 * LOSS).T, rtol=1e-5)
    np.testing.assert_allclose(as_array(traces(fig, "train_acc|linear")["surface"].z), ACC.T, rtol=1e-5)
    spec = json.loads(re.search(r"var v = (\{.*\});", fig.script).group(1))  # type: ignore[union-attr]
    assert set(spec["groups"]) == {"train_loss|linear", "train_loss|log", "train_acc|linear", "test_loss|linear",
                                   "test_loss|log", "test_acc|linear"}
    assert spec["state"] == {"split": "train", "quantity": "loss", "scale": "log"}
    assert "contour" in traces(fig, "train_loss|log")  # complete: contour lines drawn
    visible = [i for i, t in enumerate(fig.figure.data) if t.visible in (True, None)]
    assert set(spec["groups"]["train_loss|log"]) <= set(visible)
    assert not set(spec["groups"]["train_loss|linear"]) & set(visible)
    menus = {m.name: [b.label for b in m.buttons] for m in fig.figure.layout.updatemenus}
    assert menus == {"split": ["train", "test"], "quantity": ["loss", "accuracy"], "scale": ["linear", "log10"]}


def test_hover_reads_every_metric_at_the_point(tmp_path: Path) -> None:
    need_plotly()
    from landscape.figures.interactive import interactive_figure

    values = four_columns()
    fig = interactive_figure(write_surface(tmp_path / "s.h5", values))
    heatmap = traces(fig, "test_acc|linear")["heatmap"]
    custom = np.array(heatmap.customdata, dtype=np.float64)  # (ny, nx, columns)
    for k, name in enumerate(values):
        np.testing.assert_allclose(custom[3, 5, k], values[name][5, 3], rtol=1e-5)  # (x[5], y[3])
    assert "training loss = %{customdata[0]" in heatmap.hovertemplate
    assert "test accuracy = %{customdata[3]" in heatmap.hovertemplate


def test_the_path_sits_on_the_surface_and_carries_epoch_labels(tmp_path: Path) -> None:
    need_plotly()
    from landscape.figures.interactive import interactive_figure

    recorded = np.array([2.5, 1.9, 1.2, 0.9])
    values = {"train_loss": LOSS, "test_loss": 1.0 + 0.5 * X[:, None] - 0.25 * Y[None, :] + 0 * LOSS}  # a plane
    fig = interactive_figure(write_surface(tmp_path / "s.h5", values), path_points(recorded))
    path = path_points().coords
    # train_loss of a surface over the whole split: the losses recorded with the checkpoints
    np.testing.assert_allclose(traces(fig, "train_loss|linear")["scatter3d"].z, recorded)
    # any other column: the surface interpolated there, exact on a plane
    np.testing.assert_allclose(traces(fig, "test_loss|linear")["scatter3d"].z, 1.0 + 0.5 * path[:, 0] - 0.25 * path[:, 1],
                               rtol=1e-5)
    np.testing.assert_allclose(traces(fig, "test_loss|log")["scatter3d"].z,
                               np.log10(1.0 + 0.5 * path[:, 0] - 0.25 * path[:, 1]), rtol=1e-5)
    on_plane = [t for t in fig.figure.data if t.type == "scatter" and t.name == "optimizer path"]
    assert len(on_plane) == 1
    np.testing.assert_allclose(np.column_stack([on_plane[0].x, on_plane[0].y]), path)
    assert list(on_plane[0].text) == ["0", "1", "2", "3"]


def test_arrays_in_memory_make_the_same_view_as_their_file(tmp_path: Path) -> None:
    """What the Python API's Surface offers (x, y, values, done, attrs) is enough; done None: all computed."""
    need_plotly()
    from types import SimpleNamespace

    from landscape.figures.interactive import interactive_figure

    surface = SimpleNamespace(x=X, y=Y, values=four_columns(), done=None, attrs={})
    fig = interactive_figure(surface, path_points(), metric="test_acc")  # type: ignore[arg-type]
    np.testing.assert_allclose(as_array(traces(fig, "test_acc|linear")["heatmap"].z), (ACC - 0.05).T, rtol=1e-5)
    assert "partial" not in (fig.figure.layout.title.text or "")
    assert '"state": {"split": "test", "quantity": "acc", "scale": "linear"}' in fig.script
    saved = fig.save(tmp_path / "a" / "v.html").read_bytes()
    assert saved == fig.save(tmp_path / "b.html").read_bytes()  # the same figure, the same bytes
    assert saved.decode() == fig.to_html(div_id=re.search(r'id="(landscape-[0-9a-f]+)"', saved.decode()).group(1))  # type: ignore[union-attr]
    inline = fig._repr_html_()
    assert inline.startswith("<div") and "<html" not in inline and "Plotly.newPlot" in inline


def test_a_1d_surface_has_no_interactive_view(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    need_plotly()
    from landscape.figures.interactive import interactive_figure

    surface = write_surface(tmp_path / "line.h5", {"train_loss": LOSS[:, 0]}, x=X, y=None)
    with pytest.raises(GridError, match="1D"):
        interactive_figure(surface)
    assert main(["plot", str(surface), "--out", str(tmp_path / "f"), "--format", "html"]) == 1
    assert "needs a 2D surface" in capsys.readouterr().err
    # beside other formats, from a list of defaults: skipped, the line is drawn
    assert main(["plot", str(surface), "--out", str(tmp_path / "g"), "--format", "png,html"]) == 0
    assert [p.name for p in (tmp_path / "g").iterdir()] == ["line_line.png"]


def test_the_page_is_self_contained(tmp_path: Path) -> None:
    need_plotly()
    surface = write_surface(tmp_path / "s.h5", four_columns())
    assert main(["plot", str(surface), "--out", str(tmp_path), "--format", "html,png", "--kind", "contour"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix != ".h5") == ["s_contour.png", "s_interactive.html"]
    page = (tmp_path / "s_interactive.html").read_text()
    assert not re.search(r"<script[^>]*\ssrc=", page)  # the JavaScript is embedded, not fetched
    assert not re.search(r"<link\b", page) and not re.search(r"@import", page)
    assert re.search(r"plotly\.js v\d", page)
    assert len(page) > 1_000_000  # plotly.js itself is inside


# --- without the extra ------------------------------------------------------------------------------


@pytest.fixture
def no_plotly(monkeypatch: pytest.MonkeyPatch) -> None:
    """Imports of plotly fail, as when the extra is not installed."""
    for name in [m for m in sys.modules if m == "plotly" or m.startswith("plotly.")]:
        monkeypatch.delitem(sys.modules, name)
    for name in ("plotly", "plotly.graph_objects", "plotly.subplots"):
        monkeypatch.setitem(sys.modules, name, None)  # type: ignore[arg-type]


@pytest.mark.usefixtures("no_plotly")
def test_without_plotly_html_is_a_one_line_error_naming_the_extra(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from landscape.errors import install_hint
    from landscape.figures.interactive import require_plotly, write_views

    surface = write_surface(tmp_path / "s.h5", four_columns())
    assert main(["plot", str(surface), "--out", str(tmp_path / "f"), "--format", "html"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and install_hint("interactive") in err and '[interactive]"' in err
    assert not (tmp_path / "f").exists() or not any((tmp_path / "f").iterdir())
    with pytest.raises(MissingExtraError, match=r"pip install \".*\[interactive\]\""):
        require_plotly()
    # the default formats need no plotly; run and compare write no views and say how to get them
    assert main(["plot", str(surface), "--out", str(tmp_path / "g"), "--format", "png", "--kind", "heatmap"]) == 0
    assert write_views([(surface, None, "s")], tmp_path / "views") == []
    with pytest.raises(MissingExtraError):
        write_views([(surface, None, "s")], tmp_path / "views", required=True)
    index = write_index(tmp_path, title="t", settings="")
    assert "plotly is not installed" in index.read_text() and html.escape(install_hint("interactive")) in index.read_text()


# --- the index page -----------------------------------------------------------------------------------


def test_index_links_every_figure_and_view_and_shows_settings_and_numbers(tiny_run: RunResult, tmp_path: Path) -> None:
    out = tmp_path / "job"
    (out / "surfaces").mkdir(parents=True)
    manifest = json.loads((tiny_run.out_dir / "run.json").read_text())
    (out / "run.json").write_text(json.dumps(manifest))
    (out / "run_config.toml").write_text('[train]\nepochs = 2\nlr = 0.1\n')
    write_surface(out / "surfaces" / "random_2d.h5", four_columns())
    done = np.ones(LOSS.shape, dtype=bool)
    done[0, 0] = False
    write_surface(out / "surfaces" / "pca_2d.h5", four_columns(), done)
    figures = [out / "figures" / name for name in ("random_2d_contour.png", "random_2d_contour.pdf", "pca_2d_heatmap.svg")]
    for f in figures:
        f.parent.mkdir(exist_ok=True)
        f.write_bytes(b"x")
    views = [out / "interactive" / "random_2d_interactive.html"]
    views[0].parent.mkdir()
    views[0].write_text("<html></html>")
    page = write_run_index(out, [out / "surfaces" / "random_2d.h5", out / "surfaces" / "pca_2d.h5"]).read_text()

    hrefs = set(re.findall(r'href="([^"]+)"', page))
    assert {f"figures/{f.name}" for f in figures} | {"interactive/random_2d_interactive.html"} <= hrefs
    assert 'src="figures/random_2d_contour.png"' in page and 'src="figures/pca_2d_heatmap.svg"' in page
    assert "lr = 0.1" in page
    final = [c for c in manifest["checkpoints"] if c["kind"] == "epoch"][-1]
    for key in ("train_loss", "test_loss", "train_acc", "test_acc"):
        assert f"<td>{final[key]:.4g}</td>" in page
    # the surface table: origin (x[4], y[3]) and extremes of train_loss, points done
    assert f"<td>{LOSS[4, 3]:.4g}</td>" in page and f"<td>{LOSS.min():.4g}</td>" in page
    assert "<td>62 of 63</td>" in page and "<td>63 of 63</td>" in page
    assert not re.search(r"(src|href)=\"(https?:)?//", page)  # nothing from elsewhere


def test_index_tables_escape_and_format_values(tmp_path: Path) -> None:
    page = write_index(tmp_path, title="a <b>", settings="x = '<'",
                       tables=[Table("T", [{"loss": "mse", "value": 0.123456789, "none": None, "nan": float("nan")}])])
    text = page.read_text()
    assert page.name == INDEX and "a &lt;b&gt;" in text and "x = &#x27;&lt;&#x27;" in text
    assert "<td>mse</td><td>0.1235</td><td>–</td><td>–</td>" in text


# --- a real surface in a real browser ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def pca_page(tiny_run: RunResult, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, TrajectoryPoints]:
    """The interactive page of the tiny run's PCA plane (a 15 × 13 grid) with its path."""
    need_plotly()
    folder = tmp_path_factory.mktemp("pca_page")
    trajectory = folder / "trajectory.h5"
    save_trajectory(trajectory, trajectory_from_run(tiny_run.out_dir))
    cfg = checkpoint_config(load_checkpoint(tiny_run.final))
    assert cfg is not None
    cfg = Config(data=cfg.data, model=cfg.model, train=cfg.train, surface=SurfaceConfig(max_samples=200, split="both"))
    grid = default_grid_overrides(trajectory, num=13)
    grid = [g.replace(':13"', ':15"') if g.startswith("surface.x") else g for g in grid]  # non-square: 15 × 13
    cfg = config_from_dict(apply_overrides(config_to_dict(cfg), grid))
    surface = folder / "pca.h5"
    run_surface(tiny_run.final, surface, cfg, source=DirectionSource(file=trajectory))
    assert main(["plot", str(surface), "--trajectory", str(trajectory), "--out", str(folder), "--format", "html",
                 "--log"]) == 0
    return folder / "pca_interactive.html", load_trajectory(trajectory)


# Runs in the page once the plot is up: the trace count, what is visible, the buttons, the hover link.
PROBE = """
new Promise(function (resolve) {
  function click(label) {
    var b = Array.prototype.filter.call(document.querySelectorAll('.updatemenu-button'),
                                        function (e) { return e.textContent.trim() === label; });
    if (b.length !== 1) { throw new Error('no single button ' + label); }
    b[0].dispatchEvent(new MouseEvent('click', {bubbles: true}));
  }
  function visible(gd) {
    return gd._fullData.filter(function (t) { return t.visible === true; }).map(function (t) { return t.type + ':' + t.name; });
  }
  function step(n) { try { check(n); } catch (e) { resolve({error: String(e)}); } }
  function check(n) {
    var gd = document.querySelector('.js-plotly-plot');
    if (!gd || !gd._fullLayout || !gd.getAttribute('data-shown')) {
      if (n > 0) { setTimeout(function () { step(n - 1); }, 100); } else { resolve({error: 'no plot'}); }
      return;
    }
    var scene = gd._fullLayout.scene._scene;
    var r = {traces: gd.data.length, webgl: !!(scene && scene.glplot), visible: visible(gd),
             path2d: gd.data.filter(function (t) { return t.type === 'scatter' && t.name === 'optimizer path'; })
                            .map(function (t) { return t.x.length; }),
             shown: [gd.getAttribute('data-shown')]};
    ['test', 'accuracy', 'train', 'loss', 'log10', 'linear'].forEach(function (label) {
      click(label); r.shown.push(gd.getAttribute('data-shown'));
    });
    var heat = gd._fullData.filter(function (t) { return t.visible === true && t.type === 'heatmap'; })[0];
    Plotly.Fx.hover(gd, {xval: heat.x[I], yval: heat.y[J], target: gd}, 'xy');
    setTimeout(function () {
      var cursor = gd.data[gd.data.length - 1];
      r.cursor3d = [cursor.x[0], cursor.y[0], cursor.z[0]];
      r.heat = [heat.x[I], heat.y[J], heat.z[J][I]];
      resolve(r);
    }, 300);
  }
  step(600);
})
"""


def test_the_page_draws_surface_and_path_in_chromium_and_fetches_nothing(pca_page: tuple[Path, TrajectoryPoints],
                                                                         tmp_path: Path) -> None:
    executable = find_chromium()
    need("chromium (apt-get install chromium)", executable is not None)
    assert executable is not None
    page, path = pca_page
    # hover the grid node farthest from the path: near it, the path's own point wins the hover ("closest")
    sf = read_surface(page.with_name("pca.h5"))
    xs, ys = sf.grid.x, sf.grid.y
    assert ys is not None
    gap = np.min(np.hypot(xs[:, None, None] - path.coords[None, None, :, 0], ys[None, :, None] - path.coords[None, None, :, 1]), axis=2)
    i, j = (int(k) for k in np.unravel_index(np.argmax(gap), gap.shape))
    with Browser(executable, width=1300, height=700) as browser:
        browser.open(page.resolve().as_uri())
        result = browser.evaluate(PROBE.replace("[I]", f"[{i}]").replace("[J]", f"[{j}]"))
        shot = browser.screenshot(tmp_path / "page.png")
        requests = list(browser.requests)
        console = list(browser.console)

    assert "error" not in result, (result, console)
    # 2 splits × (loss linear, loss log, accuracy) groups of 4 traces (surface, heatmap, contour lines, path on the
    # surface), plus the path on the heatmap and the two hover cursors
    assert result["traces"] == 6 * 4 + 3
    assert result["webgl"] is True
    assert sorted(result["visible"]) == sorted(["surface:log10 training loss", "heatmap:log10 training loss",
                                                "contour:log10 training loss", "scatter3d:optimizer path",
                                                "scatter:optimizer path", "scatter:cursor", "scatter3d:cursor"])
    assert result["path2d"] == [len(path.coords)]
    assert result["shown"] == ["train_loss|log", "test_loss|log", "test_acc|linear", "train_acc|linear",
                               "train_loss|log", "train_loss|log", "train_loss|linear"]
    assert result["cursor3d"] == result["heat"]  # hovering the heatmap marks the point on the 3D surface

    # nothing but the file itself and inline data: URLs; and nothing logged as an error
    assert requests and requests[0] == page.resolve().as_uri()
    assert all(u.startswith(("file:", "data:", "blob:", "about:")) for u in requests), requests
    assert not [c for c in console if c.startswith("exception")], console

    pixels = imread(shot)[..., :3]  # (700, 1300, 3) floats in [0, 1]
    assert pixels.shape == (700, 1300, 3)
    body = pixels[130:650]  # below the buttons and the title
    left, right = body[:, :650], body[:, 650:]
    ink = np.abs(body - 1.0).sum(axis=-1) > 0.15  # not white
    assert ink[:, :650].mean() > 0.15 and ink[:, 650:].mean() > 0.3  # a surface, a filled heatmap

    def red(a: np.ndarray) -> int:  # the path's colour (#ff1f1f) is not in viridis
        return int(((a[..., 0] > 0.85) & (a[..., 1] < 0.35) & (a[..., 2] < 0.35)).sum())

    assert red(left) > 30 and red(right) > 30, (red(left), red(right))


# --- landscape run and compare --------------------------------------------------------------------------


@pytest.mark.slow  # a whole (tiny) landscape run: ~25 s on a busy 2-core machine
def test_run_writes_the_views_of_its_2d_surfaces_and_an_index_linking_everything(tmp_path: Path) -> None:
    need_plotly()
    from test_pipeline import TINY

    from landscape.config import load_config
    from landscape.workflows.run import run_pipeline

    config = tmp_path / "tiny.toml"
    config.write_text(TINY)
    out = tmp_path / "job"
    run_pipeline(load_config(config), out)
    assert sorted(p.name for p in (out / "interactive").iterdir()) == ["pca_2d_interactive.html", "random_2d_interactive.html"]
    page = (out / "index.html").read_text()
    hrefs = set(re.findall(r'href="([^"]+)"', page))
    everything = {f"{d}/{p.name}" for d in ("figures", "interactive") for p in (out / d).iterdir()}
    assert everything <= hrefs and len(everything) == 13  # 11 figures (test_pipeline.FIGURES) and 2 views
    final = json.loads((out / "run.json").read_text())["checkpoints"][-1]
    assert f"<td>{final['train_loss']:.4g}</td>" in page
    assert "random_x = &quot;-1:1:5&quot;" in page  # the resolved config


def test_the_python_api_returns_the_interactive_view_of_its_surface(tmp_path: Path) -> None:
    """landscape.plot(s, kind="interactive") on the API's own Surface: the heatmap holds s's values, transposed."""
    need_plotly()
    import landscape

    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    x, y = torch.randn(40, 3), torch.randint(0, 2, (40,))
    s = landscape.surface(model, (x, y), loss="cross_entropy", x=(-1, 1, 5), y=(-1, 1, 3))
    view = landscape.plot(s, kind="interactive", metric="train_loss", log=False)
    assert type(view).__name__ == "InteractiveFigure"
    # the page keeps 6 significant digits: a relative error up to half a unit in the 6th digit (5e-6)
    np.testing.assert_allclose(as_array(traces(view, "train_loss|linear")["heatmap"].z), s["train_loss"].T, rtol=5e-6)
    assert "Plotly.newPlot" in view.save(tmp_path / "v.html").read_text()
    with pytest.raises(landscape.LandscapeError, match="ax"):
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots()
        try:
            landscape.plot(s, kind="interactive", ax=ax)
        finally:
            plt.close(fig)
