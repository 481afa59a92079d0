"""What a surface holds beyond the caller's model: one copy of the moved tensors, whatever rewrites are kept.

Counted exactly (tensor storages the engine owns, not the process's memory), so nothing here
depends on the allocator; the peak memory itself is measured by ``scripts/bench_api.py`` (d).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

import landscape
from landscape.config import DirectionsConfig
from landscape.engine.batchloss import BatchEngine, output_sums_of
from landscape.engine.directions import Directions, random_directions
from landscape.engine.losses import MetricSet
from landscape.engine.moved import moved_names, selector
from landscape.engine.rewrites import LinearStem
from landscape.engine.surface import SurfaceEngine
from landscape.zoo.data import TensorSplit


def conv_bn_net(seed: int = 0) -> nn.Module:
    """A first convolution (the cached stem), then conv+BN+ReLU twice, a max-pool and a classifier."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(),
                          nn.Conv2d(6, 6, 3, padding=1, bias=False), nn.BatchNorm2d(6), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Flatten(), nn.Linear(6 * 9, 3))
    model.train()
    with torch.no_grad():
        model(torch.randn(64, 2, 6, 6))  # BatchNorm statistics that are not the identity
    return model.eval()


def mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3)).eval()


def data(model: nn.Module, n: int = 24) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(3)
    shape = (n, 2, 6, 6) if isinstance(model[0], nn.Conv2d) else (n, 5)  # type: ignore[index]
    return torch.randn(shape, generator=g), torch.randint(0, 3, (n,), generator=g)


def storages(tensors: Iterable[Tensor]) -> dict[int, int]:
    """data pointer of each distinct storage -> its bytes."""
    return {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in tensors}


def owned_bytes(engine: SurfaceEngine | BatchEngine, caller: nn.Module, dirs: Directions) -> int:
    """Bytes of the storages the engine's model and moved tensors hold that are neither the caller's nor the directions'."""
    foreign = storages([*caller.parameters(), *caller.buffers(), *dirs.x.values(), *(dirs.y or {}).values()])
    mv = engine.moved
    held = storages([*engine.model.parameters(), *engine.model.buffers(), *mv.params, *mv.origin, *mv.dx, *(mv.dy or [])])
    return sum(n for ptr, n in held.items() if ptr not in foreign)


def bytes_of(model: nn.Module, names: Iterable[str]) -> int:
    tensors = dict(model.named_parameters()) | dict(model.named_buffers())
    return sum(tensors[k].numel() * tensors[k].element_size() for k in names)


def small_bytes(model: nn.Module) -> int:
    """Biases and BatchNorm vectors (ndim ≤ 1): a folded convolution gets a bias of its own."""
    return sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()] if t.ndim <= 1)


@pytest.mark.parametrize("make", [mlp, conv_bn_net])
@pytest.mark.parametrize("params", [None, "2.*"])
def test_the_engine_owns_one_copy_of_the_moved_tensors_and_aliases_the_rest(make, params: str | None) -> None:  # type: ignore[no-untyped-def]
    model = make()
    x, y = data(model)
    dirs = random_directions(model, DirectionsConfig(), 2)
    engine = SurfaceEngine(model, dirs, {"train": TensorSplit(x, y)}, MetricSet(["cross_entropy"], "classification", 3),
                           moved=selector(params))
    if make is conv_bn_net:  # every rewrite is in place: cached first layer, folded BatchNorms, channels-last
        assert engine.channels_last and not any(isinstance(m, nn.BatchNorm2d) for m in engine.model.modules())
        assert (engine.stem is not None) == (params is None)
    moved = moved_names(dirs, selector(params))
    owned = owned_bytes(engine, model, dirs)
    assert owned >= sum(p.numel() * p.element_size() for p in engine.moved.params)  # the working tensors are the engine's
    # ... and nothing else of the model's size, but for fixed convolution weights in the CPU's faster layout
    # (and folded): with a params subset, one copy of those is the price of the fast convolutions
    fixed_convs = [k for k, p in model.named_parameters() if p.ndim == 4 and k not in moved] if engine.channels_last else []
    assert owned <= bytes_of(model, moved) + bytes_of(model, fixed_convs) + small_bytes(model)
    caller = storages([*model.parameters(), *model.buffers()])
    assert all(o.untyped_storage().data_ptr() in caller for o in engine.moved.origin)  # the origin is the caller's


def test_the_batch_engine_owns_its_moved_tensors_and_buffers_only() -> None:
    model = conv_bn_net()
    x, y = data(model)
    dirs = random_directions(model, DirectionsConfig(), 2)
    engine = BatchEngine(model, dirs, {"train": [(x, y)]}, ["loss"], output_sums_of(MetricSet(["cross_entropy"], "classification", 3)),
                         moved=selector("2.*"))
    buffers = sum(b.numel() * b.element_size() for b in model.buffers())
    assert owned_bytes(engine, model, dirs) == bytes_of(model, ["2.weight"]) + buffers


def hand_loss(model: nn.Module, dirs: dict[str, dict[str, Tensor]], x: Tensor, y: Tensor, a: float, b: float) -> float:
    """θ* + a·dx + b·dy in float64 on an unmodified copy (BatchNorm as it is): the mean cross-entropy."""
    m = copy.deepcopy(model).double()
    with torch.no_grad():
        for k, p in m.named_parameters():
            p.add_(a * dirs["x"][k].double() + b * dirs["y"][k].double())
        return float(F.cross_entropy(m(x.double()), y))


@pytest.mark.parametrize("points_per_call", [1, 4])
def test_a_folded_convolution_with_a_moved_bias_equals_the_hand_loop(points_per_call: int) -> None:
    """The folded bias is ``s·(b* + α·δ + β·η) + (β_BN − s·μ)``: a scale and a shift applied at every
    point, by the in-place writes (one point per call) and by the stacked weights of ``vmap``."""
    model = conv_bn_net(seed=4)
    x, y = data(model)
    base = random_directions(model, DirectionsConfig(), 2)
    g = torch.Generator().manual_seed(5)
    dx, dy = dict(base.x), dict(base.y or {})
    dx["2.bias"], dy["2.bias"] = torch.randn(6, generator=g), torch.randn(6, generator=g)  # BatchNorms still fixed
    dirs = Directions(dx, dy, dict(base.meta))
    engine = SurfaceEngine(model, dirs, {"train": TensorSplit(x, y)}, MetricSet(["cross_entropy"], "classification", 3),
                           points_per_call=points_per_call)
    assert "2.bias" in engine.moved.affine and engine.moved.affine["2.bias"][1] is not None  # folded, with its shift
    coords = np.array([[0.5, -0.3], [-1.0, 0.8], [0.0, 0.0]])
    for (a, b), row in zip(coords, engine.evaluate(coords), strict=True):
        assert row[0] == pytest.approx(hand_loss(model, {"x": dx, "y": dy}, x, y, a, b), rel=1e-5)


def interrupter(error: type[BaseException], state: dict[str, int]) -> Callable[[nn.Module, object, Tensor], None]:
    """A forward hook that raises ``error`` at call ``state["at"]`` (a function: the engine's private copy shares it)."""

    def hook(module: nn.Module, args: object, out: Tensor) -> None:
        state["calls"] += 1
        if state["calls"] == state["at"]:
            raise error("injected")

    return hook


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
@pytest.mark.parametrize("params", [None, "2.*"])
def test_the_callers_conv_net_is_bit_identical_after_every_rewrite_and_an_interrupt(error: type[BaseException],
                                                                                    params: str | None) -> None:
    """Shared storage (origin, unmoved tensors) is never written: values, storages, modes and flags stay."""
    model = conv_bn_net()
    count = {"calls": 0, "at": 10**9}
    model[10].register_forward_hook(interrupter(error, count))  # type: ignore[index]
    model[0].weight.requires_grad_(False)  # type: ignore[index]
    x, y = data(model)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    where = {k: (v.data_ptr(), v.stride()) for k, v in model.state_dict().items()}
    flags = [p.requires_grad for p in model.parameters()], [m.training for m in model.modules()]

    def unchanged() -> None:
        now = model.state_dict()
        assert all(torch.equal(now[k], v) and now[k].dtype == v.dtype for k, v in state.items())
        assert {k: (v.data_ptr(), v.stride()) for k, v in now.items()} == where
        assert ([p.requires_grad for p in model.parameters()], [m.training for m in model.modules()]) == flags

    landscape.surface(model, (x, y), x=(-1, 1, 3), y=(-1, 1, 3), params=params, progress=False)
    unchanged()
    count.update(calls=0, at=14)  # after the set-up checks, among the grid points
    with pytest.raises(error, match="injected"):
        landscape.surface(model, (x, y), x=(-1, 1, 5), y=(-1, 1, 5), params=params, progress=False)
    assert count["calls"] == 14
    unchanged()


def test_the_first_layer_cache_keeps_its_three_tensors_once() -> None:
    """Direction terms already in the output's layout are kept as computed (no second copy of a data-sized cache)."""
    model = mlp()
    x, y = data(model, n=40)
    engine = SurfaceEngine(model, random_directions(model, DirectionsConfig(), 2), {"train": TensorSplit(x, y)},
                           MetricSet(["cross_entropy"], "classification", 3))
    assert isinstance(engine.stem, LinearStem)
    base, ux, uy = next(iter(engine.stem.cache.values()))
    assert uy is not None and len(storages([base, ux, uy])) == 3 and ux.stride() == base.stride()
