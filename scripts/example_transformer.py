"""Worked example: the loss landscape of a transformer language model, end to end, on a CPU.

A two-layer GPT-2 (HuggingFace ``transformers``, weights from a seed: nothing is downloaded) learns
the shipped Gettysburg Address character by character in the user's own training loop, which
records its path with ``landscape.Recorder``. Then, all through the Python API:

1. a 2D surface around the final weights in the paper's random filter-normalized directions,
   with dict batches and the model's own loss (``loss=lambda m, b: m(**b).loss``);
2. the PCA plane of the recorded path (``landscape.trajectory``) and the surface in that plane
   with the path drawn over it;
3. the top Hessian eigenvalues and the trace at the final weights (``landscape.hessian``).

Figures and files go to ``--out`` (default ``example_transformer/``). Needs ``pip install
landscape[hf]``. About a minute on two CPU cores with the defaults; ``--quick`` is a smaller run.

    python scripts/example_transformer.py --out example_transformer
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import matplotlib
import torch
from torch import Tensor, nn

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from transformers import GPT2Config, GPT2LMHeadModel

import landscape
from landscape.zoo.text import CharVocab, lm_batches, load_text


def lm_loss(model: nn.Module, batch: Mapping[str, Tensor]) -> Tensor:
    """The causal LM's own loss: the mean cross-entropy of the next character over the batch."""
    return model(**batch).loss


def tiny_gpt2(vocab_size: int, block: int, seed: int) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=vocab_size, n_positions=block, n_embd=32, n_layer=2, n_head=2, n_inner=64,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(cfg)


def train(model: nn.Module, batches: list[dict[str, Tensor]], steps: int, every: int, run_dir: Path) -> list[float]:
    """The user's own loop: AdamW over the batches in turn; the Recorder keeps every ``every``-th step."""
    rec = landscape.Recorder(run_dir, every=every)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.0)
    rec.save(model)  # the initial weights: the start of the path
    losses = []
    model.train()
    for step in range(1, steps + 1):
        loss = lm_loss(model, batches[step % len(batches)])
        opt.zero_grad()
        loss.backward()
        opt.step()
        rec.step(model, loss=loss)
        losses.append(float(loss.detach()))
    rec.finish(model)
    return losses


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("example_transformer"))
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--every", type=int, default=20, help="record every N optimizer steps")
    ap.add_argument("--points", type=int, default=25, help="grid points per axis")
    ap.add_argument("--quick", action="store_true", help="60 steps, 11×11 grids (a smoke run)")
    args = ap.parse_args(argv)
    if args.quick:
        args.steps, args.every, args.points = 60, 10, 11
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)  # a tiny model gains nothing from threads
    t0 = time.perf_counter()

    text = load_text("gettysburg")
    vocab = CharVocab.of(text)
    block = 32
    batches = lm_batches(vocab.encode(text), block=block, batch_size=8)
    model = tiny_gpt2(vocab.size, block, seed=0)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"GPT-2: {n_params:,} parameters, vocabulary {vocab.size} characters, "
          f"{sum(b['input_ids'].shape[0] for b in batches)} windows of {block}")

    curve = train(model, batches, args.steps, args.every, out / "run")
    print(f"trained {args.steps} steps: loss {curve[0]:.3f} -> {curve[-1]:.3f} ({time.perf_counter() - t0:.0f} s)")

    # 1. random filter-normalized plane around the final weights: a filter is one output neuron
    #    (a column of each Conv1D weight (in, out), a row of the embeddings; docs/CONTRACTS.md)
    dirs = landscape.random_directions(model, seed=0)
    n = args.points
    s = landscape.surface(model, batches, loss=lm_loss, directions=dirs, x=(-1, 1, n), y=(-1, 1, n))
    s.save(out / "surface_random.h5")
    fig = landscape.plot(s, kind="contour", title="tiny GPT-2: random directions")
    fig.savefig(out / "surface_random_contour.png", dpi=150)
    plt.close(fig)
    fig = landscape.plot(s, kind="surface3d", title="tiny GPT-2: random directions")
    fig.savefig(out / "surface_random_3d.png", dpi=150)
    plt.close(fig)
    print(f"random-plane surface {n}x{n}: loss at the origin {s['train_loss'][n // 2, n // 2]:.4f}, "
          f"max {s['train_loss'].max():.3f} ({time.perf_counter() - t0:.0f} s)")

    # 2. the PCA plane of the recorded path, and the surface under it
    t = landscape.trajectory(out / "run")
    t.save(out / "trajectory.h5")
    x, y = t.axes(num=n)
    sp = landscape.surface(model, batches, loss=lm_loss, directions=t, x=x, y=y)
    sp.save(out / "surface_pca.h5")
    fig = landscape.plot(sp, kind="trajectory", trajectory=t, title="tiny GPT-2: optimizer path, PCA plane")
    fig.savefig(out / "trajectory_pca.png", dpi=150)
    plt.close(fig)
    ev = [round(100 * float(r), 1) for r in t.explained_variance]
    print(f"trajectory: {len(t.coords)} checkpoints, explained variance {ev} % ({time.perf_counter() - t0:.0f} s)")

    # 3. curvature at the final weights
    h = landscape.hessian(model, batches, loss=lm_loss, top_k=3, tol=1e-3, max_iter=60, trace_samples=20)
    print(f"Hessian over {h.dim:,} weights: top eigenvalues {[round(v, 3) for v in h.eigenvalues]}, "
          f"min {h.min_eigenvalue:.3f}, trace ≈ {h.trace:.2f} ± {h.trace_std:.2f} ({time.perf_counter() - t0:.0f} s)")

    summary = {"parameters": n_params, "steps": args.steps, "loss_first_step": curve[0], "loss_last_step": curve[-1],
               "origin_loss": float(s["train_loss"][n // 2, n // 2]), "explained_variance": ev,
               "hessian_top": h.eigenvalues, "hessian_min": h.min_eigenvalue, "hessian_trace": h.trace}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"figures and files in {out}/ ({time.perf_counter() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
