"""Principal components of a set of points in parameter space, without a dense ``n × P`` matrix.

The rows ``M_i`` are tensor dicts (one per checkpoint, e.g. ``Δ_i = θ_i − θ_final``). The PCA
goes through the Gram matrix (the "method of snapshots"):

1. ``G = M Mᵀ`` (``n × n``), accumulated in float64 tensor by tensor, block of columns by block;
2. centred PCA (the default, and what ``sklearn.decomposition.PCA`` computes, which the paper's
   ``setup_PCA_directions`` calls): ``G ← J G J`` with ``J = I − 11ᵀ/n``, the Gram matrix of the
   mean-centred rows ``J M``; uncentred PCA keeps ``G``;
3. ``G = U Λ Uᵀ`` (``numpy.linalg.eigh``): ``λ_k`` are the squared singular values and
   ``λ_k / trace G`` the explained-variance ratios (sklearn's ``explained_variance_ratio_``
   when centred);
4. the directions are the right singular vectors ``v_k = (J M)ᵀ u_k / ‖·‖ = Mᵀ (J u_k) / ‖·‖``.

Pure numerics: tensors in, tensors and arrays out; no files.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

from landscape.errors import DirectionError

TensorDict = dict[str, Tensor]
BLOCK = 1 << 24  # float64 elements of one (n, c) block of M: 128 MiB
RANK_TOL = 1e-10  # a second component explaining less than this is rounding noise


def column_blocks(rows: Sequence[Mapping[str, Tensor]], names: Sequence[str]) -> Iterator[tuple[str, int, int, Tensor]]:
    """Yield ``(name, start, stop, block)``: columns ``start:stop`` of tensor ``name`` of M, (n, c) float64."""
    width = max(1, BLOCK // len(rows))
    for k in names:
        numel = rows[0][k].numel()
        for start in range(0, numel, width):
            stop = min(start + width, numel)
            yield k, start, stop, torch.stack([r[k].reshape(-1)[start:stop] for r in rows]).double()


def gram_matrix(rows: Sequence[Mapping[str, Tensor]], names: Sequence[str]) -> np.ndarray:
    """``G = M Mᵀ`` (n, n) float64 for the rows ``M_i`` = tensors ``names`` of ``rows[i]``, flattened."""
    g = torch.zeros(len(rows), len(rows), dtype=torch.float64)
    for _, _, _, block in column_blocks(rows, names):
        g += block @ block.T
    return g.numpy()


def combine_rows(rows: Sequence[Mapping[str, Tensor]], names: Sequence[str], weights: np.ndarray) -> list[TensorDict]:
    """``Mᵀ W`` as tensor dicts: column ``j`` of ``weights`` (n, m) gives ``Σ_i W[i, j]·rows[i]`` in float64."""
    w = torch.from_numpy(np.ascontiguousarray(weights, dtype=np.float64))  # (n, m)
    flat = {k: torch.zeros(w.shape[1], rows[0][k].numel(), dtype=torch.float64) for k in names}  # (m, p_k)
    for k, start, stop, block in column_blocks(rows, names):
        flat[k][:, start:stop] = w.T @ block
    return [{k: flat[k][j].reshape(rows[0][k].shape) for k in names} for j in range(w.shape[1])]


def principal_directions(rows: Sequence[Mapping[str, Tensor]], names: Sequence[str],
                         center: bool = True) -> tuple[list[TensorDict], np.ndarray]:
    """The top two principal directions of the rows (unit norm, float64) and every explained-variance ratio.

    ``center=True`` (the default, as sklearn's ``PCA`` in the paper's code) mean-centres the rows
    first; ``center=False`` is the PCA of the raw rows. Signs are fixed so that the largest entry
    of each ``u_k`` is positive, which makes the result deterministic. The ratios are
    ``λ_k / trace G`` (descending, ``n`` of them).
    """
    n = len(rows)
    g = gram_matrix(rows, names)
    j = np.eye(n) - 1.0 / n  # centring matrix J = I − 11ᵀ/n
    if center:
        g = j @ g @ j
    lam, u = np.linalg.eigh(g)  # ascending
    lam, u = np.clip(lam[::-1], 0.0, None), u[:, ::-1]
    total = float(np.trace(g))
    if not total > 0:
        raise DirectionError("all checkpoints hold the same weights: there is no path to analyse")
    ratios = lam / total
    if ratios[1] <= RANK_TOL:
        raise DirectionError("the checkpoints lie on a line: a second principal direction does not exist")
    w = u[:, :2].copy()  # (n, 2)
    w *= np.sign(w[np.argmax(np.abs(w), axis=0), [0, 1]])
    if center:
        w = j @ w  # the direction is (J M)ᵀ u = Mᵀ (J u)
    vecs = combine_rows(rows, names, w)
    for v in vecs:
        scale = 1.0 / math.sqrt(sum(float((t * t).sum()) for t in v.values()))
        for t in v.values():
            t.mul_(scale)
    return vecs, ratios


def pca_axis_label(index: int, ratio: float, center: bool | None) -> str:
    """``"PC1 (61.2 %)"`` plus which PCA it was: ``centred`` (the paper's) or ``uncentred``."""
    which = "" if center is None else (", centred" if center else ", uncentred")
    return f"PC{index + 1} ({100 * float(ratio):.1f} %{which})"
