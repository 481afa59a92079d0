"""The SLQ spectral density against PyHessian's ``density()`` on the same model and data (issue 23).

PyHessian (``pip install pyhessian``, the ``test`` extra's oracle; installed by ``.ci/run``) is the tool
most papers' eigenvalue-density figures come from. Its 0.1 release calls ``torch.eig`` on the Lanczos
tridiagonal T, and torch 2 removed ``torch.eig``; the test gives it back a faithful replacement
(``scripts/_bench_common.legacy_eig``, checked below) for the duration of the call. Then both sides run SLQ on the Hessian of the same quickstart-sized MLP
(digits, 64-64-10, every parameter as PyHessian takes them) and must agree within SLQ's own error:

* the support: the smallest and largest nodes (the extreme Ritz values, which Lanczos finds first);
* the first two moments of the density, ``P·Σ wλ`` (= tr H) and ``P·Σ wλ²`` (= tr H² = ‖H‖_F²): per run
  each is ``P·vᵀHᵖv`` for the run's start vector, exactly (a Gauss rule of m ≥ 2 nodes integrates
  degree ≤ 2m − 1), so each side's value is a Monte Carlo mean over its runs whose standard error is
  the runs' spread over √runs. Both sides draw normalized Rademacher vectors, so the two estimates
  differ by less than a few combined standard errors.
"""

from __future__ import annotations

import copy
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from required import need
from torch import Tensor, nn

import landscape

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from _bench_common import legacy_eig  # the benchmark times PyHessian's density through it too

RUNS, STEPS, SAMPLES = 20, 30, 256


def pyhessian_class() -> Any:
    """PyHessian's ``hessian`` class (the oracle): a skip without it, a failure under CI."""
    try:
        from pyhessian import hessian
    except ImportError:
        need("PyHessian (the oracle of the density test; pip install pyhessian)", False)
    return hessian


def test_legacy_eig_reproduces_the_old_layout() -> None:
    t = torch.diag(torch.tensor([2.0, 3.0, 5.0])) + torch.diag(torch.tensor([0.5, 0.25]), 1) + torch.diag(torch.tensor([0.5, 0.25]), -1)
    pairs, vecs = legacy_eig(t, eigenvectors=True)
    assert pairs.shape == (3, 2) and torch.all(pairs[:, 1] == 0)
    for j in range(3):  # each column an eigenvector of its eigenvalue
        torch.testing.assert_close(t @ vecs[:, j], pairs[j, 0] * vecs[:, j])
    np.testing.assert_allclose(sorted(pairs[:, 0].tolist()), np.linalg.eigvalsh(t.double().numpy()), rtol=1e-6)
    assert legacy_eig(t)[1].numel() == 0


def test_without_pyhessian_the_density_test_fails_under_ci_and_skips_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyhessian", None)  # the import fails as if not installed
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"PyHessian .* is missing: CI must run these tests"):
        pyhessian_class()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="PyHessian"):
        pyhessian_class()


def quickstart_mlp() -> tuple[nn.Module, Tensor, Tensor]:
    """The quickstart's MLP (64-64-10 on 8×8 digits) after 150 full-batch SGD steps on 256 training images."""
    (x, y), _ = landscape.dataset("digits")
    x, y = x[:SAMPLES], y[:SAMPLES]
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for _ in range(150):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval(), x, y


def pyhessian_density(model: nn.Module, x: Tensor, y: Tensor, monkeypatch: pytest.MonkeyPatch) -> tuple[list[list[float]], list[list[float]]]:
    hessian = pyhessian_class()
    monkeypatch.setattr(torch, "eig", legacy_eig, raising=False)  # removed in torch 2; PyHessian 0.1 calls it
    torch.manual_seed(1)  # PyHessian draws its Rademacher start vectors from the global generator
    comp = hessian(copy.deepcopy(model), nn.CrossEntropyLoss(), data=(x, y), cuda=False)  # all the data, one batch
    nodes, weights = comp.density(iter=STEPS, n_v=RUNS)
    return nodes, weights


def per_run_moments(nodes: list[list[float]], weights: list[list[float]], dim: int, p: int) -> np.ndarray:
    return np.array([dim * float(np.dot(w, np.power(n, p))) for n, w in zip(nodes, weights, strict=True)])


def test_density_matches_pyhessian_support_and_moments(monkeypatch: pytest.MonkeyPatch) -> None:
    model, x, y = quickstart_mlp()
    theirs_nodes, theirs_weights = pyhessian_density(model, x, y, monkeypatch)
    ours = landscape.hessian(model, (x, y), loss="cross_entropy", ignore="none", top_k=1, max_iter=STEPS, trace_samples=0,
                             density=True, density_runs=RUNS, density_steps=STEPS, progress=False)
    dim = sum(p.numel() for p in model.parameters())
    assert ours.dim == dim == 8_970 and ours.density is not None
    assert all(sum(w) == pytest.approx(1.0, abs=1e-5) for w in theirs_weights)  # each PyHessian run: a probability
    nodes, weights = np.asarray(ours.density.nodes), np.asarray(ours.density.weights)

    # the support: extreme nodes equal to a small fraction of the spectral range (PyHessian's T is float32)
    lo, hi = float(min(map(min, theirs_nodes))), float(max(map(max, theirs_nodes)))
    spread = hi - lo
    assert nodes.max() == pytest.approx(hi, abs=1e-3 * spread)
    assert nodes.min() == pytest.approx(lo, abs=1e-3 * spread)
    assert nodes.max() == pytest.approx(ours.eigenvalues[0], rel=1e-3)  # and the top node is λmax
    assert lo < 0 < hi  # a trained ReLU net off its minimum: negative curvature too

    # the moments: each side a mean over its runs; the difference within 4 combined standard errors
    for p in (1, 2):
        runs = per_run_moments(theirs_nodes, theirs_weights, dim, p)
        theirs, se_theirs = float(runs.mean()), float(runs.std(ddof=1)) / math.sqrt(RUNS)
        mine = dim * float(np.dot(weights, nodes**p))
        # our own spread over runs for the trace; for tr H² the same draw distribution gives the same spread
        se_mine = ours.density.trace_stderr if p == 1 else se_theirs
        if p == 1:
            assert mine == pytest.approx(ours.density.trace, rel=1e-9)
        assert abs(mine - theirs) <= 4 * math.hypot(se_mine, se_theirs), (p, mine, theirs, se_mine, se_theirs)
        assert se_theirs < 0.15 * abs(theirs)  # the check has teeth: the error bars are tight
