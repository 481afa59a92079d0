"""The surface engine against closed forms and an independent per-point loop."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import h5py
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from landscape.engine.directions import DirectionOptions, Directions, random_directions, target_directions
from landscape.engine.evaluate import evaluate
from landscape.engine.grid import Grid, parse_axis
from landscape.engine.losses import Metrics, MetricSet
from landscape.engine.surface import SurfaceEngine
from landscape.errors import GridError
from landscape.zoo.data import TensorSplit


@dataclass(frozen=True)
class SurfaceResult:
    """Arrays of a computed surface: ``values[column]`` has the grid's shape."""

    grid: Grid
    values: dict[str, np.ndarray]
    done: np.ndarray


def compute_surface(model: nn.Module, data: Mapping[str, TensorSplit] | TensorSplit, directions: Directions,
                    x: np.ndarray | Sequence[float], y: np.ndarray | Sequence[float] | None = None, *,
                    metrics: Metrics, device: torch.device | str = "cpu", batch_size: int = 0,
                    points_per_call: int = 1, bn: str = "keep", bn_data: TensorSplit | None = None) -> SurfaceResult:
    """The engine on a whole grid, one split (``train``) or several, no file (this file's shorthand)."""
    splits = {"train": data} if isinstance(data, TensorSplit) else dict(data)
    grid = Grid(np.asarray(x, dtype=np.float64), None if y is None else np.asarray(y, dtype=np.float64))
    if (grid.y is None) != (directions.y is None):
        raise GridError("a 2D grid needs two directions and a 1D grid one")
    engine = SurfaceEngine(model, directions, splits, metrics, device=device, batch_size=batch_size, bn=bn,
                           bn_data=bn_data if bn_data is not None else splits.get("train"), points_per_call=points_per_call)
    flat = engine.evaluate(grid.coords())
    values = {c: flat[:, i].reshape(grid.shape) for i, c in enumerate(engine.columns)}
    return SurfaceResult(grid, values, np.ones(grid.shape, dtype=bool))


def linreg_problem(n: int = 64, d: int = 5) -> tuple[nn.Module, TensorSplit, np.ndarray, np.ndarray]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    y = torch.randn(n, 1, generator=g, dtype=torch.float64)
    model = nn.Linear(d, 1, bias=False).double()
    return model, TensorSplit(x, y), x.numpy(), y.numpy()


def test_linear_mse_surface_is_exactly_quadratic() -> None:
    model, split, X, Y = linreg_problem()
    dirs = random_directions(model, DirectionOptions(norm="none"), dims=2)
    xs, ys = np.linspace(-2, 1, 7), np.linspace(-1, 3, 5)  # non-square, asymmetric
    res = compute_surface(model, split, dirs, xs, ys, metrics=MetricSet(["mse"], "regression", 0))
    w = model.weight.detach().numpy().reshape(-1)
    dx = dirs.x["weight"].double().numpy().reshape(-1)
    dy = dirs.y["weight"].double().numpy().reshape(-1)  # type: ignore[index]
    loss = res.values["train_loss"]
    assert loss.shape == (7, 5)
    for i, a in enumerate(xs):
        for j, b in enumerate(ys):
            r = X @ (w + a * dx + b * dy) - Y[:, 0]
            assert loss[i, j] == pytest.approx(np.mean(r**2), rel=1e-10)


@pytest.mark.parametrize("points_per_call", [1, 3, 16])
def test_engine_matches_naive_dataloader_loop(points_per_call: int) -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
    model.eval()
    with torch.no_grad():  # non-trivial BN statistics
        model[1].running_mean.uniform_(-0.5, 0.5)
        model[1].running_var.uniform_(0.5, 2.0)
    x = torch.randn(50, 1, 8, 8)
    y = torch.randint(0, 3, (50,))
    dirs = random_directions(model, DirectionOptions(), dims=2)
    metrics = MetricSet(["cross_entropy", "mse"], "classification", 3)
    xs, ys = np.linspace(-1, 1, 4), np.linspace(-0.5, 0.5, 3)
    res = compute_surface(model, TensorSplit(x, y), dirs, xs, ys, metrics=metrics, points_per_call=points_per_call,
                          batch_size=16)
    # the independent oracle: a fresh copy per point, weights set through the state dict, a DataLoader
    origin = {k: v.clone() for k, v in model.state_dict().items()}
    loader = DataLoader(TensorDataset(x, y), batch_size=7)
    for i, a in enumerate(xs):
        for j, b in enumerate(ys):
            state = {k: v + (a * dirs.x[k] + b * dirs.y[k] if k in dirs.x else 0) for k, v in origin.items()}  # type: ignore[index]
            m = copy.deepcopy(model)
            m.load_state_dict(state)
            m.eval()
            ce = mse = correct = 0.0
            with torch.no_grad():
                for xb, yb in loader:
                    out = m(xb)
                    ce += float(nn.functional.cross_entropy(out, yb, reduction="sum"))
                    mse += float(((out - nn.functional.one_hot(yb, 3).float()) ** 2).mean(dim=1).sum())
                    correct += float((out.argmax(1) == yb).sum())
            assert res.values["train_cross_entropy"][i, j] == pytest.approx(ce / 50, rel=1e-5)
            assert res.values["train_mse"][i, j] == pytest.approx(mse / 50, rel=1e-5)
            assert res.values["train_acc"][i, j] == pytest.approx(correct / 50, abs=1e-12)


def test_origin_equals_model_loss_and_model_is_untouched() -> None:
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.randn(30, 4), torch.randint(0, 3, (30,))
    metrics = MetricSet(["cross_entropy"], "classification", 3)
    dirs = random_directions(model, DirectionOptions(), 1)
    res = compute_surface(model, TensorSplit(x, y), dirs, parse_axis("-1:1:5"), metrics=metrics)
    own = evaluate(model, TensorSplit(x, y), metrics)
    assert res.values["train_loss"][2] == pytest.approx(own["loss"], rel=1e-6)
    assert model.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])


def test_interpolation_endpoints_are_both_models() -> None:
    torch.manual_seed(2)
    a = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    b = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2))
    x, y = torch.randn(40, 4), torch.randint(0, 2, (40,))
    metrics = MetricSet(["cross_entropy"], "classification", 2)
    dirs = target_directions(a, b.state_dict(), None, "weights")
    res = compute_surface(a, TensorSplit(x, y), dirs, [0.0, 0.5, 1.0], metrics=metrics)
    assert res.values["train_loss"][0] == pytest.approx(evaluate(a, TensorSplit(x, y), metrics)["loss"], rel=1e-6)
    assert res.values["train_loss"][2] == pytest.approx(evaluate(b, TensorSplit(x, y), metrics)["loss"], rel=1e-5)


@pytest.mark.parametrize("bn", ["fixed", "recompute"])
def test_rescaling_a_conv_before_batchnorm_leaves_the_surface_unchanged(bn: str) -> None:
    """Filter normalization removes the scale invariance that makes raw-direction plots misleading."""
    torch.manual_seed(3)
    net = nn.Sequential(nn.Conv2d(1, 4, 3, bias=False), nn.BatchNorm2d(4, eps=1e-12), nn.ReLU(), nn.Flatten(), nn.Linear(144, 3))
    x, y = torch.randn(40, 1, 8, 8, dtype=torch.float64), torch.randint(0, 3, (40,))
    net = net.double()
    net.train()
    with torch.no_grad():
        net(x)  # realistic running statistics
    net.eval()
    scaled = copy.deepcopy(net)
    c = 7.0
    with torch.no_grad():
        scaled[0].weight.mul_(c)
        scaled[1].running_mean.mul_(c)
        scaled[1].running_var.mul_(c * c)
    metrics = MetricSet(["cross_entropy"], "classification", 3)
    cfg = DirectionOptions(seed=5)
    grid = (np.linspace(-1, 1, 5), np.linspace(-1, 1, 3))
    split = TensorSplit(x, y)
    r1 = compute_surface(net, split, random_directions(net, cfg, 2), *grid, metrics=metrics, bn=bn)
    r2 = compute_surface(scaled, split, random_directions(scaled, cfg, 2), *grid, metrics=metrics, bn=bn)
    # float32 directions: the rescaled filter norms round differently in the last bit
    np.testing.assert_allclose(r1.values["train_loss"], r2.values["train_loss"], rtol=1e-6)
    # without normalization the two surfaces differ: the picture would depend on an irrelevant scale
    r3 = compute_surface(scaled, split, random_directions(scaled, DirectionOptions(seed=5, norm="none"), 2), *grid, metrics=metrics, bn=bn)
    r4 = compute_surface(net, split, random_directions(net, DirectionOptions(seed=5, norm="none"), 2), *grid, metrics=metrics, bn=bn)
    assert not np.allclose(r3.values["train_loss"], r4.values["train_loss"], rtol=1e-3)


def test_bn_recompute_uses_batch_statistics_of_the_moved_model() -> None:
    torch.manual_seed(4)
    net = nn.Sequential(nn.Linear(3, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 2)).double()
    x, y = torch.randn(64, 3, dtype=torch.float64), torch.randint(0, 2, (64,))
    metrics = MetricSet(["cross_entropy"], "classification", 2)
    dirs = random_directions(net, DirectionOptions(), 1)
    res = compute_surface(net, TensorSplit(x, y), dirs, [0.5], metrics=metrics, bn="recompute")
    oracle = copy.deepcopy(net)
    with torch.no_grad():
        for k, p in oracle.named_parameters():
            p.add_(0.5 * dirs.x[k].double())
        oracle[1].reset_running_stats()
        oracle[1].momentum = None
        oracle.train()
        oracle(x)
    assert res.values["train_loss"][0] == pytest.approx(evaluate(oracle, TensorSplit(x, y), metrics)["loss"], rel=1e-9)


def test_diverged_points_are_recorded_not_fatal() -> None:
    model, split, _, _ = linreg_problem()
    model = model.float()
    split = TensorSplit(split.inputs.float(), split.targets.float())
    dirs = random_directions(model, DirectionOptions(norm="none"), 1)
    res = compute_surface(model, split, dirs, [0.0, 1e30], metrics=MetricSet(["mse"], "regression", 0))
    assert np.isfinite(res.values["train_loss"][0]) and not np.isfinite(res.values["train_loss"][1])


@pytest.mark.parametrize("spec", ["1:-1:0", "a:b:c", "0:0:1", "-1:1", "0:1:1", "nan:1:3", "1:1:5"])
def test_impossible_grids_are_rejected(spec: str) -> None:
    with pytest.raises(GridError):
        parse_axis(spec)


def test_grid_geometry() -> None:
    assert parse_axis("-1:1:51")[25] == 0.0
    grid = Grid.parse("-1:2:4", "0:1:3")
    c = grid.coords()
    assert c.shape == (12, 2) and tuple(c[5]) == (0.0, 1.0)  # flat index 5 = (i=1, j=2)
    with pytest.raises(GridError, match="max-points"):
        Grid.parse("-1:1:1001", "-1:1:1001")


def test_1d_grid_with_2d_directions_is_an_error() -> None:
    model, split, _, _ = linreg_problem()
    dirs = random_directions(model, DirectionOptions(), 2)
    with pytest.raises(GridError):
        compute_surface(model, split, dirs, [0.0, 1.0], metrics=MetricSet(["mse"], "regression", 0))


def test_engine_skips_zero_directions() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    dirs = random_directions(model, DirectionOptions(), 2)
    engine = SurfaceEngine(model, dirs, {"train": TensorSplit(torch.randn(5, 3), torch.randint(0, 2, (5,)))},
                           MetricSet(["cross_entropy"], "classification", 2))
    # biases are not rewritten at every point; the first layer is precomputed (linear in its weights)
    assert engine.stem_name == "0" and engine.names == ["2.weight"]


@pytest.mark.parametrize("points_per_call", [1, 5])
def test_first_layer_precomputation_is_exact(points_per_call: int) -> None:
    torch.manual_seed(6)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 6), nn.Tanh(), nn.Linear(6, 3)).double()
    x, y = torch.randn(40, 3, 4, dtype=torch.float64), torch.randint(0, 3, (40,))
    dirs = random_directions(model, DirectionOptions(ignore="none"), 2)  # the bias moves too
    metrics = MetricSet(["cross_entropy"], "classification", 3)
    engine = SurfaceEngine(model, dirs, {"train": TensorSplit(x, y)}, metrics, points_per_call=points_per_call, batch_size=16)
    assert engine.stem_name == "1"
    coords = np.array([[0.5, -0.25], [-1.0, 2.0], [0.0, 0.0]])
    fast = engine.evaluate(coords)
    for (a, b), row in zip(coords, fast, strict=True):
        moved = copy.deepcopy(model)
        with torch.no_grad():
            for k, p in moved.named_parameters():
                p.add_(a * dirs.x[k].double() + b * dirs.y[k].double())  # type: ignore[index]
        assert row[0] == pytest.approx(evaluate(moved, TensorSplit(x, y), metrics)["loss"], rel=1e-12)


def test_directions_from_reference_file_reproduce_hand_computation(tmp_path) -> None:
    from landscape.engine.directions import load_directions

    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    rng = np.random.default_rng(1)
    arrays = [rng.standard_normal(tuple(p.shape)).astype(np.float32) for p in model.parameters()]
    with h5py.File(tmp_path / "ref.h5", "w") as f:
        for i, a in enumerate(arrays):
            f.require_group("xdirection").create_dataset(str(i), data=a)
            f.require_group("ydirection").create_dataset(str(i), data=a[::-1].copy())
    dirs = load_directions(tmp_path / "ref.h5", model)
    x, y = torch.randn(20, 3), torch.randint(0, 2, (20,))
    metrics = MetricSet(["cross_entropy"], "classification", 2)
    res = compute_surface(model, TensorSplit(x, y), dirs, [0.3], [-0.2], metrics=metrics)
    hand = copy.deepcopy(model)
    with torch.no_grad():
        for p, a in zip(hand.parameters(), arrays, strict=True):
            p.add_(0.3 * torch.from_numpy(a) - 0.2 * torch.from_numpy(a[::-1].copy()))
    assert res.values["train_loss"][0, 0] == pytest.approx(evaluate(hand, TensorSplit(x, y), metrics)["loss"], rel=1e-5)
    assert isinstance(dirs, Directions)


def test_batchnorm_is_folded_only_when_it_does_not_move() -> None:
    torch.manual_seed(7)
    model = nn.Sequential(nn.Linear(3, 3), nn.Unflatten(1, (3, 1, 1)), nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Conv2d(4, 4, 1, bias=False), nn.BatchNorm2d(4), nn.Flatten(), nn.Linear(4, 2))
    model.train()
    with torch.no_grad():
        model(torch.randn(64, 3))
    model.eval()
    x, y = torch.randn(30, 3), torch.randint(0, 2, (30,))
    metrics = MetricSet(["cross_entropy"], "classification", 2)
    split = {"train": TensorSplit(x, y)}
    fixed = SurfaceEngine(model, random_directions(model, DirectionOptions(), 2), split, metrics)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fixed.model.modules())
    moving = SurfaceEngine(model, random_directions(model, DirectionOptions(ignore="none"), 2), split, metrics)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in moving.model.modules()) == 2
    coords = np.array([[0.5, -0.3], [-1.0, 1.0]])
    for engine, cfg in ((fixed, DirectionOptions()), (moving, DirectionOptions(ignore="none"))):
        dirs = random_directions(model, cfg, 2)
        for (a, b), row in zip(coords, engine.evaluate(coords), strict=True):
            moved = copy.deepcopy(model)
            with torch.no_grad():
                for k, p in moved.named_parameters():
                    p.add_(a * dirs.x[k] + b * dirs.y[k])  # type: ignore[index]
            assert row[0] == pytest.approx(evaluate(moved, TensorSplit(x, y), metrics)["loss"], rel=1e-5)


def test_moved_running_variances_never_go_negative() -> None:
    """Extrapolating past B along θ_B − θ_A (states) must not make BatchNorm take √(negative)."""
    torch.manual_seed(8)
    a = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2)).eval()
    b = copy.deepcopy(a)
    with torch.no_grad():
        a[1].running_var.fill_(2.0)
        b[1].running_var.fill_(0.5)  # at α = 2 the straight line gives −1
    x, y = torch.randn(20, 3), torch.randint(0, 2, (20,))
    dirs = target_directions(a, b.state_dict(), None, "states")
    res = compute_surface(a, TensorSplit(x, y), dirs, [0.0, 1.0, 2.0], metrics=MetricSet(["cross_entropy"], "classification", 2))
    assert np.isfinite(res.values["train_loss"]).all()


def test_accuracy_of_a_diverged_point_is_nan_not_a_number_of_hits() -> None:
    metrics = MetricSet(["cross_entropy"], "classification", 3)
    out = torch.tensor([[1.0, 0.0, 0.0], [float("nan"), 0.0, 0.0]])
    sums = metrics.batch_sums(out, torch.tensor([0, 0]))
    assert np.isnan(sums[0].item()) and np.isnan(sums[1].item())
    finite = metrics.batch_sums(out[:1], torch.tensor([0]))
    assert finite[1].item() == 1.0


class _Block(nn.Module):
    """Not a Sequential: its ReLU is a function call, so only the convolution may be swapped."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.bn(self.conv(x)) + x)


def test_all_set_up_rewrites_together_equal_the_plain_model() -> None:
    """BN folding, the first-layer cache and fused conv+ReLU, each verified, then checked by hand."""
    from landscape.engine.rewrites import FastConv, MaxPool2x2, fast_conv_available

    torch.manual_seed(9)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                          nn.Conv2d(4, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2), _Block(),
                          nn.Flatten(), nn.Linear(4 * 9, 3))
    model.train()
    with torch.no_grad():
        model(torch.randn(64, 1, 6, 6))
    model.eval()
    x, y = torch.randn(40, 1, 6, 6), torch.randint(0, 3, (40,))
    dirs = random_directions(model, DirectionOptions(), 2)
    metrics = MetricSet(["cross_entropy", "mse"], "classification", 3)
    engine = SurfaceEngine(model, dirs, {"train": TensorSplit(x, y)}, metrics, batch_size=16)
    assert engine.stem_name == "0"  # the folded first convolution is precomputed
    assert engine.stem is not None and engine.stem.relu  # ... and applies the ReLU after it
    assert sum(isinstance(m, nn.ReLU) for m in engine.model.modules()) == (0 if fast_conv_available() else 1)
    cached = next(iter(engine.stem.cache.values()))
    assert all(t.stride() == cached[0].stride() for t in cached if t is not None)  # one layout for all three
    assert not any(isinstance(m, nn.BatchNorm2d) for m in engine.model.modules())
    assert sum(isinstance(m, MaxPool2x2) for m in engine.model.modules()) == 1
    if fast_conv_available():
        # conv → ReLU in the Sequential, and the block's relu(conv(x) + x) found by tracing its forward
        assert sum(isinstance(m, FastConv) for m in engine.model.modules()) == 2
    coords = np.array([[0.5, -0.3], [-1.0, 0.8], [0.0, 0.0]])
    for (a, b), row in zip(coords, engine.evaluate(coords), strict=True):
        moved = copy.deepcopy(model)
        with torch.no_grad():
            for k, p in moved.named_parameters():
                p.add_(a * dirs.x[k] + b * dirs.y[k])  # type: ignore[index]
        want = evaluate(moved, TensorSplit(x, y), metrics)
        assert row[1] == pytest.approx(want["cross_entropy"], rel=1e-5)
        assert row[2] == pytest.approx(want["mse"], rel=1e-5)


@pytest.mark.parametrize("size", [(8, 6), (7, 6), (5, 5)])
@pytest.mark.parametrize("ceil_mode", [False, True])
def test_two_by_two_max_pool_equals_max_pool2d(size: tuple[int, int], ceil_mode: bool) -> None:
    """Even sizes take the two-maxima path, odd ones fall back; both equal MaxPool2d bit for bit."""
    from landscape.engine.rewrites import MaxPool2x2

    pool = nn.MaxPool2d(2, ceil_mode=ceil_mode)
    assert MaxPool2x2.applies(pool)
    assert not MaxPool2x2.applies(nn.MaxPool2d(3, 2)) and not MaxPool2x2.applies(nn.MaxPool2d(2, padding=1))
    x = torch.randn(3, 5, *size)
    for layout in (torch.contiguous_format, torch.channels_last):
        xl = x.contiguous(memory_format=layout)
        assert torch.equal(MaxPool2x2(pool)(xl), pool(xl))


def test_registry_conv_nets_through_every_rewrite_equal_the_plain_model() -> None:
    """The registry's CNN (max-pool, fused conv+ReLU, folded BN, first-layer cache), small ResNets
    (residual adds fused by tracing, projection shortcuts), VGG and MLP against the model moved by hand."""
    from landscape.engine.rewrites import FastConv, MaxPool2x2, fast_conv_available
    from landscape.zoo.models import build_model

    torch.manual_seed(3)
    x, y = torch.randn(24, 1, 8, 8), torch.randint(0, 4, (24,))
    for name, options in (("cnn", {"width": 4}), ("resnet20", {"width": 4}), ("resnet20_noshort", {"width": 4}),
                          ("vgg9", {"width": 4}), ("mlp", {})):
        model = build_model(name, (1, 8, 8), (4,), options)
        model.train()
        with torch.no_grad():
            model(x)  # non-trivial BatchNorm statistics
        model.eval()
        dirs = random_directions(model, DirectionOptions(), 2)
        metrics = MetricSet(["cross_entropy"], "classification", 4)
        coords = np.array([[0.4, -0.7], [-0.9, 0.2]])
        engine = SurfaceEngine(model, dirs, {"train": TensorSplit(x, y)}, metrics)
        if name == "cnn":
            assert any(isinstance(m, MaxPool2x2) for m in engine.model.modules())
        if name == "resnet20" and fast_conv_available():  # every block's relu(conv2(h) + shortcut) in one call
            assert sum(isinstance(m, FastConv) for m in engine.model.modules()) == 2 * 9
        got = engine.evaluate(coords)
        for (a, b), row in zip(coords, got, strict=True):
            moved = copy.deepcopy(model)
            with torch.no_grad():
                for k, p in moved.named_parameters():
                    p.add_(a * dirs.x[k] + b * dirs.y[k])  # type: ignore[index]
            want = evaluate(moved, TensorSplit(x, y), metrics)
            assert row[0] == pytest.approx(want[metrics.names[0]], rel=1e-5), name


class _Branchy(nn.Module):
    """A forward that branches on data: it cannot be traced, so no layer is fused."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 3, 3, padding=1)
        self.conv2 = nn.Conv2d(3, 3, 3, padding=1)
        self.fc = nn.Linear(3 * 16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(x))
        if float(h.mean()) > 0:  # data-dependent control flow
            h = torch.relu(self.conv2(h))
        return self.fc(h.flatten(1))


def test_untraceable_model_keeps_its_layers_and_its_values() -> None:
    from landscape.engine.rewrites import FastConv

    torch.manual_seed(5)
    model = _Branchy().eval()
    x, y = torch.randn(20, 1, 4, 4), torch.randint(0, 2, (20,))
    dirs = random_directions(model, DirectionOptions(), 2)
    metrics = MetricSet(["cross_entropy"], "classification", 2)
    engine = SurfaceEngine(model, dirs, {"train": TensorSplit(x, y)}, metrics)
    assert not any(isinstance(m, FastConv) for m in engine.model.modules())
    (value,) = engine.evaluate(np.array([[0.3, 0.6]]))[:, 0]
    moved = copy.deepcopy(model)
    with torch.no_grad():
        for k, p in moved.named_parameters():
            p.add_(0.3 * dirs.x[k] + 0.6 * dirs.y[k])  # type: ignore[index]
    assert value == pytest.approx(evaluate(moved, TensorSplit(x, y), metrics)[metrics.names[0]], rel=1e-5)


def test_a_wrong_fused_layer_is_caught_at_set_up_and_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    """The set-up check compares the traced model with the original at an off-origin point."""
    from landscape.engine import rewrites

    torch.manual_seed(6)
    model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 3)).eval()
    x, y = torch.randn(30, 5), torch.randint(0, 3, (30,))
    dirs = random_directions(model, DirectionOptions(), 2)
    metrics = MetricSet(["cross_entropy"], "classification", 3)
    good = SurfaceEngine(model, dirs, {"train": TensorSplit(x, y)}, metrics)
    assert good.stem is not None and good.stem.relu
    def skewed(self: rewrites.LinearStem) -> rewrites.LinearStem:  # a stand-in whose values are off by 1 %
        return rewrites.LinearStem({k: (1.01 * b, u, v) for k, (b, u, v) in self.cache.items()}, torch.device("cpu"))

    monkeypatch.setattr(rewrites.LinearStem, "clone", skewed)
    bad = SurfaceEngine(model, dirs, {"train": TensorSplit(x, y)}, metrics)
    assert bad.stem is not None and not bad.stem.relu and not isinstance(bad.model, torch.fx.GraphModule)
    coords = np.array([[0.2, -0.4], [0.9, 0.1]])
    np.testing.assert_allclose(bad.evaluate(coords), good.evaluate(coords), rtol=1e-6)


class _Viewer(nn.Module):
    """Flattens a convolution's output with .view(), which needs NCHW strides (common in user code)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, padding=1)  # one input channel: its weight is both NCHW- and NHWC-contiguous
        self.bn = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(4)
        self.fc = nn.Linear(4 * 36, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.bn2(self.conv2(torch.relu(self.bn(self.conv(x))))))
        return self.fc(h.view(h.size(0), -1))


def test_a_model_that_views_conv_outputs_keeps_its_layout_and_values() -> None:
    torch.manual_seed(8)
    model = _Viewer()
    with torch.no_grad():
        model(torch.randn(50, 1, 6, 6))  # non-trivial BatchNorm statistics
    model.eval()
    x, y = torch.randn(30, 1, 6, 6), torch.randint(0, 3, (30,))
    dirs = random_directions(model, DirectionOptions(), 2)
    metrics = MetricSet(["cross_entropy"], "classification", 3)
    engine = SurfaceEngine(model, dirs, {"train": TensorSplit(x, y)}, metrics)
    assert not engine.channels_last
    assert not any(isinstance(m, nn.BatchNorm2d) for m in engine.model.modules())  # folded all the same
    (value,) = engine.evaluate(np.array([[-0.4, 0.3]]))[:, 0]
    moved = copy.deepcopy(model)
    with torch.no_grad():
        for k, p in moved.named_parameters():
            p.add_(-0.4 * dirs.x[k] + 0.3 * dirs.y[k])  # type: ignore[index]
    assert value == pytest.approx(evaluate(moved, TensorSplit(x, y), metrics)[metrics.names[0]], rel=1e-5)


class _Tied(nn.Module):
    """The first layer's weight is used again later: the first-layer cache must not take it over."""

    def __init__(self, functional: bool) -> None:
        super().__init__()
        self.l1 = nn.Linear(6, 6)
        self.l2 = nn.Linear(6, 6)
        self.l2.weight = self.l1.weight  # tied through a second module
        self.out = nn.Linear(6, 3)
        self.functional = functional

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.l2(torch.relu(self.l1(x))))
        if self.functional:  # and used once more by name
            return self.out(h) + nn.functional.linear(h, self.l1.weight)[:, :3]
        return self.out(h)  # type: ignore[no-any-return]


@pytest.mark.parametrize("functional", [False, True])
def test_tied_first_layer_weights_move_everywhere_they_are_used(functional: bool) -> None:
    torch.manual_seed(4)
    model = _Tied(functional).eval()
    x, y = torch.randn(40, 6), torch.randint(0, 3, (40,))
    dirs = random_directions(model, DirectionOptions(), 2)
    metrics = MetricSet(["cross_entropy"], "classification", 3)
    engine = SurfaceEngine(model, dirs, {"train": TensorSplit(x, y)}, metrics)
    assert engine.stem is None  # refused: its tensor would stay at the origin where it is used again
    (value,) = engine.evaluate(np.array([[0.8, -0.6]]))[:, 0]
    moved = copy.deepcopy(model)
    with torch.no_grad():
        for k, p in moved.named_parameters():
            p.add_(0.8 * dirs.x[k] - 0.6 * dirs.y[k])  # type: ignore[index]
    assert value == pytest.approx(evaluate(moved, TensorSplit(x, y), metrics)[metrics.names[0]], rel=1e-5)


def test_a_model_returning_a_tuple_is_named_as_the_problem() -> None:
    from landscape.errors import ModelError

    class Pair(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 2)

        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return self.fc(x), x

    model = Pair()
    dirs = random_directions(model, DirectionOptions(), 1)
    with pytest.raises(ModelError, match="returns a tuple, not a tensor"):
        SurfaceEngine(model, dirs, {"train": TensorSplit(torch.randn(8, 4), torch.randint(0, 2, (8,)))},
                      MetricSet(["cross_entropy"], "classification", 2))


def test_vmap_over_the_traced_model_equals_one_point_per_call() -> None:
    """K points per call (vmap over stacked weights) through the traced model, its 2×2 pools and
    fused first layer, against one point per call (fused convolutions)."""
    from landscape.engine.rewrites import MaxPool2x2
    from landscape.zoo.models import build_model

    torch.manual_seed(12)
    x, y = torch.randn(40, 1, 8, 8), torch.randint(0, 4, (40,))
    coords = np.array([[0.3, -0.2], [0.7, 0.1], [-0.5, 0.5], [0.0, 0.0], [1.0, -1.0]])
    for name in ("cnn", "vgg9", "resnet20"):
        model = build_model(name, (1, 8, 8), (4,), {"width": 4})
        model.train()
        with torch.no_grad():
            model(x)
        model.eval()
        dirs = random_directions(model, DirectionOptions(), 2)
        metrics = MetricSet(["cross_entropy"], "classification", 4)
        one = SurfaceEngine(model, dirs, {"train": TensorSplit(x, y)}, metrics, points_per_call=1).evaluate(coords)
        stacked = SurfaceEngine(model, dirs, {"train": TensorSplit(x, y)}, metrics, points_per_call=4)
        assert isinstance(stacked.model, torch.fx.GraphModule)
        assert (name == "resnet20") != any(isinstance(m, MaxPool2x2) for m in stacked.model.modules())
        np.testing.assert_allclose(stacked.evaluate(coords), one, rtol=1e-5, atol=1e-7, err_msg=name)


# --- calibration: only what vmap cannot do is caught -------------------------------------------------


def _calibration_case(forward_hook: object) -> tuple[SurfaceEngine, np.ndarray]:
    """An engine (CPU, points per call left to calibration) over a Tanh MLP whose forward first calls
    ``forward_hook(module)``; and 12 grid points."""

    class Hooked(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            forward_hook(self)  # type: ignore[operator]
            return self.net(x)  # type: ignore[no-any-return]

    torch.manual_seed(0)
    model = Hooked()
    split = TensorSplit(torch.randn(20, 4), torch.randint(0, 3, (20,)))
    engine = SurfaceEngine(model, random_directions(model, DirectionOptions(), dims=2), {"train": split},
                           MetricSet(["cross_entropy"], "classification", 3))
    return engine, Grid.parse("-1:1:4", "-1:1:3").coords()


@pytest.mark.parametrize("fails_from_call", [1, 3])  # at K = 1; at K = 4, after K = 1 evaluated 2 points
def test_an_error_in_the_models_forward_during_calibration_reaches_the_caller(fails_from_call: int) -> None:
    calls = {"n": 0, "armed": False}

    def hook(module: nn.Module) -> None:
        if calls["armed"]:
            calls["n"] += 1
            if calls["n"] >= fails_from_call:
                raise RuntimeError("the model's own forward failed")

    engine, coords = _calibration_case(hook)
    calls["armed"] = True  # (set-up ran the forward several times)
    with pytest.raises(RuntimeError, match="the model's own forward failed"):
        engine.calibrate(coords, candidates=(1, 4))


def test_calibration_stays_at_one_point_per_call_when_vmap_cannot_batch_the_forward() -> None:
    def hook(module: nn.Module) -> None:
        float(module.net[2].weight.abs().max().item())  # type: ignore[index]  # vmap cannot batch .item()

    engine, coords = _calibration_case(hook)
    values, used = engine.calibrate(coords, candidates=(1, 4))
    assert (used, engine.points_per_call) == (6, 1)  # 2 points at K = 1, then the 4 of K = 4 one at a time
    fresh, _ = _calibration_case(hook)
    fresh.points_per_call = 1
    np.testing.assert_array_equal(values, fresh.evaluate(coords[:6]))
