"""The README and the pages under docs/ hold no dead links and name no file that does not exist.

Checked: every relative Markdown link or image (``[text](target)``, ``![alt](target)``) in
README.md and docs/*.md points at an existing file or folder, and its ``#anchor``, if any, at a
heading of the target page (GitHub's rule: lower case, punctuation dropped, spaces to hyphens);
every ``landscape/...`` path written in backticks exists; the README's Architecture section
names every subpackage and every top-level module of ``landscape/`` (but ``__main__.py``), and nothing else.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[(?:[^\]\\]|\\.)*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
FENCE = re.compile(r"^```.*?^```", re.M | re.S)
CODE_PATH = re.compile(r"`(landscape/[\w/.]+)`")


def prose(page: Path) -> str:
    """The page without its fenced code blocks (links and paths there are examples, not references)."""
    return FENCE.sub("", page.read_text(encoding="utf-8"))


def anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip()).lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    return {anchor(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*#*$", prose(page), re.M)}


def relative_links(page: Path) -> list[str]:
    return [t for t in LINK.findall(prose(page)) if not re.match(r"^[a-z][a-z0-9+.-]*:", t)]


def test_the_pages_exist_and_have_links() -> None:
    names = {p.name for p in PAGES}
    assert {"README.md", "RELIABILITY.md", "FORMATS.md", "CONFIGS.md", "SPEED.md", "COMPARE.md"} <= names
    assert len(relative_links(REPO / "README.md")) >= 10


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for target in relative_links(page):
        path_part, _, fragment = target.partition("#")
        resolved = (page.parent / path_part).resolve() if path_part else page
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
            broken.append(f"{target}: no heading #{fragment} in {resolved.relative_to(REPO)}")
    assert not broken, broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_package_path_named_exists(page: Path) -> None:
    missing = [p for p in CODE_PATH.findall(page.read_text(encoding="utf-8")) if not (REPO / p).exists()]
    assert not missing, missing


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {(REPO / t.partition("#")[0]).resolve() for t in relative_links(REPO / "README.md")}
    unlinked = [p.name for p in PAGES[1:] if p.resolve() not in linked and p.name != "README.md"]
    assert not unlinked, unlinked


def test_the_architecture_section_matches_the_tree() -> None:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    section = text.split("## Architecture", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"^\s{2}(\w+)/\s", section, re.M))
    packages = {p.parent.name for p in (REPO / "landscape").glob("*/__init__.py")}
    assert named == packages
    top = {p.name for p in (REPO / "landscape").glob("*.py") if p.name != "__main__.py"}
    assert set(re.findall(r"^\s{2}(\w+\.py)\s", section, re.M)) == top


def test_anchor_rule() -> None:
    assert anchor("Installing torch") == "installing-torch"
    assert anchor("Resuming, reusing, and what is never lost") == "resuming-reusing-and-what-is-never-lost"
    assert anchor("Scale-out with `torchrun`") == "scale-out-with-torchrun"
