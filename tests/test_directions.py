"""Directions: the paper's filter normalization, ignore rules, determinism, files."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import torch
from torch import nn

from landscape.engine.directions import (
    DirectionOptions,
    Directions,
    load_directions,
    random_directions,
    save_directions,
    target_directions,
)
from landscape.errors import DirectionError


def conv_bn_net() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))


def test_filter_normalization_matches_every_filter_norm() -> None:
    model = conv_bn_net()
    dirs = random_directions(model, DirectionOptions(), dims=2)
    params = dict(model.named_parameters())
    for d in (dirs.x, dirs.y):
        assert d is not None
        for name, w in params.items():
            if w.ndim > 1:
                dn = d[name].reshape(w.shape[0], -1).norm(dim=1)
                wn = w.detach().reshape(w.shape[0], -1).norm(dim=1)
                torch.testing.assert_close(dn, wn, rtol=1e-5, atol=0)
            else:  # biases and BN parameters are zero under ignore = "biasbn"
                assert torch.count_nonzero(d[name]) == 0


def test_layer_weight_and_none_norms() -> None:
    model = conv_bn_net()
    w = dict(model.named_parameters())["0.weight"].detach()
    layer = random_directions(model, DirectionOptions(norm="layer"), 1).x["0.weight"]
    assert float(layer.norm()) == pytest.approx(float(w.norm()), rel=1e-5)
    raw = random_directions(model, DirectionOptions(norm="none"), 1).x["0.weight"]
    weight = random_directions(model, DirectionOptions(norm="weight"), 1).x["0.weight"]
    torch.testing.assert_close(weight, raw * w)


def test_ignore_none_gives_biases_themselves_random1d_a_rescaled_draw() -> None:
    model = conv_bn_net()
    b = dict(model.named_parameters())["0.bias"].detach()
    d = random_directions(model, DirectionOptions(ignore="none"), 1).x  # the paper's rule: d = θ
    assert torch.equal(d["0.bias"], b)
    r = random_directions(model, DirectionOptions(ignore="random1d"), 1).x  # ours: one block, ‖d‖ = ‖θ‖
    assert float(r["0.bias"].norm()) == pytest.approx(float(b.norm()), rel=1e-5)
    assert not torch.allclose(r["0.bias"] / r["0.bias"].norm(), b / b.norm())


def test_states_directions_cover_running_statistics() -> None:
    model = conv_bn_net()
    d = random_directions(model, DirectionOptions(dir_type="states", ignore="none"), 1).x
    assert "1.running_mean" in d and "1.running_var" in d and "1.num_batches_tracked" not in d
    d0 = random_directions(model, DirectionOptions(dir_type="states"), 1).x
    assert torch.count_nonzero(d0["1.running_var"]) == 0  # BN statistics never move by default


def test_same_seed_same_bits_other_seed_other_direction() -> None:
    model = conv_bn_net()
    a = random_directions(model, DirectionOptions(seed=7), 2)
    b = random_directions(model, DirectionOptions(seed=7), 2)
    c = random_directions(model, DirectionOptions(seed=8), 2)
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()
    cos = a.cosine()
    assert cos is not None and abs(cos) < 0.5  # two Gaussian directions are nearly orthogonal


def test_round_trip_and_architecture_check(tmp_path) -> None:
    model = conv_bn_net()
    dirs = random_directions(model, DirectionOptions(), 2)
    save_directions(tmp_path / "d.h5", dirs, model)
    back = load_directions(tmp_path / "d.h5", model)
    assert back.fingerprint() == dirs.fingerprint()
    assert back.meta["norm"] == "filter" and back.meta["seed"] == DirectionOptions().seed
    other = nn.Sequential(nn.Conv2d(1, 5, 3), nn.BatchNorm2d(5), nn.ReLU(), nn.Flatten(), nn.Linear(5 * 6 * 6, 3))
    with pytest.raises(DirectionError, match="another architecture"):
        load_directions(tmp_path / "d.h5", other)


def test_reference_layout_is_read_in_parameter_order(tmp_path) -> None:
    model = conv_bn_net()
    params = list(model.named_parameters())
    rng = np.random.default_rng(0)
    xs = [rng.standard_normal(tuple(p.shape)).astype(np.float32) for _, p in params]
    with h5py.File(tmp_path / "ref.h5", "w") as f:
        gx, gy = f.create_group("xdirection"), f.create_group("ydirection")
        for i, a in enumerate(xs):
            gx.create_dataset(str(i), data=a)
            gy.create_dataset(str(i), data=-a)
    dirs = load_directions(tmp_path / "ref.h5", model)
    assert dirs.dir_type == "weights" and dirs.y is not None
    for (name, _), a in zip(params, xs, strict=True):
        np.testing.assert_array_equal(dirs.x[name].numpy(), a)  # used as saved: no renormalization
        np.testing.assert_array_equal(dirs.y[name].numpy(), -a)
    with h5py.File(tmp_path / "bad.h5", "w") as f:
        f.create_group("xdirection").create_dataset("0", data=np.zeros(3))
    with pytest.raises(DirectionError, match="another architecture"):
        load_directions(tmp_path / "bad.h5", model)


def test_missing_or_corrupt_direction_file(tmp_path) -> None:
    model = conv_bn_net()
    with pytest.raises(DirectionError, match="does not exist"):
        load_directions(tmp_path / "nope.h5", model)
    (tmp_path / "junk.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(DirectionError, match="not a readable HDF5"):
        load_directions(tmp_path / "junk.h5", model)


def test_target_direction_is_the_difference() -> None:
    a, b = conv_bn_net(), conv_bn_net()
    with torch.no_grad():
        for p in b.parameters():
            p.add_(1.0)
    dirs = target_directions(a, b.state_dict(), None, "weights")
    for name, p in a.named_parameters():
        torch.testing.assert_close(dirs.x[name], torch.ones_like(p))
    assert isinstance(dirs, Directions) and dirs.y is None


def test_the_configs_directions_section_is_the_engines_options_and_checks_its_choices() -> None:
    from landscape.config import DirectionsConfig, config_from_dict
    from landscape.errors import ConfigError

    assert DirectionsConfig is DirectionOptions and DirectionOptions().seed == 123
    assert config_from_dict({"directions": {"norm": "layer", "seed": 5}}).directions == DirectionOptions(norm="layer", seed=5)
    with pytest.raises(ConfigError, match=r"directions\.norm = 'filters' is not allowed"):
        config_from_dict({"directions": {"norm": "filters"}})
    for key, bad in (("dir_type", "buffers"), ("norm", "filters"), ("ignore", "bias")):
        with pytest.raises(DirectionError, match=f"unknown {key} '{bad}'; choose ") as err:
            DirectionOptions(**{key: bad})  # type: ignore[arg-type]
        assert "\n" not in str(err.value)
