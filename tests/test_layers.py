"""How the package's modules import each other: down the layers only, without cycles, and without
reaching into another subpackage's private names.

A part is a subpackage (``engine``, ``io``, ...) or a top-level module (``config``, ``errors``,
...). Every ``import`` and ``from ... import`` in a part's source, at module level or inside a
function, is read with :mod:`ast`; a part may import only the parts :data:`ALLOWED` names for it.
The version string lives in ``landscape/version.py`` (``landscape/__init__.py`` re-exports it), so
that no module needs the package's ``__init__``, which imports the public API.

Two checks over the whole module graph (:func:`module_graph`, also fed every function-level
import): no import cycle (:func:`cycles` reports one path per strongly connected component), and
no private name (a leading underscore, not a dunder: a function, a class, a module) of one
subpackage imported into, or read as a module attribute (``files._helper``) from, another
(:func:`private_uses`). The subpackage of a module is the first level below the package
(``landscape.io`` for ``landscape/io/checkpoint.py``); top-level modules share the package itself.
Importing a module runs its parent packages' ``__init__`` first; those implicit edges are not
counted (a parent is already being imported when its children are).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "landscape"

_FOUNDATION = frozenset({"errors", "atomic", "config", "version"})
ALLOWED: dict[str, frozenset[str]] = {
    "version": frozenset(),
    "errors": frozenset(),
    "testhooks": frozenset({"errors"}),  # the environment variables of the crash tests, read once
    "atomic": frozenset({"errors", "testhooks"}),
    "config": frozenset({"errors", "atomic", "engine"}),  # [directions] and [check] are the engine's own option types
    "zoo": _FOUNDATION,  # zoo.data takes its own DataConfig
    "engine": frozenset({"errors", "zoo", "testhooks"}),  # never config: the engine takes its own options
    "io": frozenset({"errors", "atomic", "engine", "version", "testhooks"}),  # never config: a checkpoint's config is a plain dict here
    "figures": _FOUNDATION | {"engine", "io"},  # figures take a PlotConfig
    "workflows": _FOUNDATION | {"zoo", "engine", "io", "figures"},
}
TOP = frozenset({"api", "cli", "flags", "__init__", "__main__",
                 "integrations"})  # may import anything (integrations: callbacks and loggers over the API)


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
            if node.module == "landscape":  # a submodule, or a name of landscape/__init__.py (the public API)
                names = [f"landscape.{'__init__' if alias.name.startswith('_') else alias.name}" for alias in node.names]
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
    assert violations("io", "from landscape import __version__\n") == ["line 1: io imports __init__"]
    assert violations("io", "from landscape.version import __version__\n") == []



# --- the module graph: no cycle, no private name across subpackages ----------------------------------


@dataclass(frozen=True)
class Use:
    """``module`` imports ``target`` (``name`` "") or takes ``name`` from it (an import or an attribute read)."""

    module: str
    line: int
    target: str
    name: str = ""


def module_names(package: Path) -> dict[str, Path]:
    """Dotted name → file of every module under ``package`` (a package by its ``__init__.py``)."""
    names = {}
    for path in sorted(package.rglob("*.py")):
        parts = list(path.relative_to(package.parent).with_suffix("").parts)
        names[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return names


def longest_module(dotted: str, modules: dict[str, Path]) -> str | None:
    parts = dotted.split(".")
    return next((".".join(parts[:n]) for n in range(len(parts), 0, -1) if ".".join(parts[:n]) in modules), None)


def uses(module: str, modules: dict[str, Path]) -> list[Use]:
    """Every import of one of ``modules`` in ``module``'s source, at any depth (relative ones resolved), and
    every attribute read through a name bound to such a module (``files._helper``, ``landscape.io.x``)."""
    path = modules[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[Use] = []
    bound: dict[str, str] = {}  # local name → module, one namespace per file (enough for these checks)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                target = longest_module(alias.name, modules)
                if target is not None:
                    found.append(Use(module, node.lineno, target))
                    top = alias.name.partition(".")[0]
                    if alias.asname:
                        bound[alias.asname] = target
                    elif top in modules:
                        bound[top] = top
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # from . import x, from ..io import y
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            for alias in node.names:
                if f"{base}.{alias.name}" in modules:
                    found.append(Use(module, node.lineno, f"{base}.{alias.name}"))
                    bound[alias.asname or alias.name] = f"{base}.{alias.name}"
                elif base in modules:
                    found.append(Use(module, node.lineno, base, alias.name))
    for node in ast.walk(tree):
        chain: list[str] = []
        value: ast.expr = node if isinstance(node, ast.Attribute) else ast.Constant(None)
        while isinstance(value, ast.Attribute):
            chain.insert(0, value.attr)
            value = value.value
        if isinstance(value, ast.Name) and value.id in bound and chain:
            dotted = ".".join([bound[value.id], *chain])
            target = longest_module(dotted, modules)
            assert target is not None
            if target != dotted:
                found.append(Use(module, node.lineno, target, dotted[len(target) + 1 :].partition(".")[0]))
    return [u for u in found if u.target != module]


def module_graph(package: Path) -> dict[str, list[Use]]:
    """Every module of ``package`` → what it uses of the others."""
    modules = module_names(package)
    return {m: uses(m, modules) for m in modules}


def cycles(graph: dict[str, list[Use]]) -> list[str]:
    """One import cycle per strongly connected component of ``graph`` (Tarjan), as "a → b (a line 3) → a (b line 7)"."""
    edges = {m: sorted({u.target for u in us}) for m, us in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while not component or component[-1] != v:
                component.append(stack.pop())
            components.append(component)

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return [shortest_cycle(sorted(c)[0], set(c), graph) for c in components if len(c) > 1]


def shortest_cycle(start: str, members: set[str], graph: dict[str, list[Use]]) -> str:
    """A shortest path from ``start`` back to itself through ``members``, with the line of each import."""
    came: dict[str, Use] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for use in graph[v]:
                if use.target in members and use.target not in came:
                    came[use.target] = use
                    nxt.append(use.target)
        if start in came:
            break
        frontier = nxt
    steps = [came[start]]
    while steps[-1].module != start:
        steps.append(came[steps[-1].module])
    return " → ".join([start] + [f"{u.target} ({u.module} line {u.line})" for u in reversed(steps)])


def subpackage(dotted: str, modules: dict[str, Path]) -> str:
    """``landscape.io`` for anything in landscape/io/; the package itself for its top-level modules."""
    parts = dotted.split(".")
    first = ".".join(parts[:2])
    return first if len(parts) > 1 and first in modules and modules[first].name == "__init__.py" else parts[0]


def private_uses(package: Path) -> list[str]:
    """Uses of a private name (``_x``, not a dunder) of one subpackage by a module of another."""
    modules = module_names(package)
    found = []
    for module, us in module_graph(package).items():
        for use in us:
            parts = [*use.target.split("."), *([use.name] if use.name else [])]
            i = next((i for i, p in enumerate(parts) if p.startswith("_") and not p.endswith("__")), None)
            if i is not None and subpackage(".".join(parts[:i]), modules) != subpackage(module, modules):
                found.append(f"{module} line {use.line}: {'.'.join(parts[: i + 1])}")
    return sorted(set(found))


def too_long(package: Path, limit: int = 600) -> list[str]:
    """Modules of ``package`` longer than ``limit`` lines, with their lengths."""
    lengths = {p: len(p.read_text(encoding="utf-8").splitlines()) for p in sorted(package.rglob("*.py"))}
    return [f"{p.relative_to(package.parent)}: {n} lines" for p, n in lengths.items() if n > limit]


def test_no_import_cycle() -> None:
    assert cycles(module_graph(PACKAGE)) == []


def test_no_private_name_crosses_a_subpackage() -> None:
    assert private_uses(PACKAGE) == []


def test_no_module_is_longer_than_600_lines() -> None:
    assert too_long(PACKAGE) == []


def write_tree(root: Path, files: dict[str, str]) -> Path:
    """A package ``pkg`` under ``root`` from {relative path: source}; returns its folder."""
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root / "pkg"


def test_the_checks_find_cycles_also_through_function_level_and_relative_imports(tmp_path: Path) -> None:
    pkg = write_tree(tmp_path, {
        "pkg/__init__.py": "from pkg.version import __version__\n",
        "pkg/version.py": "__version__ = '1'\n",
        "pkg/a.py": "from pkg.b import g\n",
        "pkg/b.py": "def g():\n    from pkg import a\n",  # a ↔ b, the way back inside a function
        "pkg/c.py": "import pkg.a\nfrom pkg import __version__\n",  # c → a and c → pkg: no cycle
        "pkg/sub/__init__.py": "",
        "pkg/sub/x.py": "from . import y\n",  # x ↔ y, relative
        "pkg/sub/y.py": "from .x import f\n",
        "pkg/sub/z.py": "from ..sub import y\n",  # z → y only
    })
    assert cycles(module_graph(pkg)) == ["pkg.a → pkg.b (pkg.a line 1) → pkg.a (pkg.b line 2)",
                                         "pkg.sub.x → pkg.sub.y (pkg.sub.x line 1) → pkg.sub.x (pkg.sub.y line 1)"]
    (pkg / "version.py").write_text("from pkg.c import helper\n")  # a three-module loop through the package's __init__
    assert "pkg → pkg.version (pkg line 1) → pkg.c (pkg.version line 1) → pkg (pkg.c line 2)" in cycles(module_graph(pkg))


def test_the_checks_find_private_names_taken_across_subpackages(tmp_path: Path) -> None:
    pkg = write_tree(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/cli.py": "from pkg.workflows._steps import run\nimport pkg.workflows._steps as steps\nfrom pkg import _util\n",
        "pkg/_util.py": "",
        "pkg/figures/__init__.py": "",
        "pkg/figures/files.py": "def _foo(): ...\ndef bar(): ...\n",
        "pkg/figures/interactive.py": "from pkg.figures.files import _foo\nfrom pkg.figures import files\nfiles._foo()\n",
        "pkg/workflows/__init__.py": "",
        "pkg/workflows/_steps.py": "from pkg.figures.files import bar, _foo\n",
        "pkg/workflows/run.py": "from pkg.figures import files\nfrom pkg.workflows import _steps\n\n\ndef f():\n    return files._foo, files.bar\n",
    })
    assert private_uses(pkg) == [  # the same subpackage (figures, workflows, the top level) may; another may not
        "pkg.cli line 1: pkg.workflows._steps",
        "pkg.cli line 2: pkg.workflows._steps",
        "pkg.workflows._steps line 1: pkg.figures.files._foo",
        "pkg.workflows.run line 6: pkg.figures.files._foo",
    ]


def test_the_length_check_names_a_long_module(tmp_path: Path) -> None:
    pkg = write_tree(tmp_path, {"pkg/__init__.py": "", "pkg/long.py": "x = 1\n" * 601, "pkg/short.py": "x = 1\n" * 600})
    assert too_long(pkg) == ["pkg/long.py: 601 lines"]


def test_config_takes_only_the_direction_and_check_options_from_the_engine() -> None:
    # One type per concept: the [directions] and [check] sections are the engine's DirectionOptions and
    # CheckOptions. Nothing else: engine.check itself would close a cycle (engine.grid imports zoo.data,
    # which imports config), which is why CheckOptions lives in its own small module.
    tree = ast.parse((PACKAGE / "config.py").read_text(encoding="utf-8"))
    engine = {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and (n.module or "").startswith("landscape.engine")}
    assert engine == {"landscape.engine.directions", "landscape.engine.checkoptions"}
