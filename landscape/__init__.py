"""landscape: filter-normalized loss landscapes of neural networks (Li et al., NeurIPS 2018).

The Python API (see docs/API.md)::

    import landscape
    s = landscape.surface(model, (inputs, targets), loss="cross_entropy")
    fig = landscape.plot(s, kind="contour")
    ck = landscape.load_checkpoint(path)  # a `landscape train` checkpoint: .model, .data, .config
"""

from __future__ import annotations

__version__ = "0.1.0"

from landscape.api.checkpoint import load_checkpoint
from landscape.api.hessian import HessianResult, hessian
from landscape.api.inputs import dataset, random_directions
from landscape.api.plot import plot
from landscape.api.surface import Surface, load_surface, surface
from landscape.api.trajectory import Trajectory, trajectory
from landscape.engine.directions import Directions
from landscape.errors import LandscapeError
from landscape.io.recorder import Recorder
from landscape.workflows.connect import connect

__all__ = [
    "Directions",
    "HessianResult",
    "LandscapeError",
    "Recorder",
    "Surface",
    "Trajectory",
    "__version__",
    "connect",
    "dataset",
    "hessian",
    "load_checkpoint",
    "load_surface",
    "plot",
    "random_directions",
    "surface",
    "trajectory",
]
