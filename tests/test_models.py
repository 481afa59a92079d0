"""Tests of the model registry: every entry on every input layout, the ResNet/no-skip pairing,
parameter counts against closed forms, user specs and the error messages."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from landscape.engine.directions import model_fingerprint
from landscape.errors import ModelError, RegistryError
from landscape.zoo.models import MODELS, build_model, check_output_shape, model_options

# (64,) is the flat digits layout, (1, 8, 8) the image one, (3, 32, 32) CIFAR.
SHAPES = [(64,), (1, 8, 8), (3, 32, 32)]


def _output_shape(name: str, input_shape: tuple[int, ...]) -> tuple[int, ...]:
    """Reconstruction for the autoencoder, 10 classes for everything else."""
    return input_shape if name == "autoencoder" else (10,)


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.mark.parametrize("input_shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", MODELS.names())
def test_forward_backward(name: str, input_shape: tuple[int, ...]) -> None:
    out_shape = _output_shape(name, input_shape)
    model = build_model(name, input_shape, out_shape)
    model.train()  # BatchNorm in training mode needs a batch of more than one sample
    out = model(torch.randn(3, *input_shape))
    assert out.shape == (3, *out_shape)
    assert model.training, "build_model must leave the train/eval mode as it was"
    out.square().mean().backward()
    for pname, p in model.named_parameters():
        assert p.grad is not None, f"{pname} gets no gradient"
        assert p.grad.shape == p.shape
        assert torch.isfinite(p.grad).all()


@pytest.mark.parametrize("name", MODELS.names())
@pytest.mark.parametrize("out_shape", [(1,), (3,), (1, 8, 8)], ids=["binary", "regression", "reconstruction"])
def test_any_output_shape(name: str, out_shape: tuple[int, ...]) -> None:
    model = build_model(name, (1, 8, 8), out_shape)
    assert model(torch.zeros(2, 1, 8, 8)).shape == (2, *out_shape)


@pytest.mark.parametrize("name", ["cnn", "resnet20", "vgg9"])
def test_flat_input_is_viewed_as_image(name: str) -> None:
    """A flat (64,) input builds the same network as (1, 8, 8) and computes the same function."""
    torch.manual_seed(1)
    flat = build_model(name, (64,), (10,)).eval()
    torch.manual_seed(1)
    image = build_model(name, (1, 8, 8), (10,)).eval()
    assert model_fingerprint(flat) == model_fingerprint(image)
    x = torch.randn(5, 1, 8, 8)
    torch.testing.assert_close(flat(x.reshape(5, 64)), image(x))


@pytest.mark.parametrize("depth", [20, 56, 110])
def test_noshort_is_resnet_minus_shortcuts(depth: int) -> None:
    short = model_fingerprint(build_model(f"resnet{depth}", (1, 8, 8), (10,)))
    noshort = model_fingerprint(build_model(f"resnet{depth}_noshort", (1, 8, 8), (10,)))
    shortcuts = {k: v for k, v in short.items() if ".shortcut." in k}
    # Option B projections sit only in the first block of stages 2 and 3: conv + BN each.
    assert sorted({k.split(".shortcut.")[0] for k in shortcuts}) == ["layer2.0", "layer3.0"]
    assert noshort == {k: v for k, v in short.items() if k not in shortcuts}


@pytest.mark.parametrize(("depth", "n"), [(20, 3), (56, 9), (110, 18)])
def test_resnet_depth_is_6n_plus_2(depth: int, n: int) -> None:
    model = build_model(f"resnet{depth}", (3, 32, 32), (10,))
    main_path = [
        m for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear)) and "shortcut" not in name
    ]
    assert len(main_path) == 6 * n + 2 == depth
    assert [len(list(model.get_submodule(f"layer{i}").children())) for i in (1, 2, 3)] == [n, n, n]


def test_resnet20_parameter_count() -> None:
    """ResNet-20 on CIFAR, 10 classes: 272,474 parameters (He et al. report ≈0.27M).

    Closed form: stem conv 3·16·9 + BN 32; stage blocks of two 3×3 convs (+ 2 BN) with widths
    16, 32, 64; two 1×1 projections 16·32 + 32·64 (+ BN); linear 64·10 + 10. Without the
    projections (the no-skip twin, and also option A) it is 269,722.
    """

    def block(c_in: int, c: int) -> int:
        return c_in * c * 9 + c * c * 9 + 4 * c

    stages = sum(block(c_in, c) + 2 * block(c, c) for c_in, c in [(16, 16), (16, 32), (32, 64)])
    expected_noshort = 3 * 16 * 9 + 2 * 16 + stages + 64 * 10 + 10
    expected = expected_noshort + (16 * 32 + 2 * 32) + (32 * 64 + 2 * 64)

    def count(name: str) -> int:
        return sum(p.numel() for p in build_model(name, (3, 32, 32), (10,)).parameters())

    assert count("resnet20") == expected == 272_474
    assert count("resnet20_noshort") == expected_noshort == 269_722


def test_vgg9_matches_the_paper_layout() -> None:
    """7 conv + 2 FC weight layers; on CIFAR the 4×4×256 map feeds a 256-unit FC layer."""
    model = build_model("vgg9", (3, 32, 32), (10,))
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    fcs = [m for m in model.modules() if isinstance(m, nn.Linear)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 256]
    assert [(f.in_features, f.out_features) for f in fcs] == [(256 * 4 * 4, 256), (256, 10)]
    assert sum(p.numel() for p in model.parameters()) == 2_789_706
    no_bn = build_model("vgg9", (3, 32, 32), (10,), {"batchnorm": False})
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in no_bn.modules())


def test_vgg9_skips_pools_on_tiny_maps_keeping_keys() -> None:
    """8×8 input is pooled 8 -> 4 -> 2 -> 1; the state-dict keys match the 32×32 model's."""
    small = model_fingerprint(build_model("vgg9", (1, 8, 8), (10,)))
    large = model_fingerprint(build_model("vgg9", (1, 32, 32), (10,)))
    assert list(small) == list(large)
    assert small["fc.0.weight"] == [256, 256] and large["fc.0.weight"] == [256, 256 * 16]
    tiny = build_model("vgg9", (1, 2, 2), (10,))  # 2 -> 1, then two skipped pools
    assert list(model_fingerprint(tiny)) == list(small)


def test_options_change_the_architecture() -> None:
    mlp = build_model("mlp", (64,), (10,), {"hidden": [32], "activation": "tanh", "batchnorm": True})
    assert model_fingerprint(mlp)["fc1.weight"] == [32, 64]
    assert any(isinstance(m, nn.Tanh) for m in mlp.modules())
    assert any(isinstance(m, nn.BatchNorm1d) for m in mlp.modules())
    assert "fc.bias" not in model_fingerprint(build_model("linear", (64,), (10,), {"bias": False}))
    assert model_fingerprint(build_model("cnn", (64,), (10,), {"width": 4}))["head.fc.weight"] == [10, 16]
    assert model_fingerprint(build_model("resnet20", (64,), (10,), {"width": 8}))["conv1.weight"] == [8, 1, 3, 3]
    ae = model_fingerprint(build_model("autoencoder", (64,), (64,), {"hidden": [32, 8]}))
    assert ae["encoder.fc2.weight"] == [8, 32] and ae["decoder.out.weight"] == [64, 32]


def test_model_options_lists_defaults() -> None:
    assert model_options(MODELS.get("mlp")) == {"hidden": (64, 64), "activation": "relu", "batchnorm": False}
    assert model_options(MODELS.get("resnet56_noshort")) == {"width": 16}


def test_init_is_deterministic_under_the_callers_seed() -> None:
    def weights(seed: int) -> list[torch.Tensor]:
        torch.manual_seed(seed)
        return [p.detach().clone() for p in build_model("resnet20", (1, 8, 8), (10,)).parameters()]

    a, b, c = weights(3), weights(3), weights(4)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    assert not all(torch.equal(x, y) for x, y in zip(a, c, strict=True))


def test_resnet_convs_use_kaiming_normal() -> None:
    """He init: std = sqrt(2 / fan_in); checked on the widest 3×3 conv (64·9 fan-in, 36,864 weights)."""
    model = build_model("resnet20", (3, 32, 32), (10,))
    w = model.get_submodule("layer3.2.conv2").get_parameter("weight")
    assert float(w.detach().std()) == pytest.approx(math.sqrt(2 / (64 * 9)), rel=0.03)


def test_model_fingerprint_is_the_ordered_state_dict() -> None:
    model = build_model("cnn", (1, 8, 8), (10,))
    fp = model_fingerprint(model)
    assert list(fp) == list(model.state_dict())
    assert fp["features.conv1.weight"] == [16, 1, 3, 3]
    assert fp["features.bn1.num_batches_tracked"] == []


# --- user specs ---------------------------------------------------------------------------

USER_FILE = """
import torch.nn as nn

def with_shapes(input_shape, output_shape, hidden=8):
    d = 1
    for s in input_shape:
        d *= s
    return nn.Sequential(nn.Flatten(), nn.Linear(d, hidden), nn.ReLU(), nn.Linear(hidden, output_shape[0]))

def options_only(scale=1.0):
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

def wrong_shape(input_shape, output_shape):
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 5))

def not_a_module(input_shape, output_shape):
    return "nope"
"""


@pytest.fixture
def user_file(tmp_path: Path) -> Path:
    path = tmp_path / "my_models.py"
    path.write_text(USER_FILE)
    return path


def test_user_spec_with_shapes(user_file: Path) -> None:
    model = build_model(f"{user_file}:with_shapes", (1, 8, 8), (10,), {"hidden": 4})
    assert model_fingerprint(model)["1.weight"] == [4, 64]


def test_user_spec_with_options_only(user_file: Path) -> None:
    model = build_model(f"{user_file}:options_only", (64,), (10,), {"scale": 2.0})
    assert model(torch.zeros(1, 64)).shape == (1, 10)


def test_user_spec_module_path() -> None:
    model = build_model("landscape.zoo.models:mlp", (64,), (3,), {"hidden": [5]})
    assert model_fingerprint(model)["fc1.weight"] == [5, 64]


def test_user_spec_wrong_output_shape(user_file: Path) -> None:
    with pytest.raises(ModelError, match=r"returns shape \(2, 5\) but the data/loss needs \(2, 10\)"):
        build_model(f"{user_file}:wrong_shape", (64,), (10,))


def test_user_spec_errors(user_file: Path) -> None:
    with pytest.raises(ModelError, match=r"must be a torch\.nn\.Module, got str"):
        build_model(f"{user_file}:not_a_module", (64,), (10,))
    with pytest.raises(ModelError, match=r"failed to build.*TypeError"):
        build_model(f"{user_file}:options_only", (64,), (10,), {"depth": 3})
    with pytest.raises(RegistryError, match="no callable named 'missing'"):
        build_model(f"{user_file}:missing", (64,), (10,))


# --- errors and the shape check -------------------------------------------------------------


def test_unknown_name_lists_known_names() -> None:
    with pytest.raises(RegistryError, match="unknown model 'resnet18'") as info:
        build_model("resnet18", (3, 32, 32), (10,))
    for name in MODELS.names():
        assert name in str(info.value)


def test_unknown_option_key_names_accepted_ones() -> None:
    with pytest.raises(
        ModelError, match=r"model 'mlp' has no option 'hiden'; accepted options: activation, batchnorm, hidden"
    ):
        build_model("mlp", (64,), (10,), {"hiden": [32]})


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("mlp", {"activation": "sigmoid"}, "'activation' must be one of relu, tanh, gelu, got 'sigmoid'"),
        ("mlp", {"hidden": 32}, "'hidden' must be a list of positive integers, got 32"),
        ("mlp", {"hidden": [32, 0]}, "'hidden' must be a positive integer, got 0"),
        ("cnn", {"width": True}, "'width' must be a positive integer, got True"),
        ("resnet20", {"width": 2.5}, "'width' must be a positive integer, got 2.5"),
        ("vgg9", {"batchnorm": "yes"}, "'batchnorm' must be true or false, got 'yes'"),
        ("autoencoder", {"hidden": []}, "needs at least one width"),
    ],
)
def test_bad_option_values(name: str, options: dict[str, object], message: str) -> None:
    with pytest.raises(ModelError, match=message.replace("(", r"\(").replace(")", r"\)")):
        build_model(name, (64,), (64,) if name == "autoencoder" else (10,), options)


@pytest.mark.parametrize("input_shape", [(63,), (8, 8), (1, 1, 8, 8)])
@pytest.mark.parametrize("name", ["cnn", "resnet20", "vgg9"])
def test_image_models_reject_non_image_inputs(name: str, input_shape: tuple[int, ...]) -> None:
    with pytest.raises(ModelError, match=f"model '{name}' needs images"):
        build_model(name, input_shape, (10,))


def test_check_output_shape_restores_modes() -> None:
    model = build_model("mlp", (64,), (10,), {"batchnorm": True})
    model.train()
    bn = model.get_submodule("bn1")
    bn.eval()  # a frozen BN inside a training model must stay frozen
    check_output_shape(model, (64,), (10,))
    assert model.training and not bn.training
    with pytest.raises(
        ModelError, match=r"model 'Sequential' returns shape \(2, 10\) but the data/loss needs \(2, 3\)"
    ):
        check_output_shape(model, (64,), (3,))
    assert model.training and not bn.training


def test_check_output_shape_reports_a_failing_forward() -> None:
    with pytest.raises(ModelError, match=r"model 'net' fails on a batch of shape \(2, 32\): RuntimeError"):
        check_output_shape(nn.Linear(64, 10), (32,), (10,), name="net")
