"""``index.html``: one page that sums up a run or a comparison (settings, numbers, every figure).

``landscape run`` and ``landscape compare`` write it next to their figures. The page links every
file of the folder's ``figures/`` (PNG shown as a picture, each linking to itself; PDF and SVG
linked beside it) and every interactive view of ``interactive/`` (listed first), shows the resolved config as TOML and
the numbers as tables. It is plain HTML with inline CSS: no script, nothing fetched, so it
opens anywhere, and its links are relative, so the folder can be moved or zipped.
"""

from __future__ import annotations

import html
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from landscape.atomic import write_text_atomic
from landscape.errors import LandscapeError, install_hint
from landscape.figures.estimates import progressive_summary
from landscape.figures.interactive import SUFFIX, plotly_available
from landscape.io.surface_file import read_surface
from landscape.version import __version__

__all__ = ["Table", "run_tables", "write_index", "write_run_index"]

INDEX = "index.html"
_PICTURES = (".png", ".svg")
_ORDER = {".png": 0, ".svg": 1, ".pdf": 2}

_CSS = """
body { font: 15px/1.45 system-ui, sans-serif; margin: 2em auto; max-width: 1200px; padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .6em 0 1.2em; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #ddd; padding: .25em .6em; text-align: right; } th { background: #f4f4f4; }
td:first-child, th:first-child { text-align: left; }
pre { background: #f6f6f6; padding: .8em; overflow-x: auto; font-size: 13px; }
.grid { display: flex; flex-wrap: wrap; gap: 1.2em; }
figure { margin: 0; width: 360px; } figure img { width: 100%; border: 1px solid #eee; }
figcaption { font-size: 13px; color: #555; } .note { color: #555; }
"""


@dataclass(frozen=True)
class Table:
    """A titled table: one dict per row, the first row's keys are the columns."""

    title: str
    rows: Sequence[Mapping[str, Any]]
    note: str = ""


@dataclass(frozen=True)
class _Figures:
    views: list[Path] = field(default_factory=list)  # interactive pages
    groups: dict[str, list[Path]] = field(default_factory=dict)  # stem → its files, PNG first


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.4g}"
    return "–" if value is None else str(value)


def _table(table: Table) -> str:
    if not table.rows:
        return ""
    columns = list(table.rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(_cell(row.get(c)))}</td>" for c in columns) + "</tr>"
                   for row in table.rows)
    note = f'<p class="note">{html.escape(table.note)}</p>' if table.note else ""
    return f"<h3>{html.escape(table.title)}</h3>{note}<table><tr>{head}</tr>{body}</table>"


def _figures(folders: Sequence[Path]) -> _Figures:
    found = _Figures()
    for path in sorted(p for folder in folders if folder.is_dir() for p in folder.iterdir()):
        if path.name.endswith(SUFFIX):
            found.views.append(path)
        elif path.suffix in _ORDER:
            found.groups.setdefault(path.stem, []).append(path)
    for files in found.groups.values():
        files.sort(key=lambda p: _ORDER[p.suffix])
    return found


def _link(root: Path, path: Path) -> str:
    return html.escape(Path(os.path.relpath(path, root)).as_posix(), quote=True)


def _figure_section(root: Path, figures: _Figures) -> str:
    parts = ["<h2>Interactive views</h2>"]
    if figures.views:
        parts.append("<ul>" + "".join(f'<li><a href="{_link(root, v)}">{html.escape(v.name)}</a></li>'
                                      for v in figures.views) + "</ul>")
        parts.append('<p class="note">Each is one self-contained page (3D surface and heatmap, train/test, '
                     "loss/accuracy, linear/log); it opens without a server or network.</p>")
    elif plotly_available():
        parts.append('<p class="note">None were written.</p>')
    else:
        hint = html.escape(install_hint("interactive"))
        parts.append(f'<p class="note">Not written: plotly is not installed (<code>{hint}</code>, then run the same '
                     "command again).</p>")
    parts.append("<h2>Figures</h2>")
    cards = []
    for stem, files in figures.groups.items():
        picture = next((f for f in files if f.suffix in _PICTURES), None)
        links = " · ".join(f'<a href="{_link(root, f)}">{f.suffix[1:].upper()}</a>' for f in files)
        image = f'<a href="{_link(root, picture)}"><img src="{_link(root, picture)}" alt="{html.escape(stem)}"></a>' if picture else ""
        cards.append(f"<figure>{image}<figcaption>{html.escape(stem)}: {links}</figcaption></figure>")
    parts.append(f'<div class="grid">{"".join(cards)}</div>' if cards else '<p class="note">No figures.</p>')
    return "".join(parts)


def write_index(folder: str | Path, *, title: str, settings: str, tables: Sequence[Table] = (),
                files: Sequence[Path] = (), figure_dirs: Sequence[str] = ("figures", "interactive")) -> Path:
    """Write ``<folder>/index.html``: title, tables, links to ``files``, every figure and view of ``figure_dirs``, settings.

    ``settings`` is the resolved config as TOML text; ``files`` are other outputs worth a link
    (tables as CSV/Markdown, the trajectory, ...). Returns the path.
    """
    root = Path(folder)
    figures = _figures([root / d for d in figure_dirs])
    listed = "".join(f'<li><a href="{_link(root, f)}">{html.escape(Path(os.path.relpath(f, root)).as_posix())}</a></li>'
                     for f in files if Path(f).exists())
    page = "\n".join([
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f'<p class="note">Written by landscape {html.escape(__version__)}. Links are relative to this folder.</p>',
        _trust_section(root),
        "<h2>Numbers</h2>", *(_table(t) for t in tables),
        _figure_section(root, figures),
        f"<h2>Other files</h2><ul>{listed}</ul>" if listed else "",
        "<h2>Settings (resolved config)</h2>", f"<pre>{html.escape(settings)}</pre>",
        "</body></html>", ""])
    target = root / INDEX
    write_text_atomic(target, page)
    return target


def _trust_section(root: Path) -> str:
    """"Can I trust this?": the verdicts of ``<root>/check.json`` (``landscape check``), when there is one."""
    try:
        report = json.loads((root / "check.json").read_text())
        checks = list(report["checks"])
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    colour = {"pass": "#1a7f37", "warn": "#b35900", "fail": "#c62828"}
    rows = "".join(
        f'<tr><td>{html.escape(str(c.get("name")))}</td>'
        f'<td style="color:{colour.get(str(c.get("status")), "#222")};font-weight:bold">{html.escape(str(c.get("status")))}</td>'
        f'<td>{html.escape(_cell(c.get("value")))}</td><td>{html.escape(_cell(c.get("threshold")))}</td>'
        f'<td style="text-align:left">{html.escape(str(c.get("advice", "")))}</td></tr>' for c in checks)
    return ('<h2>Can I trust this?</h2><p class="note">Each check of <a href="check.json">check.json</a> tests the '
            "figures against the model (what each one means and what to do when it warns: docs/CHECKS.md).</p>"
            f"<table><tr><th>check</th><th>status</th><th>value</th><th>threshold</th><th>advice</th></tr>{rows}</table>")


# --- the numbers of a run ---------------------------------------------------------------------------


def _origin(axis: np.ndarray) -> int | None:
    hits = np.flatnonzero(np.isclose(axis, 0.0, atol=1e-12))
    return int(hits[0]) if hits.size else None


def _surface_row(path: Path) -> dict[str, Any]:
    """Grid, points done, and the training loss at the origin and at its lowest, of one surface file."""
    try:
        sf = read_surface(path)
    except LandscapeError as err:
        return {"surface": path.name, "grid": f"unreadable: {err}"}
    shape = sf.grid.shape
    row: dict[str, Any] = {"surface": path.stem, "grid": "×".join(map(str, shape)), "done": f"{int(sf.done.sum())} of {sf.done.size}"}
    column = next((c for c in ("train_loss", "test_loss") if c in sf.columns), sf.columns[0])
    z = np.where(sf.done, sf.values[column], np.nan)
    i = _origin(sf.grid.x)
    j = None if sf.grid.y is None else _origin(sf.grid.y)
    at_origin = z[i] if sf.grid.y is None and i is not None else (z[i, j] if i is not None and j is not None else math.nan)
    finite = z[np.isfinite(z)]
    row |= {"metric": column, "at origin": float(at_origin), "lowest": float(finite.min()) if finite.size else math.nan,
            "highest": float(finite.max()) if finite.size else math.nan}
    estimate = progressive_summary(sf)
    if estimate is not None:  # a progressive surface: how settled its estimates are, how much data they read
        row |= {"largest s.e. / T": estimate["max_stderr_in_T"].get(column),
                "data read %": estimate["data_read_percent"].get(column.split("_", 1)[0])}
        if "computed_percent" in estimate:
            row["points computed %"] = estimate["computed_percent"]
    return row


def run_tables(manifest: Mapping[str, Any], surfaces: Sequence[Path]) -> list[Table]:
    """The numbers of a ``landscape run``: final metrics of the training, and each surface's summary."""
    epochs = [c for c in manifest.get("checkpoints", []) if c.get("kind") == "epoch"]
    tables = []
    if epochs:
        keys = ("epoch", "train_loss", "test_loss", "train_acc", "test_acc")
        tables.append(Table("Training", [{k: c.get(k) for k in keys if any(k in e for e in epochs)} for c in epochs[-1:]],
                            "The final checkpoint (the origin of every surface), over the whole splits."))
    rows = [_surface_row(p) for p in surfaces if p.exists()]
    columns = dict.fromkeys(k for row in rows for k in row)  # every row gets the columns of any (progressive) surface
    rows = [{k: row.get(k) for k in columns} for row in rows]
    if rows:
        tables.append(Table("Surfaces", rows, "Values of the first loss column of each file; unfinished points are left out."))
    return tables


def write_run_index(out: Path, surfaces: Sequence[Path]) -> Path:
    """``<out>/index.html`` of a ``landscape run`` folder: training and surface numbers, figures, views, config."""
    manifest = json.loads((out / "run.json").read_text())
    config = manifest.get("config", {})
    what = f"{config.get('model', {}).get('name', '?')} on {config.get('data', {}).get('name', '?')}"
    settings = (out / "run_config.toml").read_text() if (out / "run_config.toml").exists() else ""
    files = [out / "run_config.toml", out / "run.json", out / "trajectory.h5", *surfaces]
    return write_index(out, title=f"landscape run: {what}", settings=settings, tables=run_tables(manifest, surfaces),
                       files=files)
