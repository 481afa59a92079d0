"""Reliability: crashes, full disks, a second writer, and hostile or malformed input.

Crash tests run the real command line in a subprocess (``python -m landscape``) and SIGKILL it:
some at seeded random moments of the computation, some inside a write. A kill inside a write is
no matter of timing: the test hook of :mod:`landscape.atomic` (``LANDSCAPE_TEST_PAUSE_IN_WRITE``)
stops the process in its K-th atomic write, after the temporary file is complete and before it
replaces the target, and says so; only then does the test kill it. The tests assert outcomes,
never where a kill fell: after every kill the files open and hold exactly what an uninterrupted
run gives, and running the same command again finishes the job without redoing finished work.

Bad-input tests call :func:`landscape.cli.main` in-process: each must end with exit code 1 and
one line on stderr starting with ``landscape`` (an error the library anticipated, not the
catch-all for surprises). Property-based tests drive argument and config parsing with random
input.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import errno
import io
import json
import math
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
import tracemalloc
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from landscape import testhooks
from landscape.cli import build_parser, main
from landscape.config import Config, config_from_dict, config_to_dict, dumps_toml, load_config, parse_override
from landscape.engine.grid import Grid
from landscape.errors import CheckpointError, ConfigError, GridError, LandscapeError, SurfaceFileError
from landscape.io.checkpoint import load_checkpoint
from landscape.io.surface_file import SurfaceFile, read_surface
from landscape.testhooks import FLUSH_ENV, PAUSE_ENV
from landscape.workflows.train import train

ENV = {**os.environ, "LANDSCAPE_QUIET": "1", "OMP_NUM_THREADS": "1", "LANDSCAPE_FLUSH_SECONDS": "0"}
ENV.pop(PAUSE_ENV, None)
SMALL = ["data.max_train=300", "data.max_test=100", "model.options={hidden=[16]}"]
SURFACE_GRID = ["--x=-1:1:21", "--y=-1:1:21", "--points-per-call", "1"]  # 441 points: a creation and ≥ 2 flushes
TRAIN_ARGS = ["--epochs", "8", "--batch-size", "32", "--set", "data.max_train=200", "--set", "data.max_test=100",
              "--set", "model.options={hidden=[16]}", "--set", "train.save_every_steps=3"]
WORKERS = 2  # trials run two at a time: each subprocess is single-threaded


def landscape_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "landscape", *args]


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(landscape_cmd(*args), env=ENV, cwd=cwd, capture_output=True, text=True, timeout=300)


def fails_cleanly(argv: Sequence[str], capsys: pytest.CaptureFixture[str], match: str = "") -> str:
    """Run ``main(argv)``: exit code 1 and one anticipated error line on stderr; returns the line."""
    code = main(list(argv))
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 1, f"exit code {code}, stderr: {err}"
    assert len(lines) == 1 and lines[0].startswith("landscape"), f"not one 'landscape ...' line: {err!r}"
    assert "Traceback" not in err and "run with --debug" not in lines[0], f"unanticipated error: {lines[0]}"
    assert re.search(match, lines[0]), f"{match!r} not in {lines[0]!r}"
    return lines[0]


def wait_until(condition: Callable[[], bool], proc: subprocess.Popen[bytes], timeout: float = 120.0, poll: float = 0.0005) -> bool:
    """Spin until ``condition()`` holds or ``proc`` exits; True when the condition was met."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if proc.poll() is not None:
            return condition()
        time.sleep(poll)
    raise AssertionError("timed out waiting for the subprocess")


def sigkill(proc: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=60)


def start(args: Sequence[str], cwd: Path, pause_at: int = 0, flag: Path | None = None) -> subprocess.Popen[bytes]:
    """``landscape ARGS`` in a subprocess; with ``pause_at`` = K it stops inside its K-th atomic write."""
    env = {**ENV, PAUSE_ENV: f"{pause_at}:{flag}"} if pause_at else ENV
    return subprocess.Popen(landscape_cmd(*args), env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def kill_in_write(proc: subprocess.Popen[bytes], flag: Path) -> Path | None:
    """SIGKILL ``proc`` once the hook says it is inside its write; the write's temporary file, or
    None when the process ended before reaching that write."""
    try:
        wait_until(flag.exists, proc, poll=0.005)
        tmp = Path(flag.read_text()) if flag.exists() else None
        if tmp is not None:
            assert tmp.is_file(), tmp  # the hook stops after the temporary file is written, before the rename
    finally:
        sigkill(proc)
    flag.unlink(missing_ok=True)
    return tmp


def leftovers(path: Path) -> list[Path]:
    """Temporary files of ``path`` (``.<name>.<pid>.<random>.tmp``)."""
    return sorted(path.parent.glob(f".{path.name}.*.tmp"))


def parallel(trials: Sequence[Callable[[], str]]) -> list[str]:
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = [pool.submit(t) for t in trials]
        return [f.result() for f in futures]


# --- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("reliability")


@pytest.fixture(scope="module")
def ckpt(work: Path) -> Path:
    """digits + MLP(16) after one epoch: the model every surface test evaluates."""
    return train(load_config(None, ["train.epochs=1", *SMALL]), work / "run").final


@pytest.fixture(scope="module")
def surface_reference(ckpt: Path, work: Path) -> tuple[Path, float]:
    """The uninterrupted surface, computed once by the same command the trials run; and its seconds."""
    out = work / "reference.h5"
    done = run_cli("surface", str(ckpt), "--out", str(out), *SURFACE_GRID, cwd=work)
    assert done.returncode == 0, done.stderr
    seconds = float(re.search(r"computed \d+ points in ([\d.]+) s", done.stdout).group(1))  # type: ignore[union-attr]
    return out, seconds


@pytest.fixture(scope="module")
def train_reference(work: Path) -> tuple[Path, float]:
    """The uninterrupted run; and the seconds from its first checkpoint to its last manifest."""
    out = work / "train_reference"
    done = run_cli("train", "--out", str(out), *TRAIN_ARGS, cwd=work)
    assert done.returncode == 0, done.stderr
    active = (out / "run.json").stat().st_mtime - (out / "checkpoints" / "epoch_000.pt").stat().st_mtime
    return out, active


# --- crash safety: surface -----------------------------------------------------------------------


def computed_points(stdout: str) -> int:
    if "nothing to compute" in stdout:
        return 0
    return int(re.search(r"computed (\d+) points", stdout).group(1))  # type: ignore[union-attr]


def surface_trial(ckpt: Path, reference: tuple[Path, float], out: Path, seed: int, mode: str) -> str:
    """Kill one ``landscape surface`` run, check the file, re-run it; returns where the kill fell.

    ``mode``: "compute" kills at a random moment of the computation; "create" inside the write
    that creates the file (the first atomic write); "flush" inside the first or the second flush.
    """
    rng = random.Random(seed)
    ref = read_surface(reference[0])
    flag = out.with_name(out.name + ".paused")
    args = ["surface", str(ckpt), "--out", str(out), *SURFACE_GRID]
    landed = mode
    if mode == "compute":
        proc = start(args, out.parent)
        try:
            wait_until(out.exists, proc, poll=0.002)
            time.sleep(rng.uniform(0.0, 1.2 * reference[1]))
        finally:
            sigkill(proc)
    else:
        tmp = kill_in_write(start(args, out.parent, 1 if mode == "create" else rng.randint(2, 3), flag), flag)
        assert tmp is not None, f"the {mode} write never came"  # every run creates the file and flushes at least twice
        assert out.exists() == (mode == "flush")  # the target is untouched: absent before its creation, the old file in a flush

    pending = ref.grid.size
    if out.exists():
        sf = read_surface(out)  # always opens
        for name in ref.columns:  # every finished point holds exactly the uninterrupted value
            np.testing.assert_array_equal(sf.values[name][sf.done], ref.values[name][sf.done])
            assert np.isnan(sf.values[name][~sf.done]).all()
        pending = int((~sf.done).sum())
        if pending == 0:
            landed = "finished"
    again = run_cli(*args, cwd=out.parent)
    assert again.returncode == 0, again.stderr
    assert computed_points(again.stdout) == pending  # no finished point is computed twice
    final = read_surface(out)
    assert final.done.all()
    for name in ref.columns:
        np.testing.assert_array_equal(final.values[name], ref.values[name])
    assert not leftovers(out)  # the re-run removed what the killed write left
    return landed


def test_surface_survives_sigkill(ckpt: Path, surface_reference: tuple[Path, float], tmp_path: Path) -> None:
    modes = ["compute", "flush", "create"]
    parallel([lambda i=i, m=m: surface_trial(ckpt, surface_reference, tmp_path / f"s{i}.h5", 100 + i, m)
              for i, m in enumerate(modes)])


@pytest.mark.slow
def test_surface_survives_sigkill_20_times(ckpt: Path, surface_reference: tuple[Path, float], tmp_path: Path) -> None:
    rng = random.Random(2018)
    modes = rng.choices(["compute", "flush", "create"], weights=[10, 7, 3], k=20)
    landed = parallel([lambda i=i, m=m: surface_trial(ckpt, surface_reference, tmp_path / f"s{i}.h5", 1000 + i, m)
                       for i, m in enumerate(modes)])
    print("surface kills:", {k: landed.count(k) for k in sorted(set(landed))})
    # 11 of the 20 are "compute" kills, 9 of them seeded at < 0.62× the reference's seconds (the other two at
    # 0.96× and 1.03×): a trial, two at a time, is no faster than the reference alone, so at least 8 must land
    # before the end (observed: 11, then 9 with the two late ones finished). "finished" kills do not count.
    assert landed.count("compute") >= 8 and landed.count("flush") + landed.count("create") == 9, landed


# --- crash safety: train -------------------------------------------------------------------------


def temp_files(run: Path) -> set[Path]:
    folders = [run, run / "checkpoints"]
    return {p for d in folders if d.is_dir() for p in d.iterdir() if p.name.endswith(".tmp")}


def check_manifest(run: Path) -> dict[str, Any] | None:
    """run.json, when present, parses and lists only whole checkpoints (never a temporary file)."""
    path = run / "run.json"
    if not path.exists():
        return None
    manifest: dict[str, Any] = json.loads(path.read_text())
    for entry in manifest["checkpoints"]:
        assert not entry["file"].endswith(".tmp") and "/." not in entry["file"], entry
        ck = load_checkpoint(run / entry["file"])
        assert (ck.epoch, ck.step) == (entry["epoch"], entry["step"])
    return manifest


def plant_leftovers(run: Path, rng: random.Random) -> None:
    """Half-written temporary files, as a kill during a write would leave them."""
    (run / "checkpoints").mkdir(parents=True, exist_ok=True)
    some = sorted((run / "checkpoints").glob("*.pt"))
    blob = some[0].read_bytes() if some else b"PK\x03\x04"
    (run / "checkpoints" / f".epoch_00{rng.randint(1, 5)}.pt.planted.tmp").write_bytes(blob[: len(blob) // 2])
    (run / ".run.json.planted.tmp").write_text('{"checkpoints": [{"file": "checkpoints/.x.tmp"')


def _identity(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_ino, st.st_mtime_ns


def kept_files(run: Path, manifest: dict[str, Any] | None) -> dict[str, tuple[int, int]]:
    """Inodes of the checkpoints a resume must keep: those up to the last epoch checkpoint."""
    if not manifest or not manifest["checkpoints"]:
        return {}
    epochs = [c for c in manifest["checkpoints"] if c["kind"] == "epoch"]
    last_step = epochs[-1]["step"] if epochs else -1
    return {c["file"]: _identity(run / c["file"]) for c in manifest["checkpoints"] if c["step"] <= last_step}


def train_chain(reference_run: tuple[Path, float], run: Path, seed: int, modes: Sequence[str]) -> list[str]:
    """Kill ``landscape train`` once per mode, resuming the same run each time, then let it finish.

    ``mode``: "write" kills inside one of the first 12 atomic writes of the process (a checkpoint,
    run.json or config.toml; a fresh run makes 56), "train" at a random moment once the process
    has written its first manifest. After every kill: run.json parses and lists only whole
    checkpoints; leftover temporary files are planted; the next run resumes from the last epoch
    checkpoint (the files up to it are never rewritten). At the end every checkpoint equals the
    uninterrupted run's, bit for bit. Returns where each kill fell ("finished": after the end).
    """
    rng = random.Random(seed)
    reference, active = reference_run
    args = ["train", "--out", str(run), *TRAIN_ARGS]
    landed: list[str] = []
    manifest_path = run / "run.json"
    for mode in modes:
        before = manifest_path.stat().st_ino if manifest_path.exists() else None
        keep = kept_files(run, check_manifest(run))
        if mode == "write":
            flag = run.with_name(run.name + ".paused")
            tmp = kill_in_write(start(args, run.parent, rng.randint(1, 12), flag), flag)
            landed.append("write" if tmp is not None else "finished")
        else:
            proc = start(args, run.parent)
            try:  # a random moment once this process has written its first manifest
                wait_until(lambda old=before: manifest_path.exists() and manifest_path.stat().st_ino != old, proc, poll=0.002)
                time.sleep(rng.uniform(0.0, active))
            finally:
                sigkill(proc)
            landed.append("train")
        manifest = check_manifest(run)
        if manifest and manifest.get("status") == "finished":
            landed[-1] = "finished"
        for name, inode in keep.items():  # resumed from the last complete checkpoint, not from scratch
            assert _identity(run / name) == inode, f"{name} was rewritten"
        plant_leftovers(run, rng)
    done = run_cli(*args, cwd=run.parent)
    assert done.returncode == 0, done.stderr
    manifest = check_manifest(run)
    expected = json.loads((reference / "run.json").read_text())
    assert manifest is not None and manifest["status"] == "finished"
    assert [(c["file"], c["epoch"], c["step"]) for c in manifest["checkpoints"]] == \
        [(c["file"], c["epoch"], c["step"]) for c in expected["checkpoints"]]
    for entry in expected["checkpoints"]:
        mine, theirs = load_checkpoint(run / entry["file"]).state_dict, load_checkpoint(reference / entry["file"]).state_dict
        assert mine.keys() == theirs.keys()
        assert all(torch.equal(mine[k], theirs[k]) for k in mine), entry["file"]
    return landed


def test_train_survives_sigkill(train_reference: tuple[Path, float], tmp_path: Path) -> None:
    landed = train_chain(train_reference, tmp_path / "run", 7, ["write", "train", "write"])
    assert landed[0] == "write", landed  # a fresh run makes 56 atomic writes: the pause in one of the first 12 comes


@pytest.mark.slow
def test_train_survives_sigkill_20_times(train_reference: tuple[Path, float], tmp_path: Path) -> None:
    rng = random.Random(2019)
    chains = [rng.choices(["train", "write"], k=4) for _ in range(5)]
    results = parallel([lambda i=i, c=c: ",".join(train_chain(train_reference, tmp_path / f"run{i}", 2000 + i, c))
                        for i, c in enumerate(chains)])
    landed = ",".join(results).split(",")
    assert len(landed) == 20, landed
    print("train kills:", {k: landed.count(k) for k in sorted(set(landed))})
    # 15 "write" kills pause in one of the first 12 writes (a resumed run that has fewer left finishes first);
    # of the 5 "train" kills, two hit a fresh run at 0.11× and 0.53× its seconds, three a resumed run later
    # in a chain, which may have finished. Observed (2026-12-07, two at a time on a shared 2-core machine):
    # 15 write + 5 train, then 15 write + 3 train + 2 finished. "finished" kills do not count.
    assert landed.count("write") >= 13 and landed.count("train") >= 2, landed


def test_a_truncated_listed_checkpoint_is_refused_on_resume(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A checkpoint damaged behind the tool's back (it never writes one in place) stops the resume."""
    run = tmp_path / "run"
    argv = ["train", "--out", str(run), "--epochs", "2", "--set", "data.max_train=100", "--set", "model.options={hidden=[8]}"]
    assert main([*argv[:4], "1", *argv[5:]]) == 0
    last = run / "checkpoints" / "epoch_001.pt"
    last.write_bytes(last.read_bytes()[:1000])
    fails_cleanly(argv, capsys, "epoch_001.pt.*truncated")


# --- a second writer ---------------------------------------------------------------------------


def test_the_test_hooks_are_read_once_and_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        monkeypatch.setenv(FLUSH_ENV, "0.5")
        testhooks.reread()
        assert testhooks.flush_seconds() == 0.5
        monkeypatch.setenv(FLUSH_ENV, "7")
        assert testhooks.flush_seconds() == 0.5  # read once per process ...
        testhooks.reread()
        assert testhooks.flush_seconds() == 7.0  # ... until a test asks to read again
        for bad in ("soon", "-1", "inf", "nan"):
            monkeypatch.setenv(FLUSH_ENV, bad)
            testhooks.reread()
            with pytest.raises(SurfaceFileError, match=re.escape(f"{FLUSH_ENV}={bad!r} must be a number of seconds")):
                testhooks.flush_seconds()
    finally:
        testhooks.reread()


@pytest.mark.parametrize("hooked", [False, True])
def test_flush_seconds_zero_flushes_after_every_call(hooked: bool, request: pytest.FixtureRequest) -> None:
    if hooked:
        request.getfixturevalue("flush_every_call")
    sf = SurfaceFile(Path("s.h5"), Grid(np.zeros(3)), [], {}, np.zeros(3, dtype=bool), {})
    assert (sf.flush_interval, sf.adaptive_flush) == ((0.0, False) if hooked else (5.0, True))


def test_second_writer_gets_a_one_line_error(ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The first writer is held inside its first flush (it holds the lock) while the second one starts."""
    out, flag = tmp_path / "shared.h5", tmp_path / "paused"
    args = ["surface", str(ckpt), "--out", str(out), "--x=-1:1:21", "--y=-1:1:21"]
    first = subprocess.Popen(landscape_cmd(*args), env={**ENV, PAUSE_ENV: f"2:{flag}"}, cwd=tmp_path,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert wait_until(flag.exists, first, poll=0.005), "the first writer ended before its first flush"
        fails_cleanly(args, capsys, "being written by another process")
        flag.unlink()  # let the first writer go on
        _, err = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            sigkill(first)
    assert first.returncode == 0, err
    sf = read_surface(out)  # the first writer's file is whole and complete
    assert sf.done.all() and np.isfinite(sf.values["train_loss"]).all()


# --- a full disk, an unwritable folder ----------------------------------------------------------


def failing_after(n_ok: int, real: Callable[..., Any]) -> Callable[..., Any]:
    """``real`` for the first ``n_ok`` calls, then ENOSPC (a full disk)."""
    calls = {"n": 0}

    def fake(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] > n_ok:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(*args, **kwargs)

    return fake


def test_full_disk_during_a_surface_keeps_the_finished_points(ckpt: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              capsys: pytest.CaptureFixture[str], flush_every_call: None) -> None:
    grid = ["--x=-1:1:21", "--y=-1:1:11", "--points-per-call", "1"]
    ref_path = tmp_path / "ref.h5"
    assert main(["surface", str(ckpt), "--out", str(ref_path), *grid]) == 0
    ref = read_surface(ref_path)
    out = tmp_path / "s.h5"
    argv = ["surface", str(ckpt), "--out", str(out), *grid]
    real_replace, real_copy = os.replace, shutil.copyfile
    # creation and the first flush succeed; the disk is full from the second flush on
    monkeypatch.setattr(os, "replace", failing_after(2, real_replace))
    capsys.readouterr()
    fails_cleanly(argv, capsys, "disk is full.*kept")
    kept = read_surface(out)
    assert 0 < kept.done.sum() < ref.grid.size
    np.testing.assert_array_equal(kept.values["train_loss"][kept.done], ref.values["train_loss"][kept.done])
    assert not leftovers(out)
    # still full, failing in the copy this time: the file on disk is untouched
    monkeypatch.setattr(os, "replace", real_replace)
    monkeypatch.setattr(shutil, "copyfile", failing_after(0, real_copy))
    fails_cleanly(argv, capsys, "disk is full")
    assert read_surface(out).done.sum() == kept.done.sum()
    monkeypatch.setattr(shutil, "copyfile", real_copy)
    assert main(argv) == 0
    assert f"computed {int((~kept.done).sum())} points" in capsys.readouterr().out
    np.testing.assert_array_equal(read_surface(out).values["train_loss"], ref.values["train_loss"])
    # a full disk when the file is first created
    monkeypatch.setattr(os, "replace", failing_after(0, real_replace))
    fails_cleanly(["surface", str(ckpt), "--out", str(tmp_path / "new.h5"), *grid], capsys, "cannot create.*disk is full|No space")
    assert not (tmp_path / "new.h5").exists()


@pytest.mark.parametrize("n_ok", [4, 5], ids=["manifest", "checkpoint"])
def test_full_disk_during_training_keeps_the_checkpoints(n_ok: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """os.replace order: epoch_000.pt, run.json, config.toml, epoch_001.pt, run.json, epoch_002.pt, ..."""
    argv = ["train", "--epochs", "3", "--set", "data.max_train=120", "--set", "model.options={hidden=[8]}"]
    assert main([*argv, "--out", str(tmp_path / "ref")]) == 0
    run = tmp_path / "run"
    real_replace = os.replace
    monkeypatch.setattr(os, "replace", failing_after(n_ok, real_replace))
    capsys.readouterr()
    fails_cleanly([*argv, "--out", str(run)], capsys, "disk is full.*kept")
    manifest = check_manifest(run)
    assert manifest is not None and [c["epoch"] for c in manifest["checkpoints"]] == [0, 1][: 1 + (n_ok > 4)]
    assert not temp_files(run)
    monkeypatch.setattr(os, "replace", real_replace)
    assert main([*argv, "--out", str(run)]) == 0
    mine, theirs = load_checkpoint(run / "checkpoints/epoch_003.pt"), load_checkpoint(tmp_path / "ref/checkpoints/epoch_003.pt")
    assert all(torch.equal(mine.state_dict[k], theirs.state_dict[k]) for k in theirs.state_dict)


def test_output_folder_under_a_file(ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    fails_cleanly(["surface", str(ckpt), "--out", str(blocker / "sub" / "s.h5"), "--x=-1:1:3"], capsys, "Not a directory")
    fails_cleanly(["train", "--out", str(blocker / "run"), "--epochs", "0"], capsys, "cannot create the run folder")
    assert blocker.read_text() == "not a folder"


# --- hostile and malformed input -----------------------------------------------------------------


class CodeOnLoad:
    """Unpickling this creates ``marker``: what a malicious checkpoint would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (str(self.marker), "w"))


def test_a_checkpoint_that_runs_code_is_refused(ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker = tmp_path / "payload_ran"
    evil = tmp_path / "evil.pt"
    torch.save({"state_dict": load_checkpoint(ckpt).state_dict, "hook": CodeOnLoad(marker)}, evil)
    for argv in (["info", str(evil)], ["surface", str(evil), "--out", str(tmp_path / "s.h5")],
                 ["surface", str(ckpt), "--target", str(evil), "--out", str(tmp_path / "t.h5"), "--x=0:1:3"],
                 ["trajectory", str(ckpt), str(ckpt), str(evil), "--out", str(tmp_path / "tr.h5")]):
        fails_cleanly(argv, capsys, r"refused.*run code.*weights_only.*open.*--unsafe-load")
    assert not marker.exists()


def test_unsafe_load_opts_in_for_a_harmless_foreign_pickle(ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    foreign = tmp_path / "foreign.pt"  # like the reference code's checkpoints: weights plus an argparse.Namespace
    torch.save({"state_dict": load_checkpoint(ckpt).state_dict, "args": argparse.Namespace(lr=0.1, epochs=1)}, foreign)
    fails_cleanly(["info", str(foreign)], capsys, "argparse.Namespace.*--unsafe-load")
    assert main(["info", str(foreign), "--unsafe-load"]) == 0
    assert json.loads(capsys.readouterr().out)["format"] == "foreign"
    argv = ["surface", str(foreign), "--unsafe-load", "--out", str(tmp_path / "s.h5"), "--x=-1:1:3", "--model", "mlp",
            "--data", "digits", *[a for s in SMALL for a in ("--set", s)]]
    assert main(argv) == 0
    assert read_surface(tmp_path / "s.h5").done.all()


@pytest.fixture(scope="module")
def bad_files(ckpt: Path, work: Path) -> dict[str, Path]:
    """Damaged checkpoints and surface files, made once."""
    d = work / "bad"
    d.mkdir()
    raw = ckpt.read_bytes()
    files = {
        "truncated.pt": raw[: len(raw) // 2],
        "truncated_end.pt": raw[:-30],
        "empty.pt": b"",
        "random.pt": random.Random(0).randbytes(4096),
        "text.pt": b"this is not a checkpoint\n",
        "pickle_junk.pt": b"\x80\x02" + random.Random(1).randbytes(200),
    }
    for name, blob in files.items():
        (d / name).write_bytes(blob)
    good = d / "good.h5"
    assert main(["--quiet", "surface", str(ckpt), "--out", str(good), "--x=-1:1:5", "--y=-1:1:3"]) == 0
    blob = good.read_bytes()
    for frac in (0.1, 0.5, 0.95):
        (d / f"cut{int(frac * 100)}.h5").write_bytes(blob[: int(len(blob) * frac)])
    (d / "fake_magic.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + random.Random(2).randbytes(3000))

    def variant(name: str, edit: Callable[[h5py.File], None]) -> None:
        shutil.copyfile(good, d / name)
        with h5py.File(d / name, "r+") as f:
            edit(f)

    variant("no_done.h5", lambda f: f.__delitem__("done"))
    variant("metrics_not_list.h5", lambda f: f.attrs.__setitem__("metrics", "5"))
    variant("metrics_not_json.h5", lambda f: f.attrs.__setitem__("metrics", "{oops"))
    variant("settings_not_table.h5", lambda f: f.attrs.__setitem__("settings", "[1, 2]"))
    variant("no_settings.h5", lambda f: f.attrs.__delitem__("settings"))

    def wrong_shape(f: h5py.File) -> None:
        del f["done"]
        f["done"] = np.zeros((2, 2), dtype=bool)

    def text_values(f: h5py.File) -> None:
        del f["train_loss"]
        f["train_loss"] = np.full((5, 3), b"a", dtype="S1")

    variant("wrong_shape.h5", wrong_shape)
    variant("text_values.h5", text_values)
    return {p.name: p for p in d.iterdir()}


CORRUPT_CHECKPOINTS = ["truncated.pt", "truncated_end.pt", "empty.pt", "random.pt", "text.pt", "pickle_junk.pt"]
CORRUPT_SURFACES = ["cut10.h5", "cut50.h5", "cut95.h5", "fake_magic.h5", "no_done.h5", "metrics_not_list.h5",
                    "metrics_not_json.h5", "settings_not_table.h5", "no_settings.h5", "wrong_shape.h5", "text_values.h5"]


@pytest.mark.parametrize("name", CORRUPT_CHECKPOINTS)
def test_corrupt_checkpoints(name: str, bad_files: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = str(bad_files[name])
    fails_cleanly(["info", path], capsys, "truncated or not a torch checkpoint|corrupt")
    fails_cleanly(["surface", path, "--out", str(tmp_path / "s.h5")], capsys, "truncated or not a torch checkpoint|corrupt")
    fails_cleanly(["trajectory", path, path, path, "--out", str(tmp_path / "t.h5")], capsys, "checkpoint")


@pytest.mark.parametrize("name", CORRUPT_SURFACES)
def test_corrupt_surface_files(name: str, bad_files: dict[str, Path], ckpt: Path, tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    copy = tmp_path / name  # the resume attempt must leave the damaged file as it was
    shutil.copyfile(bad_files[name], copy)
    fails_cleanly(["info", str(copy)], capsys, "corrupt|truncated|not a readable|inconsistent")
    readers = {"plot": ["--out", str(tmp_path / "figures")], "export": ["--format", "csv"]}
    for command in (c for c in readers if c in ACTIONS):
        fails_cleanly([command, str(copy), *readers[command]], capsys, "corrupt|truncated|inconsistent|not a landscape surface")
    assert not (tmp_path / "figures").exists() or not any((tmp_path / "figures").iterdir())
    line = fails_cleanly(["surface", str(ckpt), "--out", str(copy), "--x=-1:1:5", "--y=-1:1:3"], capsys,
                         "corrupt|truncated|inconsistent|not a landscape surface")
    assert "--overwrite" in line
    assert copy.read_bytes() == bad_files[name].read_bytes()
    with pytest.raises(SurfaceFileError):
        read_surface(copy)


def test_directions_for_another_architecture(ckpt: Path, bad_files: dict[str, Path], tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    from landscape.engine.directions import DirectionOptions, random_directions, save_directions
    from landscape.zoo.models import build_model

    wider = build_model("mlp", (1, 8, 8), (10,), {"hidden": [32]})
    save_directions(tmp_path / "wider.h5", random_directions(wider, DirectionOptions(), 2), wider)
    with h5py.File(tmp_path / "reference_layout.h5", "w") as f:  # the paper code's layout, wrong tensor count
        f.create_group("xdirection").create_dataset("0", data=np.zeros((3, 3)))
    with h5py.File(tmp_path / "text.h5", "w") as f:
        f.create_group("x").create_dataset("fc1.weight", data=np.full((16, 64), b"z", dtype="S1"))
    base = ["surface", str(ckpt), "--out", str(tmp_path / "s.h5"), "--x=-1:1:3", "--directions"]
    fails_cleanly([*base, str(tmp_path / "wider.h5")], capsys, "another architecture.*shape")
    fails_cleanly([*base, str(tmp_path / "reference_layout.h5")], capsys, "another architecture")
    fails_cleanly([*base, str(tmp_path / "text.h5")], capsys, "damaged|another architecture")
    fails_cleanly([*base, str(bad_files["cut50.h5"])], capsys, "not a readable HDF5")
    fails_cleanly([*base, str(bad_files["text.pt"])], capsys, "not a readable HDF5")
    # a surface file carries its directions: reusing them is allowed (and is not mistaken for a direction layout)
    assert main([*base, str(bad_files["good.h5"]), "--y=-1:1:3"]) == 0


@pytest.mark.parametrize(("x", "y", "match"), [
    ("1:-1:0", "", "NUM must be at least 2"),
    ("a:b:c", "", "must be numbers"),
    ("0:0:1", "", "NUM must be at least 2"),
    ("1:1:5", "", "MIN must be smaller"),
    ("-1:1", "", "MIN:MAX:NUM"),
    ("nan:1:3", "", "finite"),
    ("-1e39:1:3", "", "float32"),
    ("-1:1:1e3", "", "NUM an integer"),
    ("-1:1:100000", "-1:1:100000", "10,000,000,000 points.*--max-points"),
    ("-1:1:10000000000000", "", "more than 250,000.*--max-points"),
    ("-1:1:51", "-1:1:-3", "NUM must be at least 2"),
])
def test_bad_grids(x: str, y: str, match: str, ckpt: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["surface", str(ckpt), "--out", str(tmp_path / "s.h5"), f"--x={x}"] + ([f"--y={y}"] if y else [])
    tracemalloc.start()
    try:
        fails_cleanly(argv, capsys, match)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20  # refused before any grid-sized array exists
    assert not (tmp_path / "s.h5").exists()


BAD_DATA = '''
import torch


def nan_inputs():
    x = torch.randn(40, 4)
    x[3, 1] = float("nan")
    y = torch.randn(40, 1)
    return (x, y), (x.clone(), y.clone())


def inf_inputs():
    x = torch.randn(40, 4)
    x[0, 0] = float("inf")
    return (x, torch.randint(0, 3, (40,))), (x, torch.randint(0, 3, (40,)))


def nan_targets():
    x, y = torch.randn(40, 4), torch.randn(40, 1)
    y[5] = float("nan")
    return (x, y), (x, y)


def raises():
    raise RuntimeError("the user's loader broke")


def not_a_pair():
    return 42
'''


@pytest.mark.parametrize(("fn", "match"), [
    ("nan_inputs", "NaN or inf inputs"), ("inf_inputs", "NaN or inf inputs"), ("nan_targets", "NaN or inf targets"),
    ("raises", "broke"), ("not_a_pair", "must return"),
])
def test_bad_user_data(fn: str, match: str, write_py: Callable[[str, str], Path], tmp_path: Path,
                       capsys: pytest.CaptureFixture[str]) -> None:
    path = write_py("bad_data.py", BAD_DATA)
    fails_cleanly(["train", "--out", str(tmp_path / "run"), "--data", f"{path}:{fn}", "--loss", "mse", "--epochs", "0"],
                  capsys, match)
    assert not (tmp_path / "run" / "run.json").exists()


@pytest.mark.parametrize(("extra", "match"), [
    (["--data", "linreg", "--loss", "cross_entropy"], "'cross_entropy' does not apply to a regression task"),
    (["--data", "linreg", "--loss", "hinge"], "'hinge' does not apply to a regression task"),
    (["--model", "autoencoder", "--set", 'data.target="input"', "--loss", "hinge"], "'hinge' does not apply to a reconstruction"),
    (["--loss", "no_such_loss"], "unknown loss 'no_such_loss'; known:"),
    (["--model", "no_such_model"], "unknown model 'no_such_model'"),
    (["--data", "no_such_data"], "unknown dataset 'no_such_data'"),
    (["--set", "data.classes=[-1, 3]"], "data.classes"),
    (["--set", "data.classes=[3, 3]"], "repeated"),
    (["--set", "train.lr=nan"], "train.lr"),
    (["--set", "train.batch_size=0"], "batch_size"),
    (["--device", "cuda:99"], "cuda:99"),
    (["--device", "meta"], "'meta' is not supported"),
    (["--device", "tpu"], "not a valid torch device|not supported"),
    (["--set", "train.optimizer='lbfgs'"], "optimizer.*'sgd'"),
])
def test_bad_training_choices(extra: list[str], match: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fails_cleanly(["train", "--out", str(tmp_path / "run"), "--epochs", "0", *extra], capsys, match)


def test_bad_surface_choices(tmp_path: Path, ckpt: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ae = train(load_config(None, ["train.epochs=0", 'model.name="autoencoder"', 'data.target="input"', 'train.loss="mse"',
                                  "data.max_train=100"]), tmp_path / "ae").final
    out = ["--out", str(tmp_path / "s.h5"), "--x=-1:1:3"]
    fails_cleanly(["surface", str(ae), *out, "--loss", "hinge"], capsys, "'hinge' does not apply to a reconstruction")
    fails_cleanly(["surface", str(ae), *out, "--loss", "mse,cross_entropy"], capsys, "'cross_entropy' does not apply")
    fails_cleanly(["surface", str(ckpt), *out, "--loss", "nope"], capsys, "unknown loss 'nope'")
    fails_cleanly(["surface", str(ckpt), *out, "--set", 'surface.metric="sharpness"'], capsys, "surface.metric")
    fails_cleanly(["surface", str(ckpt), *out, "--set", "surface.max_samples=-3"], capsys, "max_samples")
    fails_cleanly(["surface", str(ckpt), *out, "--max-samples", "-3"], capsys, "max_samples")
    fails_cleanly(["surface", str(ckpt), *out, "--device", "meta"], capsys, "'meta' is not supported")
    for folder in (".", str(tmp_path)):
        fails_cleanly(["surface", str(ckpt), "--out", folder, "--x=-1:1:3"], capsys, "is a folder; name the surface file")


@pytest.mark.parametrize(("override", "match"), [
    ("train.lr=" + "[" * 2000, "nested too deeply"),
    ("model.options={a=1979-05-27}", "wrong type"),
    ("train.lr=1979-05-27", "wrong type"),
    ("=3", "section.key=value"),
    ("train", "section.key=value"),
    ("train.lr.x=1", "train.lr|not a section"),
    ("nosuch.key=1", "unknown key 'nosuch'"),
])
def test_bad_overrides(override: str, match: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fails_cleanly(["train", "--out", str(tmp_path / "run"), "--epochs", "0", "--set", override], capsys, match)


@pytest.mark.parametrize(("text", "match"), [
    ("[train]\nlr = 1979-05-27\n", "train.lr.*wrong type"),
    ("[model]\noptions = {when = 07:32:00}\n", "model.options.when.*wrong type"),
    ("[train\n", "not valid TOML"),
    ("x = " + "[" * 3000 + "]" * 3000 + "\n", "too deeply"),
    ("[train]\nbatch_size = 1.5\n", "train.batch_size.*integer"),
    ("data = 3\n", r"\[data\] must be a table"),
])
def test_bad_config_files(text: str, match: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_config(cfg)
    fails_cleanly(["train", str(cfg), "--out", str(tmp_path / "run"), "--epochs", "0"], capsys, match)


def test_unreadable_config_and_run_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "binary.toml").write_bytes(b"\xff\xfe\x00junk")
    fails_cleanly(["train", str(tmp_path / "binary.toml"), "--out", str(tmp_path / "r")], capsys, "not valid TOML")
    fails_cleanly(["train", str(tmp_path / "binary.toml" / "x.toml"), "--out", str(tmp_path / "r")], capsys, "cannot be read|does not exist")
    run = tmp_path / "run"
    run.mkdir()
    for text in ("{broken", "[1, 2]", '{"checkpoints": 5}'):
        (run / "run.json").write_text(text)
        fails_cleanly(["info", str(run)], capsys, "run manifest")
        fails_cleanly(["trajectory", str(run), "--out", str(tmp_path / "t.h5")], capsys, "run manifest|lists no checkpoints")
    (run / "run.json").write_text("{broken")
    fails_cleanly(["train", "--out", str(run), "--epochs", "0"], capsys, "corrupt")


# --- property-based: random argv, overrides and config files ----------------------------------------

# How many examples must reach the real check (the rest end in an anticipated error); derandomized
# runs draw the same examples every time. Set well below the counts measured (see each test).
MIN_CLI = {0: 10, 1: 20, 2: 30}  # each outcome must be reached by at least this many of the 150 lines
MIN_LOADED = {"config files": 40, "overrides": 40, "grids": 20}  # measured: 86, 97, 48 of 200


def subcommand_actions() -> dict[str, list[argparse.Action]]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return {name: [a for a in p._actions if not isinstance(a, argparse._HelpAction)] for name, p in sub.choices.items()}


ACTIONS = subcommand_actions()
CKPT = "@checkpoint"  # replaced by a real checkpoint: surface then parses its whole config
HEAVY = {"--hessian-directions"}  # would run Lanczos: out of scope for a parsing test
CONFIG_KEYS = [f"{section.name}.{f.name}" for section in dataclasses.fields(Config)
               for f in dataclasses.fields(getattr(Config(), section.name))]
SAFE_TEXT = st.text(alphabet=st.characters(exclude_characters=":\x00", exclude_categories=("Cs",)), max_size=12)
PATHS = st.sampled_from(["missing.pt", "missing.h5", "missing.toml", "missing_dir/x.h5", ".", "out.h5"])
WORDS = st.sampled_from([
    "mlp", "linear", "cnn", "nope", "digits", "linreg", "blobs", "spirals", "mnist", "cross_entropy", "mse", "hinge", "bce",
    "mse,hinge", "cross_entropy,,l1", "cpu", "cuda", "cuda:7", "meta", "-1:1:3", "1:-1:0", "a:b:c", "0:0:1", "-1:1:100000",
    "-2:2:5", "nan", "inf", "-inf", "-1", "0", "3", "1e309", "", " ", "x.py:f", "filter", "layer", "weights", "states",
    "biasbn", "none", "both", "train", "test", "recompute", "fixed", "sgd", "adam", "--", "-", "=", "png,svg", "contour",
])
VALUES = st.one_of(WORDS, st.integers(-3, 40).map(str), st.floats(allow_nan=True, allow_infinity=True).map(repr), SAFE_TEXT)
TOML_VALUES = st.one_of(VALUES, st.sampled_from([
    "[1, 2]", "[]", "{hidden=[8]}", "{hidden=[-1]}", "{width=0}", "true", "false", '"abc"', "'q'", "1979-05-27",
    "07:32:00", "[[1], [2]]", "{a={b={c=1}}}", "[", "{", '"unterminated', "0x10", "1_000", "+inf", "-0.0",
    '"-1:1:3"', '"cross_entropy"', '["mse", "l1"]', '"both"', '"recompute"',
]))
# Settings that load: without them nearly every random document or override is refused, and the
# round-trip checks would see almost nothing.
VALID_SETTINGS = [
    ("train", "epochs", "3"), ("train", "lr", "0.01"), ("train", "batch_size", "32"), ("train", "optimizer", '"adam"'),
    ("model", "name", '"cnn"'), ("data", "name", '"blobs"'), ("data", "max_train", "100"), ("surface", "x", '"-1:1:5"'),
    ("surface", "split", '"both"'), ("directions", "seed", "7"), ("directions", "norm", '"layer"'), ("plot", "log", "true"),
    ("plot", "cmap", '"magma"'), ("run", "pca_grid", "9"),
]
VALID_OVERRIDES = st.sampled_from([f"{s}.{k}={v}" for s, k, v in VALID_SETTINGS])
OVERRIDES = st.builds(lambda k, v: f"{k}={v}", st.one_of(st.sampled_from(CONFIG_KEYS), SAFE_TEXT), TOML_VALUES)
# Command lines actually run: no key can switch on downloads (tests never use the network).
OFFLINE_KEYS = [k for k in CONFIG_KEYS if "download" not in k]
OFFLINE_OVERRIDES = st.builds(lambda k, v: f"{k}={v}",
                              st.one_of(st.sampled_from(OFFLINE_KEYS), SAFE_TEXT.filter(lambda s: "download" not in s)),
                              TOML_VALUES)


def value_for(action: argparse.Action) -> st.SearchStrategy[str]:
    """What the flag declares: one of its choices, an int, a float, a path, a word or an override."""
    if action.dest == "overrides":
        return OFFLINE_OVERRIDES
    if action.choices:
        return st.sampled_from([str(c) for c in action.choices])
    if action.type is int:
        return st.integers(-3, 40).map(str)
    if action.type is float:
        return st.floats(allow_nan=True, allow_infinity=True).map(repr)
    if action.type is Path:
        return PATHS
    return WORDS


@st.composite
def argv_lists(draw: st.DrawFn) -> list[str]:
    """A random command line built from the real subcommands, positionals, flags and value types."""
    # surface half the time: with the real checkpoint it is the command a random line can complete
    command = draw(st.one_of(st.just("surface"), st.sampled_from(sorted(ACTIONS))))
    tokens: list[str] = []
    match draw(st.integers(0, 14)):
        case 0:
            tokens.append("--quiet")
        case 1:
            tokens += ["--threads", draw(st.one_of(st.integers(-1, 4).map(str), VALUES))]
        case 2:
            tokens.append(draw(st.sampled_from(["--version", "--help"])))
    tokens.append(command)
    actions = ACTIONS[command]
    for action in actions:  # required positionals and options, usually present; optional ones now and then
        if not (action.required or action.nargs == "?") or draw(st.integers(0, 9)) < (7 if action.nargs == "?" else 1):
            continue
        if action.option_strings:
            tokens += [action.option_strings[0], draw(value_for(action))]
        else:
            pool = st.one_of(st.just(CKPT), PATHS) if command == "surface" else st.one_of(PATHS, VALUES)
            tokens += [draw(pool) for _ in range(3 if action.nargs == "+" else 1)]
    optional = [a for a in actions if a.option_strings and not set(a.option_strings) & HEAVY]
    for _ in range(draw(st.integers(0, 5))):
        action = draw(st.sampled_from(optional))
        tokens.append(draw(st.sampled_from(action.option_strings)))
        if action.nargs != 0:
            odd = draw(st.integers(0, 19))  # now and then a value of the wrong kind, or none at all
            tokens += [] if odd == 0 else [draw(VALUES)] if odd == 1 else [draw(value_for(action))]
    if draw(st.integers(0, 9)) == 0:
        tokens.insert(draw(st.integers(0, len(tokens))), draw(VALUES))  # a stray token anywhere
    return tokens


def bounded(argv: list[str], checkpoint: Path, folder: Path) -> list[str]:
    """Pin what would make a valid command line slow (flags later on the line win)."""
    # --debug asks for tracebacks on purpose (before or after the command): not what is tested here
    argv = [str(checkpoint) if a == CKPT else a for a in argv if a != "--debug"]
    command = next((a for a in argv if a in ACTIONS), "")
    if command == "train":
        argv += ["--epochs", "0", "--out", str(folder / "run"), "--overwrite", "--set", "data.download=false",
                 "--set", "data.max_train=64", "--set", "data.max_test=32"]
    if command == "surface":
        argv += ["--max-points", "200", "--metric", "loss"]
    return argv


@contextlib.contextmanager
def isolated(folder: Path) -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """Run inside ``folder`` with captured output; restore torch's thread count and the quiet flag."""
    from landscape.engine.progress import set_quiet

    threads, cwd = torch.get_num_threads(), os.getcwd()
    out, err = io.StringIO(), io.StringIO()
    os.chdir(folder)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            yield out, err
    finally:
        os.chdir(cwd)
        torch.set_num_threads(threads)
        set_quiet(False)


def test_random_command_lines_never_escape(ckpt: Path, tmp_path: Path) -> None:
    """Any argv: exit 0, 1 (one anticipated 'landscape ...' line) or 2 (argparse usage); no traceback.

    ``train`` is pinned to ``--epochs 0`` on a small slice of data and ``surface`` to at most 200
    points, so nothing heavy runs; files named on the line do not exist (but for a real checkpoint).
    No drawn line can contain ``download`` (:data:`OFFLINE_OVERRIDES`), so nothing reaches the
    network. Each of the three outcomes must be reached by enough examples to mean something.
    """
    outcomes: Counter[int] = Counter()

    @settings(max_examples=150, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow])
    @given(argv=argv_lists())
    def check(argv: list[str]) -> None:
        assert not any("download" in token for token in argv), argv
        argv = bounded(argv, ckpt, tmp_path)
        with isolated(tmp_path) as (_, err):
            code = main(argv)
        text = err.getvalue()
        assert "Traceback" not in text, text
        assert code in (0, 1, 2), (code, text)
        if code == 1:  # one error line (after a line per old spelling read, e.g. plot --metric)
            lines = [x for x in text.strip().splitlines() if not re.match(r"landscape: .* is deprecated; use ", x)]
            assert len(lines) == 1 and lines[0].startswith("landscape"), text
            assert "run with --debug" not in lines[0], f"unanticipated error for {argv}: {lines[0]}"
        if code == 2:
            assert "error:" in text
        outcomes[code] += 1

    check()
    assert outcomes[0] >= MIN_CLI[0] and outcomes[1] >= MIN_CLI[1] and outcomes[2] >= MIN_CLI[2], outcomes


def toml_scalar(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value == math.inf else "-inf" if value == -math.inf else repr(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_scalar(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_scalar(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)  # a JSON string is a TOML basic string for the characters drawn here


KEY_NAMES = st.one_of(st.sampled_from(sorted({k.split(".")[1] for k in CONFIG_KEYS})), st.text("abcxyz_", min_size=1, max_size=5))
SECTION_NAMES = st.one_of(st.sampled_from(sorted({k.split(".")[0] for k in CONFIG_KEYS})), st.text("abcxyz_", min_size=1, max_size=5))
LEAVES = st.one_of(
    st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(allow_nan=True, allow_infinity=True),
    st.text(alphabet=st.characters(exclude_categories=("Cs",), max_codepoint=0x2FFF), max_size=8),
    st.dates(), st.times(), st.sampled_from(["mlp", "digits", "cross_entropy", "-1:1:5", "filter", "sgd", "cpu"]),
)
TOML_TREES = st.recursive(LEAVES, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                         st.dictionaries(KEY_NAMES, inner, max_size=3)), max_leaves=8)
DOCUMENTS = st.dictionaries(SECTION_NAMES, st.one_of(st.dictionaries(KEY_NAMES, TOML_TREES, max_size=4), LEAVES), max_size=4)


def render_toml(doc: dict[str, Any]) -> str:
    lines = []
    for section, table in doc.items():
        if isinstance(table, dict):
            lines.append(f"[{json.dumps(section)}]")
            lines += [f"{json.dumps(k)} = {toml_scalar(v)}" for k, v in table.items()]
        else:
            lines.insert(0, f"{json.dumps(section)} = {toml_scalar(table)}")
    return "\n".join(lines) + "\n"


def render_settings(settings: list[tuple[str, str, str]]) -> str:
    """A TOML document of (section, key, value) triples; a key given twice keeps its last value."""
    tables: dict[str, dict[str, str]] = {}
    for section, key, value in settings:
        tables.setdefault(section, {})[key] = value
    return "".join(f"[{s}]\n" + "".join(f"{k} = {v}\n" for k, v in table.items()) for s, table in tables.items())


def round_trip_or_refuse(load: Callable[[], Config], outcomes: Counter[str]) -> None:
    """``load()`` raises a ConfigError (counted "refused"), or its config can be written back
    (config.toml, JSON attributes) and reads the same (counted "round-tripped")."""
    try:
        cfg = load()
    except ConfigError:
        outcomes["refused"] += 1
        return
    again = config_from_dict(__import__("tomllib").loads(dumps_toml(config_to_dict(cfg))))
    assert json.dumps(config_to_dict(again), sort_keys=True) == json.dumps(config_to_dict(cfg), sort_keys=True)
    outcomes["round-tripped"] += 1


# hypothesis's check that a recursive strategy's extend uses its argument misfires on this one, which
# does (lists and tables of ``inner``), now and then (about one run in ten): not a fault of the test.
@pytest.mark.filterwarnings("ignore:.*can't actually recurse:hypothesis.errors.HypothesisDeprecationWarning")
def test_random_config_files_load_or_raise_config_error(tmp_path: Path) -> None:
    """Random TOML documents, text and bytes: a config that loads round-trips; anything else is a ConfigError."""
    outcomes: Counter[str] = Counter()

    @settings(max_examples=200, deadline=None, database=None, derandomize=True)
    @given(document=st.one_of(DOCUMENTS.map(render_toml), st.text(max_size=80), st.binary(max_size=80),
                              st.lists(st.sampled_from(VALID_SETTINGS), max_size=5).map(render_settings)))
    def check(document: str | bytes) -> None:
        path = tmp_path / "random.toml"
        path.write_bytes(document if isinstance(document, bytes) else document.encode("utf-8", "surrogatepass"))
        round_trip_or_refuse(lambda: load_config(path), outcomes)

    check()
    assert outcomes["round-tripped"] >= MIN_LOADED["config files"] and outcomes["refused"] >= 50, outcomes


def test_random_overrides_apply_or_raise_config_error() -> None:
    outcomes: Counter[str] = Counter()

    @settings(max_examples=200, deadline=None, database=None, derandomize=True)
    @given(overrides=st.one_of(st.lists(st.one_of(OVERRIDES, SAFE_TEXT, st.text(max_size=20)), max_size=4),
                               st.lists(VALID_OVERRIDES, max_size=4)))
    def check(overrides: list[str]) -> None:
        def load() -> Config:
            for text in overrides:
                parse_override(text)
            return load_config(None, overrides)

        round_trip_or_refuse(load, outcomes)

    check()
    assert outcomes["round-tripped"] >= MIN_LOADED["overrides"] and outcomes["refused"] >= 50, outcomes


# Axes a user might write (lo < hi, a sensible count), so that enough grids parse for their checks to mean something.
PLAUSIBLE_AXES = st.builds(lambda lo, width, n: f"{lo!r}:{lo + width!r}:{n}", st.floats(-10, 10), st.floats(0.01, 10),
                           st.integers(2, 120))


def test_random_grids_parse_or_raise_grid_error() -> None:
    outcomes: Counter[str] = Counter()

    @settings(max_examples=200, deadline=None, database=None, derandomize=True)
    @given(x=st.one_of(WORDS, SAFE_TEXT, st.builds(lambda a, b, n: f"{a}:{b}:{n}", VALUES, VALUES, VALUES), PLAUSIBLE_AXES),
           y=st.one_of(st.just(""), WORDS, st.builds(lambda a, b, n: f"{a}:{b}:{n}", VALUES, VALUES, VALUES), PLAUSIBLE_AXES))
    def check(x: str, y: str) -> None:
        try:
            grid = Grid.parse(x, y, max_points=10_000)
        except GridError:
            outcomes["refused"] += 1
            return
        assert 2 <= grid.size <= 10_000
        assert np.isfinite(grid.coords()).all()
        outcomes["parsed"] += 1

    check()
    assert outcomes["parsed"] >= MIN_LOADED["grids"] and outcomes["refused"] >= 50, outcomes


def test_damaged_files_always_raise_the_library_error(ckpt: Path, bad_files: dict[str, Path]) -> None:
    """Every truncation of a checkpoint and of a surface file, at 40 seeded places, is refused cleanly."""
    rng = random.Random(3)
    for source, reader, error in ((ckpt, load_checkpoint, CheckpointError), (bad_files["good.h5"], read_surface, SurfaceFileError)):
        blob = source.read_bytes()
        target = source.with_name(f"cut_{source.name}")
        for cut in sorted(rng.sample(range(len(blob)), 40)):
            target.write_bytes(blob[:cut])
            with pytest.raises(error):
                reader(target)  # type: ignore[operator]
        target.unlink()
    assert isinstance(CheckpointError("x"), LandscapeError)
