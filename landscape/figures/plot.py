"""Paper-ready figures of loss landscapes (Li et al. 2018), drawn from plain arrays.

Every public function takes numpy arrays and returns a :class:`matplotlib.figure.Figure`
built with the object-oriented API: no pyplot state, no global ``rcParams`` change, so it runs
headless and the caller decides where the figure goes (:func:`save_figure`). This module is the
one place to import them from; each lives in a module named after what it draws:

- :mod:`landscape.figures.planar`: ``contour``, ``filled_contour``, ``heatmap``, ``trajectory``, ``panels``;
- :mod:`landscape.figures.surface3d`: ``surface3d``;
- :mod:`landscape.figures.curves`: ``line``, ``lines_overlay``, ``training_curves``;
- :mod:`landscape.figures.save`: ``save_figure``;
- :mod:`landscape.figures._style`: the width presets, option checks, masks and levels they share.

Array convention (docs/CONTRACTS.md): a 2D metric ``z`` has shape ``(len(x), len(y))`` and
``z[i, j]`` is the value at ``(x[i], y[j])``.
"""

from __future__ import annotations

from pathlib import Path

from landscape.figures import _style, curves, planar, save
from landscape.figures import surface3d as _surface3d_module
from landscape.figures._style import MISSING_GID, NOTE_GID, PanelKind, Width
from landscape.figures.curves import line, lines_overlay, training_curves
from landscape.figures.planar import contour, filled_contour, heatmap, panels, trajectory
from landscape.figures.save import save_figure
from landscape.figures.surface3d import surface3d

__all__ = [
    "MISSING_GID",
    "NOTE_GID",
    "PanelKind",
    "Width",
    "contour",
    "filled_contour",
    "heatmap",
    "line",
    "lines_overlay",
    "panels",
    "save_figure",
    "source_files",
    "surface3d",
    "training_curves",
    "trajectory",
]


def source_files() -> list[Path]:
    """The files of the drawing code: a figure drawn by an older version of any of them is stale."""
    return [Path(m.__file__ or "") for m in (_style, planar, _surface3d_module, curves, save)]
