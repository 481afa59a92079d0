"""The Hugging Face Trainer callback with the real framework: a tiny config-built GPT-2 trained on
the shipped Gettysburg text, 3 ``checkpoint-N/`` folders read by ``landscape trajectory`` and
``landscape surface``, the callback's surface and its figures in TensorBoard (read back)."""

from __future__ import annotations

import copy
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from frameworks import need
from matplotlib.image import imread

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]

BLOCK, WINDOWS, BATCH = 16, 32, 8

# the user file `landscape surface --data/--loss` imports: the same windows of the same text
TEXT_PY = f'''
from landscape.zoo.text import CharVocab, lm_batches, load_text

def data():
    text = load_text("gettysburg")
    ids = CharVocab.of(text).encode(text)[: {BLOCK * WINDOWS}]
    batches = lm_batches(ids, {BLOCK}, {BATCH})
    return batches, batches[-1:]  # (train, test)

def loss(model, batch):
    return model(**batch).loss
'''


def _windows() -> tuple[list[dict[str, torch.Tensor]], int]:
    from landscape.zoo.text import CharVocab, load_text

    text = load_text("gettysburg")
    vocab = CharVocab.of(text)
    ids = vocab.encode(text)[: BLOCK * WINDOWS].reshape(WINDOWS, BLOCK)
    return [{"input_ids": w, "labels": w.clone()} for w in ids], vocab.size


def _loss64(model: torch.nn.Module, windows: list[dict[str, torch.Tensor]]) -> float:
    """Oracle: next-character cross-entropy of every window, by hand in float64 on a copy (mean over tokens)."""
    m = copy.deepcopy(model).double().eval()
    ids = torch.stack([w["input_ids"] for w in windows])  # (n, block)
    with torch.no_grad():
        logits = m(input_ids=ids).logits  # (n, block, vocab)
    pred, target = logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1)
    return float((torch.logsumexp(pred, 1) - pred[torch.arange(len(target)), target]).mean())


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    transformers = need("transformers", "hf")
    need("accelerate", "hf")
    need("tensorboard", "tensorboard")
    wandb = need("wandb", "wandb")
    from landscape.integrations.hf import LandscapeCallback

    root = tmp_path_factory.mktemp("hf")
    windows, vocab = _windows()
    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=vocab, n_positions=BLOCK, n_embd=16, n_layer=1, n_head=2,
                                     bos_token_id=0, eos_token_id=0)
    model = transformers.GPT2LMHeadModel(config)
    args = transformers.TrainingArguments(
        output_dir=str(root / "out"), max_steps=6, save_steps=2, per_device_train_batch_size=BATCH, learning_rate=1e-2,
        logging_steps=1, report_to=["tensorboard", "wandb"], use_cpu=True, disable_tqdm=True, save_only_model=True, seed=0)
    callback = LandscapeCallback(surface_at_end=True, grid=5, progress=False)
    with pytest.MonkeyPatch.context() as mp:  # W&B offline, its files under root
        mp.setenv("WANDB_MODE", "offline")
        mp.setenv("WANDB_SILENT", "true")
        mp.setenv("WANDB_DIR", str(root))
        mp.setenv("WANDB_PROJECT", "landscape-test")
        transformers.Trainer(model=model, args=args, train_dataset=windows, callbacks=[callback]).train()
        wandb.finish()
    (root / "text.py").write_text(TEXT_PY)
    return {"root": root, "out": root / "out", "callback": callback, "model": model, "windows": windows}


def test_trainer_writes_three_checkpoints_read_in_step_order(trained: dict[str, Any], tmp_path: Path) -> None:
    from landscape.cli import main
    from landscape.io.trajectory_file import load_trajectory

    out = trained["out"]
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4", "checkpoint-6"]
    assert main(["--quiet", "trajectory", str(out), "--out", str(tmp_path / "t.h5")]) == 0
    t = load_trajectory(tmp_path / "t.h5")
    assert list(t.steps) == [2, 4, 6]
    np.testing.assert_allclose(t.coords[-1], [0.0, 0.0], atol=1e-7)


def test_cli_surface_on_a_trainer_checkpoint(trained: dict[str, Any], tmp_path: Path) -> None:
    from landscape import load_surface, plot
    from landscape.cli import main

    text_py = trained["root"] / "text.py"
    assert main(["--quiet", "surface", str(trained["out"] / "checkpoint-6"), "--data", f"{text_py}:data",
                 "--loss", f"{text_py}:loss", "--x", "-1:1:3", "--y", "-1:1:3", "--out", str(tmp_path / "s.h5")]) == 0
    s = load_surface(tmp_path / "s.h5")
    assert s["train_loss"][1, 1] == pytest.approx(_loss64(trained["model"], trained["windows"]), rel=1e-5)
    fig = plot(tmp_path / "s.h5", "contour")  # the surface file draws
    fig.savefig(tmp_path / "s.png")
    assert imread(tmp_path / "s.png").shape[:2] == tuple(int(v) for v in fig.get_size_inches()[::-1] * fig.dpi)


def test_callback_records_every_save_and_the_surface(trained: dict[str, Any]) -> None:
    from landscape.io.checkpoint import load_checkpoint

    callback = trained["callback"]
    run = json.loads((trained["out"] / "landscape" / "run.json").read_text())
    assert [c["step"] for c in run["checkpoints"]] == [0, 2, 4, 6] and run["status"] == "finished"
    assert [c["train_epoch"] for c in run["checkpoints"][1:]] == [0.5, 1.0, 1.5]  # 4 batches an epoch
    final = load_checkpoint(callback.recorder.checkpoints[-1])
    for name, value in trained["model"].state_dict().items():
        assert torch.equal(final.state_dict[name], value.cpu())
    s = callback.result.surface
    i, j = int(np.flatnonzero(s.x == 0.0)[0]), int(np.flatnonzero(s.y == 0.0)[0])
    # the train dataloader's 4 equal batches, the model's own loss: the mean over all windows' tokens
    assert s["train_loss"][i, j] == pytest.approx(_loss64(trained["model"], trained["windows"]), rel=1e-5)


def test_callback_logs_to_tensorboard(trained: dict[str, Any]) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(trained["out"] / "runs" / "landscape"))
    acc.Reload()
    assert sorted(acc.Tags()["images"]) == ["landscape/contour", "landscape/trajectory"]
    for name in ("contour", "trajectory"):
        (event,) = acc.Images(f"landscape/{name}")
        png = imread(trained["out"] / "landscape" / "figures" / f"{name}.png")
        assert (event.height, event.width) == png.shape[:2] and event.step == 6
        logged = imread(io.BytesIO(event.encoded_image_string), format="png")
        assert np.array_equal(np.rint(logged[:, :, :3] * 255), np.rint(png[:, :, :3] * 255))


def test_callback_logs_to_the_wandb_run(trained: dict[str, Any]) -> None:
    (run_dir,) = (trained["root"] / "wandb").glob("offline-run-*")
    for name in ("contour", "trajectory"):
        (logged,) = (run_dir / "files" / "media" / "images" / "landscape").glob(f"{name}_*.png")
        png = imread(trained["out"] / "landscape" / "figures" / f"{name}.png")
        assert imread(logged).shape[:2] == png.shape[:2]
