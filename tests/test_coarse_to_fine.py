"""Coarse-to-fine surfaces: the order (a pure function of the grid shape), an interrupted 41×41
run that holds complete coarse levels, its resumed file equal to an uninterrupted one bit for
bit, and the "partial" figures of a file still being computed.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from landscape.cli import main
from landscape.config import load_config
from landscape.engine.grid import axis_depth, coarse_to_fine, finest_complete_level, level_strides
from landscape.engine.surface import SurfaceEngine
from landscape.figures.files import PARTIAL_GID
from landscape.figures.views import coarse_view
from landscape.io.surface_file import SurfaceFile, read_surface
from landscape.workflows import surface as surface_workflow
from landscape.workflows._distributed import WorkQueue
from landscape.workflows.surface import run_surface
from landscape.workflows.train import train

SMALL = ["train.epochs=1", "data.max_train=300", "data.max_test=100", "model.options={hidden=[16]}"]


# --- the order ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("n", "strides"), [
    (2, [1]),
    (3, [2, 1]),
    (5, [4, 2, 1]),
    (21, [4, 2, 1]),  # 20 = 4 · 5
    (41, [8, 4, 2, 1]),  # 40 = 8 · 5: levels of 6, 11, 21, 41 points, each with both ends
    (51, [2, 1]),  # 50 = 2 · 25
    (65, [64, 32, 16, 8, 4, 2, 1]),  # 64: the coarsest level is the two ends
    (50, [32, 16, 8, 4, 2, 1]),  # 49 is odd: no coarse level holds both ends; ≥ 2 points each
])
def test_axis_strides_by_hand(n: int, strides: list[int]) -> None:
    assert axis_depth(n) == len(strides) - 1
    assert [s[0] for s in level_strides((n,))] == strides


def test_axes_halve_together_from_their_own_coarsest_level() -> None:
    assert level_strides((81, 41)) == [(16, 8), (8, 4), (4, 2), (2, 1), (1, 1)]
    assert level_strides((5, 2)) == [(4, 1), (2, 1), (1, 1)]


def _is_uniform_subgrid(points: set[tuple[int, ...]], shape: tuple[int, ...]) -> tuple[int, ...] | None:
    """The per-axis strides when ``points`` is a full product of ``{0, s, 2s, ...}`` sets, else None."""
    strides = []
    for axis, n in enumerate(shape):
        values = sorted({p[axis] for p in points})
        steps = set(np.diff(values).tolist()) if len(values) > 1 else {n}
        if values[0] != 0 or len(steps) != 1:
            return None
        stride = steps.pop()
        if values[-1] + stride < n:  # a full progression reaches the end of the axis
            return None
        strides.append(stride)
    product = set(itertools.product(*[range(0, n, s) for n, s in zip(shape, strides, strict=True)]))
    return tuple(strides) if product == points else None


@pytest.mark.parametrize("shape", [(41, 41), (21, 13), (50, 7), (9,), (2, 2), (6, 65), (51, 51)])
def test_order_is_a_permutation_whose_level_prefixes_are_uniform_subgrids(shape: tuple[int, ...]) -> None:
    order, ends = coarse_to_fine(shape)
    size = int(np.prod(shape))
    assert sorted(order.tolist()) == list(range(size))
    assert ends[-1] == size and np.all(np.diff(ends) > 0)
    previous: tuple[int, ...] | None = None
    for end in ends:
        points = {tuple(int(v) for v in np.unravel_index(i, shape)) for i in order[:end]}
        strides = _is_uniform_subgrid(points, shape)
        assert strides is not None, f"prefix of {end} points is not a uniform sub-grid"
        assert all(len(range(0, n, s)) >= 2 for n, s in zip(shape, strides, strict=True))
        if previous is not None:
            assert all(p % s == 0 for p, s in zip(previous, strides, strict=True))  # nested: finer each time
        previous = strides
    assert previous == (1,) * len(shape)


def test_41_by_41_levels_by_hand() -> None:
    order, ends = coarse_to_fine((41, 41))
    assert ends.tolist() == [36, 121, 441, 1681]
    first = {tuple(int(v) for v in np.unravel_index(i, (41, 41))) for i in order[:36]}
    assert first == {(i, j) for i in (0, 8, 16, 24, 32, 40) for j in (0, 8, 16, 24, 32, 40)}
    assert order[:6].tolist() == [0, 8, 16, 24, 32, 40]  # C order inside a level


def test_finest_complete_level() -> None:
    done = np.zeros((41, 41), dtype=bool)
    assert finest_complete_level(done) is None
    done[::4, ::4] = True
    done[2, 2] = True  # one point of the next level
    idx = finest_complete_level(done)
    assert idx is not None and [i.tolist() for i in idx] == [list(range(0, 41, 4))] * 2
    done[...] = True
    idx = finest_complete_level(done)
    assert idx is not None and [len(i) for i in idx] == [41, 41]


# --- a real interrupted run ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return train(load_config(None, SMALL), tmp_path_factory.mktemp("run")).final


CFG_41 = [*SMALL, 'surface.x="-1:1:41"', 'surface.y="-1:1:41"', "surface.max_samples=100"]


def _interrupt_after(monkeypatch: pytest.MonkeyPatch, limit: int) -> None:
    """Make the engine raise KeyboardInterrupt (as Ctrl-C would) once ``limit`` points are evaluated.

    Claims are capped at 50 points, so the interruption lands within 50 points of ``limit``.
    """
    original = SurfaceEngine.evaluate
    original_claim = WorkQueue.claim
    monkeypatch.setattr(WorkQueue, "claim", lambda self, n: original_claim(self, min(n, 50)))
    seen = {"n": 0}

    def evaluate(self: SurfaceEngine, coords: np.ndarray) -> np.ndarray:
        if seen["n"] >= limit:
            raise KeyboardInterrupt
        seen["n"] += len(coords)
        return original(self, coords)

    monkeypatch.setattr(SurfaceEngine, "evaluate", evaluate)


@pytest.fixture(scope="module")
def full_41(ckpt: Path, tmp_path_factory: pytest.TempPathFactory) -> SurfaceFile:
    out = tmp_path_factory.mktemp("full") / "full.h5"
    run_surface(ckpt, out, load_config(None, CFG_41))
    return read_surface(out)


def test_interrupted_41_by_41_holds_complete_levels_and_resumes_bit_for_bit(
        ckpt: Path, full_41: SurfaceFile, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = load_config(None, CFG_41)
    part = tmp_path / "part.h5"
    _interrupt_after(monkeypatch, 300)
    with pytest.raises(KeyboardInterrupt):
        run_surface(ckpt, part, cfg)
    partial = read_surface(part)
    n_done = int(partial.done.sum())
    assert 300 <= n_done < 350
    # the 6×6 and 11×11 levels are complete; nothing off the 21×21 level is computed yet
    assert partial.done[::8, ::8].all() and partial.done[::4, ::4].all()
    off_level = np.ones((41, 41), dtype=bool)
    off_level[::2, ::2] = False
    assert not partial.done[off_level].any()
    for name in full_41.columns:  # the finished points already hold their final values
        np.testing.assert_array_equal(partial.values[name][partial.done], full_41.values[name][partial.done])

    # the partial file plots at its 11×11 level, marked
    view, mark = coarse_view(partial)
    assert view.grid.shape == (11, 11) and view.done.all()
    assert mark == f"partial: {n_done} of 1681 points\n11×11 level shown"
    figs = tmp_path / "figs"
    assert main(["plot", str(part), "--out", str(figs), "--kind", "contour,surface3d", "--format", "svg"]) == 0
    for kind in ("contour", "surface3d"):
        assert f'id="{PARTIAL_GID}"' in (figs / f"part_{kind}.svg").read_text()

    monkeypatch.undo()
    resumed = run_surface(ckpt, part, cfg)
    assert resumed.computed == 1681 - n_done
    final = read_surface(part)
    assert final.done.all()
    for name in full_41.columns:
        np.testing.assert_array_equal(final.values[name], full_41.values[name])


def test_the_order_does_not_change_the_values(ckpt: Path, full_41: SurfaceFile, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The previous row-major order gives the same file, value for value."""
    monkeypatch.setattr(surface_workflow, "pending_coarse_to_fine", lambda done: np.flatnonzero(~done.reshape(-1)))
    out = tmp_path / "row_major.h5"
    run_surface(ckpt, out, load_config(None, CFG_41))
    rows = read_surface(out)
    for name in full_41.columns:
        np.testing.assert_array_equal(rows.values[name], full_41.values[name])


def test_a_complete_file_is_drawn_whole_and_unmarked(full_41: SurfaceFile, tmp_path: Path) -> None:
    view, mark = coarse_view(full_41)
    assert view is full_41 and mark is None
    assert main(["plot", str(full_41.path), "--out", str(tmp_path), "--kind", "contour", "--format", "svg"]) == 0
    assert PARTIAL_GID not in (tmp_path / "full_contour.svg").read_text()


def test_a_row_major_partial_file_is_drawn_whole_with_its_gaps_masked(full_41: SurfaceFile) -> None:
    done = np.zeros((41, 41), dtype=bool)
    done[:10] = True  # rows, as older versions computed them: no complete coarse level
    sf = SurfaceFile(full_41.path, full_41.grid, full_41.columns, full_41.values, done, full_41.attrs)
    view, mark = coarse_view(sf)
    assert view is sf and mark == "partial: 410 of 1681 points"


def test_preview_redraws_at_every_flush(ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        flush_every_call: None) -> None:  # flush after every evaluation call
    flushes = {"n": 0}
    drawn: list[int] = []
    original_flush = SurfaceFile.flush

    def counting_flush(self: SurfaceFile) -> None:
        flushes["n"] += 1
        original_flush(self)

    def spy(sf: SurfaceFile, folder: Path) -> None:
        drawn.append(int(read_surface(sf.path).done.sum()))  # what is on disk when it is drawn
        original_preview(sf, folder)

    original_preview = surface_workflow.draw_preview
    monkeypatch.setattr(SurfaceFile, "flush", counting_flush)
    monkeypatch.setattr(surface_workflow, "draw_preview", spy)
    cfg = load_config(None, [*SMALL, 'surface.x="-1:1:9"', 'surface.y="-1:1:5"', "surface.max_samples=50"])
    run_surface(ckpt, tmp_path / "s.h5", cfg, preview=tmp_path / "preview")
    assert len(drawn) == flushes["n"] >= 2
    assert drawn[-1] == 45 and drawn == sorted(drawn)
    assert (tmp_path / "preview" / "s_contour.png").is_file()


def test_cli_surface_preview(ckpt: Path, tmp_path: Path) -> None:
    args = ["surface", str(ckpt), "--out", str(tmp_path / "s.h5"), "--x", "-1:1:5", "--max-samples", "50",
            "--preview", str(tmp_path / "p")]
    assert main(args) == 0
    assert [p.name for p in (tmp_path / "p").iterdir()] == ["s_line.png"]
