"""Sharded surfaces under torchrun (gloo on CPU): same file as one process, survives a dead rank."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from landscape.config import load_config
from landscape.io.surface_file import read_surface
from landscape.testhooks import PAUSE_ENV
from landscape.workflows.train import train

ENV = {**os.environ, "LANDSCAPE_QUIET": "1", "OMP_NUM_THREADS": "1"}
ENV.pop(PAUSE_ENV, None)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    cfg = load_config(None, ["train.epochs=1", "data.max_train=200", "data.max_test=50", "model.options={hidden=[16]}"])
    return train(cfg, tmp_path_factory.mktemp("run")).final


def torchrun(*args: str, nproc: int = 2) -> list[str]:
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
            "-m", "landscape", "--quiet", *args]


def test_two_ranks_write_the_same_file_as_one_process(ckpt: Path, tmp_path: Path) -> None:
    grid = ["--x", "-1:1:9", "--y", "-1:1:7", "--split", "both", "--loss", "cross_entropy,mse"]
    single = tmp_path / "single.h5"
    subprocess.run([sys.executable, "-m", "landscape", "--quiet", "surface", str(ckpt), "--out", str(single), *grid],
                   check=True, env=ENV, capture_output=True)
    shard = tmp_path / "shard.h5"
    proc = subprocess.run(torchrun("surface", str(ckpt), "--out", str(shard), *grid), env=ENV, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "points per rank: rank 0:" in proc.stdout
    a, b = read_surface(single), read_surface(shard)
    assert a.columns == b.columns and b.done.all()
    for c in a.columns:
        np.testing.assert_allclose(b.values[c], a.values[c], rtol=1e-6, atol=1e-9)
    assert a.attrs["settings"] == b.attrs["settings"]


@pytest.mark.parametrize("refine", [False, True])
def test_two_ranks_write_the_same_progressive_file_as_one_process(ckpt: Path, tmp_path: Path, refine: bool) -> None:
    """Estimates do not depend on the rank that computes a point: the same samples, the same sums, bit for bit."""
    grid = ["--x", "-3:3:17", "--y", "-3:3:17", "--split", "both", "--tolerance", "0.05", "--vmax", "1.5", *(["--refine"] if refine else []),
            "--set", "data.max_train=0"]  # every training sample (1,438): more than a point reads before it may stop
    single, shard = tmp_path / "single.h5", tmp_path / "shard.h5"
    subprocess.run([sys.executable, "-m", "landscape", "--quiet", "surface", str(ckpt), "--out", str(single), *grid],
                   check=True, env=ENV, capture_output=True)
    proc = subprocess.run(torchrun("surface", str(ckpt), "--out", str(shard), *grid), env=ENV, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    a, b = read_surface(single), read_surface(shard)
    assert b.done.all() and set(a.extra) == set(b.extra) and ("computed" in b.extra) == refine
    assert not refine or 0 < b.extra["computed"].mean() < 1
    for c in a.columns:
        np.testing.assert_array_equal(b.values[c], a.values[c])
    for name in a.extra:
        np.testing.assert_array_equal(b.extra[name], a.extra[name])
    read = a.extra["train_samples"][a.extra["train_samples"] > 0]  # (interpolated points read none)
    assert (read < 1438).any() and (read >= 1000).all()


def _children(pid: int) -> list[int]:
    kids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                kids.append(int(entry.name))
    return kids


@pytest.mark.slow
def test_a_killed_rank_loses_nothing_and_the_relaunch_finishes(ckpt: Path, tmp_path: Path) -> None:
    grid = ["--x", "-1:1:61", "--y", "-1:1:61", "--points-per-call", "1"]
    reference = tmp_path / "ref.h5"
    subprocess.run([sys.executable, "-m", "landscape", "--quiet", "surface", str(ckpt), "--out", str(reference), *grid],
                   check=True, env=ENV, capture_output=True)
    out, flag = tmp_path / "killed.h5", tmp_path / "paused"
    # rank 0 (the writer) stops inside its first flush (atomic write 2, after the creation): the job
    # is provably running and unfinished when rank 1 is killed, whatever the scheduling
    proc = subprocess.Popen(torchrun("surface", str(ckpt), "--out", str(out), *grid),
                            env={**ENV, "LANDSCAPE_FLUSH_SECONDS": "0", PAUSE_ENV: f"2:{flag}"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not flag.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert flag.exists(), "rank 0 never reached its first flush"
    workers = [p for p in _children(proc.pid) if b"landscape" in Path(f"/proc/{p}/cmdline").read_bytes()]
    rank1 = [p for p in workers if b"\0RANK=1\0" in b"\0" + Path(f"/proc/{p}/environ").read_bytes()]
    assert len(rank1) == 1, workers
    os.kill(rank1[0], signal.SIGKILL)
    flag.unlink()  # rank 0 goes on; torchrun then stops the job, or rank 0 finishes it alone
    proc.communicate(timeout=120)
    partial = read_surface(out)  # the file always opens
    ref = read_surface(reference)
    n_done = int(partial.done.sum())
    assert proc.returncode != 0 or n_done == partial.grid.size
    np.testing.assert_allclose(partial.values["train_loss"][partial.done], ref.values["train_loss"][partial.done], rtol=1e-6)
    again = subprocess.run(torchrun("surface", str(ckpt), "--out", str(out), *grid), env=ENV, capture_output=True, text=True,
                           timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"{partial.grid.size}/{partial.grid.size} points done" in again.stdout
    final = read_surface(out)
    np.testing.assert_allclose(final.values["train_loss"], ref.values["train_loss"], rtol=1e-6)


@pytest.mark.parametrize(("operator", "per_call", "split"), [("ggn", "1", "both"), ("hessian", "3", "train")])
def test_two_ranks_give_the_curvature_of_one_process(ckpt: Path, tmp_path: Path, operator: str, per_call: str,
                                                     split: str) -> None:
    """Each rank holds half the samples, every product is summed over both: the same Lanczos, trace, SLQ and
    blocks (the Hessian's products 3 per call: one sum over the ranks for 3 products; both splits in one group)."""
    import json

    from landscape.cli import main

    args = ["--operator", operator, "--ignore", "none", "--density", "--density-runs", "2", "--density-steps", "10",
            "--trace-samples", "12", "--top-k", "2", "--max-iter", "30", "--products-per-call", per_call, "--split", split,
            *(["--blocks", "module"] if split == "train" else [])]
    single, shard = tmp_path / "single.json", tmp_path / "shard.json"
    assert main(["--quiet", "hessian", str(ckpt), "--out", str(single), *args]) == 0
    proc = subprocess.run(torchrun("hessian", str(ckpt), "--out", str(shard), *args), env=ENV, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("top eigenvalues") == (2 if split == "both" else 1)  # rank 0 alone reports
    a, b = json.loads(single.read_text()), json.loads(shard.read_text())
    if split == "both":
        for name, n in (("train", 200), ("test", 50)):
            _same_curvature(a["reports"][name], b["reports"][name], n, int(per_call))
    else:
        _same_curvature(a, b, 200, int(per_call))
        assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("shard")) == [
            "shard.blocks.png", "shard.density.png", "shard.json"]


def _same_curvature(a: dict[str, Any], b: dict[str, Any], samples: int, per_call: int) -> None:
    assert "ranks" not in a and b["ranks"] == {"world_size": 2, "samples": [samples // 2, samples // 2]}
    assert a["product_path"] == b["product_path"] == "kept graph" and b["settings"]["products_per_call"] == per_call
    assert a["settings"]["num_samples"] == b["settings"]["num_samples"] == samples
    for key in ("loss", "grad_norm", "eigenvalues", "min_eigenvalue", "exact_trace"):
        np.testing.assert_allclose(b[key], a[key], rtol=1e-5, atol=1e-7, err_msg=key)
    assert b["trace"]["estimate"] == pytest.approx(a["trace"]["estimate"], rel=1e-5)
    np.testing.assert_allclose(b["density"]["nodes"], a["density"]["nodes"], rtol=1e-5, atol=1e-7)
    # two runs' nodes may swap places where they nearly coincide: compare the measures by their moments
    lam_a, w_a, lam_b, w_b = (np.array(a["density"]["nodes"]), np.array(a["density"]["weights"]),
                              np.array(b["density"]["nodes"]), np.array(b["density"]["weights"]))
    for k in range(5):
        assert float(w_b @ lam_b**k) == pytest.approx(float(w_a @ lam_a**k), rel=1e-5), k
    assert [r["name"] for r in b.get("blocks", [])] == [r["name"] for r in a.get("blocks", [])]
    for ra, rb in zip(a.get("blocks", []), b.get("blocks", []), strict=True):
        assert rb["top_eigenvalue"] == pytest.approx(ra["top_eigenvalue"], rel=1e-5)
        assert rb["trace"] == pytest.approx(ra["trace"], rel=1e-5)


@pytest.mark.parametrize(("m", "measures"), [("0", "worst_l2,adaptive_average,fisher_rao,curvature"),
                                             ("25", "worst_linf,average")])
def test_two_ranks_give_the_sharpness_of_one_process(ckpt: Path, tmp_path: Path, m: str, measures: str) -> None:
    """Each rank holds half the samples: losses, gradients and products summed over both give the same ascent,
    draws and products; m-sharpness averages the m-sample batches of both ranks (100 samples a rank in
    batches of 50 cut into m = 25: the same eight m-batches as one process). ``--m`` is given as ``--set
    sharpness.m``: torchrun's own parser reads ``--m`` as an ambiguous abbreviation of its options."""
    import json

    from landscape.cli import main

    args = ["--measures", measures, "--rho", "0.05", "--steps", "5", "--samples", "4", "--set", f"sharpness.m={m}",
            "--batch-size", "50", "--ignore", "none"]
    single, shard = tmp_path / "single.json", tmp_path / "shard.json"
    assert main(["--quiet", "sharpness", str(ckpt), "--out", str(single), *args]) == 0
    proc = subprocess.run(torchrun("sharpness", str(ckpt), "--out", str(shard), *args), env=ENV, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("wrote") <= 1 and proc.stdout.count(measures.split(",")[0]) == 1  # rank 0 alone reports
    a, b = json.loads(single.read_text()), json.loads(shard.read_text())
    assert "ranks" not in a and b["ranks"] == {"world_size": 2, "samples": [100, 100]}
    assert a["settings"]["num_samples"] == b["settings"]["num_samples"] == 200
    assert b["loss"] == pytest.approx(a["loss"], rel=1e-6)
    assert [r["measure"] for r in b["measures"]] == [r["measure"] for r in a["measures"]] == measures.split(",")
    for ra, rb in zip(a["measures"], b["measures"], strict=True):
        assert rb["value"] == pytest.approx(ra["value"], rel=1e-4, abs=1e-9), ra["measure"]
        if ra["stderr"] is not None:
            assert rb["stderr"] == pytest.approx(ra["stderr"], rel=1e-4, abs=1e-9), ra["measure"]
        if m != "0":
            assert ra["batches"] == rb["batches"] == 8 and ra["m"] == rb["m"] == 25
