"""Every ```python block of README.md and docs/API.md runs as written (in order, one namespace per
file, in a scratch folder) and prints what the page shows after it (docblocks.py: the convention
and its tolerance), so the documentation cannot drift from the code."""

from __future__ import annotations

from pathlib import Path

import pytest
from docblocks import REPO, blocks, mismatch, python_blocks, run_blocks

DOCS = ["README.md", "docs/API.md"]


@pytest.mark.parametrize("doc", DOCS)
def test_every_python_block_runs_and_prints_what_the_page_shows(doc: str, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, _ = run_blocks(doc)
    assert code, f"{doc} has no python blocks"
    assert any(b.output is not None for b in blocks(REPO / doc)), f"{doc} shows no output to check"


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


@pytest.mark.parametrize(("shown", "printed", "ok"), [
    ("1438 images", "1438 images", True),
    ("1437 images", "1438 images", False),  # an integer is exact: the wrong count the pages once had
    ("0.1947", "0.19474270413415987", True),
    ("0.1947", "0.1949", False),  # ±1 in the last digit shown, no more
    ("[3.513, 2.788] -0.018 19.5", "[3.5129850976066015, 2.7878478381870244] -0.018195497304183184 19.49932229825653", True),
    ("[3.513, 2.788] -0.018 19.5", "[3.5129850976066015, 2.7878478381870244] -0.018195497304183184 19.7", False),
    ("3e-07", "2.4e-07", True),
    ("['train_loss', 'train_acc']", "['train_loss', 'test_acc']", False),  # text exactly
    ("Surface(11×11 grid)", "Surface(11×11 grid)\nmore", False),  # every line
])
def test_the_comparison_of_printed_and_shown_output(shown: str, printed: str, ok: bool) -> None:
    assert (mismatch(shown, printed) is None) == ok


def test_a_wrong_number_or_an_unshown_print_in_a_page_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    page = tmp_path / "page.md"
    page.write_text("Text.\n\n```python\nn = 1438\nprint(n, 'images')\n```\n\n```output\n1437 images\n```\n")
    with pytest.raises(AssertionError, match="printed 1438 where the page shows 1437"):
        run_blocks(page)
    page.write_text("```python\nprint(1438)\n```\n")
    with pytest.raises(AssertionError, match="prints but shows no output block"):
        run_blocks(page)
    page.write_text("```bash\necho 1\n```\n\n```output\n1\n```\n")
    with pytest.raises(AssertionError, match="must follow a python block"):
        run_blocks(page)
    page.write_text("```python\nprint(1438)\n```\n\n```output\n1438\n```\n")
    assert run_blocks(page)[0] == ["print(1438)\n"]
