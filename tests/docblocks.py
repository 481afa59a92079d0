"""Run the ```python blocks of a Markdown page as written: in order, in one namespace."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

REPO = Path(__file__).resolve().parents[1]


def python_blocks(path: Path) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", path.read_text(), flags=re.S | re.M)


def run_blocks(doc: str) -> tuple[list[str], dict[str, Any]]:
    """Execute every python block of ``doc`` (relative to the repository) in the current folder;
    returns the blocks and the namespace they filled. Figures are closed after each block."""
    import matplotlib.pyplot as plt

    blocks = python_blocks(REPO / doc)
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    for i, block in enumerate(blocks):
        try:
            exec(compile(block, f"{doc} block {i + 1}", "exec"), namespace)
        finally:
            plt.close("all")
    return blocks, namespace
