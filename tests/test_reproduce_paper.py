"""The reproduction pipeline end to end at miniature scale (tiny nets, 3×3 grids): it checks that
every stage runs and the report and figures are written, not the paper's findings."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FIGURES = ("fig5_skip_connections", "fig7_eig_ratio", "fig6_width", "fig3_interpolation",
           "fig4_filter_normalized_1d", "fig9_trajectory")


@pytest.mark.slow  # 27 s on 2 cores; about 2 min when they are shared with other jobs
def test_mini_reproduction_writes_report_and_figures(tmp_path: Path) -> None:
    env = {**os.environ, "PYTHON": sys.executable, "LANDSCAPE_QUIET": "1",
           "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    res = subprocess.run(["bash", str(ROOT / "scripts" / "reproduce_paper.sh"), "--mini", str(tmp_path), "--threads", "1"],
                         env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    report = (tmp_path / "REPRODUCTION.md").read_text()
    for name in FIGURES:
        png = tmp_path / "img" / "repro" / f"{name}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        assert f"img/repro/{name}.png" in report
    assert "miniature pipeline check" in report
    for row in ("| ResNet-20 |", "| ResNet-20-noshort |", "| vgg9_lb_wd |", "| vgg9_sb |"):
        assert row in report
    verdicts = json.loads((tmp_path / "work" / "verdicts.json").read_text())
    assert set(verdicts) == {"skip", "width", "batch", "traj"}
    assert 0.0 < sum(verdicts["traj"]["pc1_plus_pc2"].values()) <= 2.0 + 1e-9  # two ratios, each in (0, 1]
