"""landscape: filter-normalized loss landscapes of neural networks (Li et al., NeurIPS 2018)."""

from __future__ import annotations

__version__ = "0.1.0"

from landscape.api_trajectory import Trajectory, trajectory
from landscape.io.recorder import Recorder

__all__ = ["Recorder", "Trajectory", "__version__", "trajectory"]
