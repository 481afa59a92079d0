"""landscape: filter-normalized loss landscapes of neural networks (Li et al., NeurIPS 2018).

The Python API (see docs/API.md)::

    import landscape
    s = landscape.surface(model, (inputs, targets), loss="cross_entropy")
    fig = landscape.plot(s, kind="contour")
    ck = landscape.load_checkpoint(path)  # a `landscape train` checkpoint: .model, .data, .config
"""

from __future__ import annotations

from landscape.api.check import CheckReport, check
from landscape.api.checkpoint import load_checkpoint
from landscape.api.hessian import HessianResult, hessian
from landscape.api.inputs import dataset, random_directions
from landscape.api.sharpness import Sharpness, sharpness
from landscape.api.surface import Surface, load_surface, plot, surface
from landscape.api.trajectory import Trajectory, trajectory
from landscape.engine.directions import Directions
from landscape.engine.filters import Filters, register_filter_rule
from landscape.engine.outputloss import OutputLoss, causal_lm_loss
from landscape.errors import FlatSurfaceWarning, LandscapeError
from landscape.integrations.logging import log_figures
from landscape.io.recorder import Recorder
from landscape.version import __version__
from landscape.workflows.connect import connect

__all__ = [
    "CheckReport",
    "Directions",
    "Filters",
    "FlatSurfaceWarning",
    "HessianResult",
    "LandscapeError",
    "OutputLoss",
    "Recorder",
    "Sharpness",
    "Surface",
    "Trajectory",
    "__version__",
    "causal_lm_loss",
    "check",
    "connect",
    "dataset",
    "hessian",
    "load_checkpoint",
    "load_surface",
    "log_figures",
    "plot",
    "random_directions",
    "register_filter_rule",
    "sharpness",
    "surface",
    "trajectory",
]
