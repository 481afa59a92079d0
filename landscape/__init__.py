"""landscape: filter-normalized loss landscapes of neural networks (Li et al., NeurIPS 2018).

The Python API (see docs/API.md)::

    import landscape
    s = landscape.surface(model, (inputs, targets), loss="cross_entropy")
    fig = landscape.plot(s, kind="contour")
"""

from __future__ import annotations

from landscape.api import Surface, dataset, load_surface, plot, random_directions, surface
from landscape.api_hessian import HessianResult, hessian
from landscape.api_trajectory import Trajectory, trajectory
from landscape.engine.directions import Directions
from landscape.engine.filters import Filters, register_filter_rule
from landscape.errors import FlatSurfaceWarning, LandscapeError
from landscape.io.recorder import Recorder
from landscape.version import __version__
from landscape.workflows.connect import connect

__all__ = [
    "Directions",
    "Filters",
    "FlatSurfaceWarning",
    "HessianResult",
    "LandscapeError",
    "Recorder",
    "Surface",
    "Trajectory",
    "__version__",
    "connect",
    "dataset",
    "hessian",
    "load_surface",
    "plot",
    "random_directions",
    "register_filter_rule",
    "surface",
    "trajectory",
]
