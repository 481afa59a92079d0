"""landscape: filter-normalized loss landscapes of neural networks (Li et al., NeurIPS 2018)."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
