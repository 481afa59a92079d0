"""What the benchmark scripts share: the paper's per-point evaluation written out, peak memory, and the
``torch.eig`` that PyHessian 0.1's density needs."""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import Tensor, nn
from torch.utils.data import DataLoader

from landscape.engine.directions import Directions


def paper_loop(model: nn.Module, dirs: Directions, loader: DataLoader, coords: np.ndarray) -> np.ndarray:  # type: ignore[type-arg]
    """The reference implementation's per-point evaluation (net_plotter.set_weights +
    evaluation.eval_loss), reproduced faithfully: at each ``(a, b)`` of ``coords`` the weights are
    set to origin + a·dx + b·dy and the loader is run through the network.

    Returns (len(coords), 2): the mean cross-entropy and the accuracy at every point.
    """
    net = copy.deepcopy(model).eval()
    names = [k for k, _ in net.named_parameters()]
    params = list(net.parameters())
    origin = [p.data.clone() for p in params]
    criterion = nn.CrossEntropyLoss()
    out = np.empty((len(coords), 2))
    for k, (a, b) in enumerate(coords):
        for p, w, name in zip(params, origin, names, strict=True):  # set_weights
            p.data = w + float(a) * dirs.x[name] + float(b) * dirs.y[name]  # type: ignore[index]
        total, correct, count = 0.0, 0, 0
        with torch.no_grad():
            for x, y in loader:
                logits = net(x)
                total += criterion(logits, y).item() * x.shape[0]
                correct += int(logits.max(1)[1].eq(y).sum().item())
                count += x.shape[0]
        out[k] = total / count, correct / count
    return out


def peak_rss_mib() -> float:
    """This process's peak resident memory in MiB. Linux's VmHWM starts afresh at exec; ``ru_maxrss``
    (the fallback elsewhere) is inherited from the parent across fork and exec."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def legacy_eig(a: Tensor, eigenvectors: bool = False) -> tuple[Tensor, Tensor]:
    """``torch.eig`` as torch ≤ 1.12 had it, for what PyHessian passes it: a real symmetric matrix (its
    Lanczos tridiagonal T). The old layout: eigenvalues as an (n, 2) tensor of (real, imaginary) parts,
    the imaginary parts 0 for a symmetric matrix, and the eigenvectors as the columns of an (n, n) tensor
    (an empty tensor when not asked for), in T's dtype. LAPACK's ``geev`` behind the old call returned
    the pairs unsorted; PyHessian reads the eigenvalue in column j with eigenvector column j, so the
    (ascending) order of ``eigh`` changes nothing. ``eigh`` is the right solver here because T is
    symmetric by construction (PyHessian writes ``T[i+1, i] = T[i, i+1] = β_i``), checked below."""
    if not torch.equal(a, a.T):
        raise ValueError("this torch.eig stand-in is for the symmetric matrices PyHessian passes")
    values, vectors = torch.linalg.eigh(a)
    pairs = torch.stack([values, torch.zeros_like(values)], dim=1)
    return pairs, vectors if eigenvectors else torch.empty(0, dtype=a.dtype)
