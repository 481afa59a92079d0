"""``landscape compare``: same initial weights for every loss, figures, a table recomputed from the
stored files by independent numpy code, resume without work, and the flatness figures of merit
against closed forms on synthetic quadratic surfaces."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch

from landscape.cli import main
from landscape.config import Config, load_config
from landscape.engine.losses import MetricSet, correct, get_criterion
from landscape.errors import ConfigError, GridError, RegistryError, SurfaceFileError
from landscape.figures.compare import raw_figure, relative_figure, trajectory_figure
from landscape.workflows.compare import (
    DEFINITIONS,
    CompareResult,
    curvature,
    doubling_radius,
    load_results,
    mean_increase,
    run_compare,
)

LOSSES = ("cross_entropy", "mse", "l1")

TINY = """
[data]
name = "digits"
max_train = 240
max_test = 120

[model]
name = "mlp"
options = { hidden = [12] }

[train]
lr = 0.1
momentum = 0.9
batch_size = 64
epochs = 2
seed = 7

[directions]
seed = 5

[compare]
losses = ["cross_entropy", "mse", "l1"]
target_acc = 0.13
radius = 0.5
x = "-1:1:9"
y = "-1:1:9"
line_x = "-1:1:11"
pca_grid = 7

[plot]
formats = ["png"]  # PDF font embedding is slow; the autoencoder test writes both
dpi = 50
"""


@pytest.fixture(scope="module")
def config_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("compare_cfg") / "tiny.toml"
    path.write_text(TINY)
    return path


@pytest.fixture(scope="module")
def config(config_file: Path) -> Config:
    return load_config(config_file)


@pytest.fixture(scope="module")
def compared(config: Config, tmp_path_factory: pytest.TempPathFactory) -> CompareResult:
    """The tiny comparison, computed once for the module. Treat the folder as read-only."""
    return run_compare(config, tmp_path_factory.mktemp("compare"))


def _outputs(out: Path) -> dict[Path, int]:
    """Every file under ``out`` (runs, surfaces, tables, figures) with its modification time (ns)."""
    return {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()}


# --- the same start for every loss -------------------------------------------------------------------


def test_every_loss_starts_from_bit_identical_weights(compared: CompareResult) -> None:
    states = [torch.load(compared.out_dir / loss / "checkpoints" / "epoch_000.pt", weights_only=True)["state_dict"]
              for loss in LOSSES]
    assert set(states[0]) == set(states[1]) == set(states[2])
    for state in states[1:]:
        for name, tensor in states[0].items():
            assert torch.equal(tensor, state[name]), name
    # ... and the training really differs afterwards (the loss was overridden)
    finals = [torch.load(compared.out_dir / loss / "checkpoints" / "epoch_002.pt", weights_only=True) for loss in LOSSES]
    assert [f["config"]["train"]["loss"] for f in finals] == list(LOSSES)
    assert not torch.equal(finals[0]["state_dict"]["out.weight"], finals[1]["state_dict"]["out.weight"])


def test_surfaces_hold_own_loss_every_criterion_and_accuracy(compared: CompareResult) -> None:
    for loss in LOSSES:
        with h5py.File(compared.out_dir / loss / "surface_2d.h5", "r") as f:
            metrics = json.loads(f.attrs["metrics"])
            settings = json.loads(f.attrs["settings"])
            assert settings["losses"][0] == loss and sorted(settings["losses"]) == sorted(LOSSES)
            assert metrics == ["train_loss", *(f"train_{n}" for n in settings["losses"]), "train_acc"]
            np.testing.assert_array_equal(f["train_loss"][()], f[f"train_{loss}"][()])
            assert f.attrs["directions_fingerprint"]
        with h5py.File(compared.out_dir / loss / "slice_1d.h5", "r") as f:
            assert int(f.attrs["dims"]) == 1


# --- figures ---------------------------------------------------------------------------------------


def _panels(fig: Any) -> list[Any]:
    """The data axes of a panels figure (colourbar axes carry no title)."""
    return [ax for ax in fig.axes if ax.get_title()]


def test_trajectory_figure_has_one_panel_per_loss_with_its_path(compared: CompareResult) -> None:
    fig = trajectory_figure(compared.results)
    panels = _panels(fig)
    assert [ax.get_title().split("\n")[0] for ax in panels] == list(LOSSES)
    for ax, r in zip(panels, compared.results, strict=True):
        # the path (normalized by its radius R) is drawn: a line through every checkpoint
        path = r.trajectory.coords / np.hypot(*r.trajectory.coords.T).max()
        drawn = [line for line in ax.get_lines() if len(line.get_xdata()) == len(path)]
        assert drawn and np.allclose(drawn[0].get_xdata(), path[:, 0]) and np.allclose(drawn[0].get_ydata(), path[:, 1])


def _filled_sets(fig: Any) -> list[Any]:
    sets = []
    for ax in _panels(fig):
        filled = [c for c in ax.collections if getattr(c, "filled", False)]
        assert len(filled) == 1
        sets.append(filled[0])
    return sets


def test_relative_panels_share_levels_and_norm(compared: CompareResult, config: Config) -> None:
    sets = _filled_sets(relative_figure(compared.results, config.compare.floor))
    assert len(sets) == len(LOSSES)
    for cs in sets[1:]:
        np.testing.assert_array_equal(cs.levels, sets[0].levels)
        assert (cs.norm.vmin, cs.norm.vmax) == (sets[0].norm.vmin, sets[0].norm.vmax)
    # the raw panels, by contrast, each have their own colour bar
    raw = raw_figure(compared.results)
    assert len(_panels(raw)) == len(LOSSES) and len(raw.axes) == 2 * len(LOSSES)


def test_every_figure_is_written(compared: CompareResult) -> None:
    names = {p.name for p in (compared.out_dir / "figures").iterdir()}
    stems = ("trajectories", "surfaces_raw", "surfaces_relative", "surfaces_accuracy", "slices", "slices_accuracy",
             "training_loss", "training_accuracy", *(f"surfaces_under_{n}" for n in LOSSES))
    assert names == {f"{stem}.png" for stem in stems}


def test_index_page_sums_up_the_comparison(compared: CompareResult) -> None:
    """index.html: every figure, the tables' files and numbers, the interactive views when plotly is installed."""
    import re

    from landscape.figures.interactive import plotly_available

    page = (compared.out_dir / "index.html").read_text()
    hrefs = set(re.findall(r'href="([^"]+)"', page))
    assert {f"figures/{p.name}" for p in (compared.out_dir / "figures").iterdir()} <= hrefs
    assert {"summary.md", "summary.csv", "flatness_by_criterion.csv"} <= hrefs
    assert all(f"<td>{row['final_train_loss']:.4g}</td>" in page for row in compared.rows)
    views = {f"interactive/{loss}_surface_{kind}_interactive.html" for loss in LOSSES for kind in ("2d", "pca")}
    if plotly_available():
        assert views <= hrefs and all((compared.out_dir / v).is_file() for v in views)
    else:
        assert "plotly is not installed" in page


# --- the table, recomputed from the files ---------------------------------------------------------


def _origin(axis: np.ndarray) -> int:
    (hits,) = np.nonzero(np.abs(axis) < 1e-12)
    assert len(hits) == 1
    return int(hits[0])


def _oracle_doubling(x: np.ndarray, z: np.ndarray, eps: float) -> float:
    i0 = _origin(x)
    threshold = z[i0] + max(z[i0], eps)
    best = math.inf
    for xs, zs in ((x[i0:], z[i0:]), (x[: i0 + 1][::-1], z[: i0 + 1][::-1])):
        above = np.nonzero(~(zs < threshold))[0]  # NaN counts as above
        above = above[above > 0]
        if len(above) == 0:
            continue
        k = int(above[0])
        if not np.isfinite(zs[k]):
            best = min(best, abs(xs[k]))
            continue
        t = (threshold - zs[k - 1]) / (zs[k] - zs[k - 1])
        best = min(best, abs(xs[k - 1]) * (1 - t) + abs(xs[k]) * t)
    return best


def _oracle_fit(x: np.ndarray, y: np.ndarray, z: np.ndarray, r: float) -> tuple[float, float]:
    rows, values = [], []
    for i, a in enumerate(x):
        for j, b in enumerate(y):
            if a * a + b * b <= (r * (1 + 1e-9)) ** 2 and np.isfinite(z[i, j]):
                rows.append([a * a, a * b, b * b, a, b, 1.0])
                values.append(z[i, j])
    m, v = np.array(rows), np.array(values)
    a2, b, c2, *_ = np.linalg.solve(m.T @ m, m.T @ v)  # normal equations, not lstsq
    p, q, s = 2 * a2, b, 2 * c2
    half = math.sqrt(((p - s) / 2) ** 2 + q * q)
    return (p + s) / 2 + half, (p + s) / 2 - half


def _oracle_row(out: Path, loss: str, cfg: Config) -> dict[str, float | None]:
    run = json.loads((out / loss / "run.json").read_text())
    final = run["checkpoints"][-1]
    first = next((c for c in run["checkpoints"] if c["test_acc"] >= cfg.compare.target_acc), None)
    per_epoch = next(c["step"] for c in run["checkpoints"] if c["epoch"] == 1)
    with h5py.File(out / loss / "surface_2d.h5", "r") as f:
        x, y, z = f["x"][()], f["y"][()], f["train_loss"][()]
    with h5py.File(out / loss / "slice_1d.h5", "r") as f:
        x1, z1 = f["x"][()], f["train_loss"][()]
    l0 = z[_origin(x), _origin(y)]
    r = cfg.compare.radius
    inside = [z[i, j] - l0 for i in range(len(x)) for j in range(len(y)) if math.hypot(x[i], y[j]) <= r * (1 + 1e-9)]
    lam_max, lam_min = _oracle_fit(x, y, z, r)
    return {
        "final_train_loss": final["train_loss"], "final_test_loss": final["test_loss"],
        "final_train_acc": final["train_acc"], "final_test_acc": final["test_acc"],
        "steps_to_target": None if first is None else first["step"],
        "epochs_to_target": None if first is None else first["step"] / per_epoch,
        "loss_at_origin": l0, "mean_increase": sum(inside) / len(inside),
        "doubling_radius": _oracle_doubling(x1, z1, cfg.compare.floor),
        "curvature_mean": (lam_max + lam_min) / 2, "curvature_max": lam_max, "curvature_min": lam_min,
    }


def test_every_number_in_the_table_is_recomputed_from_the_stored_files(compared: CompareResult, config: Config) -> None:
    with (compared.out_dir / "summary.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert [row["loss"] for row in rows] == list(LOSSES)
    for row in rows:
        want = _oracle_row(compared.out_dir, row["loss"], config)
        assert set(row) == {"loss", *want}
        for key, value in want.items():
            if value is None:
                assert row[key] == "", key
            else:
                assert float(row[key]) == pytest.approx(value, rel=1e-7, abs=1e-12), (row["loss"], key)
    # the tiny runs reach the (low) target with some losses and not with l1: both cases are exercised
    assert any(row["steps_to_target"] for row in rows) and not all(row["steps_to_target"] for row in rows)


def test_markdown_copy_matches_the_csv(compared: CompareResult) -> None:
    with (compared.out_dir / "summary.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    md = (compared.out_dir / "summary.md").read_text().splitlines()
    header = next(i for i, line in enumerate(md) if line.startswith("| loss |"))
    keys = [k.strip() for k in md[header].strip("|").split("|")]
    assert keys == list(rows[0])
    for line, row in zip(md[header + 2 : header + 2 + len(rows)], rows, strict=True):
        cells = [c.strip() for c in line.strip("|").split("|")]
        for key, cell in zip(keys, cells, strict=True):
            if key == "loss" or row[key] == "":
                assert cell == row[key]
            elif math.isinf(float(row[key])):
                assert cell == "> slice"
            else:
                assert float(cell) == pytest.approx(float(row[key]), rel=1e-3)
    text = "\n".join(md)
    assert all(f"`{k}`" in text for k in keys if k != "loss")


def test_definitions_cover_every_column(compared: CompareResult) -> None:
    assert set(compared.rows[0]) - {"loss"} <= set(DEFINITIONS)
    assert set(compared.criterion_rows[0]) - {"trained_with", "evaluated_with"} <= set(DEFINITIONS)


def test_flatness_by_criterion_has_every_pair(compared: CompareResult) -> None:
    pairs = {(r["trained_with"], r["evaluated_with"]) for r in compared.criterion_rows}
    assert pairs == {(a, b) for a in LOSSES for b in LOSSES}
    own = {r["trained_with"]: r for r in compared.criterion_rows if r["trained_with"] == r["evaluated_with"]}
    for row in compared.rows:
        assert own[row["loss"]]["mean_increase"] == row["mean_increase"]


# --- resume ----------------------------------------------------------------------------------------


def test_rerun_does_no_work(compared: CompareResult, config: Config) -> None:
    before = _outputs(compared.out_dir)
    again = run_compare(config, compared.out_dir)
    assert again.work == []
    assert _outputs(compared.out_dir) == before
    assert again.rows == compared.rows


def test_figure_only_settings_do_not_invalidate_anything(compared: CompareResult, config: Config, config_file: Path) -> None:
    before = _outputs(compared.out_dir)
    cfg = load_config(config_file, ["compare.radius=0.8", "compare.floor=0.01", "compare.target_acc=0.99"])
    again = run_compare(cfg, compared.out_dir)
    assert again.work == []
    after = _outputs(compared.out_dir)
    computed = [p for p in before if p.suffix in (".h5", ".pt") or p.name == "run.json"]
    assert all(after[p] == before[p] for p in computed)  # nothing trained or evaluated again ...
    assert after[compared.out_dir / "summary.csv"] != before[compared.out_dir / "summary.csv"]  # ... only redrawn
    assert again.rows[0]["mean_increase"] != compared.rows[0]["mean_increase"]
    run_compare(config, compared.out_dir)  # put the tables back for the other tests


def test_changed_grid_is_an_error_naming_it(compared: CompareResult, config_file: Path) -> None:
    cfg = load_config(config_file, ['compare.x="-1:1:5"'])
    with pytest.raises(SurfaceFileError, match="-1:1:5"):
        run_compare(cfg, compared.out_dir)


def test_cli_reruns_without_work(compared: CompareResult, config_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = _outputs(compared.out_dir)
    assert main(["compare", str(config_file), "--out", str(compared.out_dir)]) == 0
    out = capsys.readouterr().out
    assert "nothing to compute" in out and "| cross_entropy |" in out
    assert _outputs(compared.out_dir) == before


def test_partial_rerun_only_finishes_what_is_missing(config: Config, tmp_path: Path) -> None:
    import dataclasses

    cfg = dataclasses.replace(config, compare=dataclasses.replace(config.compare, losses=("cross_entropy", "mse")))
    first = run_compare(cfg, tmp_path)
    assert "train mse" in first.work
    (tmp_path / "mse" / "surface_2d.h5").unlink()
    again = run_compare(cfg, tmp_path)
    assert again.work == ["surface_2d mse"]
    assert load_results(tmp_path, ["cross_entropy", "mse"])[1].surface_2d.done.all()


# --- tasks without accuracy --------------------------------------------------------------------------


def test_autoencoder_comparison_has_no_accuracy_columns(tmp_path: Path) -> None:
    cfg = load_config(None, ['data.target="input"', 'model.name="autoencoder"', "model.options={hidden=[8, 4]}",
                             "data.max_train=200", "data.max_test=50", "train.epochs=2", 'train.optimizer="adam"',
                             "train.lr=0.01", 'compare.losses=["mse", "l1"]', 'compare.x="-1:1:7"', 'compare.y="-1:1:7"',
                             'compare.line_x="-1:1:9"', "compare.pca_grid=5"])
    result = run_compare(cfg, tmp_path)
    assert list(result.rows[0]) == ["loss", "final_train_loss", "final_test_loss", "loss_at_origin", "mean_increase",
                                    "doubling_radius", "curvature_mean", "curvature_max", "curvature_min"]
    names = {p.name for p in (tmp_path / "figures").iterdir()}
    assert {"surfaces_relative.pdf", "surfaces_relative.png", "trajectories.pdf", "trajectories.png"} <= names
    assert not any("accuracy" in n for n in names)
    assert "no accuracy" in (tmp_path / "summary.md").read_text()


def test_bad_settings_are_rejected_before_training(config: Config, tmp_path: Path, config_file: Path) -> None:
    for override, match in (('compare.losses=["mse", "mse"]', "distinct"), ('compare.losses=["nope"]', "unknown loss"),
                            ("compare.pca_grid=8", "odd"), ('compare.x="-1:1:4"', "no node at 0"),
                            ("train.epochs=1", "3 checkpoints")):
        with pytest.raises((ConfigError, GridError), match=match):
            run_compare(load_config(config_file, [override]), tmp_path)
    assert not (tmp_path / "mse").exists()


# --- figures of merit against closed forms ------------------------------------------------------------


H = 0.05
AXIS = np.linspace(-1.0, 1.0, 41)  # step 0.05, 0 and ±0.5 on nodes


def _quadratic(a: float, b: float, c: float, d: float = 0.0, e: float = 0.0) -> np.ndarray:
    alpha, beta = np.meshgrid(AXIS, AXIS, indexing="ij")
    return 1.0 + a * alpha**2 + b * alpha * beta + c * beta**2 + d * alpha + e * beta


def test_curvature_of_a_quadratic_is_exact() -> None:
    fit = curvature(AXIS, AXIS, _quadratic(3.0, 0.0, 0.5), radius=0.5)
    assert fit.eigenvalues == pytest.approx((6.0, 1.0), abs=1e-9)
    assert fit.mean == pytest.approx(3.5, abs=1e-9)
    # with a cross term and a slope: the Hessian [[2a, b], [b, 2c]], whatever the linear part
    a, b, c = 2.0, 1.5, -0.5
    fit = curvature(AXIS, AXIS, _quadratic(a, b, c, d=0.3, e=-0.7), radius=0.5)
    want = np.linalg.eigvalsh(np.array([[2 * a, b], [b, 2 * c]]))[::-1]
    assert fit.eigenvalues == pytest.approx(tuple(want), abs=1e-9)
    assert fit.coefficients == pytest.approx((a, b, c, 0.3, -0.7, 1.0), abs=1e-9)


def test_doubling_radius_of_a_parabola() -> None:
    alpha = AXIS
    assert doubling_radius(alpha, 1.0 + 4.0 * alpha**2) == pytest.approx(math.sqrt(1 / 4.0), abs=1e-12)
    # off the grid: within the interval that brackets √(1/a), and close to it
    got = doubling_radius(alpha, 1.0 + 3.0 * alpha**2)
    assert 0.55 <= got <= 0.6 and got == pytest.approx(math.sqrt(1 / 3.0), abs=H**2)
    # the smaller side wins
    lopsided = np.where(alpha > 0, 1.0 + 4.0 * alpha**2, 1.0 + 16.0 * alpha**2)
    assert doubling_radius(alpha, lopsided) == pytest.approx(0.25, abs=1e-12)
    # L(0) = 0: the floor ε takes over, √(ε / a)
    assert doubling_radius(alpha, 4.0 * alpha**2, floor=0.01) == pytest.approx(0.05, abs=1e-12)
    # never reached inside the slice, and a diverged point counts as reached at its position
    assert doubling_radius(alpha, 1.0 + 0.1 * alpha**2) == math.inf
    diverged = 1.0 + 0.1 * alpha**2
    diverged[alpha > 0.69] = np.nan
    assert doubling_radius(alpha, diverged) == pytest.approx(0.7, abs=1e-12)


def test_mean_increase_matches_the_average_over_the_disc_grid_points() -> None:
    a, c = 3.0, 0.5
    # the disc's nodes in integer units: i² + j² ≤ (r/h)² = 10², no rounding involved
    nodes = [(i, j) for i in range(-20, 21) for j in range(-20, 21) if i * i + j * j <= 100]
    want = sum(a * (i * H) ** 2 + c * (j * H) ** 2 for i, j in nodes) / len(nodes)
    assert len(nodes) == 317
    assert mean_increase(AXIS, AXIS, _quadratic(a, 0.0, c), radius=0.5) == pytest.approx(want, rel=1e-12)


def test_figures_of_merit_need_the_origin_on_the_grid() -> None:
    shifted = np.linspace(-1.0, 1.0, 40)
    with pytest.raises(GridError, match="no node at 0"):
        doubling_radius(shifted, shifted**2)
    with pytest.raises(GridError, match="no node at 0"):
        mean_increase(shifted, AXIS, np.zeros((40, 41)), 0.5)
    with pytest.raises(GridError, match="quadratic fit needs 6"):
        curvature(AXIS, AXIS, _quadratic(1, 0, 1), radius=0.04)


# --- loss names and binary accuracy ---------------------------------------------------------------


def test_ce_is_an_alias_of_cross_entropy() -> None:
    assert get_criterion("ce", "classification").name == "cross_entropy"
    assert MetricSet(["ce", "mse"], "classification", 10).names == ["loss", "cross_entropy", "mse", "acc"]
    with pytest.raises(RegistryError, match=r"known: .*cross_entropy.*ce → cross_entropy"):
        get_criterion("crossentropy", "classification")


def test_binary_accuracy_follows_the_criterion_decision_rule() -> None:
    out = torch.tensor([[0.4], [0.6], [-0.2], [1.2]])
    target = torch.tensor([[0.0], [1.0], [0.0], [1.0]])
    assert correct(out, target).tolist() == [0.0, 1.0, 1.0, 1.0]  # a logit: sign decides
    assert correct(out, target, 0.5).tolist() == [1.0, 1.0, 1.0, 1.0]  # regressed onto 0/1: 0.5 decides
    acc = {name: MetricSet([name], "binary", 2).batch_sums(out, target)[-1].item() for name in ("bce", "mse", "l1", "hinge")}
    assert acc == {"bce": 3.0, "mse": 4.0, "l1": 4.0, "hinge": 3.0}


def test_compare_checks_every_loss(compared: CompareResult) -> None:
    """The checks of docs/CHECKS.md: each loss's folder, the worst of each over the losses, on the index page."""
    out = compared.out_dir
    merged = json.loads((out / "check.json").read_text())
    names = ["origin", "bn_mode", "seeds", "scale", "resolution", "trajectory", "numerics"]
    assert [c["name"] for c in merged["checks"]] == names
    for loss in LOSSES:
        own = json.loads((out / loss / "check.json").read_text())
        assert own["checks"][0]["status"] == "pass"  # origin: each surface is its model's own evaluation
    assert "Can I trust this?" in (out / "index.html").read_text()
