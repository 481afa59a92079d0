"""docs/img/check_fail_fix.png: failing cases of `landscape check` next to their fixed ones.

A small MLP trained on the built-in digits (a few seconds on a CPU); three pairs, each panel titled
with the verdict `landscape.check` gives it:

- scale: ±50 filter-normalized units (the plane has exploded; the basin is a speck) → ±1;
- resolution: a 5×5 grid (the contours are not converged) → 41×41;
- bn_mode: a BatchNorm MLP whose running statistics were reset after training → `--bn recompute`
  (here: the statistics re-estimated on the training data, as the engine does).

Usage: python scripts/fig_checks.py [--out docs/img/check_fail_fix.png]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from matplotlib.figure import Figure
from torch import nn

import landscape
from landscape.figures import planar


def trained(batchnorm: bool, data: tuple[torch.Tensor, torch.Tensor]) -> nn.Module:
    torch.manual_seed(0)
    layers: list[nn.Module] = [nn.Flatten(), nn.Linear(64, 32)]
    layers += [nn.BatchNorm1d(32)] if batchnorm else []
    model = nn.Sequential(*layers, nn.ReLU(), nn.Linear(32, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    x, y = data
    model.train()
    for epoch in range(8):
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(epoch))
        for i in range(0, len(x), 64):
            idx = perm[i : i + 64]
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model.eval()


def panel(ax: object, model: nn.Module, data: tuple[torch.Tensor, torch.Tensor], half: float, num: int,
          check: str, what: str) -> None:
    s = landscape.surface(model, data, x=(-half, half, num), y=(-half, half, num), progress=False)
    verdict = landscape.check(model, data, surface=s, seeds=1, progress=False)[check]
    value = "–" if verdict.value is None else f"{verdict.value:.3g}"
    planar.contour(s.x, s.y, s["train_loss"], ax=ax, log=True, title=f"{what}\n{check}: {verdict.status} ({value})")  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/img/check_fail_fix.png"))
    args = parser.parse_args()
    (train_x, train_y), _ = landscape.dataset("digits")
    data = (train_x, train_y)
    mlp = trained(False, data)
    reset = trained(True, data)
    for m in reset.modules():
        if isinstance(m, nn.BatchNorm1d):
            m.reset_running_stats()
    recomputed = trained(True, data)
    for m in recomputed.modules():  # what --bn recompute does at every point: statistics of the training data
        if isinstance(m, nn.BatchNorm1d):
            m.reset_running_stats()
            m.momentum = None
    recomputed.train()
    with torch.no_grad():
        for i in range(0, len(train_x), 128):
            recomputed(train_x[i : i + 128])
    recomputed.eval()
    fig = Figure(figsize=(7.0, 10.0), layout="constrained")
    axes = fig.subplots(3, 2)
    panel(axes[0, 0], mlp, data, 50.0, 21, "scale", "range ±50: fails")
    panel(axes[0, 1], mlp, data, 1.0, 21, "scale", "range ±1: fixed")
    panel(axes[1, 0], mlp, data, 1.0, 5, "resolution", "5×5 grid: fails")
    panel(axes[1, 1], mlp, data, 1.0, 41, "resolution", "41×41 grid: fixed")
    panel(axes[2, 0], reset, data, 1.0, 21, "bn_mode", "BatchNorm statistics reset: fails")
    panel(axes[2, 1], recomputed, data, 1.0, 21, "bn_mode", "statistics re-estimated: fixed")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(args.out)


if __name__ == "__main__":
    main()
