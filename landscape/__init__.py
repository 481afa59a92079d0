"""landscape: filter-normalized loss landscapes of neural networks (Li et al., NeurIPS 2018).

The Python API (see docs/API.md)::

    import landscape
    s = landscape.surface(model, (inputs, targets), loss="cross_entropy")
    fig = landscape.plot(s, kind="contour")
"""

from __future__ import annotations

__version__ = "0.1.0"

from landscape.api import Surface, dataset, load_surface, plot, random_directions, surface
from landscape.api_hessian import HessianResult, hessian
from landscape.api_sharpness import Sharpness, sharpness
from landscape.api_trajectory import Trajectory, trajectory
from landscape.engine.directions import Directions
from landscape.errors import LandscapeError
from landscape.io.recorder import Recorder
from landscape.workflows.connect import connect

__all__ = [
    "Directions",
    "HessianResult",
    "LandscapeError",
    "Recorder",
    "Sharpness",
    "Surface",
    "Trajectory",
    "__version__",
    "connect",
    "dataset",
    "hessian",
    "load_surface",
    "plot",
    "random_directions",
    "sharpness",
    "surface",
    "trajectory",
]
