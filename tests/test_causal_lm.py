"""``landscape.causal_lm_loss`` (``--loss causal_lm``) on a tiny GPT-2 (seeded weights, nothing downloaded):
equal to the model's own ``m(**b).loss``; its Gauss-Newton matrix through the batch-loss path equal to
the one of a plain (output, target) formulation of the same model; the CLI and the API give one result.
Needs the ``hf`` extra: a missing ``transformers`` fails here."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from transformers import GPT2Config, GPT2LMHeadModel

import landscape
from landscape.cli import main
from landscape.errors import ModelError

VOCAB, BLOCK = 11, 8

DATA_PY = '''
import torch

def data():
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(0, 11, (12, 8), generator=g)
    batches = [{"input_ids": ids[i:i + 4], "labels": ids[i:i + 4]} for i in range(0, 12, 4)]
    return batches[:2], batches[2:]
'''


def gpt2(dtype: torch.dtype = torch.float32) -> GPT2LMHeadModel:
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=VOCAB, n_positions=BLOCK, n_embd=8, n_layer=1, n_head=2, n_inner=16, resid_pdrop=0.0,
                     embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(cfg).to(dtype).eval()


def lm_batches(padded: bool = False) -> list[dict[str, Tensor]]:
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(0, VOCAB, (12, BLOCK), generator=g)
    labels = ids.clone()
    if padded:  # rows of uneven length: -100 labels are skipped by the model's loss
        labels[0, 5:] = -100
        labels[5, 2:] = -100
        labels[9, :4] = -100
    return [{"input_ids": ids[i:i + 4], "labels": labels[i:i + 4]} for i in range(0, 8, 4)]


@pytest.mark.parametrize("padded", [False, True])
def test_causal_lm_loss_equals_the_models_own_loss(padded: bool) -> None:
    model = gpt2()
    fn, rows = landscape.causal_lm_loss(), landscape.causal_lm_loss(per_sample=True)
    with torch.no_grad():
        for b in lm_batches(padded):
            assert float(fn(model, b)) == pytest.approx(float(model(**b).loss), rel=1e-6)
            # each row's mean over its predicted tokens, by a loop over rows and tokens
            logits = model(input_ids=b["input_ids"]).logits.double()
            want = []
            for i in range(4):
                terms = [float(-torch.log_softmax(logits[i, t], dim=0)[b["labels"][i, t + 1]])
                         for t in range(BLOCK - 1) if b["labels"][i, t + 1] != -100]
                want.append(sum(terms) / len(terms))
            np.testing.assert_allclose(rows(model, b).numpy(), want, rtol=1e-5)
    with pytest.raises(ModelError, match="dict batches with 'labels'"):
        fn(model, {"input_ids": lm_batches()[0]["input_ids"]})


class Logits(nn.Module):
    """The same GPT-2 as a model of (inputs, targets) data: token ids in, logits out."""

    def __init__(self, gpt: nn.Module) -> None:
        super().__init__()
        self.gpt = gpt

    def forward(self, ids: Tensor) -> Tensor:
        return self.gpt(input_ids=ids).logits  # type: ignore[no-any-return]


class RowCE(nn.Module):
    """(logits, labels) -> each row's mean next-token cross-entropy (n,): a plain criterion of (output, target)."""

    def forward(self, out: Tensor, labels: Tensor) -> Tensor:
        ce = F.cross_entropy(out[:, :-1].reshape(-1, out.shape[-1]), labels[:, 1:].reshape(-1), reduction="none")
        return ce.view(labels.shape[0], -1).mean(dim=1)


def test_ggn_of_the_batch_loss_path_equals_the_plain_output_target_formulation() -> None:
    """Every row predicts as many tokens, so the batch mean (causal_lm) and the row means give one loss."""
    model, batches = gpt2(torch.float64), lm_batches()
    kwargs = {"operator": "ggn", "top_k": 2, "tol": 1e-9, "max_iter": 40, "trace_samples": 0, "progress": False,
              "blocks": "*.mlp.*"}
    via_batch = landscape.hessian(model, batches, loss="causal_lm", **kwargs)  # type: ignore[arg-type]
    ids = torch.cat([b["input_ids"] for b in batches])
    labels = torch.cat([b["labels"] for b in batches])
    plain = landscape.hessian(Logits(model), (ids, labels), loss=RowCE(), **kwargs)  # type: ignore[arg-type]
    assert via_batch.operator == plain.operator == "ggn"
    assert via_batch.names == [n.removeprefix("gpt.") for n in plain.names]
    np.testing.assert_allclose(via_batch.eigenvalues, plain.eigenvalues, rtol=1e-8)
    (block,), (plain_block,) = via_batch.blocks, plain.blocks  # the MLP's diagonal block of G, both ways
    assert block.dim == plain_block.dim == 2 * 8 * 16
    assert block.top.eigenvalues[0] == pytest.approx(plain_block.top.eigenvalues[0], rel=1e-8)
    assert via_batch.loss == pytest.approx(plain.loss, rel=1e-12)
    assert via_batch.min_eigenvalue >= -1e-8 * via_batch.eigenvalues[0]  # cross-entropy is convex: G ⪰ 0
    hess = landscape.hessian(model, batches, loss="causal_lm", **{**kwargs, "operator": "hessian", "blocks": None})  # type: ignore[arg-type]
    assert hess.eigenvalues[0] != pytest.approx(via_batch.eigenvalues[0], rel=1e-3)  # a network: G ≠ H


def test_cli_ggn_of_a_hugging_face_folder_with_loss_causal_lm(tmp_path: Path) -> None:
    model = gpt2()
    model.save_pretrained(tmp_path / "gpt2")
    (tmp_path / "lm.py").write_text(DATA_PY)
    out = tmp_path / "g.json"
    assert main(["--quiet", "hessian", str(tmp_path / "gpt2"), "--data", f"{tmp_path / 'lm.py'}:data", "--loss", "causal_lm",
                 "--operator", "ggn", "--top-k", "2", "--tol", "1e-6", "--max-iter", "30", "--trace-samples", "0",
                 "--density", "--density-runs", "2", "--density-steps", "10", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    ns: dict[str, object] = {}
    exec(DATA_PY, ns)  # the same batches as the CLI read
    train = ns["data"]()[0]  # type: ignore[operator]
    api = landscape.hessian(model, train, loss=landscape.causal_lm_loss(), operator="ggn", top_k=2, tol=1e-6, max_iter=30,
                            trace_samples=0, progress=False)
    assert report["operator"] == "ggn" and report["settings"]["loss"] == "causal_lm"
    np.testing.assert_allclose(report["eigenvalues"], api.eigenvalues, rtol=1e-5)
    with torch.no_grad():
        assert report["loss"] == pytest.approx(float(np.mean([float(model(**b).loss) for b in train])), rel=1e-5)
    assert sum(report["density"]["weights"]) == pytest.approx(1.0, abs=1e-12)
    assert max(report["density"]["nodes"]) == pytest.approx(report["eigenvalues"][0], rel=1e-3)
    # the same name is a batch loss for surfaces too: the line's centre is the model's own mean loss
    assert main(["--quiet", "surface", str(tmp_path / "gpt2"), "--data", f"{tmp_path / 'lm.py'}:data", "--loss", "causal_lm",
                 "--x", "-1:1:3", "--out", str(tmp_path / "s.h5")]) == 0
    with h5py.File(tmp_path / "s.h5", "r") as f:
        centre = float(np.asarray(f["train_loss"][()])[1])
    assert centre == pytest.approx(report["loss"], rel=1e-6)


def test_cli_fisher_and_sharpness_of_a_hugging_face_folder_equal_the_api(tmp_path: Path) -> None:
    """The rest of the family from the CLI on the same folder: the empirical Fisher (per-row losses,
    ``--loss causal_lm_per_sample``) and the sharpness measures, each equal to the API on the same batches."""
    model = gpt2()
    model.save_pretrained(tmp_path / "gpt2")
    (tmp_path / "lm.py").write_text(DATA_PY)
    common = ["--data", f"{tmp_path / 'lm.py'}:data", "--loss", "causal_lm_per_sample"]
    assert main(["--quiet", "hessian", str(tmp_path / "gpt2"), *common, "--operator", "fisher", "--top-k", "2", "--tol",
                 "1e-6", "--max-iter", "30", "--trace-samples", "0", "--out", str(tmp_path / "f.json")]) == 0
    assert main(["--quiet", "sharpness", str(tmp_path / "gpt2"), *common, "--measures", "worst_l2,average,fisher_rao",
                 "--rho", "0.05", "--steps", "3", "--samples", "3", "--out", str(tmp_path / "s.json")]) == 0
    ns: dict[str, object] = {}
    exec(DATA_PY, ns)
    train = ns["data"]()[0]  # type: ignore[operator]
    rows = landscape.causal_lm_loss(per_sample=True)
    fisher = json.loads((tmp_path / "f.json").read_text())
    api = landscape.hessian(model, train, loss=rows, operator="fisher", top_k=2, tol=1e-6, max_iter=30, trace_samples=0,
                            progress=False)
    assert fisher["operator"] == "fisher" and min(fisher["eigenvalues"]) > 0
    np.testing.assert_allclose(fisher["eigenvalues"], api.eigenvalues, rtol=1e-5)
    sharp = json.loads((tmp_path / "s.json").read_text())
    want = landscape.sharpness(model, train, loss=rows, measures=["worst_l2", "average", "fisher_rao"], rho=[0.05], steps=3,
                               samples=3, progress=False)
    assert [r["measure"] for r in sharp["measures"]] == [r.measure for r in want.results]
    for got, ref in zip(sharp["measures"], want.results, strict=True):
        assert got["value"] == pytest.approx(ref.value, rel=1e-5, abs=1e-9), ref.measure


def test_cli_plane_of_the_top_hessian_eigenvectors_of_a_hugging_face_folder(tmp_path: Path) -> None:
    """``surface --hessian-directions`` differentiates GPT-2 twice outside ``landscape hessian`` (its fused
    attention has no double backward on the CPU: the engine runs attention as plain math for every product)."""
    model = gpt2()
    model.save_pretrained(tmp_path / "gpt2")
    (tmp_path / "lm.py").write_text(DATA_PY)
    out = tmp_path / "h.h5"
    assert main(["--quiet", "surface", str(tmp_path / "gpt2"), "--data", f"{tmp_path / 'lm.py'}:data", "--loss", "causal_lm",
                 "--hessian-directions", "--x", "-1:1:3", "--y", "-1:1:3", "--out", str(out)]) == 0
    ns: dict[str, object] = {}
    exec(DATA_PY, ns)
    train = ns["data"]()[0]  # type: ignore[operator]
    with torch.no_grad():
        own = float(np.mean([float(model(**b).loss) for b in train]))
    with h5py.File(out, "r") as f:
        z = np.asarray(f["train_loss"][()])
    assert z.shape == (3, 3) and np.isfinite(z).all()
    assert z[1, 1] == pytest.approx(own, rel=1e-6)
