"""Results that display themselves in Jupyter: ``_repr_png_`` (a figure) and ``_repr_html_`` (a table).

Mixins of the API's result classes (no fields, nothing imported until a notebook asks):

- :class:`SurfaceDisplay` (``landscape.Surface``): the contour (2D; with the path over it when the
  surface was computed over a trajectory's plane) or the curve (1D) as PNG; a
  table of the grid and of each column's minimum, maximum and value at the origin;
- :class:`TrajectoryDisplay` (``landscape.Trajectory``): the path in its PCA plane as PNG (axes
  with the explained variance); a table of the checkpoints and their coordinates;
- :class:`HessianDisplay` (``landscape.HessianResult``): a table of the eigenvalues and the trace.

Jupyter calls these when a result is the last expression of a cell; a failure to draw shows the
plain ``repr`` instead (Jupyter's rule for a display method that returns None).
"""

from __future__ import annotations

import html
import io
from collections.abc import Sequence
from typing import Any

import numpy as np
from matplotlib.figure import Figure

_DPI = 100


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)
    return buf.getvalue()


def _table(caption: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    def cell(v: Any, tag: str) -> str:
        text = f"{v:.6g}" if isinstance(v, float | np.floating) else str(v)
        return f"<{tag}>{html.escape(text)}</{tag}>"
    head = "".join(cell(h, "th") for h in header)
    body = "".join("<tr>" + "".join(cell(v, "td") for v in row) + "</tr>" for row in rows)
    return (f'<table class="landscape"><caption>{html.escape(caption)}</caption>'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>")


class SurfaceDisplay:
    """``landscape.Surface`` in a notebook: its contour (or curve) and a table of its columns."""

    def _repr_png_(self) -> bytes:
        s: Any = self
        return _png(s.figure())  # the result class draws (the API imports this module, not the other way)

    def _repr_html_(self) -> str:
        s: Any = self
        at_origin = [int(np.argmin(np.abs(s.x)))] + ([] if s.y is None else [int(np.argmin(np.abs(s.y)))])
        origin = bool(s.x[at_origin[0]] == 0 and (s.y is None or s.y[at_origin[1]] == 0))
        rows = []
        for c in s.columns:
            v = np.asarray(s.values[c], dtype=np.float64)
            finite = v[np.isfinite(v)]
            rows.append([c, float(finite.min()) if finite.size else "—", float(finite.max()) if finite.size else "—",
                         float(v[tuple(at_origin)]) if origin else "—"])
        grid = f"{'×'.join(map(str, s.shape))} grid, x {s.x[0]:g}…{s.x[-1]:g}" + ("" if s.y is None else f", y {s.y[0]:g}…{s.y[-1]:g}")
        return _table(f"Surface: {grid}", ["column", "min", "max", "at the origin"], rows)


class TrajectoryDisplay:
    """``landscape.Trajectory`` in a notebook: the path in its PCA plane and a table of its points."""

    def _repr_png_(self) -> bytes:
        t: Any = self
        fig = Figure(figsize=(4.0, 3.4))
        ax = fig.add_subplot()
        ax.plot(t.coords[:, 0], t.coords[:, 1], "-o", color="tab:red", markersize=3, linewidth=1.2)
        ax.plot(*t.coords[0], "o", markerfacecolor="white", markeredgecolor="black", label="start")
        ax.plot(*t.coords[-1], "*", color="black", markersize=9, label="end")
        ev = t.explained_variance
        ax.set_xlabel(f"PC1 ({100 * ev[0]:.1f} %)")
        ax.set_ylabel(f"PC2 ({100 * ev[1]:.1f} %)")
        ax.legend(loc="best", fontsize=8)
        fig.tight_layout()
        return _png(fig)

    def _repr_html_(self) -> str:
        t: Any = self
        rows = [[i, str(t.names[i]), int(t.steps[i]), int(t.epochs[i]), float(t.coords[i, 0]), float(t.coords[i, 1]),
                 float(t.losses[i])] for i in range(len(t.coords))]
        ev = t.explained_variance
        return _table(f"Trajectory: {len(t.coords)} points, PC1 {100 * ev[0]:.1f} %, PC2 {100 * ev[1]:.1f} %",
                      ["#", "checkpoint", "step", "epoch", "x (PC1)", "y (PC2)", "train_loss"], rows)


class HessianDisplay:
    """``landscape.HessianResult`` in a notebook: a table of its figures."""

    def _repr_html_(self) -> str:
        h: Any = self
        rows: list[list[Any]] = [[f"λ{i + 1}", float(v)] for i, v in enumerate(h.eigenvalues)]
        rows += [["λ min", float(h.min_eigenvalue)],
                 ["trace" + (" (exact)" if h.exact_trace is not None else f" (± {h.trace_std:.3g})"), float(h.trace)],
                 ["loss", float(h.loss)], ["‖∇L‖", float(h.grad_norm)], ["parameters", int(h.dim)],
                 ["converged", bool(h.converged)]]
        return _table("Hessian at θ*", ["quantity", "value"], rows)


__all__ = ["HessianDisplay", "SurfaceDisplay", "TrajectoryDisplay"]
