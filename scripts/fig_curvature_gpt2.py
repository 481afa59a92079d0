"""The figures of docs/CURVATURE.md for a transformer: the Hessian's spectral density (SLQ) and its
per-block curvature for a two-layer GPT-2 trained on the shipped Gettysburg Address, the Gauss-Newton
matrix's density next to it, and the empirical Fisher — dict batches and callable losses through the Python API.

The model and its training are those of ``scripts/example_transformer.py`` (weights from a seed,
nothing downloaded). Needs ``pip install landscape[hf]``; a few minutes on two CPU cores.

    python scripts/fig_curvature_gpt2.py --out curvature_gpt2                   # --operators ggn: that one only
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
    ap.add_argument("--operators", default="hessian,ggn,fisher",
                    help="which of hessian (density and blocks), ggn (density) and fisher to compute (comma-separated)")
    args = ap.parse_args(argv)
    operators = {o.strip() for o in args.operators.split(",") if o.strip()}
    if not operators <= {"hessian", "ggn", "fisher"}:
        ap.error(f"--operators {args.operators!r}: choose among hessian, ggn, fisher")
    args.out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    text = load_text("gettysburg")
    vocab = CharVocab.of(text)
    batches = lm_batches(vocab.encode(text), block=32, batch_size=8)
    model = tiny_gpt2(vocab.size, 32, seed=0)
    with tempfile.TemporaryDirectory() as run:
        curve = train(model, batches, args.steps, args.steps, Path(run))
    print(f"trained {args.steps} steps: loss {curve[0]:.3f} -> {curve[-1]:.3f}")
    summary: dict[str, object] = {}
    if "hessian" in operators:
        summary |= hessian_figures(model, batches, args.out)
    if "ggn" in operators:
        summary |= ggn_figure(model, batches, args.out)
    if "fisher" in operators:
        fisher = landscape.hessian(model, batches, loss=lm_per_window, operator="fisher", top_k=3, max_iter=60,
                                   trace_samples=30, density=True, density_runs=4, density_steps=40)
        summary |= {"fisher_top": fisher.eigenvalues, "fisher_trace": fisher.trace}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    return 0


def hessian_figures(model: nn.Module, batches: list[dict[str, Tensor]], out: Path) -> dict[str, object]:
    """The Hessian's density (``gpt2_hessian_density.png``) and per-block curvature (``gpt2_hessian_blocks.png``)."""
    h = landscape.hessian(model, batches, loss=lm_loss, top_k=5, max_iter=80, trace_samples=60, density=True,
                          density_runs=6, density_steps=60)
    assert h.density is not None
    density_figure(h.density.nodes, h.density.weights, h.eigenvalues,
                   title="tiny GPT-2, Hessian: spectral density\n(SLQ, 6 runs × 60 steps; Gaussian smoothing)"
                   ).savefig(out / "gpt2_hessian_density.png", dpi=150)
    blocks = landscape.hessian(model, batches, loss=lm_loss, top_k=1, max_iter=60, trace_samples=30,
                               blocks="layer", density=True, density_runs=3, density_steps=30)
    b = blocks.blocks
    blocks_figure([r.name.removeprefix("transformer.") for r in b], [r.top.eigenvalues[0] for r in b],
                  [r.trace.estimate if r.trace else None for r in b], [r.trace.stderr if r.trace else None for r in b],
                  [(r.density.nodes, r.density.weights) if r.density else None for r in b],
                  title="tiny GPT-2, Hessian per parameter block").savefig(out / "gpt2_hessian_blocks.png", dpi=150)
    return {"loss": h.loss, "dim": h.dim, "hessian_top": h.eigenvalues, "hessian_min": h.min_eigenvalue,
            "hessian_trace": h.trace, "hessian_trace_std": h.trace_std, "slq_trace": h.density.trace,
            "slq_trace_stderr": h.density.trace_stderr,
            "blocks": [{"name": r.name, "dim": r.dim, "top": r.top.eigenvalues[0],
                        "trace": r.trace.estimate if r.trace else None} for r in b]}


def ggn_figure(model: nn.Module, batches: list[dict[str, Tensor]], out: Path) -> dict[str, object]:
    """The Gauss-Newton matrix's density (``gpt2_ggn_density.png``), with the settings of the Hessian's: the
    loss given as logits and the next-token cross-entropy of them (``landscape.causal_lm_loss``, equal to
    ``m(**b).loss``), so that ``Jᵀ H_out J`` can be formed."""
    g = landscape.hessian(model, batches, loss=landscape.causal_lm_loss(), operator="ggn", top_k=5, max_iter=80,
                          trace_samples=60, density=True, density_runs=6, density_steps=60)
    assert g.density is not None
    density_figure(g.density.nodes, g.density.weights, g.eigenvalues,
                   title="tiny GPT-2, Gauss-Newton matrix: spectral density\n(SLQ, 6 runs × 60 steps; Gaussian smoothing)"
                   ).savefig(out / "gpt2_ggn_density.png", dpi=150)
    return {"ggn_loss": g.loss, "ggn_top": g.eigenvalues, "ggn_min": g.min_eigenvalue, "ggn_trace": g.trace,
            "ggn_trace_std": g.trace_std, "ggn_slq_trace": g.density.trace, "ggn_slq_trace_stderr": g.density.trace_stderr,
            "ggn_converged": g.converged}

if __name__ == "__main__":
    sys.exit(main())
