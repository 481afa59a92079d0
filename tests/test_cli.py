"""The CLI in-process through ``main(argv)``: what it writes, what it prints, and how it fails.

Every user error must end as exit code 1 and exactly one line on stderr starting with
``landscape`` (no traceback); usage errors exit 2; ``--help`` and ``--version`` exit 0.
"""

from __future__ import annotations

import builtins
import hashlib
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from landscape import __version__
from landscape.cli import main
from landscape.errors import LandscapeError
from landscape.io.checkpoint import load_checkpoint
from landscape.workflows.experiment import checkpoint_config
from landscape.workflows.train import RunResult

WritePy = Callable[[str, str], Path]

TINY_TOML = """
[data]
name = "digits"
max_train = 200
max_test = 100

[model]
name = "mlp"
options = { hidden = [16] }

[train]
epochs = 1
batch_size = 50
"""

FACTORIES = """
import math
from torch import nn

def build(input_shape, output_shape, width=8):
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), width), nn.ReLU(),
                         nn.Linear(width, math.prod(output_shape)))

def three_outputs(input_shape, output_shape):
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), 3))
"""


@pytest.fixture
def tiny_toml(tmp_path: Path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_TOML)
    return path


def _fails_cleanly(capsys: pytest.CaptureFixture[str], argv: list[str], *needles: str) -> str:
    """Run ``argv``; it must exit 1 with one 'landscape …' line on stderr holding every needle."""
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith(f"landscape {argv[0]}: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# --- train and info ------------------------------------------------------------------------------


def test_train_writes_checkpoints(tiny_toml: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "run"
    assert main(["train", str(tiny_toml), "--out", str(out), "--epochs", "2", "--lr", "0.05"]) == 0
    printed = capsys.readouterr().out
    assert printed.startswith("trained mlp on digits with cross_entropy: 3 checkpoints in ")
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["epoch_000.pt", "epoch_001.pt", "epoch_002.pt"]
    ckpt = load_checkpoint(out / "checkpoints" / "epoch_002.pt")
    cfg = checkpoint_config(ckpt)
    assert cfg is not None
    assert cfg.train.epochs == 2 and cfg.train.lr == 0.05  # flags override the file
    assert cfg.train.batch_size == 50 and cfg.data.max_train == 200  # the file overrides defaults
    assert f"test_acc {ckpt.metrics['test_acc']:.4f}" in printed


def test_set_overrides_and_overwrite(tiny_toml: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = str(tmp_path / "run")
    assert main(["train", str(tiny_toml), "--out", out]) == 0
    _fails_cleanly(capsys, ["train", str(tiny_toml), "--out", out, "--set", "train.momentum=0.5"],
                   "train.momentum: 0.9 → 0.5", "--overwrite")  # fmt: skip
    assert main(["train", str(tiny_toml), "--out", out, "--set", "train.momentum=0.5", "--overwrite"]) == 0
    cfg = checkpoint_config(load_checkpoint(Path(out) / "checkpoints" / "epoch_001.pt"))
    assert cfg is not None and cfg.train.momentum == 0.5


def test_info_on_a_checkpoint(tiny_run: RunResult, capsys: pytest.CaptureFixture[str]) -> None:
    path = tiny_run.final
    assert main(["info", str(path)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["type"] == "checkpoint" and info["format"] == "landscape"
    assert info["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (info["model"], info["data"], info["loss"], info["epoch"]) == ("mlp", "digits", "cross_entropy", 2)
    assert info["input_shape"] == [1, 8, 8] and info["output_shape"] == [10]
    assert info["model_options"] == {"hidden": [32]}
    assert info["float_values"] == (64 * 32 + 32) + (32 * 10 + 10)
    last = tiny_run.manifest["checkpoints"][-1]
    assert info["metrics"] == {k: last[k] for k in ("train_loss", "train_acc", "test_loss", "test_acc")}
    from landscape.workflows.experiment import experiment_from_checkpoint

    assert info["data_sha256"] == experiment_from_checkpoint(load_checkpoint(path)).data.fingerprint()  # its training data


def test_info_on_a_foreign_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "foreign.pth"
    torch.save({"state_dict": {"module.fc.weight": torch.zeros(3, 4), "module.fc.bias": torch.zeros(3)}}, path)
    assert main(["info", str(path)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["format"] == "foreign"
    assert info["first_tensors"] == {"fc.weight": [3, 4], "fc.bias": [3]}
    assert info["float_values"] == 15


def test_info_on_a_run_folder(tiny_run: RunResult, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", str(tiny_run.out_dir)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["type"] == "run" and info["status"] == "finished"
    assert info["checkpoints"] == 3
    assert (info["model"], info["data"], info["loss"]) == ("mlp", "digits", "cross_entropy")
    assert info["last"] == tiny_run.manifest["checkpoints"][-1]


def test_user_model_spec(write_py: WritePy, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = f"{write_py('nets.py', FACTORIES)}:build"
    out = tmp_path / "run"
    argv = ["train", "--model", spec, "--set", "model.options={width = 4}", "--set", "data.max_train=100",
            "--epochs", "1", "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    ckpt = load_checkpoint(out / "checkpoints" / "epoch_001.pt")
    cfg = checkpoint_config(ckpt)
    assert cfg is not None and cfg.model.name == spec
    assert {k: tuple(v.shape) for k, v in ckpt.state_dict.items()} == {
        "1.weight": (4, 64), "1.bias": (4,), "3.weight": (10, 4), "3.bias": (10,),
    }  # fmt: skip
    assert "trained" in capsys.readouterr().out


# --- errors: exit 1, one line ------------------------------------------------------------------------------


def test_missing_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fails_cleanly(
        capsys, ["train", str(tmp_path / "nope.toml"), "--out", str(tmp_path / "r")], "nope.toml", "does not exist"
    )


def test_invalid_toml(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[train\nepochs = 1\n")
    _fails_cleanly(capsys, ["train", str(path), "--out", str(tmp_path / "r")], "bad.toml", "not valid TOML")
    assert not (tmp_path / "r").exists()


def test_unknown_key_in_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "typo.toml"
    path.write_text("[train]\nepoch = 1\n")
    _fails_cleanly(capsys, ["train", str(path), "--out", str(tmp_path / "r")], "'epoch' in [train]")


def test_unknown_key_in_an_override(tiny_toml: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fails_cleanly(
        capsys, ["train", str(tiny_toml), "--out", str(tmp_path / "r"), "--set", "train.lr_max=1"], "'lr_max'"
    )


def test_wrong_type_in_an_override(tiny_toml: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fails_cleanly(capsys, ["train", str(tiny_toml), "--out", str(tmp_path / "r"), "--set", "train.epochs=two"],
                   "train.epochs = 'two'", "an integer")  # fmt: skip


@pytest.mark.parametrize("command", ["info", "surface"])
def test_missing_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str], command: str) -> None:
    argv = [command, str(tmp_path / "gone.pt")] + (["--out", str(tmp_path / "s.h5")] if command == "surface" else [])
    _fails_cleanly(capsys, argv, "gone.pt", "does not exist")


def test_run_folder_without_a_manifest(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fails_cleanly(capsys, ["info", str(tmp_path)], "without run.json")


@pytest.mark.parametrize(
    ("flag", "value", "needles"),
    [
        ("--model", "nosuchnet", ["unknown model 'nosuchnet'", "mlp", "resnet20", "cnn"]),
        ("--data", "imagenet", ["unknown dataset 'imagenet'", "digits", "cifar10"]),
        ("--loss", "focal", ["unknown loss 'focal'", "cross_entropy", "hinge", "mse"]),
    ],
)
def test_unknown_names_list_the_known_ones(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str, needles: list[str]
) -> None:
    _fails_cleanly(capsys, ["train", flag, value, "--out", str(tmp_path / "r")], *needles)


def test_loss_that_does_not_fit_the_task(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fails_cleanly(capsys, ["train", "--data", "linreg", "--loss", "hinge", "--out", str(tmp_path / "r")],
                   "loss 'hinge' does not apply to a regression task")  # fmt: skip


def test_user_file_without_the_function(write_py: WritePy, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = f"{write_py('nets.py', FACTORIES)}:resnet_huge"
    _fails_cleanly(capsys, ["train", "--model", spec, "--out", str(tmp_path / "r")], "no callable named 'resnet_huge'")


def test_user_file_that_does_not_exist(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _fails_cleanly(capsys, ["train", "--data", f"{tmp_path / 'mydata.py'}:make", "--out", str(tmp_path / "r")],
                   "mydata.py", "does not exist")  # fmt: skip


def test_model_whose_output_does_not_fit(write_py: WritePy, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    spec = f"{write_py('nets.py', FACTORIES)}:three_outputs"
    _fails_cleanly(capsys, ["train", "--model", spec, "--out", str(tmp_path / "r")], "returns shape (2, 3)", "(2, 10)")


def test_user_code_raising_anything_is_still_one_line(
    write_py: WritePy, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write_py("boom.py", "def make():\n    raise ValueError('the disk is full')\n")
    _fails_cleanly(capsys, ["train", "--data", f"{path}:make", "--out", str(tmp_path / "r")], "the disk is full")


@pytest.mark.parametrize(("flag", "spec"), [("--x", "1:-1:0"), ("--x", "-1:1:1"), ("--x", "-1:1"), ("--y", "a:b:3")])
def test_bad_grid(
    tiny_run: RunResult, tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, spec: str
) -> None:
    out = tmp_path / "s.h5"
    _fails_cleanly(capsys, ["surface", str(tiny_run.final), "--out", str(out), flag, spec], f"{flag} {spec!r}")
    assert not out.exists()


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (builtins.open, (str(self.marker), "w"))


def test_malicious_checkpoint_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    marker, path = tmp_path / "pwned", tmp_path / "evil.pt"
    torch.save({"state_dict": _Payload(marker)}, path)
    for command in (["info", str(path)], ["surface", str(path), "--out", str(tmp_path / "s.h5")]):
        _fails_cleanly(capsys, command, "weights_only", "--unsafe-load")
    assert not marker.exists()


def test_debug_shows_the_exception(tmp_path: Path) -> None:
    with pytest.raises(LandscapeError, match="does not exist"):
        main(["--debug", "info", str(tmp_path / "gone.pt")])


# --- help, usage, version -------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [["--help"], ["train", "--help"], ["surface", "--help"], ["info", "-h"]])
def test_help(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert main(argv) == 0
    assert capsys.readouterr().out.startswith("usage: landscape")


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["train", "--epochs", "many"],
        ["train", "--optimizer", "lbfgs"],
        ["surface"],
        ["info", "a", "b"],
    ],
)
def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "usage: landscape" in err and "Traceback" not in err


def test_version_in_process(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"landscape {__version__}"


def test_python_dash_m_version() -> None:
    done = subprocess.run([sys.executable, "-m", "landscape", "--version"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"landscape {__version__}"


def test_global_flags_work_after_the_command_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from landscape.cli import main as cli_main
    from landscape.engine.progress import set_quiet

    try:
        assert cli_main(["info", str(tmp_path / "missing.pt"), "--quiet", "--threads", "1"]) == 1
        assert capsys.readouterr().err.startswith("landscape info: error:")
    finally:
        set_quiet(False)


def test_interpolating_batchnorm_models_says_when_alpha_one_is_not_the_target(
        make_config: Callable[..., Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With --dir-type weights the BatchNorm statistics stay at A's, so α = 1 is not B: the summary
    says so; with --dir-type states α = 1 is B exactly (its recorded training loss)."""
    from landscape.config import DataConfig, ModelConfig
    from landscape.io.surface_file import read_surface
    from landscape.workflows.train import train

    run = train(make_config(data=DataConfig(max_train=200, max_test=50), model=ModelConfig(name="cnn", options={"width": 4}),
                            batch_size=50, epochs=1), tmp_path / "run")
    a, b = run.checkpoints[0], run.checkpoints[-1]
    base = ["--quiet", "surface", str(a), "--target", str(b), "--x", "0:1:3"]
    assert main([*base, "--out", str(tmp_path / "w.h5")]) == 0
    assert "note: α = 1 is not exactly the target: " in capsys.readouterr().out
    assert main([*base, "--dir-type", "states", "--out", str(tmp_path / "s.h5")]) == 0
    assert "note:" not in capsys.readouterr().out
    surface = read_surface(tmp_path / "s.h5")
    assert surface.values["train_loss"][-1] == pytest.approx(load_checkpoint(b).metrics["train_loss"], rel=1e-5)


def test_a_closed_pipe_ends_the_command_quietly(tiny_run: RunResult) -> None:
    """`landscape info RUN | head -1`: the reader is gone before the output is written."""
    proc = subprocess.Popen([sys.executable, "-m", "landscape", "info", str(tiny_run.out_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # long before the child has imported torch and printed anything
    with proc.stderr:
        err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert err == ""


def test_a_surface_on_other_data_than_the_training_data_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Checkpoints record a fingerprint of their data; a data function that gives other data on
    the next call (unseeded randomness) is named in the surface's summary."""
    (tmp_path / "mydata.py").write_text(
        "import torch\n"
        "CALLS = [0]\n"
        "def fixed():\n"
        "    g = torch.Generator().manual_seed(0)\n"
        "    x = torch.randn(60, 5, generator=g)\n"
        "    return (x[:40], (x[:40, 0] > 0).long()), (x[40:], (x[40:, 0] > 0).long())\n"
        "def drifting():\n"
        "    CALLS[0] += 1\n"
        "    g = torch.Generator().manual_seed(CALLS[0])\n"
        "    x = torch.randn(60, 5, generator=g)\n"
        "    return (x[:40], (x[:40, 0] > 0).long()), (x[40:], (x[40:, 0] > 0).long())\n")
    for fn, noted in (("fixed", False), ("drifting", True)):
        run = tmp_path / fn
        assert main(["--quiet", "train", "--data", f"{tmp_path / 'mydata.py'}:{fn}", "--model", "mlp", "--epochs", "1",
                     "--out", str(run)]) == 0
        capsys.readouterr()
        assert main(["--quiet", "surface", str(run / "checkpoints" / "epoch_001.pt"), "--x", "-1:1:3",
                     "--out", str(tmp_path / f"{fn}.h5")]) == 0
        out = capsys.readouterr().out
        assert ("note: the data differ from those this checkpoint was trained on" in out) is noted, out
    # resuming a run on other data would mix two datasets in one run: refused; the same data resume
    for fn, code in (("drifting", 1), ("fixed", 0)):
        assert main(["--quiet", "train", "--data", f"{tmp_path / 'mydata.py'}:{fn}", "--model", "mlp", "--epochs", "2",
                     "--out", str(tmp_path / fn)]) == code
        assert ("the data differ from those the run in" in capsys.readouterr().err) is (code == 1)
