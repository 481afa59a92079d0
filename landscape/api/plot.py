"""``landscape.plot``: one figure of a surface, drawn as ``landscape plot`` draws it."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from landscape.api.surface import Surface, load_surface
from landscape.errors import ConfigError, LandscapeError

if TYPE_CHECKING:
    from landscape.figures.interactive import InteractiveFigure



def plot(s: Surface | str | Path, kind: str = "contour", *, metric: str = "train_loss", ax: Axes | None = None,
         trajectory: Any = None, levels: int | None = None, vmin: float | None = None, vmax: float | None = None,
         log: bool | None = None, cmap: str = "viridis", width: str = "single", title: str | None = None,
         ) -> Figure | InteractiveFigure:
    """One figure of a surface, as ``landscape plot`` draws it.

    Args:
        s: a :class:`Surface` or the path of a surface file.
        kind: ``contour``, ``filled``, ``heatmap``, ``surface3d``, ``trajectory``, ``panels`` (2D) or ``line`` (1D);
            ``interactive`` (2D, needs the ``interactive`` extra): a plotly view that displays inline in
            Jupyter and saves to one self-contained HTML file with ``.save(path)``.
        metric: the column drawn (``train_loss``, ``test_acc``, ...).
        ax: draw into these axes (a 3D axes for ``surface3d``; every kind but ``panels`` and
            ``interactive``); None: a new figure.
        trajectory: for ``trajectory``/``surface3d``: a trajectory file path or what
            :func:`landscape.trajectory` returns (points with ``coords`` (n, 2)).
        levels: about this many contour levels; vmin, vmax: colour limits (metric units).
        log: log colour scale; None chooses (a positive loss spanning more than a decade).
        cmap: a matplotlib colour map name. width: ``single`` or ``double`` column.
        title: a title, or None.

    Returns:
        the matplotlib ``Figure`` (``ax.figure`` when ``ax`` is given); for ``interactive`` an
        :class:`~landscape.figures.interactive.InteractiveFigure`.
    """
    from landscape.figures import files, views
    from landscape.io.surface_file import SurfaceFile

    if not isinstance(s, Surface):
        s = load_surface(s)
    if kind == "interactive":
        from landscape.figures.interactive import interactive_figure

        if ax is not None:
            raise ConfigError("kind='interactive' draws its own page: leave ax out")
        return interactive_figure(s, trajectory, metric=metric, log=log, title=title)
    if kind not in files.KINDS:
        raise ConfigError(f"unknown figure kind {kind!r}; choose from {', '.join(files.KINDS)}")
    chosen = views.resolve_metric(s.columns, metric, "the surface")
    done = s.done if s.done is not None else np.ones(s.shape, dtype=bool)
    sf = SurfaceFile(Path(str(s.attrs.get("path", "surface"))), s.grid, s.columns, s.values, done,
                     {k: v for k, v in s.attrs.items() if k in ("settings", "directions")} | s.axis_labels()
                     | ({"directions": dict(s.directions.meta)} if s.directions is not None else {}))
    path = None
    if trajectory is not None:
        from landscape.io.trajectory_file import load_trajectory
        path = load_trajectory(trajectory) if isinstance(trajectory, str | Path) else trajectory
    reason = files.applicable_kinds(sf, chosen, path is not None)[kind]
    if reason is not None:
        raise LandscapeError(f"figure kind {kind!r} {reason}")
    if log is None:
        log = views.spans_decades(sf.values[chosen][done]) and not chosen.endswith(("_acc", "_eig_ratio", "_eig_converged"))
    style = {"levels": levels, "vmin": vmin, "vmax": vmax, "log": log, "cmap": cmap, "width": width, "title": title}
    return files.draw(sf, kind, chosen, path, style, ax)


