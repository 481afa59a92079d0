"""README's Lightning and Trainer examples (```python lightning / ```python trainer blocks) run as
written, in a scratch folder, and leave what the README says: checkpoints, figures, TensorBoard images."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from docblocks import run_blocks
from frameworks import need

REPO = Path(__file__).resolve().parents[1]

pytestmark = [
    pytest.mark.filterwarnings("ignore::UserWarning"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning"),
    pytest.mark.filterwarnings("ignore::FutureWarning"),
]


def _block(tag: str) -> str:
    (block,) = re.findall(rf"^```python {tag}\n(.*?)^```", (REPO / "README.md").read_text(), flags=re.S | re.M)
    return str(block)


def _image_tags(folder: Path) -> list[str]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder))
    acc.Reload()
    return sorted(acc.Tags()["images"])


def test_readme_lightning_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    need("lightning.pytorch", "lightning")
    need("tensorboard", "tensorboard")
    monkeypatch.chdir(tmp_path)
    block = _block("lightning")
    assert len(block.strip().splitlines()) <= 14
    exec(compile(block, "README.md, the Lightning example", "exec"), {"__name__": "__readme__"})
    run = tmp_path / "runs" / "lightning"
    assert len(list((run / "checkpoints").glob("step_*.pt"))) == 6  # the initial weights and 5 epochs
    assert (run / "surface.h5").is_file() and (run / "figures" / "trajectory.png").stat().st_size > 5000
    (events,) = (tmp_path / "lightning_logs").iterdir()  # Lightning's default TensorBoardLogger
    assert _image_tags(events) == ["landscape/contour", "landscape/trajectory"]


def test_readme_trainer_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    need("transformers", "hf")
    need("accelerate", "hf")
    need("tensorboard", "tensorboard")
    monkeypatch.chdir(tmp_path)
    block = _block("trainer")
    assert len(block.strip().splitlines()) <= 12
    exec(compile(block, "README.md, the Trainer example", "exec"), {"__name__": "__readme__"})
    out = tmp_path / "runs" / "gpt2"
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-12", "checkpoint-4", "checkpoint-8"]
    assert (out / "landscape" / "figures" / "contour.png").stat().st_size > 5000
    assert _image_tags(out / "runs" / "landscape") == ["landscape/contour", "landscape/trajectory"]
    from landscape.cli import main
    from landscape.io.trajectory_file import load_trajectory

    assert main(["--quiet", "trajectory", str(out), "--out", str(tmp_path / "t.h5")]) == 0  # as the README says
    assert list(load_trajectory(tmp_path / "t.h5").steps) == [4, 8, 12]


def test_integrations_page_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/INTEGRATIONS.md's python blocks run as written; the sizes it prints are the ones logged."""
    need("tensorboard", "tensorboard")
    need("wandb", "wandb")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WANDB_MODE", "offline")  # the page sets these itself; restored after the test
    monkeypatch.setenv("WANDB_SILENT", "true")
    blocks, namespace = run_blocks("docs/INTEGRATIONS.md")
    assert len(blocks) == 3
    assert namespace["sizes"] == {"landscape/contour": (272, 340)}
    (run_dir,) = Path(namespace["run"].dir).parent.parent.glob("offline-run-*")
    assert len(list((run_dir / "files" / "media" / "images" / "landscape").glob("contour_0_*.png"))) == 1
