"""Curvature figures: the eigenvalue spectral density (ESD) and the per-block summary.

The density is drawn as papers draw it (Ghorbani et al. 2019; PyHessian): the SLQ quadrature
smoothed by a Gaussian of width σ (for the figure only; the report keeps the nodes and weights),
on a log-scale y axis, with the top eigenvalues marked.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from landscape.errors import ConfigError

__all__ = ["blocks_figure", "density_figure"]

_FLOOR = 1e-5  # lowest density drawn, relative to the peak (the log axis needs a bottom)


def _smoothed(nodes: np.ndarray, weights: np.ndarray, sigma: float | None, points: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = float(nodes.min()), float(nodes.max())
    spread = hi - lo if hi > lo else max(abs(hi), 1.0)
    s = sigma if sigma is not None else spread / 100.0
    grid = np.linspace(lo - 5 * s, hi + 5 * s, points)
    z = (grid[:, None] - nodes[None, :]) / s
    dens = np.exp(-0.5 * z * z) @ weights / (s * np.sqrt(2.0 * np.pi))
    # what lies below the floor is not drawn (a log axis has no zero)
    return grid, np.where(dens >= _FLOOR * float(dens.max()), dens, np.nan)


def _draw_density(ax: Axes, nodes: Sequence[float], weights: Sequence[float], sigma: float | None,
                  label: str | None = None) -> None:
    grid, dens = _smoothed(np.asarray(nodes, dtype=float), np.asarray(weights, dtype=float), sigma)
    ax.semilogy(grid, dens, lw=1.2, label=label)


def density_figure(nodes: Sequence[float], weights: Sequence[float], top: Sequence[float] = (), *,
                   sigma: float | None = None, title: str = "spectral density") -> Figure:
    """The log-scale density of ``Σ wᵢ δ(λ − λᵢ)`` smoothed by a Gaussian of width ``sigma``
    (default 1 % of the nodes' range), with ``top`` eigenvalues marked by dashed lines."""
    if len(nodes) == 0 or len(nodes) != len(weights):
        raise ConfigError(f"a density needs as many weights as nodes (≥ 1), got {len(nodes)} and {len(weights)}")
    fig = Figure(figsize=(5.0, 3.4), layout="constrained")
    ax = fig.add_subplot()
    _draw_density(ax, nodes, weights, sigma)
    for i, lam in enumerate(top):
        ax.axvline(lam, color="C3", ls="--", lw=0.8, label="top eigenvalues" if i == 0 else None)
    ax.set_xlabel("eigenvalue λ")
    ax.set_ylabel("density (log scale)")
    ax.set_title(title, fontsize=10)
    if len(top):
        ax.legend(fontsize=8, frameon=False)
    return fig


def blocks_figure(names: Sequence[str], top: Sequence[float], traces: Sequence[float | None],
                  stderrs: Sequence[float | None], densities: Sequence[tuple[Sequence[float], Sequence[float]] | None]
                  = (), *, title: str = "curvature per block") -> Figure:
    """Per block: the top eigenvalue and the trace (± 1.96 standard errors) as bars, and, when
    given, each block's smoothed density (log scale) in a third panel."""
    if not names or len(top) != len(names) or len(traces) != len(names):
        raise ConfigError(f"blocks figure: {len(names)} names, {len(top)} eigenvalues, {len(traces)} traces")
    drawn = [d for d in densities if d is not None]
    fig = Figure(figsize=(11.0 if drawn else 7.0, 0.35 * len(names) + 1.8), layout="constrained")
    axes = fig.subplots(1, 3 if drawn else 2, squeeze=False)[0]
    y = np.arange(len(names))
    axes[0].barh(y, top, color="C0")
    axes[0].set_xlabel("top eigenvalue λmax")
    tr = [t if t is not None else np.nan for t in traces]
    err = [1.96 * s if s is not None else 0.0 for s in stderrs]
    axes[1].barh(y, tr, color="C1", xerr=err)
    axes[1].set_xlabel("trace (95 % interval)")
    for ax in axes[:2]:
        ax.set_yticks(y, list(names) if ax is axes[0] else [], fontsize=7)
        ax.invert_yaxis()
        ax.grid(axis="x", lw=0.3)
    fig.suptitle(title, fontsize=10)
    if drawn:
        for name, d in zip(names, densities, strict=False):
            if d is not None:
                _draw_density(axes[2], d[0], d[1], None, label=name)
        axes[2].set_xlabel("eigenvalue λ")
        axes[2].set_ylabel("density (log scale)")
        axes[2].legend(fontsize=6, frameon=False)
    return fig
