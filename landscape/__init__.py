"""landscape: filter-normalized loss landscapes of neural networks (Li et al., NeurIPS 2018)."""

from __future__ import annotations

__version__ = "0.1.0"

from landscape.workflows.connect import connect

__all__ = ["__version__", "connect"]
