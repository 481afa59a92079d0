"""Config loading: TOML files, ``--set`` overrides, type checks that name the key, round trips."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from landscape.config import (
    Config,
    DataConfig,
    ModelConfig,
    PlotConfig,
    SurfaceConfig,
    TrainConfig,
    apply_overrides,
    config_from_dict,
    config_to_dict,
    dumps_toml,
    load_config,
    parse_override,
    save_config,
)
from landscape.engine.losses import LOSSES
from landscape.errors import ConfigError
from landscape.io.run_folder import diff_settings
from landscape.zoo.data import DATASETS
from landscape.zoo.models import MODELS
from landscape.zoo.registry import is_user_spec

REPO = Path(__file__).resolve().parents[1]
SHIPPED = sorted((REPO / "configs").glob("*.toml"))


def test_defaults_without_a_file() -> None:
    assert load_config(None) == Config()


def test_toml_file_is_loaded_into_typed_sections(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(
        """
        [data]
        name = "digits"
        classes = [3, 8]
        binary = true

        [model]
        name = "mlp"
        options = { hidden = [16, 8], activation = "tanh" }

        [train]
        lr = 1            # an integer where a float is expected is fine
        epochs = 7
        optimizer = "adam"

        [plot]
        vmax = 2
        """
    )
    cfg = load_config(path)
    assert cfg.data == DataConfig(name="digits", classes=(3, 8), binary=True)
    assert cfg.model == ModelConfig(name="mlp", options={"hidden": [16, 8], "activation": "tanh"})
    assert cfg.train == TrainConfig(lr=1.0, epochs=7, optimizer="adam")
    assert isinstance(cfg.train.lr, float) and isinstance(cfg.train.epochs, int)
    assert cfg.data.classes == (3, 8)  # a tuple, so the frozen config stays hashable-ish and immutable
    assert cfg.plot.vmax == 2.0 and isinstance(cfg.plot.vmax, float)
    assert cfg.surface == SurfaceConfig()  # untouched sections keep their defaults


@pytest.mark.parametrize(
    ("text", "keys", "value"),
    [
        ("train.epochs=3", ["train", "epochs"], 3),
        ("train.lr=0.05", ["train", "lr"], 0.05),
        ("train.lr=1e-3", ["train", "lr"], 0.001),
        ("data.classes=[3, 8]", ["data", "classes"], [3, 8]),
        (
            "model.options={hidden = [8], activation = 'tanh'}",
            ["model", "options"],
            {"hidden": [8], "activation": "tanh"},
        ),
        ("data.binary=true", ["data", "binary"], True),
        ('data.name="digits"', ["data", "name"], "digits"),
        ("data.name=digits", ["data", "name"], "digits"),  # bare string: not TOML, kept as text
        ("surface.x=-1:1:51", ["surface", "x"], "-1:1:51"),
        ("model.name=models/net.py:build", ["model", "name"], "models/net.py:build"),
        ("train.device=cuda:0", ["train", "device"], "cuda:0"),
        (" train.lr = 0.5", ["train", "lr"], 0.5),
    ],
)
def test_parse_override(text: str, keys: list[str], value: Any) -> None:
    assert parse_override(text) == (keys, value)


def test_overrides_apply_on_top_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[train]\nlr = 0.1\nepochs = 5\n[model]\nname = "cnn"\n')
    cfg = load_config(
        path,
        [
            "train.epochs=9",
            "data.classes=[1, 7]",
            "model.options={width = 4}",
            "surface.x=-2:2:11",
            "surface.losses=['mse', 'l1']",
            "data.name=linreg",
        ],
    )
    assert cfg.train.lr == 0.1  # from the file
    assert cfg.train.epochs == 9  # the override wins over the file
    assert cfg.model == ModelConfig(name="cnn", options={"width": 4})
    assert cfg.data.classes == (1, 7)
    assert cfg.data.name == "linreg"
    assert cfg.surface.x == "-2:2:11"
    assert cfg.surface.losses == ("mse", "l1")


def test_apply_overrides_does_not_mutate_its_input() -> None:
    data = {"train": {"lr": 0.1}}
    merged = apply_overrides(data, ["train.lr=0.2", "data.max_train=10"])
    assert data == {"train": {"lr": 0.1}}
    assert merged == {"train": {"lr": 0.2}, "data": {"max_train": 10}}


@pytest.mark.parametrize("text", ["train.lr", "=3", "  =3"])
def test_malformed_override_is_rejected(text: str) -> None:
    with pytest.raises(ConfigError, match=r"section\.key=value"):
        parse_override(text)


def test_override_through_a_value_is_rejected() -> None:
    with pytest.raises(ConfigError, match="'lr' is not a section"):
        apply_overrides({"train": {"lr": 0.1}}, ["train.lr.x=1"])


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"nosuch": {}}, "'nosuch' in the top level"),
        ({"train": {"epoch": 3}}, "'epoch' in [train]"),
        ({"model": {"options": {}, "width": 3}}, "'width' in [model]"),
    ],
)
def test_unknown_section_or_key_is_rejected_by_name(data: dict[str, Any], named: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict(data)
    assert named in str(info.value)
    assert "known:" in str(info.value)


def test_unknown_key_in_a_file_names_it(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[train]\nlearning_rate = 0.1\n")
    with pytest.raises(ConfigError, match="'learning_rate' in \\[train\\]"):
        load_config(path)


def test_unknown_key_through_an_override_names_it() -> None:
    with pytest.raises(ConfigError, match="'bogus' in \\[surface\\]"):
        load_config(None, ["surface.bogus=1"])


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        ("train", "lr", "fast", "a number"),  # string for float
        ("train", "lr", True, "a number"),  # bool for float
        ("train", "epochs", 2.5, "an integer"),  # float for int
        ("train", "epochs", 2.0, "an integer"),  # an integral float is still a float
        ("train", "epochs", True, "an integer"),  # bool for int (bool is an int subclass in Python)
        ("train", "epochs", "3", "an integer"),
        ("data", "binary", 1, "bool"),
        ("data", "name", 3, "str"),
        ("data", "classes", 3, "a list"),
        ("data", "classes", [1, "b"], "an integer"),
        ("model", "options", [1, 2], "a table"),
        ("plot", "vmin", "low", "float"),
    ],
)
def test_wrong_types_are_rejected_naming_the_key(section: str, key: str, value: Any, expected: str) -> None:
    with pytest.raises(ConfigError, match="wrong type") as info:
        config_from_dict({section: {key: value}})
    message = str(info.value)
    assert f"{section}.{key}" in message
    assert expected in message


def test_a_section_that_is_not_a_table_is_rejected() -> None:
    with pytest.raises(ConfigError, match=r"\[train\] must be a table"):
        config_from_dict({"train": 3})


@pytest.mark.parametrize(
    ("section", "key", "value", "allowed"),
    [
        ("train", "optimizer", "rmsprop", ["'sgd'", "'adam'", "'adamw'"]),
        ("train", "schedule", "linear", ["'constant'", "'step'", "'cosine'"]),
        ("directions", "norm", "unit", ["'filter'", "'layer'", "'weight'", "'none'"]),
        ("surface", "split", "val", ["'train'", "'test'", "'both'"]),
        ("data", "target", "labels", ["'label'", "'input'"]),
        ("plot", "width", "triple", ["'single'", "'double'"]),
    ],
)
def test_literal_values_list_the_allowed_ones(section: str, key: str, value: str, allowed: list[str]) -> None:
    with pytest.raises(ConfigError) as info:
        config_from_dict({section: {key: value}})
    message = str(info.value)
    assert f"{section}.{key} = {value!r}" in message
    for choice in allowed:
        assert choice in message


def test_a_literal_is_checked_by_value_not_by_type() -> None:
    # "SGD" is a string like "sgd" but not one of the allowed values
    with pytest.raises(ConfigError, match="not allowed"):
        config_from_dict({"train": {"optimizer": "SGD"}})


@pytest.mark.parametrize(
    ("path", "match"),
    [("missing.toml", "does not exist"), (".", "is a folder")],
)
def test_unreadable_config_paths(tmp_path: Path, path: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_config(tmp_path / path)


def test_invalid_toml_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[train\nlr = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


# --- round trip -------------------------------------------------------------------------------

NON_DEFAULT = Config(
    data=DataConfig(name="path/to/my data.py:make", classes=(3, 8), binary=True, max_train=100, options={"noise": 0.0}),
    model=ModelConfig(
        name="mlp", options={"hidden": [16, 8], "nested": {"a": [1.5, -2], "b": 'q"uote\\'}, "empty": {}}
    ),
    train=TrainConfig(optimizer="adamw", lr=3e-4, weight_decay=5e-4, schedule="cosine", nesterov=False, epochs=3),
    surface=SurfaceConfig(x="-0.5:0.5:11", y="-1:1:5", losses=("mse", "hinge"), split="both", bn="recompute"),
    plot=PlotConfig(kinds=("contour",), vmin=-1.25, vmax=1e12, log=True, width="double", title=False),
)


@pytest.mark.parametrize("config", [Config(), NON_DEFAULT], ids=["defaults", "non-default"])
def test_round_trip_through_toml(config: Config, tmp_path: Path) -> None:
    text = dumps_toml(config_to_dict(config))
    assert config_from_dict(tomllib.loads(text)) == config
    save_config(config, tmp_path / "config.toml")
    assert load_config(tmp_path / "config.toml") == config


# Any text TOML can hold: every Unicode scalar value (surrogates are not characters).
_TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=12)
_FLOATS = st.floats(allow_nan=False, allow_infinity=True)


@settings(max_examples=60, deadline=None)
# lr and epochs range over what TrainConfig accepts (a positive finite lr, epochs ≥ 0); value covers ±inf
@given(name=_TEXT, lr=st.floats(min_value=0.0, exclude_min=True, allow_infinity=False),
       epochs=st.integers(0, 2**63 - 1), option=_TEXT, value=_FLOATS)
def test_round_trip_of_arbitrary_strings_and_numbers(
    name: str, lr: float, epochs: int, option: str, value: float
) -> None:
    config = Config(
        data=DataConfig(name=name),
        model=ModelConfig(options={option: [value, name]}),
        train=TrainConfig(lr=lr, epochs=epochs),
    )
    assert config_from_dict(tomllib.loads(dumps_toml(config_to_dict(config)))) == config


def test_diff_settings_names_each_changed_key() -> None:
    old = config_to_dict(Config())
    new = config_to_dict(Config(train=TrainConfig(lr=0.2), model=ModelConfig(options={"hidden": [8]})))
    diffs = diff_settings(old, new)
    assert "model.options.hidden: '<unset>' → [8]" in diffs
    assert "train.lr: 0.1 → 0.2" in diffs
    # nothing that did not change is reported
    assert all(d.startswith(("model.options", "train.lr")) for d in diffs)
    assert diff_settings(old, old) == []


# --- shipped configs ---------------------------------------------------------------------------


def test_configs_are_shipped() -> None:
    assert {p.name for p in SHIPPED} >= {"digits_mlp.toml", "digits_cnn.toml"}


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_every_shipped_config_loads_and_names_registered_entries(path: Path) -> None:
    cfg = load_config(path)
    # what the file names must exist, so the shipped recipes cannot rot silently
    assert is_user_spec(cfg.model.name) or cfg.model.name in MODELS
    assert is_user_spec(cfg.data.name) or cfg.data.name in DATASETS
    assert cfg.train.loss in LOSSES
    for name in (*cfg.surface.losses, *cfg.compare.losses):
        assert name in LOSSES
    # and it survives the save → load round trip that every run folder relies on
    assert config_from_dict(tomllib.loads(dumps_toml(config_to_dict(cfg)))) == cfg
