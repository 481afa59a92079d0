"""The command line's one vocabulary, read from every subcommand's ``--help``.

What the README says of the flags (its sentence beginning "Every command that evaluates a
model") is read here and checked against the commands, so the two cannot drift. Old spellings
still work, each with exactly one line on stderr.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path
from typing import Any

import h5py
import pytest

from landscape.cli import COMMANDS, build_parser, main
from landscape.config import Config
from landscape.errors import LandscapeError
from landscape.flags import EVALUATES, FLAGS, RENAMED_FLAGS
from landscape.io.surface_file import read_surface
from landscape.workflows.train import RunResult

REPO = Path(__file__).resolve().parents[1]
GLOBAL = {"-h", "--help", "--debug", "--quiet", "--threads"}
SENTENCE = re.compile(r"Every command that evaluates a model \((?P<evaluating>[^)]*)\) takes (?P<six>.*?) overrides; "
                      r"`trajectory`, which reads weights and evaluates nothing,\s+takes (?P<trajectory>.*?)\. ", re.S)


def help_options(text: str) -> dict[str, str]:
    """option → what follows it on its line of ``--help`` (its metavar or ``{choices}``)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        match = re.match(r"^  (-[^ ].*?)(?:  |$)", line)
        if match:
            for part in match.group(1).split(", "):
                name, _, metavar = part.partition(" ")
                found[name] = metavar
    return found


@pytest.fixture(scope="module")
def helps() -> dict[str, dict[str, str]]:
    out: dict[str, dict[str, str]] = {}
    for sub in COMMANDS:
        parser = build_parser()
        sub_parser = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[sub]
        out[sub] = help_options(sub_parser.format_help())
    return out


def parsers() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    return dict(next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices)


def test_help_through_main_lists_the_same_options(capsys: pytest.CaptureFixture[str],
                                                  helps: dict[str, dict[str, str]]) -> None:
    for sub in COMMANDS:
        assert main([sub, "--help"]) == 0
        assert help_options(capsys.readouterr().out) == helps[sub], sub


def test_every_option_of_every_command_comes_from_the_one_table(helps: dict[str, dict[str, str]]) -> None:
    for sub, options in helps.items():
        # --no-X is the other half of a --X/--no-X flag
        unknown = {o for o in options if o not in GLOBAL and o.replace("--no-", "--", 1) not in FLAGS}
        assert not unknown, (sub, unknown)


def test_a_flag_spelled_the_same_has_the_same_type_choices_and_help(helps: dict[str, dict[str, str]]) -> None:
    seen: dict[str, tuple[str, tuple[Any, ...]]] = {}
    for sub, parser in parsers().items():
        for action in parser._actions:
            if not action.option_strings or action.help == argparse.SUPPRESS or set(action.option_strings) & GLOBAL:
                continue
            name = action.option_strings[0]
            # the same type (by name: a renamed-value reader is named after its type), choices, form and dest
            shape = (getattr(action.type, "__name__", action.type), tuple(action.choices or ()), type(action).__name__,
                     action.nargs, action.dest)
            assert str(action.help).startswith(FLAGS[name].help), (sub, name)  # one help text: one meaning
            if name in seen:
                assert shape == seen[name][1], f"{name}: {seen[name][0]} {seen[name][1]} but {sub} {shape}"
            else:
                seen[name] = (sub, shape)
            assert helps[sub][name] == helps[seen[name][0]][name], (sub, name)  # as --help shows it
    assert len(seen) > 40


def test_a_renamed_flag_is_hidden_where_it_moved() -> None:
    for (sub, old), new in RENAMED_FLAGS.items():
        text = parsers()[sub].format_help()
        assert old not in help_options(text) and new in help_options(text)
    assert "--metric" in help_options(parsers()["surface"].format_help())  # its one remaining meaning


@pytest.mark.parametrize("page", ["README.md", "docs/COMMANDS.md"])
def test_the_readme_sentence_is_what_the_commands_take(page: str, helps: dict[str, dict[str, str]]) -> None:
    text = " ".join((REPO / page).read_text(encoding="utf-8").split())
    match = SENTENCE.search(text)
    assert match, f"{page} lost its sentence on the flags"
    evaluating = set(re.findall(r"`(\w+)`", match["evaluating"]))
    six = [f.split()[0] for f in re.findall(r"`(--[^`]+)`", match["six"])]
    four = [f.split()[0] for f in re.findall(r"`(--[^`]+)`", match["trajectory"])]
    assert sorted(six) == sorted(EVALUATES)
    # exactly the commands named take all six; trajectory takes the four named and not the other two
    assert {sub for sub, options in helps.items() if set(six) <= set(options)} == evaluating
    assert set(four) <= set(helps["trajectory"]) and not (set(six) - set(four)) & set(helps["trajectory"])
    assert "same type, choices and help" in text


# --- old spellings: each still works, with exactly one line on stderr ----------------------------------------


def _one_notice(err: str, line: str) -> None:
    notices = [x for x in err.splitlines() if "deprecated" in x]
    assert notices == [line], err


def _surface(ckpt: Path, out: Path, *extra: str) -> list[str]:
    return ["surface", str(ckpt), "--out", str(out), "--x", "-1:1:3", "--max-samples", "60", *extra]


def test_bn_fixed_is_read_as_keep(tiny_run: RunResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_surface(tiny_run.final, tmp_path / "old.h5", "--bn", "fixed")) == 0
    _one_notice(capsys.readouterr().err, "landscape: --bn fixed is deprecated; use --bn keep")
    assert main(_surface(tiny_run.final, tmp_path / "new.h5", "--bn", "keep")) == 0
    assert "deprecated" not in capsys.readouterr().err
    old, new = read_surface(tmp_path / "old.h5"), read_surface(tmp_path / "new.h5")
    assert old.attrs["settings"]["bn"] == "keep" == new.attrs["settings"]["bn"]
    assert old.values["train_loss"].tolist() == new.values["train_loss"].tolist()


@pytest.mark.parametrize("how", ["set", "file"])
def test_an_old_value_in_set_or_a_config_file_is_read_with_one_line(how: str, tiny_run: RunResult, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "c.toml").write_text('[surface]\nbn = "fixed"\n')
    extra = ["--set", "surface.bn=fixed"] if how == "set" else ["--config", str(tmp_path / "c.toml")]
    assert main(_surface(tiny_run.final, tmp_path / "s.h5", *extra)) == 0
    _one_notice(capsys.readouterr().err, "landscape: surface.bn = 'fixed' is deprecated; use 'keep'")
    assert read_surface(tmp_path / "s.h5").attrs["settings"]["bn"] == "keep"


def test_a_surface_file_written_with_bn_fixed_resumes(tiny_run: RunResult, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "s.h5"
    assert main(_surface(tiny_run.final, out)) == 0
    with h5py.File(out, "r+") as f:  # as the previous release wrote it
        settings = json.loads(f.attrs["settings"])
        assert settings["bn"] == "keep"
        f.attrs["settings"] = json.dumps({**settings, "bn": "fixed"})
        f["done"][1] = False  # one point left to compute
    capsys.readouterr()
    assert main(_surface(tiny_run.final, out)) == 0
    assert read_surface(out).done.all()
    capsys.readouterr()
    assert main(_surface(tiny_run.final, out, "--bn", "recompute")) == 1  # another setting is still refused
    assert "other settings" in capsys.readouterr().err


def test_connect_bn_auto_is_read_as_recompute(tmp_path: Path, tiny_run: RunResult, capsys: pytest.CaptureFixture[str]) -> None:
    a, b = tiny_run.checkpoints[0], tiny_run.final
    argv = ["connect", str(a), str(b), "--curve", "line", "--points", "3", "--max-samples", "40", "--set", "connect.margin=0.0",
            "--set", "connect.plane_grid=0", "--set", 'plot.formats=["png"]', "--set", "plot.dpi=30"]
    assert main([*argv, "--out", str(tmp_path / "old"), "--bn", "auto"]) == 0
    _one_notice(capsys.readouterr().err, "landscape: --bn auto is deprecated; use --bn recompute")
    assert main([*argv, "--out", str(tmp_path / "new"), "--bn", "recompute"]) == 0
    from landscape.io.connect_file import read_connect

    old, new = read_connect(tmp_path / "old" / "connect.h5"), read_connect(tmp_path / "new" / "connect.h5")
    assert old.attrs["settings"] == new.attrs["settings"]
    assert old.attrs["settings"]["bn"] == "keep"  # the MLP has no BatchNorm: nothing to recompute


@pytest.fixture
def surface_file(tiny_run: RunResult, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    assert main(_surface(tiny_run.final, tmp_path / "s.h5", "--split", "both")) == 0
    capsys.readouterr()
    return tmp_path / "s.h5"


def test_plot_metric_is_read_as_column(surface_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plot", str(surface_file), "--out", str(tmp_path / "f"), "--kind", "line", "--format", "png", "--dpi", "30",
                 "--metric", "test_loss"]) == 0
    _one_notice(capsys.readouterr().err, "landscape: plot --metric is deprecated; use --column")
    assert (tmp_path / "f" / "s_line.png").is_file()


def test_export_metric_is_read_as_column(surface_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", str(surface_file), "--format", "csv", "--out", str(tmp_path / "s.csv"), "--metric", "test_loss",
                 "--no-log"]) == 0
    _one_notice(capsys.readouterr().err, "landscape: export --metric is deprecated; use --column")
    header = (tmp_path / "s.csv").read_text().splitlines()[0]
    assert "test_loss" in header and "train_loss" not in header


class Stop(LandscapeError):
    pass


def _capture_config(monkeypatch: pytest.MonkeyPatch, module: str, name: str) -> list[Config]:
    """Replace ``module.name`` (a workflow entry) by one that keeps the config it is given and stops."""
    import importlib

    seen: list[Config] = []

    def fake(cfg: Config, *args: Any, **kwargs: Any) -> Any:
        seen.append(cfg)
        raise Stop("stopped by the test")

    monkeypatch.setattr(importlib.import_module(module), name, fake)
    return seen


def test_compare_losses_is_read_as_loss_and_the_six_flags_reach_its_config(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    seen = _capture_config(monkeypatch, "landscape.workflows.compare", "run_compare")
    (tmp_path / "c.toml").write_text('[train]\nepochs = 3\n')
    assert main(["compare", "--config", str(tmp_path / "c.toml"), "--out", str(tmp_path / "o"), "--losses", "mse,l1",
                 "--model", "linear", "--data", "blobs", "--device", "cpu:0", "--set", "compare.radius=0.25"]) == 1
    _one_notice(capsys.readouterr().err, "landscape: compare --losses is deprecated; use --loss")
    (cfg,) = seen
    assert cfg.compare.losses == ("mse", "l1") and cfg.model.name == "linear" and cfg.data.name == "blobs"
    assert cfg.train.device == cfg.surface.device == "cpu:0" and cfg.compare.radius == 0.25 and cfg.train.epochs == 3


def test_run_takes_config_as_a_flag_and_its_flags_reach_the_config(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    seen = _capture_config(monkeypatch, "landscape.workflows.run", "run_pipeline")
    (tmp_path / "c.toml").write_text('[train]\nepochs = 3\n')
    assert main(["run", "--config", str(tmp_path / "c.toml"), "--out", str(tmp_path / "o"), "--loss", "mse",
                 "--device", "cpu:0", "--model", "linear"]) == 1
    (cfg,) = seen
    assert cfg.train.loss == "mse" and cfg.train.device == cfg.surface.device == "cpu:0" and cfg.model.name == "linear"
    assert cfg.train.epochs == 3
    assert main(["run", str(tmp_path / "c.toml"), "--config", str(tmp_path / "c.toml")]) == 1
    assert "give one" in capsys.readouterr().err


def test_train_takes_config_as_a_flag(tmp_path: Path) -> None:
    (tmp_path / "c.toml").write_text('[data]\nmax_train = 120\nmax_test = 60\n[model]\nname = "linear"\n[train]\nepochs = 1\n')
    assert main(["train", "--config", str(tmp_path / "c.toml"), "--out", str(tmp_path / "run"), "--lr", "0.05"]) == 0
    saved = json.loads((tmp_path / "run" / "run.json").read_text())["config"]
    assert saved["data"]["max_train"] == 120 and saved["model"]["name"] == "linear" and saved["train"]["lr"] == 0.05


def test_trajectory_reads_its_tensors_from_the_config(tiny_run: RunResult, tmp_path: Path,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    from landscape.io.trajectory_file import load_trajectory

    out = tmp_path / "t.h5"
    assert main(["trajectory", str(tiny_run.out_dir), "--out", str(out), "--set", "directions.ignore=none"]) == 0
    assert load_trajectory(out).meta["ignore"] == "none"


def test_hessian_split_both_is_one_report_per_split(tiny_run: RunResult, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    common = ["hessian", str(tiny_run.final), "--max-samples", "60", "--top-k", "1", "--trace-samples", "4",
              "--max-iter", "20", "--params", "fc1.*"]
    assert main([*common, "--split", "both", "--out", str(tmp_path / "both.json")]) == 0
    assert "[train]" in capsys.readouterr().out
    both = json.loads((tmp_path / "both.json").read_text())
    assert both["split"] == "both" and sorted(both["reports"]) == ["test", "train"]
    for split in ("train", "test"):
        assert main([*common, "--split", split, "--out", str(tmp_path / f"{split}.json")]) == 0
        alone = json.loads((tmp_path / f"{split}.json").read_text())
        assert both["reports"][split]["settings"]["split"] == split
        assert both["reports"][split]["eigenvalues"] == alone["eigenvalues"]
        assert both["reports"][split]["loss"] == alone["loss"]
    assert both["reports"]["train"]["loss"] != both["reports"]["test"]["loss"]
    assert main([*common, "--split", "both", "--out", str(tmp_path / "x.json"), "--save-directions", str(tmp_path / "d.h5")]) == 1
    assert "one split" in capsys.readouterr().err
