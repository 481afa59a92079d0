"""``landscape run``: the whole job on a tiny config, then again to check that nothing is redone."""

from __future__ import annotations

from pathlib import Path

import pytest

from landscape.cli import main
from landscape.config import load_config
from landscape.errors import ConfigError
from landscape.workflows.run import run_pipeline, training_config

TINY = """
[data]
name = "digits"
max_train = 200
max_test = 100

[model]
name = "mlp"
options = { hidden = [16] }

[train]
epochs = 2
batch_size = 50

[surface]
max_samples = 100

[run]
random_x = "-1:1:5"
random_y = "-1:1:4"
line_x = "-1:1:7"
pca_grid = 5

[plot]
formats = ["png"]
log = true
"""

FIGURES = {f"{stem}_{kind}.png" for stem in ("random_2d", "pca_2d") for kind in ("contour", "filled", "heatmap", "surface3d")}
FIGURES |= {"pca_2d_trajectory.png", "random_1d_line.png", "training_curves.png"}
SURFACES = ("random_2d", "random_1d", "pca_2d")


def products(out: Path) -> dict[str, float]:
    """Modification times of everything expensive the job writes."""
    files = [*sorted((out / "checkpoints").iterdir()), out / "trajectory.h5", *(out / "surfaces" / f"{s}.h5" for s in SURFACES)]
    return {str(p.relative_to(out)): p.stat().st_mtime_ns for p in files}


def stage_lines(text: str) -> dict[str, str]:
    """Stage name → its report line (``  train       skipped  ...``)."""
    return {line.split()[0]: line for line in text.splitlines() if line.startswith("  ")}


@pytest.fixture
def tiny_toml(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY)
    return path


def test_run_makes_every_file_then_resumes_without_redoing_work(tiny_toml: Path, tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "job"
    assert main(["run", str(tiny_toml), "--out", str(out)]) == 0
    first = stage_lines(capsys.readouterr().out)
    assert all(first[name].split()[1] == "done" for name in ("train", "trajectory", *SURFACES, "figures"))
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["epoch_000.pt", "epoch_001.pt", "epoch_002.pt"]
    assert {p.name for p in (out / "figures").iterdir()} == FIGURES
    assert (out / "run.json").is_file() and (out / "run_config.toml").is_file()
    assert load_config(out / "run_config.toml") == load_config(tiny_toml)
    before = products(out)

    assert main(["run", str(tiny_toml), "--out", str(out), "--set", "plot.cmap=\"magma\""]) == 0
    again = stage_lines(capsys.readouterr().out)
    assert all(again[name].split()[1] == "skipped" for name in ("train", "trajectory", *SURFACES)), again
    assert again["figures"].split()[1] == "done"  # figures are always redrawn: a [plot] change shows at once
    assert products(out) == before


def test_more_epochs_resume_training_and_redo_what_depends_on_it(tiny_toml: Path, tmp_path: Path) -> None:
    out = tmp_path / "job"
    cfg = load_config(tiny_toml)
    run_pipeline(cfg, out)
    before = products(out)
    stages = {s.name: s for s in run_pipeline(load_config(tiny_toml, ["train.epochs=3"]), out)}
    assert all(stages[name].action == "done" for name in ("train", "trajectory", *SURFACES))
    assert "new final checkpoint" in stages["random_2d"].detail
    after = products(out)
    assert after["checkpoints/epoch_002.pt"] == before["checkpoints/epoch_002.pt"]  # resumed, not restarted
    assert "checkpoints/epoch_003.pt" in after
    assert all(after[k] > before[k] for k in ("trajectory.h5", *(f"surfaces/{s}.h5" for s in SURFACES)))


def test_a_plane_needs_three_checkpoints(tiny_toml: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"train\.epochs must be ≥ 2"):
        run_pipeline(load_config(tiny_toml, ["train.epochs=1"]), tmp_path / "job")
    assert not (tmp_path / "job").exists()


def test_only_data_model_and_train_settings_identify_the_training_run(tiny_toml: Path) -> None:
    base = training_config(load_config(tiny_toml))
    changed = training_config(load_config(tiny_toml, ["run.pca_grid=9", "plot.cmap=\"magma\"", "surface.max_samples=7",
                                                      "directions.seed=5"]))
    assert base == changed
    assert training_config(load_config(tiny_toml, ["train.lr=0.05"])) != base


def test_cli_run_errors_are_one_line(tiny_toml: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(tmp_path / "missing.toml"), "--out", str(tmp_path / "job")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not exist" in err
