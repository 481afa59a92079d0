"""scripts/bench_api.py --smoke runs end to end and its pairs agree value for value (no timing is asserted)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_api.py"


def test_bench_api_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    spec = importlib.util.spec_from_file_location("bench_api", SCRIPT)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    sys.modules["bench_api"] = bench
    try:
        spec.loader.exec_module(bench)
        assert bench.main(["--smoke"]) == 0
    finally:
        sys.modules.pop("bench_api", None)
    out = capsys.readouterr().out
    rows = [line for line in out.splitlines() if line.startswith(("(a)", "(b)", "(c) API"))]
    assert len(rows) == 3, out
    for row in rows:  # the API, the CLI, a DataLoader, streamed data and the paper's loop give the same surface
        diff = float(row.split()[-2])
        assert diff <= 1e-6, row
    assert "(d) memory" in out
