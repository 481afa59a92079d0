"""Tables of results as CSV (full precision) and Markdown (four significant digits), written atomically."""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from landscape.atomic import write_text_atomic


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(value)  # full precision; inf and nan as Python writes them
    return str(value)


def _md_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        if math.isinf(value):
            return "> slice" if value > 0 else "−inf"
        return f"{value:.4g}"
    return str(value)


def markdown_table(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The lines of a Markdown table whose header is the first row's keys (None: an empty cell)."""
    keys = list(rows[0])
    lines = ["| " + " | ".join(keys) + " |", "|" + "|".join("---" for _ in keys) + "|"]
    lines += ["| " + " | ".join(_md_value(row[k]) for k in keys) + " |" for row in rows]
    return lines


def write_csv(path: Path, rows: Sequence[Mapping[str, Any]]) -> None:
    """A CSV file whose header is the first row's keys; floats at full precision, None as an empty cell."""
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(list(rows[0]))
    writer.writerows([[_csv_value(v) for v in row.values()] for row in rows])
    write_text_atomic(path, text.getvalue())
