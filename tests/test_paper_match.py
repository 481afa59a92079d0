"""Where our numbers must equal those of the paper's code (tomgoldstein/loss-landscape).

Oracles: scikit-learn's ``PCA`` (which ``projection.setup_PCA_directions`` calls) for the
trajectory plane and its explained variance; float64 hand loops for the paper's projection
(``project_2D(..., 'cos')``: a dot product with each unit direction) and for its random
directions (``net_plotter.create_random_direction``: a Gaussian per tensor in parameter order,
filter-normalized; each tensor with ndim ≤ 1 gets itself as its direction unless ignored);
a hand bilinear resampler for ``data.resize``.
"""

from __future__ import annotations

import copy
import math
import sys
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import torch
from required import need
from torch import Tensor, nn

from landscape.cli import main
from landscape.config import DataConfig, config_from_dict, config_to_dict
from landscape.engine.directions import DirectionOptions, random_directions
from landscape.engine.pca import principal_directions
from landscape.errors import DataError
from landscape.io.checkpoint import save_checkpoint
from landscape.io.trajectory_file import load_trajectory
from landscape.workflows.trajectory import compute_trajectory
from landscape.zoo.data import load_data
from landscape.zoo.models import build_model


def sklearn_pca(n_components: int) -> Any:
    """scikit-learn's ``PCA`` (the oracle; the ``test`` extra): a skip without it, a failure under CI."""
    try:
        from sklearn.decomposition import PCA
    except ImportError:
        need("scikit-learn (the oracle of the PCA tests)", False)
    return PCA(n_components=n_components)


class TinyBN(nn.Module):
    """conv (4-D) → BN (1-D weight/bias, running stats) → linear (2-D weight, 1-D bias)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 2)
        self.bn = nn.BatchNorm2d(3)
        self.fc = nn.Linear(3 * 2 * 2, 4)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(torch.relu(self.bn(self.conv(x))).flatten(1))


def _trained_like(seed: int) -> nn.Module:
    torch.manual_seed(seed)
    m = TinyBN()
    with torch.no_grad():  # non-trivial BN affine parameters and running statistics
        m.bn.weight.uniform_(0.5, 1.5)
        m.bn.bias.uniform_(-0.5, 0.5)
        m.bn.running_mean.uniform_(-1, 1)
        m.bn.running_var.uniform_(0.5, 2)
    return m


# --- PCA against sklearn ------------------------------------------------------------------------


def _path_rows(n: int, seed: int) -> tuple[list[dict[str, Tensor]], np.ndarray]:
    """n rows of two tensors, with a dominant drift so that the spectrum is not flat; and M (n, P)."""
    g = torch.Generator().manual_seed(seed)
    drift = {"a": torch.randn(4, 5, generator=g, dtype=torch.float64), "b": torch.randn(7, generator=g, dtype=torch.float64)}
    rows = []
    for i in range(n):
        t = (n - 1 - i) / (n - 1)
        rows.append({k: 3 * t * d + 0.4 * torch.randn(d.shape, generator=g, dtype=torch.float64) for k, d in drift.items()})
    m = np.stack([np.concatenate([r["a"].numpy().ravel(), r["b"].numpy().ravel()]) for r in rows])
    return rows, m


def test_without_scikit_learn_the_pca_tests_fail_under_ci_and_skip_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn.decomposition", None)  # import fails as if not installed
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=r"scikit-learn .* is missing: CI must run these tests"):
        sklearn_pca(2)
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="scikit-learn"):
        sklearn_pca(2)


@pytest.mark.parametrize(("n", "seed"), [(5, 0), (9, 1), (14, 2)])
def test_centred_pca_equals_sklearn(n: int, seed: int) -> None:
    rows, m = _path_rows(n, seed)
    vecs, ratios = principal_directions(rows, ["a", "b"])  # centred is the default
    pca = sklearn_pca(2).fit(m)
    for v, ref in zip(vecs, pca.components_, strict=True):
        got = np.concatenate([v["a"].numpy().ravel(), v["b"].numpy().ravel()])
        sign = np.sign(got @ ref)
        np.testing.assert_allclose(sign * got, ref, atol=1e-6)
    np.testing.assert_allclose(ratios[:2], pca.explained_variance_ratio_, atol=1e-6)
    # the uncentred PCA is another plane: it must not pass as the paper's
    _, ru = principal_directions(rows, ["a", "b"], center=False)
    assert not np.allclose(ru[:2], pca.explained_variance_ratio_, atol=1e-3)


def _save_path(tmp_path: Path, states: list[dict[str, Tensor]], model: nn.Module) -> list[Path]:
    cfg = config_from_dict({"model": {"name": "mlp"}})
    paths = []
    for i, state in enumerate(states):
        m = copy.deepcopy(model)
        m.load_state_dict(state)
        p = tmp_path / f"epoch_{i:03d}.pt"
        save_checkpoint(p, m, config_to_dict(cfg), epoch=i, step=i, metrics={"train_loss": 1.0}, input_shape=(1, 3, 3), output_shape=(4,))
        paths.append(p)
    return paths


@pytest.mark.parametrize("ignore", ["biasbn", "none"])
def test_trajectory_plane_and_coordinates_match_the_paper(tmp_path: Path, ignore: str) -> None:
    """The trajectory file's plane, ratios and path equal the paper's pipeline on the same checkpoints:
    rows θ_i − θ_final (1-D tensors zeroed under biasbn) → sklearn PCA → x_i = ⟨Δ_i, pc_k⟩ / ‖pc_k‖."""
    model = _trained_like(0)
    g = torch.Generator().manual_seed(3)
    final = {k: v.clone() for k, v in model.state_dict().items()}
    states = []
    for i in range(8):
        t = (7 - i) / 7
        states.append({k: (v + t * 0.8 * torch.randn(v.shape, generator=g) + 0.1 * torch.randn(v.shape, generator=g)
                           if k in dict(model.named_parameters()) else v) for k, v in final.items()})
    states.append(final)
    paths = _save_path(tmp_path, states, model)
    traj = compute_trajectory(paths, model=model, ignore=ignore)
    names = list(dict(model.named_parameters()))

    def flat(state: dict[str, Tensor]) -> np.ndarray:  # the paper: get_diff_weights, ignore_biasbn, tensorlist_to_tensor
        parts = []
        for k in names:
            d = state[k].double() - final[k].double()
            parts.append((torch.zeros_like(d) if ignore == "biasbn" and d.ndim <= 1 else d).numpy().ravel())
        return np.concatenate(parts)

    m = np.stack([flat(s) for s in states])
    pca = sklearn_pca(2).fit(m)
    np.testing.assert_allclose(traj.explained_variance, pca.explained_variance_ratio_, atol=1e-6)
    assert traj.directions.y is not None
    ours = [np.concatenate([d[k].double().numpy().ravel() for k in names]) for d in (traj.directions.x, traj.directions.y)]
    signs = []
    for got, ref in zip(ours, pca.components_, strict=True):
        sign = float(np.sign(got @ ref))
        np.testing.assert_allclose(sign * got, ref, atol=1e-6)
        signs.append(sign)
    for i, row in enumerate(m):  # project_2D(d, dx, dy, 'cos'): ⟨d, dx⟩/‖dx‖ per axis, a float64 hand loop
        for k in range(2):
            pc = pca.components_[k]
            expect = sum(float(a) * float(b) for a, b in zip(row, pc, strict=True)) / math.sqrt(sum(float(b) ** 2 for b in pc))
            assert traj.coords[i, k] * signs[k] == pytest.approx(expect, abs=1e-6)
    assert traj.meta["center"] is True
    assert traj.coords[-1] == pytest.approx([0.0, 0.0], abs=1e-12)  # θ_final is the origin, not the mean


def test_cli_records_centring_in_file_and_labels(tmp_path: Path) -> None:
    torch.manual_seed(1)
    model = build_model("cnn", (1, 8, 8), (10,), {"width": 2})
    cfg = config_from_dict({"model": {"name": "cnn", "options": {"width": 2}}})
    g = torch.Generator().manual_seed(4)
    final = {k: v.clone() for k, v in model.state_dict().items()}
    paths = []
    for i in range(5):
        m = copy.deepcopy(model)
        if i < 4:
            m.load_state_dict({k: v + 0.5 * torch.randn(v.shape, generator=g) if v.is_floating_point() else v
                               for k, v in final.items()})
        paths.append(str(tmp_path / f"epoch_{i:03d}.pt"))
        save_checkpoint(Path(paths[-1]), m, config_to_dict(cfg), epoch=i, step=i, metrics={"train_loss": 1.0}, input_shape=(1, 8, 8), output_shape=(10,))
    for flag, center, word in (([], True, "centred"), (["--uncentered"], False, "uncentred")):
        out = tmp_path / f"traj_{center}.h5"
        assert main(["--quiet", "trajectory", *paths, "--out", str(out), *flag]) == 0
        with h5py.File(out, "r") as f:
            assert bool(f.attrs["center"]) is center
        traj = load_trajectory(out)
        assert all(label.endswith(f", {word})") for label in traj.axis_labels)


# --- random directions: ignore = none is the paper's d = θ on 1-D tensors ----------------------


def _paper_direction(model: nn.Module, seed: int, ignore: str, states: bool = False) -> dict[str, Tensor]:
    """net_plotter.create_random_direction with xnorm=filter, in float64 by hand: randn for every
    tensor in order (one generator), then filter-normalize ndim > 1, and for ndim ≤ 1 zero (biasbn)
    or the tensor itself (none)."""
    g = torch.Generator().manual_seed(seed)
    tensors = ({k: v for k, v in model.state_dict().items() if v.is_floating_point()} if states
               else {k: p.detach() for k, p in model.named_parameters()})
    out = {}
    for k, w in tensors.items():
        d = torch.randn(w.shape, generator=g, dtype=torch.float32).double()
        w64 = w.double()
        if d.ndim <= 1:
            d = torch.zeros_like(w64) if ignore == "biasbn" else w64.clone()
        else:
            for f in range(d.shape[0]):
                wn = math.sqrt(sum(float(x) ** 2 for x in w64[f].reshape(-1)))
                dn = math.sqrt(sum(float(x) ** 2 for x in d[f].reshape(-1)))
                d[f] = d[f] * (wn / (dn + 1e-10))
        out[k] = d
    return out


@pytest.mark.parametrize("dir_type", ["weights", "states"])
@pytest.mark.parametrize("ignore", ["biasbn", "none"])
def test_random_directions_equal_the_papers(ignore: str, dir_type: str) -> None:
    model = _trained_like(2)
    cfg = DirectionOptions(dir_type=dir_type, norm="filter", ignore=ignore, seed=7)
    dirs = random_directions(model, cfg, 2)
    ref = _paper_direction(model, 7, ignore, states=dir_type == "states")
    assert set(dirs.x) == set(ref)
    for k, d in dirs.x.items():
        np.testing.assert_allclose(d.double().numpy(), ref[k].numpy(), rtol=1e-6, atol=1e-7, err_msg=k)
    if ignore == "none":
        w = model.state_dict()
        assert torch.equal(dirs.x["bn.weight"], w["bn.weight"]) and torch.equal(dirs.x["fc.bias"], w["fc.bias"])
        if dir_type == "states":
            assert torch.equal(dirs.x["bn.running_var"], w["bn.running_var"])
            assert "bn.num_batches_tracked" not in dirs.x  # an integer counter: never moved (see CONTRACTS)


def test_random1d_keeps_the_draw_rescaled_to_the_tensor_norm() -> None:
    model = _trained_like(3)
    d_none = random_directions(model, DirectionOptions(ignore="none", seed=11), 1).x
    d_rand = random_directions(model, DirectionOptions(ignore="random1d", seed=11), 1).x
    d_zero = random_directions(model, DirectionOptions(ignore="biasbn", seed=11), 1).x
    g = torch.Generator().manual_seed(11)
    for k, p in model.named_parameters():
        raw = torch.randn(p.shape, generator=g, dtype=torch.float32).double()
        if p.ndim > 1:  # the same draw and normalization under all three rules
            assert torch.equal(d_none[k], d_rand[k]) and torch.equal(d_none[k], d_zero[k])
        else:
            w = p.detach().double()
            expect = raw * math.sqrt(float((w * w).sum())) / math.sqrt(float((raw * raw).sum()))
            np.testing.assert_allclose(d_rand[k].double().numpy(), expect.numpy(), rtol=1e-5, err_msg=k)
            assert not torch.equal(d_rand[k], d_none[k])


# --- data.resize --------------------------------------------------------------------------------


def _bilinear(img: np.ndarray, size: int) -> np.ndarray:
    """align_corners=False bilinear upsampling by hand: source coordinate (i + ½)·h/size − ½, clamped."""
    h, w = img.shape
    out = np.zeros((size, size))
    for i in range(size):
        for j in range(size):
            y = max((i + 0.5) * h / size - 0.5, 0.0)
            x = max((j + 0.5) * w / size - 0.5, 0.0)
            y0, x0 = min(math.floor(y), h - 1), min(math.floor(x), w - 1)
            y1, x1 = min(y0 + 1, h - 1), min(x0 + 1, w - 1)
            fy, fx = y - y0, x - x0
            out[i, j] = ((1 - fy) * (1 - fx) * img[y0, x0] + (1 - fy) * fx * img[y0, x1]
                         + fy * (1 - fx) * img[y1, x0] + fy * fx * img[y1, x1])
    return out


def test_resize_upsamples_digits_bilinearly() -> None:
    base = load_data(DataConfig(name="digits"))
    big = load_data(DataConfig(name="digits", resize=16))
    assert big.input_shape == (1, 16, 16) and len(big.train) == len(base.train)
    for n in (0, 5):
        np.testing.assert_allclose(big.train.inputs[n, 0].numpy(), _bilinear(base.train.inputs[n, 0].double().numpy(), 16),
                                   atol=1e-6)
    with pytest.raises(DataError, match="resize = -3"):
        load_data(DataConfig(name="digits", resize=-3))
    with pytest.raises(DataError, match="needs images"):
        load_data(DataConfig(name="blobs", resize=16))
