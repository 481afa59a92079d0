"""``landscape animate``: frame counts, one colour scale for every frame, the path ending at the
final checkpoint, the evolution's per-checkpoint surfaces (cached, resumed, along the same seeded
directions filter-normalized at each checkpoint), GIF and MP4 files, one-line errors.

The run folder is the session's tiny run (digits + MLP, 2 epochs: 3 checkpoints) copied, with its
trajectory and the surface of its PCA plane on a small grid.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch
from matplotlib.contour import ContourSet
from PIL import Image

from landscape.cli import main
from landscape.config import apply_overrides, config_from_dict, config_to_dict
from landscape.figures import animate as figures_animate
from landscape.figures.animate import CURSOR_GID, HEAD_GID, PATH_GID, Frame, along
from landscape.io.checkpoint import load_checkpoint
from landscape.io.surface_file import read_surface
from landscape.io.trajectory_file import save_trajectory
from landscape.workflows import animate as workflow
from landscape.workflows.animate import AnimateOptions, run_animation
from landscape.workflows.experiment import checkpoint_config
from landscape.workflows.surface import DirectionSource, run_surface
from landscape.workflows.train import RunResult
from landscape.workflows.trajectory import default_grid_overrides, trajectory_from_run


@pytest.fixture(scope="module")
def run_dir(tiny_run: RunResult, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run folder as ``landscape run`` leaves it: run.json, checkpoints, trajectory.h5, surfaces/pca_2d.h5."""
    run = tmp_path_factory.mktemp("anim") / "run"
    shutil.copytree(tiny_run.out_dir, run)
    save_trajectory(run / "trajectory.h5", trajectory_from_run(run))
    cfg = checkpoint_config(load_checkpoint(run / "checkpoints" / "epoch_002.pt"))
    assert cfg is not None
    overrides = [*default_grid_overrides(run / "trajectory.h5", num=9), "surface.max_samples=200"]
    cfg = config_from_dict(apply_overrides(config_to_dict(cfg), overrides))
    run_surface(run / "checkpoints" / "epoch_002.pt", run / "surfaces" / "pca_2d.h5", cfg,
                source=DirectionSource(file=run / "trajectory.h5"))
    return run


class Recorder:
    """Stands in the workflow's writer: walks the frames, keeps what each one draws, writes the real file."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.frames: list[dict[str, Any]] = []
        real = workflow.write_animation

        def write(frames: Iterable[Frame], out: Path, **kw: Any) -> int:
            return real(self._watch(frames), out, **kw)

        monkeypatch.setattr(workflow, "write_animation", write)

    def _watch(self, frames: Iterable[Frame]) -> Iterator[Frame]:
        for frame in frames:
            surface_fig, curves_fig = frame.panels
            ax = surface_fig.axes[0]
            lines = {line.get_gid(): line for line in ax.get_lines()}
            path = lines.get(PATH_GID)
            data = np.column_stack(path.get_data_3d() if hasattr(path, "get_data_3d") else path.get_data()) \
                if path is not None else None  # type: ignore[union-attr]
            contours = [c for c in ax.collections if isinstance(c, ContourSet)]
            cursor = next(line for line in curves_fig.axes[0].get_lines() if line.get_gid() == CURSOR_GID)
            self.frames.append({
                "path": data,
                "head": lines[HEAD_GID].get_data() if HEAD_GID in lines else None,
                "levels": [np.asarray(c.levels).copy() for c in contours],
                "norms": [(float(c.norm.vmin), float(c.norm.vmax), type(c.norm).__name__) for c in contours],  # type: ignore[arg-type]
                "cursor": float(np.asarray(cursor.get_xdata())[0]),
                "azim": getattr(ax, "azim", None),
            })
            yield frame


def stored_coords(run: Path) -> np.ndarray:
    with h5py.File(run / "trajectory.h5", "r") as f:
        return np.asarray(f["trajectory"]["coords"][()])


def gif_frames(path: Path) -> int:
    with Image.open(path) as im:
        return int(im.n_frames)


# --- path ------------------------------------------------------------------------------------------------


def test_along_a_polyline_by_hand() -> None:
    points = np.array([[0.0, 0.0], [2.0, 0.0], [2.0, 4.0]])
    np.testing.assert_array_equal(along(points, 0.0), [[0.0, 0.0]])
    np.testing.assert_array_equal(along(points, 0.5), [[0.0, 0.0], [1.0, 0.0]])
    np.testing.assert_array_equal(along(points, 1.25), [[0.0, 0.0], [2.0, 0.0], [2.0, 1.0]])
    np.testing.assert_array_equal(along(points, 2.0), points)


def test_path_animation_frames_and_its_last_frame_at_the_final_checkpoint(run_dir: Path, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder(monkeypatch)
    out = tmp_path / "path.gif"
    summary = run_animation(run_dir, out, AnimateOptions(kind="path", frames=9))
    assert summary["frames"] == 9 == len(rec.frames) == gif_frames(out)
    coords = stored_coords(run_dir)  # (3, 2): epochs 0, 1, 2; the last is the origin of the PCA plane
    last = rec.frames[-1]
    np.testing.assert_allclose(last["path"][-1], coords[-1], atol=1e-12)
    np.testing.assert_allclose(last["path"], coords, atol=1e-12)  # the whole path is drawn at the end
    np.testing.assert_allclose(np.ravel(last["head"][0]), coords[-1, :1], atol=1e-12)
    np.testing.assert_allclose(rec.frames[0]["path"], coords[:1], atol=1e-12)
    # frame 3 of 9: t = 2 · 3/8 = 0.75 along the first segment
    np.testing.assert_allclose(rec.frames[3]["path"][-1], coords[0] + 0.75 * (coords[1] - coords[0]), atol=1e-12)
    assert [f["cursor"] for f in rec.frames] == pytest.approx([2 * k / 8 for k in range(9)])
    # one contour set, the same levels and norm in every frame
    assert all(len(f["levels"]) == 1 for f in rec.frames)
    for frame in rec.frames[1:]:
        np.testing.assert_array_equal(frame["levels"][0], rec.frames[0]["levels"][0])
        assert frame["norms"] == rec.frames[0]["norms"]


def test_surface3d_animation_turns_the_camera_and_ends_at_the_final_checkpoint(
        run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder(monkeypatch)
    out = tmp_path / "s3d.gif"
    assert main(["animate", str(run_dir), "--out", str(out), "--kind", "surface3d", "--frames", "5", "--turn", "40",
                 "--dpi", "50"]) == 0
    assert gif_frames(out) == 5 == len(rec.frames)
    coords = stored_coords(run_dir)
    end = rec.frames[-1]["path"]
    np.testing.assert_allclose(end[-1, :2], coords[-1], atol=1e-12)
    assert np.isfinite(end[-1, 2])
    assert [f["azim"] for f in rec.frames] == pytest.approx([-60.0, -50.0, -40.0, -30.0, -20.0])


# --- evolution -----------------------------------------------------------------------------------------------


EVOLUTION = ["--kind", "evolution", "--x", "-1:1:5", "--y", "-1:1:5", "--max-samples", "100", "--dpi", "50"]


def test_evolution_one_frame_per_checkpoint_on_one_colour_scale(run_dir: Path, tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder(monkeypatch)
    out = tmp_path / "evolution.gif"
    assert main(["animate", str(run_dir), "--out", str(out), *EVOLUTION]) == 0
    cached = sorted((run_dir / "evolution").glob("*.h5"))
    assert [p.name for p in cached] == ["epoch_000.h5", "epoch_001.h5", "epoch_002.h5"]
    assert gif_frames(out) == 3 == len(rec.frames)
    assert [f["cursor"] for f in rec.frames] == [0.0, 1.0, 2.0]
    # the colour limits span every computed value of all three surfaces (read here with h5py)
    values = []
    for path in cached:
        with h5py.File(path, "r") as f:
            assert f["done"][()].all()
            values.append(np.asarray(f["train_loss"][()]))
    lo, hi = min(float(v.min()) for v in values), max(float(v.max()) for v in values)
    for frame in rec.frames:
        vmin, vmax, _ = frame["norms"][0]  # the filled contour's norm
        assert (vmin, vmax) == pytest.approx((lo, hi), rel=1e-12)
        np.testing.assert_array_equal(frame["levels"][0], rec.frames[0]["levels"][0])
    assert rec.frames[0]["norms"][0] == rec.frames[-1]["norms"][0]


def test_evolution_surfaces_are_cached_and_use_one_seeded_draw_normalized_per_checkpoint(
        run_dir: Path, tmp_path: Path) -> None:
    assert main(["animate", str(run_dir), "--out", str(tmp_path / "a.gif"), *EVOLUTION]) == 0
    cached = sorted((run_dir / "evolution").glob("*.h5"))
    stamps = [p.stat().st_mtime_ns for p in cached]
    assert main(["animate", str(run_dir), "--out", str(tmp_path / "b.gif"), *EVOLUTION]) == 0
    assert [p.stat().st_mtime_ns for p in cached] == stamps  # nothing recomputed, nothing rewritten
    directions = []
    for path in cached:
        with h5py.File(path, "r") as f:
            directions.append({k: np.asarray(v[()], dtype=np.float64) for k, v in f["directions/x"].items()})
    for path, d in zip(cached, directions, strict=True):
        state = torch.load(run_dir / "checkpoints" / path.name.replace(".h5", ".pt"), weights_only=True)["state_dict"]
        for name, tensor in d.items():
            if tensor.ndim < 2:
                assert not tensor.any()  # biases stay out (ignore = biasbn)
                continue
            theta = state[name].double().numpy()
            # filter-normalized at this checkpoint: each row's norm is that of the weights' row
            np.testing.assert_allclose(np.linalg.norm(tensor, axis=1), np.linalg.norm(theta, axis=1), rtol=1e-5)
            # the same Gaussian draw: the unit rows agree across checkpoints
            first = directions[0][name]
            np.testing.assert_allclose(tensor / np.linalg.norm(tensor, axis=1, keepdims=True),
                                       first / np.linalg.norm(first, axis=1, keepdims=True), atol=1e-5)


def test_evolution_frames_pick_checkpoints_evenly(run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rec = Recorder(monkeypatch)
    assert main(["animate", str(run_dir), "--out", str(tmp_path / "e.gif"), *EVOLUTION, "--frames", "2"]) == 0
    assert [f["cursor"] for f in rec.frames] == [0.0, 2.0]


# --- files and errors ------------------------------------------------------------------------------------------


def test_mp4_through_ffmpeg(run_dir: Path, tmp_path: Path) -> None:
    if shutil.which("ffmpeg") is None:  # skipped locally without ffmpeg; CI installs it, so there it fails
        if os.environ.get("CI"):
            pytest.fail("ffmpeg is missing: .ci/run installs Debian's ffmpeg for this test")
        pytest.skip("ffmpeg is not installed")
    out = tmp_path / "path.mp4"
    assert main(["animate", str(run_dir), "--out", str(out), "--frames", "6", "--dpi", "50"]) == 0
    head = out.read_bytes()[:12]
    assert head[4:8] == b"ftyp"  # an MP4 container


def one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("landscape animate: error:")
    return err


def test_the_evaluation_flags_change_the_evolution_surfaces(run_dir: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("evolution"))  # its own cache
    (tmp_path / "c.toml").write_text("[directions]\nseed = 7\n")
    assert main(["animate", str(run), "--out", str(tmp_path / "a.gif"), *EVOLUTION, "--frames", "2",
                 "--config", str(tmp_path / "c.toml"), "--loss", "mse", "--device", "cpu"]) == 0
    cached = sorted((run / "evolution").glob("*.h5"))
    assert [p.name for p in cached] == ["epoch_000.h5", "epoch_002.h5"]
    for path in cached:
        settings = read_surface(path).attrs["settings"]
        assert settings["directions"]["seed"] == 7 and settings["losses"] == ["mse"]
    err = one_line_error(capsys, ["animate", str(run), "--out", str(tmp_path / "b.gif"), "--set", "directions.seed=7"])
    assert "only the surfaces of --kind evolution" in err


def test_metric_is_read_as_column(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["animate", str(run_dir), "--out", str(tmp_path / "a.gif"), "--frames", "3", "--dpi", "30",
                 "--metric", "train_loss"]) == 0
    notices = [line for line in capsys.readouterr().err.splitlines() if "deprecated" in line]
    assert notices == ["landscape: animate --metric is deprecated; use --column"]
    assert gif_frames(tmp_path / "a.gif") == 3


def test_mp4_without_ffmpeg_names_the_packages(run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(figures_animate.shutil, "which", lambda name: None)
    err = one_line_error(capsys, ["animate", str(run_dir), "--out", str(tmp_path / "a.mp4")])
    assert "apt install ffmpeg" in err and "conda install -c conda-forge ffmpeg" in err
    assert not (tmp_path / "a.mp4").exists()


@pytest.mark.parametrize(("extra", "message"), [
    (["--fps", "0"], "--fps must be a number > 0"),
    (["--frames", "1"], "--frames must be at least 2"),
    (["--dpi", "5"], "--dpi must be at least 10"),
    (["--kind", "evolution", "--frames", "9"], "one frame per checkpoint, and the run has 3"),
    (["--kind", "evolution", "--x", "1:-1:5"], "MIN must be smaller than MAX"),
    (["--column", "val_loss"], "no metric 'val_loss'"),
])
def test_bad_options_are_one_line_errors(extra: list[str], message: str, run_dir: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert message in one_line_error(capsys, ["animate", str(run_dir), "--out", str(tmp_path / "a.gif"), *extra])


def test_a_run_without_trajectory_or_a_bad_suffix(run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bare = tmp_path / "bare"
    bare.mkdir()
    shutil.copy(run_dir / "run.json", bare / "run.json")
    assert "has no trajectory.h5" in one_line_error(capsys, ["animate", str(bare), "--out", str(tmp_path / "a.gif")])
    assert "not a run folder" in one_line_error(capsys, ["animate", str(tmp_path), "--out", str(tmp_path / "a.gif")])
    assert "as .gif or .mp4" in one_line_error(capsys, ["animate", str(run_dir), "--out", str(tmp_path / "a.avi")])
    manifest = json.loads((run_dir / "run.json").read_text())
    assert manifest["status"] == "finished"  # the run folder was only read


def _frames(n: int, fail_after: int | None = None) -> Iterator[Frame]:
    """``n`` one-panel frames of a moving dot; raises after ``fail_after`` frames (an interrupted animation)."""
    from matplotlib.figure import Figure

    for k in range(n):
        if fail_after is not None and k == fail_after:
            raise KeyboardInterrupt
        fig = Figure(figsize=(1, 1))
        fig.add_subplot().plot([k], [k], "o")
        yield Frame((fig,))


@pytest.mark.parametrize("suffix", [".gif", ".mp4"])
def test_an_interrupted_animation_keeps_the_old_file_and_leaves_no_temporary_one(suffix: str, tmp_path: Path) -> None:
    if suffix == ".mp4" and shutil.which("ffmpeg") is None:
        if os.environ.get("CI"):
            pytest.fail("ffmpeg is missing: CI must run the MP4 tests (.ci/run installs it)")
        pytest.skip("ffmpeg is not installed")
    out = tmp_path / f"a{suffix}"
    assert figures_animate.write_animation(_frames(3), out, fps=4, dpi=20, total=3) == 3
    before = out.read_bytes()
    with pytest.raises(KeyboardInterrupt):
        figures_animate.write_animation(_frames(5, fail_after=2), out, fps=4, dpi=20, total=5)
    assert out.read_bytes() == before  # the old animation, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # and nothing beside it
