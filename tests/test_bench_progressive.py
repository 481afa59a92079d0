"""scripts/bench_progressive.py: the contour-line Hausdorff distance against closed forms, and the table's
numbers on hand-made exact and progressive surface files against values worked out by hand here.
Also the benchmark's dataset, ``digits_augmented``: its size, its originals, its determinism."""

from __future__ import annotations

import importlib
import json
import math
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from landscape.engine.directions import Directions
from landscape.engine.grid import Grid
from landscape.io.surface_file import make_progressive, open_surface
from landscape.zoo.data import digits, digits_augmented

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.fixture()
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(SCRIPTS))
    return importlib.import_module("bench_progressive")


@pytest.fixture()
def contours(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(SCRIPTS))
    return importlib.import_module("_contours")


def index_grid(n: int, m: int) -> tuple[np.ndarray, np.ndarray]:
    return np.meshgrid(np.arange(float(n)), np.arange(float(m)), indexing="ij")


# --- the Hausdorff distance between contour lines ------------------------------------------------


def test_concentric_circles_are_their_radius_difference_apart(contours: ModuleType) -> None:
    i, j = index_grid(61, 61)
    cone = np.hypot(i - 30.0, j - 30.0)  # the contour at level r is the circle of radius r
    d = 2.5
    # cone - d crosses level r on the circle of radius r + d: the circles are d apart (up to the
    # polylines' chords and the linear interpolation along edges, ~1/(8r) of a cell at radius r ≥ 10)
    assert contours.hausdorff(cone, cone - d, [10.0, 15.0, 20.0]) == pytest.approx(d, abs=0.03)
    assert contours.hausdorff(cone, cone - d, [12.0]) == pytest.approx(d, abs=0.03)


def test_a_plane_shifted_along_an_axis_is_the_shift_apart(contours: ModuleType) -> None:
    i, j = index_grid(21, 15)
    s = 0.7
    vertical = 2.0 * i  # lines i = level / 2 across the whole j range
    assert contours.hausdorff(vertical, 2.0 * (i - s), [10.0, 20.0]) == pytest.approx(s, abs=1e-9)
    # an oblique plane: the lines i + j/2 = c and i + j/2 = c + s both run from the edge j = 0 to the edge
    # j = 14; their ends on each edge are s apart and nothing of one line is further from the other
    oblique = i + 0.5 * j
    assert contours.hausdorff(oblique, oblique - s, [9.0, 12.0]) == pytest.approx(s, abs=1e-9)


def test_identical_surfaces_are_zero_apart_and_a_vanished_level_is_infinitely_far(contours: ModuleType) -> None:
    i, j = index_grid(25, 25)
    bowl = (i - 12.0) ** 2 + 0.5 * (j - 12.0) ** 2
    assert contours.hausdorff(bowl, bowl.copy(), [5.0, 20.0, 60.0]) == pytest.approx(0.0, abs=1e-9)
    holed = bowl.copy()
    holed[:3, :3] = np.nan  # masked cells draw no line, in both surfaces alike
    assert contours.hausdorff(holed, holed.copy(), [150.0]) == pytest.approx(0.0, abs=1e-9)
    assert contours.hausdorff(bowl, bowl + 10.0, [5.0]) == math.inf  # the level-5 ellipse is gone
    by_level = contours.hausdorff_by_level(bowl, bowl + 10.0, [5.0, 60.0])
    assert by_level[0] == math.inf and 0.0 < by_level[1] < math.inf
    assert contours.hausdorff(bowl, bowl, [-1.0]) == 0.0  # a level neither surface reaches


# --- the table's numbers on hand-made files ---------------------------------------------------


N, T, SHAPE = 1000, 0.1, (5, 6)
X, Y = np.linspace(-0.25, 0.25, SHAPE[0]), np.linspace(-0.3, 0.3, SHAPE[1])
# the exact surface depends on i only: its contour lines are vertical, from edge j = 0 to edge j = 5
EXACT = 0.93 + 0.5 * np.arange(SHAPE[0], dtype=np.float64)[:, None] + np.zeros(SHAPE)


def write(path: Path, values: np.ndarray, extra: dict[str, np.ndarray] | None = None,
          refine: bool = False, done: np.ndarray | None = None) -> Path:
    w = torch.arange(4.0).reshape(2, 2)
    dirs = Directions({"w": w}, {"w": w.T.contiguous()}, {"kind": "random", "dir_type": "weights", "norm": "filter",
                                                          "ignore": "biasbn", "seed": 0})
    sf = open_surface(path, Grid(X, Y), ["train_loss", "train_acc"], {"model": {"name": "cnn"}}, {}, dirs, {"w": [2, 2]},
                      overwrite=True)
    sf.values["train_loss"][...] = values
    sf.values["train_acc"][...] = 0.5
    sf.done[...] = True if done is None else done
    if extra is not None:
        make_progressive(sf, {"train": N}, refine)
        sf.attrs.update(tolerance={"train_loss": T}, tolerance_spec=str(T), top={"train_loss": 10.0}, sample_seed=0)
        for name, array in extra.items():
            sf.extra[name][...] = array
    sf.flush()
    return path


def hand_made(folder: Path) -> None:
    """exact; tolerance: a few points off by hand-chosen amounts, one stopped above the range; refine: every
    point +0.05, 9 of 30 computed (samples 400, stderr 0.03), the others interpolated (stderr 0.02)."""
    write(folder / "small_exact.h5", EXACT)
    delta, se, samples = np.zeros(SHAPE), np.full(SHAPE, 0.05), np.full(SHAPE, 200)
    delta[0, 0], se[0, 0] = 0.25, 0.1  # 2.5 T off, outside 2 SE
    delta[1, 1], se[1, 1] = -0.15, 0.1  # 1.5 T off, inside 2 SE
    delta[4, 5], se[4, 5] = 3.0, 0.5  # stopped above the range: outside 2 SE, left out of the largest error
    se[2, 3], samples[2, 3] = 0.0, N  # read to the end: exact, inside
    above = np.zeros(SHAPE, dtype=bool)
    above[4, 5] = True
    write(folder / "small_tolerance.h5", EXACT + delta,
          {"train_loss_stderr": se, "train_samples": samples, "above": above})
    computed = np.zeros(SHAPE, dtype=bool)
    computed[::2, ::2] = True
    write(folder / "small_refine.h5", EXACT + 0.05,
          {"train_loss_stderr": np.where(computed, 0.03, 0.02), "train_samples": np.where(computed, 400, 0),
           "computed": computed}, refine=True)
    (folder / "timings.json").write_text(json.dumps({"small/exact": 100.0, "small/tolerance": 20.0,
                                                     "small/refine": 8.0}))


def test_the_table_holds_the_numbers_worked_out_by_hand(bench: ModuleType, tmp_path: Path) -> None:
    hand_made(tmp_path)
    assert bench.main(["--out-dir", str(tmp_path), "--analyze-only"]) == 0
    table = (tmp_path / "progressive_table.md").read_text()
    rows = {cells[1]: cells for line in table.splitlines() if line.startswith("| small")
            for cells in [[c.strip() for c in line.strip("|").split("|")]]}
    # plane, run, wall, speed-up, sample-forwards, data read, max err / T, within 2 SE, computed, above, Hausdorff
    assert rows["exact"][2:] == ["100.0", "1.00×", f"{30 * N:,}", "100.0 %", "0.00", "100.0 %", "100.0 %", "0", "0.00"]
    forwards = 29 * 200 + N
    assert rows["tolerance"][2:10] == ["20.0", "5.00×", f"{forwards:,}", f"{100 * forwards / (30 * N):.1f} %",
                                       "2.50", f"{100 * 28 / 30:.1f} %", "100.0 %", "1"]
    # refine: +0.05 on a plane rising 0.5 per cell along i moves every line 0.1 cell along i
    assert rows["refine"][2:] == ["8.0", "12.50×", f"{9 * 400:,}", "12.0 %", "0.50", f"{100 * 9 / 30:.1f} %",
                                  "30.0 %", "0", "0.10"]
    assert (tmp_path / "speed_progressive.png").stat().st_size > 10_000


def test_a_run_not_finished_is_named_so(bench: ModuleType, tmp_path: Path) -> None:
    hand_made(tmp_path)
    done = np.ones(SHAPE, dtype=bool)
    done[2, :] = False
    write(tmp_path / "small_tolerance.h5", EXACT, {"train_samples": np.where(done, 100, 0)}, done=done)
    assert bench.main(["--out-dir", str(tmp_path), "--analyze-only"]) == 0
    table = (tmp_path / "progressive_table.md").read_text()
    assert "| small | tolerance (24/30 points done) | 20.0 | 5.00× | 2,400 |" in table


def test_a_level_drawn_in_one_surface_only_is_counted_beside_the_distance(bench: ModuleType, tmp_path: Path) -> None:
    hand_made(tmp_path)
    computed = np.ones(SHAPE, dtype=bool)
    # +0.1 moves every line 0.2 cell along i, and the level 1.0 (at i = 0.14 in the exact surface) off the grid
    write(tmp_path / "small_refine.h5", EXACT + 0.1, {"train_loss_stderr": np.full(SHAPE, 0.05),
                                                      "train_samples": np.full(SHAPE, 10), "computed": computed},
          refine=True)
    assert bench.main(["--out-dir", str(tmp_path), "--analyze-only"]) == 0
    row = next(line for line in (tmp_path / "progressive_table.md").read_text().splitlines()
               if line.startswith("| small | refine"))
    assert row.endswith("| 0.20 (+1 level in one surface only) |"), row


def test_files_of_another_plane_are_refused(bench: ModuleType, tmp_path: Path) -> None:
    hand_made(tmp_path)
    w = torch.ones(2, 2)
    other = Directions({"w": w}, {"w": -w}, {"kind": "random", "dir_type": "weights", "norm": "filter",
                                            "ignore": "biasbn", "seed": 1})
    sf = open_surface(tmp_path / "small_refine.h5", Grid(X, Y), ["train_loss"], {"model": {"name": "cnn"}}, {}, other,
                      {"w": [2, 2]}, overwrite=True)
    sf.done[...] = True
    sf.flush()
    with pytest.raises(SystemExit, match=r"small_refine\.h5 was computed along other directions"):
        bench.main(["--out-dir", str(tmp_path), "--analyze-only"])
    hand_made(tmp_path)
    with pytest.raises(SystemExit, match="no tolerance for --metric 'train_acc'"):
        bench.main(["--out-dir", str(tmp_path), "--analyze-only", "--metric", "train_acc"])


def test_the_levels_are_the_contour_figures(bench: ModuleType) -> None:
    levels, log, vmax = bench.figure_levels(EXACT, 10.0)
    assert not log and vmax is None  # 0.93 .. 2.93: less than a decade, below the top
    assert np.allclose(levels, np.arange(1.0, 2.81, 0.2))  # round steps of 0.2 inside the range
    exploded = np.geomspace(0.05, 80.0, 30).reshape(5, 6)
    levels, log, vmax = bench.figure_levels(exploded, 5.0)
    assert log and vmax == 5.0 and levels.max() <= 5.0 and levels.min() >= 0.05


# --- the benchmark's dataset -----------------------------------------------------------------


def test_digits_augmented_is_the_digits_grown_deterministically() -> None:
    (x, y), (xt, yt) = digits_augmented(n_train=5000, seed=0)
    (x0, y0), (xt0, yt0) = digits(seed=0)
    assert x.shape == (5000, 1, 8, 8) and y.shape == (5000,)
    assert torch.equal(x[: len(y0)], x0) and torch.equal(xt, xt0) and torch.equal(yt, yt0)  # originals first; test as is
    assert torch.equal(y, y0[torch.arange(5000) % len(y0)])
    moved = x[len(y0): 2 * len(y0)]
    assert float(moved.min()) >= 0.0 and float(moved.max()) <= 1.0 and not torch.equal(moved, x0)
    assert torch.equal(digits_augmented(n_train=5000, seed=0)[0][0], x)  # the same tensors every time
    with pytest.raises(Exception, match="n_train = 100"):
        digits_augmented(n_train=100)


# --- the whole benchmark, once the engine has its flags ------------------------------------------


def engine_has_the_flags() -> bool:
    from landscape.flags import FLAGS

    return "--tolerance" in FLAGS and "--refine" in FLAGS


@pytest.mark.skipif(not engine_has_the_flags(), reason="landscape surface has no --tolerance/--refine yet")
def test_the_quick_benchmark_runs_end_to_end(bench: ModuleType, tmp_path: Path) -> None:
    assert bench.main(["--out-dir", str(tmp_path), "--quick", "--threads", "1"]) == 0
    table = (tmp_path / "progressive_table.md").read_text()
    rows = {cells[1]: cells for line in table.splitlines() if line.startswith("| small")
            for cells in [[c.strip() for c in line.strip("|").split("|")]]}
    assert set(rows) == {"exact", "tolerance", "refine"}
    assert rows["exact"][4] == f"{81 * 2000:,}"  # 9×9 points, 2,000 samples each
    for run in ("tolerance", "refine"):
        forwards = int(rows[run][4].replace(",", ""))
        assert 0 < forwards <= 81 * 2000
    assert 0.0 < float(rows["refine"][8].rstrip(" %")) <= 100.0
    assert (tmp_path / "speed_progressive.png").is_file()
