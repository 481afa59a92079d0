"""``landscape check``: each check has a model built to fail it and one built to pass it (issue 22).

Tiny models and coarse grids; the oracles are hand loops in float64 written here, closed forms
(an exactly quadratic surface), and constructions whose answer is known (a checkpoint moved off
its plane, statistics reset after training, a deliberately broken engine rewrite).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import landscape
from landscape import testhooks
from landscape.cli import main
from landscape.config import Config, config_from_dict, load_config
from landscape.engine import check as chk
from landscape.errors import ConfigError
from landscape.io.checkpoint import Checkpoint
from landscape.testhooks import BREAK_REWRITE_ENV as TEST_BREAK_REWRITE
from landscape.workflows.train import train

GRID = (-1.0, 1.0, 9)
Trained = tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]]


def _data(n: int = 256, d: int = 10, classes: int = 3, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    w = torch.randn(d, classes, generator=g)
    return x, (x @ w).argmax(dim=1)


def _fit(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor], steps: int = 150, lr: float = 0.1) -> nn.Module:
    torch.manual_seed(0)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    x, y = data
    model.train()
    for i in range(steps):
        idx = torch.arange(i * 32, i * 32 + 32) % len(x)
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def mlp() -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    data = _data()
    torch.manual_seed(1)
    return _fit(nn.Sequential(nn.Linear(10, 16), nn.ReLU(), nn.Linear(16, 3)), data), data


def _bn_mlp() -> nn.Sequential:
    torch.manual_seed(2)
    return nn.Sequential(nn.Linear(10, 32), nn.BatchNorm1d(32), nn.ReLU(), nn.Linear(32, 3))


# --- the report ------------------------------------------------------------------------------------------


def test_the_report_names_exactly_the_checks(mlp: Trained, tmp_path: Path) -> None:
    model, data = mlp
    report = landscape.check(model, data, x=GRID, y=GRID, out=tmp_path / "check.json", progress=False)
    saved = json.loads((tmp_path / "check.json").read_text())
    assert [c["name"] for c in saved["checks"]] == list(chk.CHECK_NAMES)
    assert {c["status"] for c in saved["checks"]} <= {"pass", "warn", "fail"}
    assert all({"value", "threshold", "advice"} <= set(c) for c in saved["checks"])
    assert report.status == saved["status"] == "pass", report
    assert (tmp_path / "check_seeds.png").is_file()  # the small multiples of the other seeds' planes


class _CountedBatches:
    """A re-iterable of (inputs, targets) batches that counts the batches read from it."""

    def __init__(self, data: tuple[torch.Tensor, torch.Tensor], size: int = 64) -> None:
        self.batches = [(data[0][i : i + size], data[1][i : i + size]) for i in range(0, len(data[0]), size)]
        self.read = 0

    def __iter__(self):  # type: ignore[no-untyped-def]
        for batch in self.batches:
            self.read += 1
            yield batch


def test_check_without_a_surface_prepares_the_data_once(mlp: Trained) -> None:
    """landscape.check computes the surface itself: the data are read (and cached) once, each batch read
    once, not once for the surface and again for the checks; the surface it computed is the one
    landscape.surface gives."""
    model, data = mlp
    counted = _CountedBatches(data)
    report = landscape.check(model, counted, x=GRID, y=GRID, seeds=1, progress=False)
    assert counted.read == len(counted.batches) == 4
    assert report["origin"].status == "pass"
    alone = _CountedBatches(data)
    s = landscape.surface(model, alone, x=GRID, y=GRID, progress=False)
    assert alone.read == len(alone.batches)
    drawn = report["seeds"].details["drawn_mean_increase"]
    stride = chk.seed_grid_stride(s.x, chk.CheckOptions().seed_points) or 1
    sub = s["train_loss"][::stride, ::stride]
    radius = 0.5 * min(abs(s.x[0]), abs(s.x[-1]))
    assert drawn == pytest.approx(chk.plane_summary(s.x[::stride], s.y[::stride], sub, radius).mean_increase, rel=1e-12)


def test_unknown_threshold_is_an_error_naming_it(mlp: Trained) -> None:
    model, data = mlp
    with pytest.raises(ConfigError, match="unknown check option 'seed_count'"):
        landscape.check(model, data, x=GRID, y=GRID, seed_count=4, progress=False)
    with pytest.raises(ConfigError, match="unknown check option 'enabled'"):  # the config's switch, not a threshold
        landscape.check(model, data, x=GRID, y=GRID, enabled=False, progress=False)
    with pytest.raises(ConfigError, match=r"check\.bn_rtol must be a positive number"):
        landscape.check(model, data, x=GRID, y=GRID, bn_rtol=-1.0, progress=False)


# --- origin -------------------------------------------------------------------------------------------------


def test_plain_evaluation_matches_a_float64_hand_loop(mlp: Trained) -> None:
    model, data = mlp
    x, y = data
    with torch.no_grad():
        logits = model.double()(x.double())
        oracle = float(nn.functional.cross_entropy(logits, y, reduction="sum")) / len(y)
    model.float()
    report = landscape.check(model, data, x=GRID, y=GRID, progress=False)
    plain = report["origin"].details["plain"]
    assert abs(plain - oracle) / oracle < 1e-5
    assert report["origin"].status == "pass" and report["origin"].value < 1e-5


def test_origin_fails_on_a_deliberately_broken_engine_rewrite(mlp: Trained, monkeypatch: pytest.MonkeyPatch) -> None:
    model, data = mlp
    monkeypatch.setenv(TEST_BREAK_REWRITE, "1")  # the first-layer cache 0.1 % off, after its own equivalence check
    testhooks.reread()
    try:
        report = landscape.check(model, data, x=GRID, y=GRID, progress=False)
    finally:  # the hook is read once per process: forget it for the tests that follow
        monkeypatch.delenv(TEST_BREAK_REWRITE)
        testhooks.reread()
    assert report["origin"].status == "fail"
    assert report["origin"].value > 1e-5
    assert "differ" in report["origin"].advice


# --- bn_mode -------------------------------------------------------------------------------------------------


def test_bn_mode_passes_a_trained_net_and_warns_on_reset_statistics(monkeypatch: pytest.MonkeyPatch) -> None:
    data = _data(512)
    model = _fit(_bn_mlp(), data, steps=200, lr=0.05)
    trained = landscape.check(model, data, x=GRID, y=GRID, progress=False)
    assert trained["bn_mode"].status == "pass", trained["bn_mode"]
    for m in model.modules():
        if isinstance(m, nn.BatchNorm1d):
            m.reset_running_stats()
    reset = landscape.check(model, data, x=GRID, y=GRID, progress=False)
    d = reset["bn_mode"].details
    assert reset["bn_mode"].status == "warn"
    assert d["loss_running_stats"] > 2 * d["loss_batch_stats"]
    assert "--bn recompute" in reset["bn_mode"].advice
    # the number --bn recompute gives is the engine's, and it is close to the batch statistics'
    assert abs(d["loss_bn_recompute"] - d["loss_batch_stats"]) < 0.5 * abs(d["loss_running_stats"] - d["loss_batch_stats"])


def test_bn_mode_does_not_apply_without_batchnorm(mlp: Trained) -> None:
    model, data = mlp
    result = landscape.check(model, data, x=GRID, y=GRID, progress=False)["bn_mode"]
    assert result.status == "pass" and result.value is None and "not applicable" in result.advice


# --- seeds ----------------------------------------------------------------------------------------------------


def test_seeds_warns_for_an_outlier_among_twenty_and_passes_a_typical_seed(mlp: Trained) -> None:
    """Among seeds 0..19, the plane most unlike the planes of its next three seeds (what the check
    compares it with) warns, the most alike passes; the numbers are those of landscape.surface."""
    model, data = mlp
    increase = {}
    for seed in range(23):
        dirs = landscape.random_directions(model, 2, seed=seed)
        s = landscape.surface(model, data, directions=dirs, x=GRID, y=GRID, progress=False)
        increase[seed] = chk.plane_summary(s.x, s.y, s["train_loss"], 0.5).mean_increase

    def atypical(seed: int) -> float:
        median = float(np.median([increase[seed + k] for k in (1, 2, 3)]))
        return abs(math.log(increase[seed] / median))

    outlier = max(range(20), key=atypical)
    typical = min(range(20), key=atypical)
    warned = landscape.check(model, data, directions=landscape.random_directions(model, 2, seed=outlier), x=GRID, y=GRID,
                             progress=False)["seeds"]
    passed = landscape.check(model, data, directions=landscape.random_directions(model, 2, seed=typical), x=GRID, y=GRID,
                             progress=False)["seeds"]
    assert warned.status == "warn", (outlier, warned)
    assert passed.status == "pass", (typical, passed)
    assert warned.value == pytest.approx(math.exp(atypical(outlier)), rel=1e-9)
    for seed, value in zip(passed.details["seeds"], passed.details["mean_increase"], strict=True):
        assert value == pytest.approx(increase[seed], rel=1e-9)


# --- scale -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("half", "status", "word"), [(50.0, "warn", "shrink"), (1e-4, "warn", "widen"), (1.0, "pass", "")])
def test_scale_warns_on_an_exploded_and_a_flat_range(mlp: Trained, half: float, status: str, word: str) -> None:
    model, data = mlp
    result = landscape.check(model, data, x=(-half, half, 9), y=(-half, half, 9), progress=False)["scale"]
    assert result.status == status, result
    assert word in result.advice
    # the step at the corner relative to the weights: filter-normalized directions have the weights' norm
    assert result.details["edge_step"] == pytest.approx(half * math.sqrt(2), rel=0.15)


def test_scale_warns_when_the_lowest_value_lies_on_the_edge() -> None:
    x = np.linspace(-1, 1, 11)
    z = (x[:, None] - 1.5) ** 2 + x[None, :] ** 2 + 0.1  # the minimum at α = 1.5, off the plane
    result = chk.scale_check(x, x, z, np.ones_like(z, dtype=bool), float(z[5, 5]), 1.0, chk.CheckOptions())
    assert result.status == "warn" and "edge" in result.advice
    assert result.details["lowest_at"] == [1.0, 0.0]


# --- resolution ---------------------------------------------------------------------------------------------------


def test_resolution_warns_on_a_coarse_grid_over_a_sharp_minimum_and_passes_a_fine_one() -> None:
    def sharp(n: int) -> np.ndarray:
        a = np.linspace(-1, 1, n)
        return 1e-3 + 4.0 * (a[:, None] ** 2 + a[None, :] ** 2)  # L(0) = 0.001: a sharp minimum on a log scale

    opts = chk.CheckOptions()
    coarse = chk.resolution_check(sharp(5), np.ones((5, 5), dtype=bool), True, opts)
    fine = chk.resolution_check(sharp(41), np.ones((41, 41), dtype=bool), True, opts)
    assert coarse.status == "warn" and fine.status == "pass", (coarse, fine)
    assert coarse.details["coarse_shape"] == [3, 3] and fine.details["coarse_shape"] == [21, 21]


def test_resolution_compares_against_the_coarse_level_interpolated() -> None:
    """A surface linear in (α, β) equals its bilinear interpolation: zero difference (a closed form)."""
    a = np.linspace(-1, 1, 9)
    z = 3.0 + a[:, None] - 0.5 * a[None, :]
    result = chk.resolution_check(z, np.ones_like(z, dtype=bool), False, chk.CheckOptions(), step=0.1)
    assert result.value == pytest.approx(0.0, abs=1e-12)
    bumped = z.copy()
    bumped[1, 1] += 0.25  # a point of the fine level only: 2.5 steps off the interpolation
    assert chk.resolution_check(bumped, np.ones_like(z, dtype=bool), False, chk.CheckOptions(), step=0.1).value == pytest.approx(2.5)


def test_resolution_on_a_real_model(mlp: Trained) -> None:
    model, data = mlp
    assert landscape.check(model, data, x=(-1, 1, 5), y=(-1, 1, 5), progress=False)["resolution"].status == "warn"
    assert landscape.check(model, data, x=(-1, 1, 33), y=(-1, 1, 33), progress=False)["resolution"].status == "pass"


# --- trajectory ----------------------------------------------------------------------------------------------------


def _path_files(model: nn.Module, tmp_path: Path, kick: float) -> list[Path]:
    """Checkpoints on a plane through the model, one of them (the fourth) kicked ``kick`` off it."""
    g = torch.Generator().manual_seed(5)
    origin = {k: v.detach().clone() for k, v in model.state_dict().items()}

    def direction() -> dict[str, torch.Tensor]:  # weights only: the PCA plane leaves biases out (ignore = biasbn)
        return {k: torch.randn(v.shape, generator=g) * 0.3 * v.norm() / math.sqrt(v.numel()) * (v.ndim > 1)
                for k, v in origin.items()}

    d1, d2, d3 = direction(), direction(), direction()
    files = []
    for i, (a, b) in enumerate([(3.0, 1.5), (2.2, -1.5), (1.5, 2.0), (0.8, -1.5), (0.4, 1.0), (0.0, 0.0)]):
        c = kick if i == 3 else 0.0
        state = {k: origin[k] + a * d1[k] + b * d2[k] + c * d3[k] for k in origin}
        files.append(tmp_path / f"ckpt_{i}.pt")
        torch.save(state, files[-1])
    return files


@pytest.mark.parametrize(("kick", "status"), [(2.0, "warn"), (0.0, "pass")])
def test_trajectory_names_the_checkpoints_that_leave_the_plane(mlp: Trained, tmp_path: Path, kick: float, status: str) -> None:
    model, data = mlp
    traj = landscape.trajectory(_path_files(model, tmp_path, kick), model=model)
    x, y = traj.axes(num=31, margin=0.2)
    report = landscape.check(model, data, trajectory=traj, x=x, y=y, out=tmp_path / "c.json", progress=False)
    result = report["trajectory"]
    assert result.status == status, result
    off = result.details["off_plane"]
    if status == "warn":
        assert result.details["flagged"] == [3] and "#3" in result.advice  # named, and only that one
        assert off[3] == max(off) > 0.5  # the kick tilts the PCA plane a little: the others are off it less
        assert (tmp_path / "c_trajectory.png").is_file()  # the path, the checkpoint that leaves circled
    else:
        assert max(off) < 1e-3


def test_level_positions_count_the_drawn_levels_between_two_values() -> None:
    """Log levels 1-2-5-10 (0.30, 0.40, 0.30 decades apart): a value's position is its level's index,
    a fraction of the way to the next in log units between levels, the end spacings beyond the ends."""
    levels = np.log10([1.0, 2.0, 5.0, 10.0])
    at = chk.level_positions(np.log10([1.0, 2.0, 5.0, 10.0, math.sqrt(10.0), 0.5, 20.0]), levels)
    expected = [0.0, 1.0, 2.0, 3.0, 1.0 + (0.5 - math.log10(2.0)) / math.log10(2.5), -1.0, 4.0]
    assert at[:6] == pytest.approx(expected[:6], abs=1e-12)
    assert at[6] == pytest.approx(3.0 + math.log10(2.0) / math.log10(2.0), abs=1e-12)
    assert math.isnan(float(chk.level_positions(np.array([np.nan]), levels)[0]))
    with pytest.raises(ValueError, match="increasing"):
        chk.level_positions(np.zeros(1), [1.0, 1.0])


def test_trajectory_steps_are_the_levels_the_figure_draws_at_that_height() -> None:
    """Known answers on a log figure with levels 1, 2, 5, 10: own 2.1 over 4.9 lies in the band
    between the lines 2 and 5 (no line between them: the figure draws it right), though the two
    are 1.1 mean steps (1/3 decade) apart; own 1.9 over 5.1 has the lines 2 and 5 between (warns)."""
    opts = chk.CheckOptions()
    levels = np.log10([1.0, 2.0, 5.0, 10.0])
    mean_step = 1.0 / 3.0
    same_band = chk.trajectory_check([2.1], [4.9], [0.5], 0.9, ["#0"], mean_step, True, opts, levels)
    assert math.log10(4.9 / 2.1) / mean_step > 1.0  # by the mean step it would warn
    assert same_band.status == "pass" and same_band.value < 1.0
    assert same_band.value == pytest.approx(math.log10(4.9 / 2.0) / math.log10(2.5) - math.log10(2.1 / 2.0) / math.log10(2.5))
    two_lines = chk.trajectory_check([1.9], [5.1], [0.5], 0.9, ["#0"], mean_step, True, opts, levels)
    assert two_lines.status == "warn" and two_lines.details["flagged_labels"] == ["#0"] and two_lines.value > 1.0
    assert chk.trajectory_check([2.0], [5.0], [0.5], 0.9, ["#0"], mean_step, True, opts, levels).value == pytest.approx(1.0)
    # linear levels 0, 1, ..., 10: 0.05 over 0.5 is half a step (one band); in decades it would be a whole decade
    linear = chk.trajectory_check([0.05], [0.5], [0.5], 0.9, ["#0"], 1.0, False, opts, np.arange(11.0))
    assert linear.status == "pass" and linear.value == pytest.approx(0.45)
    assert chk.trajectory_check([0.05], [0.5], [0.5], 0.9, ["#0"], 1 / 6, True, opts,
                                np.log10([0.01, 0.1, 1.0, 10.0])).value == pytest.approx(1.0)


@pytest.mark.parametrize("scale", [True, False])
def test_the_check_judges_the_scale_the_figure_is_drawn_on(run_dir: Path, tmp_path: Path, scale: bool) -> None:
    """plot.log (CLI, run) and log= (API) set the figure's scale; the trajectory and resolution checks
    then use its levels (log: decades; linear: the loss), not the automatic rule's."""
    ckpt = run_dir / "checkpoints" / "epoch_003.pt"
    assert main(["--quiet", "trajectory", str(run_dir), "--out", str(tmp_path / "t.h5")]) == 0
    assert main(["--quiet", "surface", str(ckpt), "--directions", str(tmp_path / "t.h5"), "--out", str(tmp_path / "s.h5"),
                 "--x", "-4:4:9", "--y", "-4:4:9"]) == 0
    out = tmp_path / "check.json"
    assert main(["--quiet", "check", str(ckpt), "--surface", str(tmp_path / "s.h5"), "--trajectory", str(tmp_path / "t.h5"),
                 "--out", str(out), "--set", "check.seeds=1", "--set", f"plot.log={str(scale).lower()}"]) == 0
    saved = {c["name"]: c for c in json.loads(out.read_text())["checks"]}
    traj = saved["trajectory"]["details"]
    assert traj["log"] is scale and saved["resolution"]["details"]["log"] is scale
    levels = np.asarray(traj["levels"])
    spacing = np.diff(np.log10(levels)) if scale else np.diff(levels)
    assert traj["contour_step"] == pytest.approx(float(spacing.mean()))  # the mean spacing of those levels
    loaded = landscape.load_checkpoint(ckpt)
    api = landscape.check(loaded.model, loaded.data[0], surface=tmp_path / "s.h5", seeds=1, log=scale, progress=False)
    assert api["resolution"].details["log"] is scale


def test_trajectory_off_plane_ratio_is_a_least_squares_residual() -> None:
    """θ − θ* = 2·δ + 3·ε with ε ⟂ (δ, η): the residual is 3‖ε‖ of ‖2δ + 3ε‖, whatever δ, η's lengths."""
    dx = {"w": torch.tensor([1.0, 1.0, 0.0, 0.0])}
    dy = {"w": torch.tensor([0.0, 2.0, 0.0, 0.0])}  # not orthogonal to dx, not unit
    diff = {"w": 2.0 * dx["w"] + 3.0 * torch.tensor([0.0, 0.0, 1.0, 0.0])}
    expected = 3.0 / math.sqrt(float((diff["w"] ** 2).sum()))
    assert chk.residual_ratios([diff], dx, dy)[0] == pytest.approx(expected, rel=1e-12)


# --- numerics ------------------------------------------------------------------------------------------------------


def test_numerics_warns_on_non_finite_points_and_rounding_noise() -> None:
    opts = chk.CheckOptions()
    z = 1.0 + np.linspace(0, 1, 25).reshape(5, 5)
    done = np.ones_like(z, dtype=bool)
    assert chk.numerics_check(z, done, False, opts).status == "pass"
    bad = z.copy()
    bad[0, 0] = np.inf
    assert chk.numerics_check(bad, done, False, opts).details["non_finite"] == 1
    noisy = 1e6 + 1e-4 * np.arange(25.0).reshape(5, 5)  # float32 cannot tell these apart: rounding, not landscape
    result = chk.numerics_check(noisy, done, False, opts)
    assert result.status == "warn" and result.details["rounding_share"] == 1.0


def test_numerics_on_a_model_that_overflows(mlp: Trained) -> None:
    model, data = mlp

    class Exp(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = model

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.exp(30.0 * self.inner(x))  # logits that overflow away from the origin

    report = landscape.check(Exp(), data, x=(-20, 20, 9), y=(-20, 20, 9), progress=False)
    assert report["numerics"].status == "warn" and report["numerics"].details["non_finite"] > 0
    assert landscape.check(model, data, x=GRID, y=GRID, progress=False)["numerics"].status == "pass"


# --- the command line, run and compare ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("run")
    cfg = config_from_dict({"data": {"name": "digits", "max_train": 300, "max_test": 100},
                            "model": {"name": "mlp", "options": {"hidden": [16]}},
                            "train": {"epochs": 3, "batch_size": 64, "lr": 0.1}})
    train(cfg, out)
    return out


def test_cli_check_writes_the_report_and_one_warning_per_check(run_dir: Path, tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    ckpt = run_dir / "checkpoints" / "epoch_003.pt"
    out = tmp_path / "check.json"
    assert main(["--quiet", "check", str(ckpt), "--x", "-50:50:9", "--y", "-50:50:9", "--out", str(out),
                 "--set", "check.seeds=2"]) == 0
    captured = capsys.readouterr()
    saved = json.loads(out.read_text())
    assert [c["name"] for c in saved["checks"]] == list(chk.CHECK_NAMES)
    warned = [c["name"] for c in saved["checks"] if c["status"] != "pass"]
    assert "scale" in warned
    assert len([ln for ln in captured.err.splitlines() if ln.startswith("landscape check: ")]) == len(warned)
    assert len(saved["checks"][2]["details"]["seeds"]) == 2  # --set check.seeds=2


def test_cli_check_a_surface_file_and_a_trajectory(run_dir: Path, tmp_path: Path) -> None:
    ckpt = run_dir / "checkpoints" / "epoch_003.pt"
    assert main(["--quiet", "trajectory", str(run_dir), "--out", str(tmp_path / "t.h5")]) == 0
    assert main(["--quiet", "surface", str(ckpt), "--directions", str(tmp_path / "t.h5"), "--out", str(tmp_path / "s.h5"),
                 "--x", "-4:4:17", "--y", "-4:4:17"]) == 0
    out = tmp_path / "check.json"
    assert main(["--quiet", "check", str(ckpt), "--surface", str(tmp_path / "s.h5"), "--trajectory", str(tmp_path / "t.h5"),
                 "--out", str(out)]) == 0
    saved = {c["name"]: c for c in json.loads(out.read_text())["checks"]}
    assert saved["origin"]["status"] == "pass"
    assert saved["seeds"]["advice"].startswith("not applicable")  # a PCA plane has no seed
    assert saved["trajectory"]["value"] is not None
    assert len(saved["trajectory"]["details"]["own_loss"]) == 4  # epochs 0..3, recorded in the trajectory


def test_cli_bn_recompute_makes_bn_mode_pass(tmp_path: Path) -> None:
    cfg = config_from_dict({"data": {"name": "digits", "max_train": 300, "max_test": 100},
                            "model": {"name": "mlp", "options": {"hidden": [16], "batchnorm": True}},
                            "train": {"epochs": 2, "batch_size": 64, "lr": 0.1}})
    train(cfg, tmp_path / "run")
    ckpt = tmp_path / "run" / "checkpoints" / "epoch_002.pt"
    state = torch.load(ckpt, weights_only=True)
    for k in list(state["state_dict"]):
        if k.endswith("running_mean"):
            state["state_dict"][k].zero_()
        elif k.endswith("running_var"):
            state["state_dict"][k].fill_(1.0)
    torch.save(state, tmp_path / "reset.pt")
    grid = ["--x", "-1:1:5", "--y", "-1:1:5", "--set", "check.seeds=1"]
    assert main(["--quiet", "check", str(tmp_path / "reset.pt"), *grid, "--out", str(tmp_path / "a.json")]) == 0
    assert main(["--quiet", "check", str(tmp_path / "reset.pt"), *grid, "--bn", "recompute", "--out", str(tmp_path / "b.json")]) == 0
    fixed = {c["name"]: c for c in json.loads((tmp_path / "a.json").read_text())["checks"]}["bn_mode"]
    recomputed = {c["name"]: c for c in json.loads((tmp_path / "b.json").read_text())["checks"]}["bn_mode"]
    assert fixed["status"] == "warn" and "--bn recompute" in fixed["advice"]
    assert recomputed["status"] == "pass"


def test_cli_check_a_user_model_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "mine.py").write_text(
        "from torch import nn\n\n"
        "def build(input_shape, output_shape):\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(64, 12), nn.Tanh(), nn.Linear(12, output_shape[0]))\n")
    spec = f"{tmp_path / 'mine.py'}:build"
    cfg = config_from_dict({"data": {"name": "digits", "max_train": 200, "max_test": 50}, "model": {"name": spec},
                            "train": {"epochs": 2}})
    train(cfg, tmp_path / "run")
    out = tmp_path / "check.json"
    assert main(["--quiet", "check", str(tmp_path / "run" / "checkpoints" / "epoch_002.pt"), "--x", "-1:1:9", "--y", "-1:1:9",
                 "--out", str(out)]) == 0
    saved = {c["name"]: c for c in json.loads(out.read_text())["checks"]}
    assert saved["origin"]["status"] == "pass" and saved["origin"]["value"] < 1e-5


def test_check_config_section_is_validated() -> None:
    assert Config().check.seeds == 3
    with pytest.raises(ConfigError, match="unknown key 'nope' in \\[check\\]"):
        load_config(None, ["check.nope=1"])


def test_hugging_face_gpt2_through_the_api() -> None:
    transformers = pytest.importorskip("transformers")
    cfg = transformers.GPT2Config(vocab_size=50, n_positions=16, n_embd=16, n_layer=1, n_head=2)
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    ids = torch.randint(0, 50, (24, 12), generator=torch.Generator().manual_seed(1))
    batches = [{"input_ids": ids[i : i + 8], "labels": ids[i : i + 8]} for i in range(0, 24, 8)]
    report = landscape.check(model, batches, loss=lambda m, b: m(**b).loss, x=(-1, 1, 5), y=(-1, 1, 5), seeds=1,
                             progress=False)
    assert report["origin"].status == "pass", report["origin"]
    assert report["seeds"].value is not None
    assert [c.name for c in report.checks] == list(chk.CHECK_NAMES)


def test_run_writes_check_json_the_index_section_and_one_line_per_warning(tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "tiny.toml").write_text(
        '[data]\nname = "digits"\nmax_train = 200\nmax_test = 100\n[model]\nname = "mlp"\noptions = { hidden = [16] }\n'
        '[train]\nepochs = 2\nbatch_size = 50\n[run]\nrandom_x = "-1:1:9"\nrandom_y = "-1:1:9"\nline_x = "-1:1:9"\n'
        'pca_grid = 9\n[plot]\nformats = ["png"]\nkinds = ["contour"]\n')
    out = tmp_path / "job"
    assert main(["--quiet", "run", str(tmp_path / "tiny.toml"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    saved = json.loads((out / "check.json").read_text())
    assert [c["name"] for c in saved["checks"]] == list(chk.CHECK_NAMES)
    not_passed = [c["name"] for c in saved["checks"] if c["status"] != "pass"]
    warning_lines = [ln for ln in printed.splitlines() if ln.strip().startswith(("warn: ", "fail: "))]
    assert [ln.split(":")[1].strip() for ln in warning_lines] == not_passed
    assert saved["checks"][0]["status"] == "pass"  # origin: the run's surfaces are the model's own evaluation
    # each check says which surfaces it looked at: origin the random plane, trajectory the PCA plane
    assert set(saved["checks"][0]["details"]["surfaces"]) == {"random_2d"}
    assert set(saved["checks"][5]["details"]["surfaces"]) == {"pca_2d"}
    assert (out / "figures" / "check_seeds.png").is_file()
    page = (out / "index.html").read_text()
    assert "Can I trust this?" in page and page.count("<td>origin</td>") == 1


@pytest.mark.slow
def test_the_quickstart_run_checks_as_the_readme_says(tmp_path: Path) -> None:
    """README "Can I trust this?" and docs/CHECKS.md: the quickstart passes every check, its basin inside
    its PCA plane (run.pca_margin = 0.5); trained faster (lr 0.1 for 12 epochs) its path leaves the
    plane and only the trajectory check warns, naming epochs 4 and 6."""
    from landscape.workflows.run import run_pipeline

    repo = Path(__file__).resolve().parents[1]
    quick = ['plot.formats=["png"]', 'plot.kinds=["contour"]']
    run_pipeline(load_config(repo / "configs" / "quickstart.toml", quick), tmp_path / "qs")
    saved = {c["name"]: c for c in json.loads((tmp_path / "qs" / "check.json").read_text())["checks"]}
    assert {n: c["status"] for n, c in saved.items() if c["status"] != "pass"} == {}
    assert saved["trajectory"]["value"] < 1.0 and saved["trajectory"]["details"]["explained_variance"] > 0.5
    assert saved["scale"]["details"]["surfaces"]["pca_2d"]["status"] == "pass"
    run_pipeline(load_config(repo / "configs" / "quickstart.toml", [*quick, "train.lr=0.1", "train.epochs=12"]),
                 tmp_path / "fast")
    fast = {c["name"]: c for c in json.loads((tmp_path / "fast" / "check.json").read_text())["checks"]}
    assert {n: c["status"] for n, c in fast.items() if c["status"] != "pass"} == {"trajectory": "warn"}
    assert fast["trajectory"]["details"]["flagged_labels"] == ["epoch 4", "epoch 6"]
    assert (tmp_path / "fast" / "figures" / "check_trajectory.png").is_file()


def test_the_run_hands_the_weights_its_trajectory_read_to_the_check(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``landscape run``'s check takes each checkpoint's weights from its trajectory stage instead of reading
    the file again; resumed (the trajectory is current, nothing handed over) it reads the files, and every
    verdict and number is the same."""
    from landscape.workflows import check_inputs
    from landscape.workflows.run import run_pipeline

    cfg = config_from_dict({"data": {"name": "digits", "max_train": 200, "max_test": 100},
                            "model": {"name": "mlp", "options": {"hidden": [16]}},
                            "train": {"epochs": 3, "batch_size": 50, "lr": 0.1},
                            "run": {"random_x": "-1:1:9", "random_y": "-1:1:9", "line_x": "-1:1:9", "pca_grid": 9},
                            "plot": {"formats": ["png"], "kinds": ["contour"]}})
    read: list[str] = []
    real = check_inputs.load_checkpoint

    def counted(path: str | Path, **kwargs: Any) -> Checkpoint:
        read.append(str(path))
        return real(path, **kwargs)

    monkeypatch.setattr(check_inputs, "load_checkpoint", counted)
    out = tmp_path / "job"
    stages = run_pipeline(cfg, out)
    assert [s.action for s in stages if s.name in ("trajectory", "check")] == ["done", "done"]
    assert read == []  # every checkpoint of the path came from the trajectory stage
    handed = json.loads((out / "check.json").read_text())
    stages = run_pipeline(cfg, out)  # resumed: the trajectory is current, so the check reads the 4 checkpoints
    assert [s.action for s in stages if s.name == "trajectory"] == ["skipped"]
    assert sorted(Path(p).name for p in read) == [f"epoch_00{i}.pt" for i in range(4)]
    from_files = json.loads((out / "check.json").read_text())
    trajectory = {c["name"]: c for c in handed["checks"]}["trajectory"]
    assert trajectory["value"] is not None and max(trajectory["details"]["off_plane"]) > 0  # the weights mattered
    assert handed["checks"] == from_files["checks"]


def test_the_run_keeps_checkpoint_weights_up_to_its_limit(run_dir: Path) -> None:
    """The run's reader keeps each checkpoint's weights while they fit its limit, returns every checkpoint
    whole either way, and keeps nothing read under a prefix (part of the weights)."""
    from landscape.io.checkpoint import load_checkpoint
    from landscape.workflows.run import KeptStates

    paths = sorted((run_dir / "checkpoints").glob("epoch_*.pt"))
    whole = [load_checkpoint(p).state_dict for p in paths]
    one = sum(t.numel() * t.element_size() for t in whole[0].values())
    kept = KeptStates(limit=2 * one)
    loaded = [kept(p) for p in paths]
    assert len(paths) == 4 and list(kept.states) == [str(p) for p in paths[:2]] and kept.size == 2 * one
    for state, ckpt in zip(whole, loaded, strict=True):
        assert state.keys() == ckpt.state_dict.keys() and all(torch.equal(state[k], ckpt.state_dict[k]) for k in state)
    for p, state in zip(paths[:2], whole, strict=False):
        assert all(torch.equal(kept.states[str(p)][k], v) for k, v in state.items())
    part = KeptStates()
    assert list(part(paths[0], prefix="fc1").state_dict) == ["weight", "bias"] and part.states == {}
