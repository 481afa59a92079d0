"""Run the ```python blocks of a Markdown page as written (in order, in one namespace) and compare
what each prints with the page.

The convention (stated in docs/API.md): a block that prints is followed directly (blank lines
only between) by an ```output block holding what it prints. The comparison is line by line,
trailing spaces ignored; the text between numbers must be identical; an integer must be equal;
a decimal number must agree to ±1 in its last shown digit (``0.1947`` accepts 0.1946 to 0.1948,
``3e-07`` accepts 2e-07 to 4e-07), so a page shows the digits that matter and no more. A block
that prints without an output block, or an output block after anything but a python block, is an
error too: the page cannot claim an output the test does not check.
"""

from __future__ import annotations

import contextlib
import io
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

REPO = Path(__file__).resolve().parents[1]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```[ \t]*$", re.S | re.M)
NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


@dataclass(frozen=True)
class Block:
    code: str
    line: int  # of the opening fence, 1-based
    output: str | None = None  # the ```output block that follows it


def blocks(path: Path) -> list[Block]:
    """The python blocks of ``path``, each with the output block that follows it (if any)."""
    text = path.read_text()
    found: list[Block] = []
    python_end: int | None = None  # where the last fence closed, when it was a python block
    for m in FENCE.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        if m.group(1) == "output":
            if python_end is None or text[python_end : m.start()].strip():
                raise AssertionError(f"{path.name} line {line}: an output block must follow a python block directly")
            found[-1] = replace(found[-1], output=m.group(2))
        elif m.group(1) == "python":
            found.append(Block(m.group(2), line))
        python_end = m.end() if m.group(1) == "python" else None
    return found


def python_blocks(path: Path) -> list[str]:
    return [b.code for b in blocks(path)]


def _unit(shown: str) -> float:
    """One unit in the last digit of a decimal number as written: ``0.1947`` → 1e-4, ``3.5e-07`` → 1e-8."""
    mantissa, _, exponent = shown.lower().partition("e")
    decimals = len(mantissa.partition(".")[2])
    return float(10.0 ** (int(exponent or 0) - decimals))


def mismatch(expected: str, printed: str) -> str | None:
    """Why ``printed`` does not match the ``expected`` output block (the convention above); None if it does."""
    want = [line.rstrip() for line in expected.rstrip("\n").split("\n")]
    got = [line.rstrip() for line in printed.rstrip("\n").split("\n")]
    if len(want) != len(got):
        return f"{len(got)} lines printed, {len(want)} shown:\n{printed}"
    for w, g in zip(want, got, strict=True):
        if NUMBER.split(w) != NUMBER.split(g):
            return f"printed {g!r}, shown {w!r}"
        for a, b in zip(NUMBER.findall(w), NUMBER.findall(g), strict=True):
            exact = not any(c in a for c in ".eE")
            if (a != b) if exact else abs(float(b) - float(a)) > _unit(a) * (1 + 1e-9):
                return f"printed {b} where the page shows {a} (in {w!r})"
    return None


def run_blocks(doc: str | Path) -> tuple[list[str], dict[str, Any]]:
    """Execute every python block of ``doc`` (relative to the repository) in the current folder and check
    its printed output against the page; returns the blocks and the namespace they filled. Figures are
    closed after each block."""
    import matplotlib.pyplot as plt

    found = blocks(REPO / doc)
    namespace: dict[str, Any] = {"__name__": "__docs__"}
    for block in found:
        printed = io.StringIO()
        try:
            with contextlib.redirect_stdout(printed):
                exec(compile(block.code, f"{doc} line {block.line}", "exec"), namespace)
        finally:
            plt.close("all")
        where = f"{doc}, the block at line {block.line}"
        if block.output is None:
            assert not printed.getvalue(), f"{where} prints but shows no output block:\n{printed.getvalue()}"
        else:
            problem = mismatch(block.output, printed.getvalue())
            assert problem is None, f"{where}: {problem}"
    return [b.code for b in found], namespace
