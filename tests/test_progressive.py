"""Progressive surfaces (``--tolerance``, ``--refine``) against closed forms and the exact engine."""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import landscape
from landscape.cli import main
from landscape.engine.directions import Directions
from landscape.engine.evaluator import EngineOptions, surface_evaluator
from landscape.engine.grid import Grid
from landscape.engine.losses import MetricSet
from landscape.engine.progressive import ProgressiveEvaluator, ProgressiveOptions, Tolerance
from landscape.engine.refine import grid_levels, interpolate, refine_level
from landscape.errors import ConfigError, GridError, ModelError
from landscape.workflows.train import RunResult
from landscape.zoo.data import TensorSplit

N, CHUNK = 96, 8


def dyadic_problem() -> tuple[nn.Module, Directions, TensorSplit, Grid]:
    """y = w·x with w = 1 + α + β/2 and targets 0: each sample's squared error (w·x)² is exact in float32 and float64."""
    model = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(1.0)
    g = torch.Generator().manual_seed(3)
    x = torch.randint(-4, 5, (N, 1), generator=g).float()
    dirs = Directions({"weight": torch.ones(1, 1)}, {"weight": torch.full((1, 1), 0.5)}, {"norm": "none"})
    return model, dirs, TensorSplit(x, torch.zeros(N, 1)), Grid(np.linspace(-1, 1, 5), np.array([-1.0, 0.0, 1.0]))


def evaluator(model: nn.Module, dirs: Directions, data: TensorSplit, grid: Grid, tol: str, seed: int = 0,
              min_samples: int = 16) -> ProgressiveEvaluator:
    opts = ProgressiveOptions(Tolerance.parse(tol), seed=seed, min_samples=min_samples)  # type: ignore[arg-type]
    engine = surface_evaluator(model, dirs, {"train": data}, MetricSet(["mse"], "regression", 0),
                               options=EngineOptions(CHUNK, 0, "keep", 8), progressive=(opts, grid))
    assert isinstance(engine, ProgressiveEvaluator)
    return engine


@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("tol", ["1.5", "4"])
def test_running_mean_and_standard_error_equal_their_formulas(seed: int, tol: str) -> None:
    model, dirs, data, grid = dyadic_problem()
    rows = evaluator(model, dirs, data, grid, tol, seed).evaluate(grid.coords())
    order = torch.randperm(N, generator=torch.Generator().manual_seed(seed))
    x = [int(v) for v in data.inputs[order, 0]]
    for k, (a, b) in enumerate(grid.coords()):
        w = Fraction(1) + Fraction(a) + Fraction(b) / 2
        values = [(w * xi) ** 2 for xi in x]
        n = CHUNK
        while True:  # the oracle: the first whole chunk after 16 samples where the error meets T
            s1, s2 = sum(values[:n]), sum(v * v for v in values[:n])
            var = (s2 - s1 * s1 / n) / (n - 1)
            se = math.sqrt(float(var / n * (1 - Fraction(n, N))))
            if n == N or (n >= 16 and se <= float(tol)):
                break
            n += CHUNK
        mean, stderr, samples, sum1, sum2, above = rows[k]
        assert samples == n
        assert sum1 == float(s1) and sum2 == float(s2)  # exact sums: dyadic values
        assert mean == float(s1 / n)  # the correctly rounded mean, bit for bit
        assert stderr == pytest.approx(se, rel=1e-12, abs=0 if n < N else 1e-300)
        assert not above


def test_reading_everything_is_the_exact_engine_bit_for_bit() -> None:
    model, dirs, data, grid = dyadic_problem()
    rows = evaluator(model, dirs, data, grid, "0").evaluate(grid.coords())
    exact = surface_evaluator(model, dirs, {"train": data}, MetricSet(["mse"], "regression", 0),
                              options=EngineOptions(0, 0, "keep", 8)).evaluate(grid.coords())
    assert (rows[:, 2] == N).all() and (rows[:, 1] == 0).all()  # the finite-population correction reaches 0
    assert np.array_equal(rows[:, 0], exact[:, 0])


def classifier_problem(n: int = 3000) -> tuple[nn.Module, TensorSplit]:
    torch.manual_seed(0)
    centres = torch.randn(4, 6) * 1.5
    y = torch.randint(0, 4, (n,))
    x = centres[y] + torch.randn(n, 6)
    model = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 4))
    return model, TensorSplit(x, y)


def test_coverage_of_two_standard_errors_over_sample_orders() -> None:
    """Over many sample orders, the exact value lies within ±2 standard errors at about 95 % of the points."""
    model, data = classifier_problem()
    dirs = landscape.random_directions(model, seed=1)
    grid = Grid(np.linspace(-1, 1, 7), np.linspace(-1, 1, 7))
    metrics = MetricSet(["cross_entropy"], "classification", 4)
    exact = surface_evaluator(model, dirs, {"train": data}, metrics, options=EngineOptions(0, 0, "keep", 8)).evaluate(grid.coords())
    shares = []
    for seed in range(24):
        opts = ProgressiveOptions(Tolerance(0.01), seed=seed, min_samples=256)
        engine = surface_evaluator(model, dirs, {"train": data}, metrics, options=EngineOptions(64, 0, "keep", 8),
                                   progressive=(opts, grid))
        rows = engine.evaluate(grid.coords())
        est, se, n = rows[:, 0], rows[:, 2], rows[:, 4]
        partial = n < len(data)
        assert partial.sum() > 20  # the test is about estimates, not exact values
        shares.append(float(np.mean(np.abs(est - exact[:, 0])[partial] <= 2 * se[partial])))
    mean, spread = float(np.mean(shares)), float(np.std(shares))
    print(f"coverage of ±2 s.e.: {100 * mean:.1f} % on average over 24 orders (s.d. {100 * spread:.1f} %)")
    assert 0.88 <= mean <= 0.995
    assert min(shares) < max(shares)  # one order's share varies: the points' errors are correlated


def test_a_tolerance_spec_is_checked() -> None:
    assert Tolerance.parse("2%") == Tolerance(2.0, True)
    assert Tolerance.parse(0.01) == Tolerance(0.01)
    assert Tolerance.parse("") is None
    for bad in ("-1", "abc", "nan%", "inf"):
        with pytest.raises(ConfigError, match="--tolerance"):
            Tolerance.parse(bad)


# --- refinement ---------------------------------------------------------------------------------------------


def test_interpolation_error_estimate_is_exact_on_a_paraboloid() -> None:
    """Bilinear interpolation of a x² + b y² misses the cell centre by (a h_x² + b h_y²) / 4: the estimate h²|f''|/8 per axis."""
    i, j = np.meshgrid(np.arange(51), np.arange(41), indexing="ij")
    f = 100.0 + 0.002 * (i - 20.0) ** 2 + 0.001 * (j - 13.0) ** 2  # within one contour band, linear or log
    levels = grid_levels(f.shape)
    todo, rest, error = refine_level(f, levels[0], levels[1], tolerance=1.0, origin=0.0, step=100.0, top=1e9)
    assert len(todo) == 0  # no contour crossed, every error under T
    filled, _ = interpolate(f, levels[0], rest)
    truth = f.reshape(-1)[rest]
    assert np.all(np.abs(filled - truth) <= error + 1e-12)
    assert np.max(np.abs(filled - truth)) == pytest.approx(np.max(error))
    strict = refine_level(f, levels[0], levels[1], tolerance=0.5 * float(np.max(error)), origin=0.0, step=100.0, top=1e9)[0]
    assert 0 < len(strict) < len(rest)


def test_cells_above_the_range_are_never_refined_and_contours_always_are() -> None:
    i = np.meshgrid(np.arange(33), np.arange(33), indexing="ij")[0]
    f = np.where(i > 20, 1e6, 0.01 * i)  # a cliff: the right part far above the top
    levels = grid_levels(f.shape)
    todo, rest, _ = refine_level(f, levels[0], levels[1], tolerance=1e9, origin=0.0, step=0.05, top=10.0)
    rows = np.unravel_index(todo, f.shape)[0]
    assert set(rows) <= set(range(0, 25))  # only cells left of the cliff or straddling it
    assert 22 in set(rows)  # the new row inside the cell across the cliff (rows 20 to 24)
    filled = np.unravel_index(rest, f.shape)[0]
    assert (filled > 24).sum() > 0  # beyond the cliff: interpolated, however steep


# --- both doors ---------------------------------------------------------------------------------------------


def test_api_tolerance_on_tensors_a_dataloader_and_a_batch_loss() -> None:
    model, data = classifier_problem(1200)
    exact = landscape.surface(model, (data.inputs, data.targets), x=(-1, 1, 5), y=(-1, 1, 3), progress=False)
    full = landscape.surface(model, (data.inputs, data.targets), x=(-1, 1, 5), y=(-1, 1, 3), progress=False, tolerance=0)
    assert np.allclose(full["train_loss"], exact["train_loss"], rtol=1e-12, atol=0)
    assert (full.extra["train_samples"] == 1200).all() and full.attrs["tolerance"] == {"train_loss": 0.0}
    est = landscape.surface(model, (data.inputs, data.targets), x=(-1, 1, 5), y=(-1, 1, 3), progress=False, tolerance=0.02)
    assert (est.extra["train_loss_stderr"] <= 0.02).all() and (est.extra["train_samples"] < 1200).any()
    loader = DataLoader(TensorDataset(data.inputs, data.targets), batch_size=100, shuffle=True)
    streamed = landscape.surface(model, loader, x=(-1, 1, 5), y=(-1, 1, 3), progress=False, tolerance=0, memory_budget=1)
    assert streamed.attrs["streamed"] == ["train"]  # batches of 100 through the model: float32 forwards differ in the 8th digit
    assert np.allclose(streamed["train_loss"], exact["train_loss"], rtol=1e-6, atol=0)
    assert (streamed.extra["train_samples"] == 1200).all()

    def per_sample(m: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return nn.functional.cross_entropy(m(batch[0]), batch[1], reduction="none")

    batch = landscape.surface(model, loader, per_sample, x=(-1, 1, 5), y=(-1, 1, 3), progress=False, tolerance=0.02, memory_budget=1)
    assert (batch.extra["train_loss_stderr"] <= 0.02).all()
    assert np.all(np.abs(batch["train_loss"] - exact["train_loss"]) <= 5 * 0.02)

    def mean_loss(m: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return nn.functional.cross_entropy(m(batch[0]), batch[1])

    with pytest.raises(ModelError, match="batch mean: a progressive surface"):
        landscape.surface(model, loader, mean_loss, x=(-1, 1, 3), y=None, progress=False, tolerance=0.02)
    with pytest.raises(ConfigError, match="needs a tolerance"):
        landscape.surface(model, loader, x=(-1, 1, 3), y=None, progress=False, refine=True)


def _surface(ckpt: Path, out: Path, *extra: str) -> int:
    return main(["surface", str(ckpt), "--out", str(out), "--x", "-1:1:17", "--y", "-1:1:17", *extra])


def test_cli_resume_a_smaller_tolerance_goes_on_and_a_larger_one_is_met(tiny_run: RunResult, tmp_path: Path,
                                                                       capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = tiny_run.final
    assert _surface(ckpt, tmp_path / "exact.h5") == 0
    assert _surface(ckpt, tmp_path / "a.h5", "--tolerance", "10%") == 0
    with h5py.File(tmp_path / "a.h5") as f:
        first = f["train_samples"][()]
        assert json.loads(f.attrs["tolerance"])["train_loss"] > 0 and f.attrs["tolerance_spec"] == "10%"
    assert _surface(ckpt, tmp_path / "a.h5", "--tolerance", "3%") == 0
    assert _surface(ckpt, tmp_path / "b.h5", "--tolerance", "3%") == 0
    with h5py.File(tmp_path / "a.h5") as a, h5py.File(tmp_path / "b.h5") as b:
        assert (a["train_samples"][()] >= first).all()  # went on, never started over
        for name in ("train_loss", "train_acc", "train_loss_stderr", "train_samples", "progressive/train_loss_sum"):
            assert np.array_equal(a[name][()], b[name][()], equal_nan=True), name  # = a fresh run at the smaller T
    capsys.readouterr()
    assert _surface(ckpt, tmp_path / "a.h5", "--tolerance", "5%") == 0
    assert "nothing to compute" in capsys.readouterr().out
    assert _surface(ckpt, tmp_path / "a.h5") == 0  # no --tolerance: on to every sample, from those read
    with h5py.File(tmp_path / "a.h5") as a, h5py.File(tmp_path / "exact.h5") as e:
        assert (a["train_loss_stderr"][()] == 0).all()
        assert np.allclose(a["train_loss"][()], e["train_loss"][()], rtol=1e-12, atol=0)
        assert np.array_equal(a["train_acc"][()], e["train_acc"][()])
    assert main(["surface", str(ckpt), "--out", str(tmp_path / "a.h5"), "--x", "-1:1:17", "--y", "-1:1:17",
                 "--tolerance", "3%", "--set", "surface.sample_seed=4"]) == 1
    assert "sample order of surface.sample_seed = 0" in capsys.readouterr().err


def test_cli_points_above_the_range_stop_early(tiny_run: RunResult, tmp_path: Path) -> None:
    out = tmp_path / "above.h5"
    assert main(["surface", str(tiny_run.final), "--out", str(out), "--x", "-3:3:9", "--y", "-3:3:9",
                 "--tolerance", "0.001", "--vmax", "1.0"]) == 0
    with h5py.File(out) as f:
        above, mean, se, n = f["above"][()], f["train_loss"][()], f["train_loss_stderr"][()], f["train_samples"][()]
        assert json.loads(f.attrs["top"])["train_loss"] == 1.0
    assert above.sum() > 0
    assert np.all(mean[above] - 3 * se[above] > 1.0) and np.all(n[above] < n.max())
    assert np.all((se[~above] <= 0.001) | (n[~above] == n.max()))
    from landscape.config import PlotConfig
    from landscape.figures.files import _prepare

    job = _prepare(out, PlotConfig(), None, ["contour"], False)[0]  # figures stop at the top: above it, estimates stopped early
    assert job.style["vmax"] == 1.0 and _prepare(out, PlotConfig(vmax=3.0), None, ["contour"], False)[0].style["vmax"] == 3.0


def test_cli_refine_computes_where_contours_need_it(tiny_run: RunResult, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = tiny_run.final
    wide = ["--x", "-3:3:33", "--y", "-3:3:33", "--vmax", "1.5"]  # corners far above the figure's range: never refined
    assert _surface(ckpt, tmp_path / "p.h5", "--tolerance", "5%", *wide) == 0
    assert _surface(ckpt, tmp_path / "r.h5", "--tolerance", "5%", "--refine", *wide) == 0
    assert "% of the points computed" in capsys.readouterr().out
    assert main(["surface", str(ckpt), "--out", str(tmp_path / "x.h5"), "--refine"]) == 1
    with h5py.File(tmp_path / "p.h5") as p, h5py.File(tmp_path / "r.h5") as r:
        computed = r["computed"][()]
        assert 0 < computed.mean() < 1 and r.attrs["computed_share"] == pytest.approx(computed.mean())
        assert r["done"][()].all() and (r["train_samples"][()][~computed] == 0).all()
        # a computed point is the same estimate as without refinement (same samples, same tolerance)
        assert np.array_equal(r["train_loss"][()][computed], p["train_loss"][()][computed])
    from landscape.figures.estimates import tolerance_of
    from landscape.io.surface_file import read_surface

    refined, plain = read_surface(tmp_path / "r.h5"), read_surface(tmp_path / "p.h5")
    filled = ~refined.extra["computed"]
    a, b = refined.values["train_loss"][filled], plain.values["train_loss"][filled]
    t = tolerance_of(refined, "train_loss")
    assert t is not None
    above = (a > 1.5) & (b > 1.5)  # drawn above the range either way
    gap = np.abs(a - b)[~above] / t[filled][~above]
    print(f"filled points: {above.sum()} above the range, {gap.size} others within {gap.max(initial=0):.2f} T of the estimates")
    assert above.sum() > 0 and (gap <= 3).all()


def test_api_refine_matches_the_cli_decisions() -> None:
    model, data = classifier_problem(1200)
    s = landscape.surface(model, (data.inputs, data.targets), x=(-2, 2, 33), y=(-2, 2, 33), progress=False,
                          tolerance="5%", refine=True)
    computed = s.extra["computed"]
    assert 0 < computed.mean() < 1 and s.attrs["computed_share"] == pytest.approx(computed.mean())
    assert (s.extra["train_samples"][~computed] == 0).all() and np.isfinite(s["train_loss"]).all()
    plain = landscape.surface(model, (data.inputs, data.targets), x=(-2, 2, 33), y=(-2, 2, 33), progress=False, tolerance="5%")
    assert np.array_equal(s["train_loss"][computed], plain["train_loss"][computed])


def test_check_reads_estimates_and_interpolated_points(tiny_run: RunResult, tmp_path: Path) -> None:
    """``check`` evaluates the origin exactly when the surface holds an estimate there, finds the resolution
    from computed points only, and counts an estimate's error as noise against the contour step."""
    from landscape.engine.check import CheckOptions, numerics_check
    from landscape.workflows.check import view_of_file

    out = tmp_path / "r.h5"
    assert _surface(tiny_run.final, out, "--tolerance", "5%", "--refine", "--x", "-3:3:33", "--y", "-3:3:33",
                    "--vmax", "1.5") == 0
    view = view_of_file(out)
    assert view.computed is not None and view.stderr is not None and view.exact is not None
    assert not view.computed.all() and not view.exact[16, 16]  # the origin is an estimate here
    report = landscape.check(landscape.load_checkpoint(tiny_run.final).model, landscape.dataset("digits"),
                             surface=landscape.load_surface(out), progress=False)
    assert report["origin"].status == "pass"  # evaluated exactly, not read off the estimate
    z = np.full((5, 5), 1.0) + np.arange(5)[:, None]  # contour step of 12 levels over 1 to 5: about 0.33
    assert numerics_check(z, np.ones((5, 5), bool), False, CheckOptions()).status == "pass"
    noisy = numerics_check(z, np.ones((5, 5), bool), False, CheckOptions(), stderr=np.full((5, 5), 0.5))
    assert noisy.status == "warn" and "--tolerance" in noisy.advice


@pytest.mark.parametrize("kind", ["list", "loader"])
def test_cli_streamed_dict_batches_with_a_batch_loss(tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The user's dict batches over the memory budget, read again at every point in one seeded order (a DataLoader
    over a map-style Dataset rebuilt to read in it): 70 samples, fewer than a point reads before it may stop, so
    every value is the exact mean, which the float64 hand loop gives."""
    from test_cli_batches import data, files, hand, surface_flags

    model, _, ckpt = files(tmp_path)
    out = tmp_path / "s.h5"
    args = ["surface", str(ckpt), *surface_flags(tmp_path), "--set", f'data.options={{kind="{kind}"}}', "--memory-budget", "1",
            "--out", str(out), "--tolerance", "0.05"]
    assert main(args) == 0
    assert "streamed from the loader" in capsys.readouterr().out
    s = landscape.load_surface(out)
    assert (s.extra["train_samples"] == 70).all() and (s.extra["train_loss_stderr"] == 0).all()
    x, y = data()
    assert s.directions is not None
    np.testing.assert_allclose(s["train_loss"], hand(model, s.directions, s.x, s.y, x[:70], y[:70]), rtol=1e-6)
    assert main(args) == 0 and "nothing to compute" in capsys.readouterr().out


def test_api_start_goes_on_from_the_samples_read(tmp_path: Path) -> None:
    """A smaller tolerance from ``start`` equals a fresh run at it, bit for bit (also through a saved file); tolerance 0 is exact."""
    model, data = classifier_problem(3000)
    kw = {"x": (-1, 1, 9), "y": (-1, 1, 9), "progress": False}
    coarse = landscape.surface(model, (data.inputs, data.targets), tolerance="20%", **kw)
    fine = landscape.surface(model, (data.inputs, data.targets), tolerance="5%", **kw)
    for start in (coarse, landscape.load_surface(coarse.save(tmp_path / "c.h5"))):
        went_on = landscape.surface(model, (data.inputs, data.targets), tolerance="5%", start=start, **kw)
        assert (went_on.extra["train_samples"] >= coarse.extra["train_samples"]).all()
        assert (went_on.extra["train_samples"] > coarse.extra["train_samples"]).any()
        for name in ("train_samples", "train_loss_stderr", "progressive/train_loss_sum"):
            assert np.array_equal(went_on.extra[name], fine.extra[name]), name
        assert np.array_equal(went_on["train_loss"], fine["train_loss"])
    exact = landscape.surface(model, (data.inputs, data.targets), **kw)
    full = landscape.surface(model, (data.inputs, data.targets), start=fine, **kw)
    assert np.allclose(full["train_loss"], exact["train_loss"], rtol=1e-12, atol=0)
    with pytest.raises(ConfigError, match="exact"):
        landscape.surface(model, (data.inputs, data.targets), start=exact, **kw)
    with pytest.raises(GridError, match="another grid"):
        landscape.surface(model, (data.inputs, data.targets), start=fine, x=(-1, 1, 5), y=(-1, 1, 5), progress=False)


def test_cli_refine_at_tolerance_zero_computes_exact_values(tiny_run: RunResult, tmp_path: Path) -> None:
    """With T = 0 every computed point reads every sample (unless it stops above the range): it is the exact
    engine's value; only cells above the range are filled (interpolated, marked not computed)."""
    wide = ["--x", "-3:3:33", "--y", "-3:3:33", "--vmax", "1.5"]
    assert _surface(tiny_run.final, tmp_path / "e.h5", *wide) == 0
    assert _surface(tiny_run.final, tmp_path / "r.h5", "--tolerance", "0", "--refine", *wide) == 0
    with h5py.File(tmp_path / "e.h5") as e, h5py.File(tmp_path / "r.h5") as r:
        computed, exact, refined = r["computed"][()], e["train_loss"][()], r["train_loss"][()]
        read_all = computed & ~r["above"][()]  # (a computed point may still stop early above the range)
        assert 0 < computed.mean() < 1 and read_all.sum() > 50
        np.testing.assert_allclose(refined[read_all], exact[read_all], rtol=1e-12, atol=0)
        assert (exact[~read_all] > 1.5).all()  # what was filled, or stopped early, lies above the figure's range


def test_cli_a_refined_file_run_without_refine_computes_the_filled_points(tiny_run: RunResult, tmp_path: Path) -> None:
    wide = ["--x", "-3:3:33", "--y", "-3:3:33", "--vmax", "1.5", "--tolerance", "5%"]
    assert _surface(tiny_run.final, tmp_path / "r.h5", "--refine", *wide) == 0
    assert _surface(tiny_run.final, tmp_path / "p.h5", *wide) == 0
    assert _surface(tiny_run.final, tmp_path / "r.h5", *wide) == 0  # the same tolerance, now every point
    with h5py.File(tmp_path / "r.h5") as r, h5py.File(tmp_path / "p.h5") as p:
        assert r["computed"][()].all() and r.attrs["computed_share"] == 1.0
        assert np.array_equal(r["train_loss"][()], p["train_loss"][()])
