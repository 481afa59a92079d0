"""A HuggingFace transformer through the API: a tiny GPT-2 (seeded weights, no download) trained a few
steps on the shipped Gettysburg text, then a 2D surface with dict batches and a ``loss(model, batch)``
callable, a PCA trajectory from a Recorder's checkpoints, and the top Hessian eigenvalue; each checked
against float64 hand computations. Needs the ``hf`` extra: a missing ``transformers`` fails here."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from docblocks import run_blocks
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers import GPT2Config, GPT2LMHeadModel

import landscape
from landscape.zoo.text import CharVocab, lm_batches, load_text

BLOCK, BATCH, STEPS, EVERY = 32, 8, 12, 3


def _lm_loss(m: nn.Module, b: Mapping[str, Tensor]) -> Tensor:
    return m(**b).loss  # the mean over the batch's predicted tokens


def _gpt2(vocab: int) -> GPT2LMHeadModel:
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=vocab, n_positions=BLOCK, n_embd=32, n_layer=2, n_head=2, n_inner=64,
                     resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(cfg)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    text = load_text()
    vocab = CharVocab.of(text)
    batches = lm_batches(vocab.encode(text), BLOCK, BATCH)
    model = _gpt2(vocab.size)
    run = tmp_path_factory.mktemp("hf") / "run"
    rec = landscape.Recorder(run, every=EVERY)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    rec.save(model)
    snapshots = [copy.deepcopy(model.state_dict())]
    model.train()
    for step in range(1, STEPS + 1):
        loss = _lm_loss(model, batches[step % len(batches)])
        opt.zero_grad()
        loss.backward()
        opt.step()
        if rec.step(model, loss=loss) is not None:
            snapshots.append(copy.deepcopy(model.state_dict()))
    rec.finish(model)
    return {"model": model, "batches": batches, "run": run, "snapshots": snapshots, "vocab": vocab}


def _mean_loss64(model: nn.Module, batches: list[dict[str, Tensor]]) -> float:
    """Σ_b n_b·loss_b / Σ_b n_b over the batches (n_b = sequences; all of the same length) in float64."""
    m = copy.deepcopy(model).double().eval()
    total = count = 0.0
    with torch.no_grad():
        for b in batches:
            n = b["input_ids"].shape[0]
            total += n * float(_lm_loss(m, b))
            count += n
    return total / count


def _moved(model: nn.Module, d1: Mapping[str, Tensor], d2: Mapping[str, Tensor], a: float, b: float) -> nn.Module:
    """A float64 copy at θ* + a·d1 + b·d2 (the tied lm_head follows the embedding, as in the model)."""
    m = copy.deepcopy(model).double()
    with torch.no_grad():
        for k, p in m.named_parameters():
            p.add_(a * d1[k].double() + b * d2[k].double())
    return m


def test_surface_with_dict_batches_and_a_loss_callable(trained: dict[str, Any]) -> None:
    model, batches = trained["model"], trained["batches"]
    before = {k: v.clone() for k, v in model.state_dict().items()}
    dirs = landscape.random_directions(model, seed=3)
    s = landscape.surface(model, batches, loss=_lm_loss, directions=dirs, x=(-0.5, 0.5, 5), y=(-0.5, 0.5, 3),
                          progress=False)
    assert s["train_loss"].shape == (5, 3)
    assert s.x[2] == 0.0 and s.y[1] == 0.0
    # the origin: the model's own mean loss over the batches, computed by hand in float64
    assert s["train_loss"][2, 1] == pytest.approx(_mean_loss64(model, batches), rel=1e-5)
    for i, j in ((0, 0), (4, 2), (1, 2)):  # off the origin: a hand-moved float64 copy
        want = _mean_loss64(_moved(model, dirs.x, dirs.y, float(s.x[i]), float(s.y[j])), batches)
        assert s["train_loss"][i, j] == pytest.approx(want, rel=1e-5), (i, j)
    assert s["train_loss"][0, 0] > s["train_loss"][2, 1]  # half a filter norm away the loss is higher
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert model.training  # the caller's mode is restored


def _flat_weights(state: Mapping[str, Tensor], model: nn.Module) -> np.ndarray:
    return np.concatenate([state[k].double().reshape(-1).numpy() for k, p in model.named_parameters() if p.ndim > 1])


def test_pca_trajectory_of_recorded_checkpoints(trained: dict[str, Any]) -> None:
    model, run, snaps = trained["model"], trained["run"], trained["snapshots"]
    t = landscape.trajectory(run, center=True)  # the Recorder's folder: no model needed
    assert list(t.steps) == list(range(0, STEPS + 1, EVERY))
    assert len(snaps) == len(t.steps)
    # oracle: dense float64 SVD of the mean-centred rows θ_i − θ_final over the weights with ndim > 1
    rows = np.stack([_flat_weights(s, model) - _flat_weights(snaps[-1], model) for s in snaps])
    _, sv, vt = np.linalg.svd(rows - rows.mean(axis=0), full_matrices=False)
    np.testing.assert_allclose(t.explained_variance, (sv**2 / np.sum(sv**2))[:2], rtol=1e-6)
    signs = []
    for d, v in ((t.directions.x, vt[0]), (t.directions.y, vt[1])):
        cos = float(_flat_weights(d, model) @ v)
        assert abs(cos) == pytest.approx(1.0, abs=1e-6)
        signs.append(np.sign(cos))
    np.testing.assert_allclose(t.coords, (rows @ vt[:2].T) * np.array(signs), atol=1e-5)
    assert np.all(np.isfinite(t.losses[1:])) and np.isnan(t.losses[0])
    # the plane is usable as directions: the surface at a checkpoint's coordinates is near its loss
    (x0, x1, _), (y0, y1, _) = t.axes(num=5)
    s = landscape.surface(model, trained["batches"], loss=_lm_loss, directions=t, x=(x0, x1, 5), y=(y0, y1, 5),
                          progress=False)
    assert np.all(np.isfinite(s["train_loss"]))
    i0, j0 = int(np.argmin(np.abs(s.x))), int(np.argmin(np.abs(s.y)))
    assert s.x[i0] == 0.0 and s.y[j0] == 0.0  # axes() puts the origin on a node
    assert s["train_loss"][i0, j0] == pytest.approx(_mean_loss64(model, trained["batches"]), rel=1e-5)


def _dense_hessian_top(model: nn.Module, batches: list[dict[str, Tensor]], names: list[str]) -> float:
    """Largest eigenvalue of the dense float64 Hessian of the mean loss over ``names`` (autograd, eigvalsh)."""
    m = copy.deepcopy(model).double().eval()
    base = {k: p.detach() for k, p in m.named_parameters()}
    sizes = [base[k].numel() for k in names]
    n_total = sum(b["input_ids"].shape[0] for b in batches)

    def loss_of(flat: Tensor) -> Tensor:
        params = dict(base)
        for k, part in zip(names, flat.split(sizes), strict=True):
            params[k] = part.reshape(base[k].shape)
        return sum(b["input_ids"].shape[0] * torch.func.functional_call(m, params, kwargs=b).loss
                   for b in batches) / n_total

    w = torch.cat([base[k].reshape(-1) for k in names])
    h = torch.autograd.functional.hessian(loss_of, w)  # (P, P)
    return float(torch.linalg.eigvalsh(h)[-1])


def test_top_hessian_eigenvalue(trained: dict[str, Any]) -> None:
    model, batches = trained["model"], trained["batches"][:2]  # 16 sequences keep the dense oracle cheap
    # landscape.hessian picks a twice-differentiable attention itself (the fused CPU kernel has no double backward)
    part = landscape.hessian(model, batches, loss=_lm_loss, top_k=1, params=["transformer.ln_f.*"], tol=1e-6,
                             trace_samples=2, progress=False)
    full = landscape.hessian(model, batches, loss=_lm_loss, top_k=1, tol=1e-5, max_iter=40, trace_samples=2,
                             progress=False)
    with sdpa_kernel(SDPBackend.MATH):  # the dense oracle differentiates twice too
        oracle = _dense_hessian_top(model, batches, ["transformer.ln_f.weight", "transformer.ln_f.bias"])
        w_only = _dense_hessian_top(model, batches, ["transformer.ln_f.weight"])
    assert part.dim == 64
    assert part.max_eigenvalue == pytest.approx(oracle, rel=1e-4)
    assert part.exact_trace is not None
    # the full Hessian leaves out every tensor with ndim <= 1 (the paper's rule), so ln_f.weight's block
    # is a principal sub-block of it and of ``part``: Cauchy interlacing bounds the top eigenvalues
    assert full.dim == sum(p.numel() for p in model.parameters() if p.ndim > 1)
    assert w_only <= oracle * (1 + 1e-9)
    assert full.max_eigenvalue >= w_only * (1 - 1e-4)
    assert full.loss == pytest.approx(_mean_loss64(model, batches), rel=1e-5)


def test_every_python_block_of_the_guide_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/TRANSFORMERS.md's examples run as written, in order, in one namespace."""
    monkeypatch.chdir(tmp_path)
    blocks, namespace = run_blocks("docs/TRANSFORMERS.md")
    assert len(blocks) >= 4
    assert (tmp_path / "path.png").stat().st_size > 0 and (tmp_path / "trajectory.h5").is_file()
    assert len(namespace["t"].coords) == 7 and np.all(np.isfinite(namespace["s"]["train_loss"]))
    assert namespace["h"].eigenvalues[0] > 0


def test_recorded_checkpoints_load_safely_and_name_the_model(trained: dict[str, Any]) -> None:
    for path in landscape.Recorder(trained["run"], resume=True).checkpoints:
        raw = torch.load(path, weights_only=True)
        assert raw["model_class"].endswith("GPT2LMHeadModel")
        assert '"n_layer": 2' in raw["model_config_json"]
        assert raw["state_dict"]["lm_head.weight"].data_ptr() == raw["state_dict"]["transformer.wte.weight"].data_ptr()
    assert Path(trained["run"], "run.json").is_file()


def test_progressive_surface_with_per_sample_token_losses(trained: dict[str, Any]) -> None:
    """``tolerance=`` on a transformer: per-sample (per-row) token losses are read to the exact mean (tolerance 0);
    the model's own batch-mean loss is refused in one line."""
    model, batches = trained["model"], trained["batches"]

    def per_row(m: nn.Module, b: Mapping[str, Tensor]) -> Tensor:
        logits = m(input_ids=b["input_ids"]).logits[:, :-1]
        target = b["labels"][:, 1:]
        return nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), target.reshape(-1),
                                           reduction="none").view(target.shape).mean(dim=1)

    kw = {"directions": landscape.random_directions(model, seed=3), "x": (-0.5, 0.5, 3), "y": None, "progress": False}
    exact = landscape.surface(model, batches, loss=_lm_loss, **kw)
    full = landscape.surface(model, batches, loss=per_row, tolerance=0, **kw)
    np.testing.assert_allclose(full["train_loss"], exact["train_loss"], rtol=1e-5)
    assert (full.extra["train_samples"] == sum(b["input_ids"].shape[0] for b in batches)).all()
    with pytest.raises(landscape.LandscapeError, match="batch mean"):
        landscape.surface(model, batches, loss=_lm_loss, tolerance=0.01, **kw)
