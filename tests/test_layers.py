"""Imports between the parts of the package go one way (the README's Architecture section).

A part is a subpackage (``engine``, ``io``, ...) or a top-level module (``config``, ``errors``,
...). Every ``import`` and ``from ... import`` in a part's source, at module level or inside a
function, is read with :mod:`ast`; a part may import only the parts :data:`ALLOWED` names for it.
``from landscape import __version__`` is allowed everywhere: the version string is defined in
``landscape/__init__.py`` before anything else is imported.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "landscape"

_FOUNDATION = frozenset({"errors", "atomic", "config"})
ALLOWED: dict[str, frozenset[str]] = {
    "errors": frozenset(),
    "atomic": frozenset({"errors"}),
    "config": frozenset({"errors", "atomic"}),
    "zoo": _FOUNDATION,  # zoo.data takes its own DataConfig
    "engine": frozenset({"errors", "zoo"}),  # never config: the engine takes its own options
    "io": frozenset({"errors", "atomic", "engine"}),  # never config: a checkpoint's config is a plain dict here
    "figures": _FOUNDATION | {"engine", "io"},  # figures take a PlotConfig
    "workflows": _FOUNDATION | {"zoo", "engine", "io", "figures"},
}
TOP = frozenset({"api", "api_hessian", "api_sharpness", "api_trajectory", "cli", "__init__", "__main__"})  # may import anything


def part_of(path: Path) -> str:
    """``landscape/engine/grid.py`` → ``engine``; ``landscape/config.py`` → ``config``."""
    rel = path.relative_to(PACKAGE)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def imported_parts(source: str) -> Iterator[tuple[int, str]]:
    """(line, part) for every import of another part of ``landscape`` in ``source``."""
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module is not None:
            if node.module == "landscape":
                names = [f"landscape.{alias.name}" for alias in node.names if alias.name != "__version__"]
            else:
                names = [node.module]
        elif isinstance(node, ast.ImportFrom):
            raise AssertionError(f"line {node.lineno}: a relative import; write landscape.… in full")
        else:
            continue
        for name in names:
            parts = name.split(".")
            if parts[0] == "landscape" and len(parts) > 1:
                yield node.lineno, parts[1]


def violations(part: str, source: str) -> list[str]:
    allowed = ALLOWED[part]
    return [f"line {line}: {part} imports {other}" for line, other in imported_parts(source)
            if other != part and other not in allowed]


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_part_has_a_place_in_the_order() -> None:
    parts = {part_of(p) for p in SOURCES}
    assert parts - TOP == set(ALLOWED)


@pytest.mark.parametrize("path", [p for p in SOURCES if part_of(p) not in TOP], ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_go_down_the_layers_only(path: Path) -> None:
    assert violations(part_of(path), path.read_text(encoding="utf-8")) == []


def test_the_check_sees_an_upward_import_even_inside_a_function() -> None:
    source = "import torch\nfrom landscape.engine.grid import Grid\n\ndef f():\n    from landscape.workflows.run import run\n"
    assert violations("engine", source) == ["line 5: engine imports workflows"]
    assert violations("io", "import landscape.config\n") == ["line 1: io imports config"]
    assert violations("engine", "from landscape import io\n") == ["line 1: engine imports io"]
    assert violations("io", "from landscape import __version__\n") == []
