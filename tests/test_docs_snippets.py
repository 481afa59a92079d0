"""Every ```python block of README.md and docs/API.md runs as written (in order, one namespace per
file, in a scratch folder), so the documentation cannot drift from the code."""

from __future__ import annotations

from pathlib import Path

import pytest
from docblocks import REPO, python_blocks, run_blocks

DOCS = ["README.md", "docs/API.md"]


@pytest.mark.parametrize("doc", DOCS)
def test_every_python_block_runs(doc: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    blocks, _ = run_blocks(doc)
    assert blocks, f"{doc} has no python blocks"


def test_the_api_guide_draws_what_it_says(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The guide's figures are real files with content, and its first surface is around a trained model."""
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "__docs__"}
    trained = next(b for b in python_blocks(REPO / "docs/API.md") if "SGD" in b)
    exec(compile(trained, "docs/API.md, the trained model", "exec"), namespace)
    s = namespace["s"]
    loss = s["train_loss"]  # type: ignore[index]
    assert loss[5, 5] == loss.min() or loss[5, 5] < loss[0, 0]  # the trained model sits low
    assert (tmp_path / "contour.png").stat().st_size > 5000
