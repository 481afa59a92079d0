"""The benchmark script runs: ``scripts/bench_surface.py --smoke`` on a 3×3 grid of the digits MLP.

Its numbers are not checked (timings are no test); that it finishes, that the engine's values
agree with the faithful loop's (the script asserts it) and that it prints its table row are.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_surface_benchmark_runs_on_a_tiny_case() -> None:
    env = {**os.environ, "LANDSCAPE_QUIET": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "bench_surface.py"), "--smoke", "--threads", "1"],
                          capture_output=True, text=True, env=env, timeout=240, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert "median of 2 rounds alternating the order" in done.stdout
    row = next(line for line in done.stdout.splitlines() if line.startswith("digits MLP"))
    # case, points (9 = 3×3), faithful pts/s, ours pts/s, ratio, K, max rel diff, ...
    assert re.match(r"digits MLP \(64-64\)\s+9\s+[\d.]+\s+[\d.]+\s+[\d.]+x\s+\d+\s+[\d.e+-]+\s", row), row
