"""The figures of docs/CURVATURE.md for a transformer: the Hessian's spectral density (SLQ) and its
per-block curvature for a two-layer GPT-2 trained on the shipped Gettysburg Address, and the
empirical Fisher's density beside it — dict batches and callable losses through the Python API.

The model and its training are those of ``scripts/example_transformer.py`` (weights from a seed,
nothing downloaded). Needs ``pip install landscape[hf]``; a few minutes on two CPU cores.

    python scripts/fig_curvature_gpt2.py --out curvature_gpt2
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import matplotlib
import torch
import torch.nn.functional as F
from torch import Tensor, nn

matplotlib.use("Agg")

from example_transformer import lm_loss, tiny_gpt2, train

import landscape
from landscape.figures.curvature import blocks_figure, density_figure
from landscape.zoo.text import CharVocab, lm_batches, load_text


def lm_per_window(model: nn.Module, batch: Mapping[str, Tensor]) -> Tensor:
    """Per-sample losses (one per window: its mean next-character cross-entropy), for the Fisher."""
    logits = model(input_ids=batch["input_ids"]).logits[:, :-1]
    target = batch["labels"][:, 1:]
    return F.cross_entropy(logits.transpose(1, 2), target, reduction="none").mean(dim=1)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("curvature_gpt2"))
    ap.add_argument("--steps", type=int, default=300)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    text = load_text("gettysburg")
    vocab = CharVocab.of(text)
    batches = lm_batches(vocab.encode(text), block=32, batch_size=8)
    model = tiny_gpt2(vocab.size, 32, seed=0)
    with tempfile.TemporaryDirectory() as run:
        curve = train(model, batches, args.steps, args.steps, Path(run))
    print(f"trained {args.steps} steps: loss {curve[0]:.3f} -> {curve[-1]:.3f}")
    h = landscape.hessian(model, batches, loss=lm_loss, top_k=5, max_iter=80, trace_samples=60, density=True,
                          density_runs=6, density_steps=60)
    assert h.density is not None
    density_figure(h.density.nodes, h.density.weights, h.eigenvalues,
                   title="tiny GPT-2, Hessian: spectral density\n(SLQ, 6 runs × 60 steps; Gaussian smoothing)"
                   ).savefig(args.out / "gpt2_hessian_density.png", dpi=150)
    blocks = landscape.hessian(model, batches, loss=lm_loss, top_k=1, max_iter=60, trace_samples=30,
                               blocks="layer", density=True, density_runs=3, density_steps=30)
    b = blocks.blocks
    blocks_figure([r.name.removeprefix("transformer.") for r in b], [r.top.eigenvalues[0] for r in b],
                  [r.trace.estimate if r.trace else None for r in b], [r.trace.stderr if r.trace else None for r in b],
                  [(r.density.nodes, r.density.weights) if r.density else None for r in b],
                  title="tiny GPT-2, Hessian per parameter block").savefig(args.out / "gpt2_hessian_blocks.png", dpi=150)
    fisher = landscape.hessian(model, batches, loss=lm_per_window, operator="fisher", top_k=3, max_iter=60,
                               trace_samples=30, density=True, density_runs=4, density_steps=40)
    summary = {"loss": h.loss, "dim": h.dim, "hessian_top": h.eigenvalues, "hessian_min": h.min_eigenvalue,
               "hessian_trace": h.trace, "hessian_trace_std": h.trace_std, "slq_trace": h.density.trace,
               "slq_trace_stderr": h.density.trace_stderr, "fisher_top": fisher.eigenvalues, "fisher_trace": fisher.trace,
               "blocks": [{"name": r.name, "dim": r.dim, "top": r.top.eigenvalues[0],
                           "trace": r.trace.estimate if r.trace else None} for r in b]}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
