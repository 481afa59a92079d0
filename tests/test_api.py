"""The Python API against independent float64 hand loops: every data shape, every loss kind,
parameter subsets, streamed vs cached data, and the caller's model left exactly as it was."""

from __future__ import annotations
import __future__

import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import DataLoader, TensorDataset

import landscape
from landscape.config import DirectionsConfig, PlotConfig
from landscape.engine.directions import save_directions
from landscape.errors import ConfigError, DataError, GridError, LandscapeError, RegistryError

matplotlib.use("Agg")

AXIS = (-1.0, 1.0, 3)


def mlp(dtype: torch.dtype = torch.float64, seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).to(dtype)


def classification(n: int = 40, dtype: torch.dtype = torch.float64) -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(n, 6, generator=g, dtype=dtype), torch.randint(0, 3, (n,), generator=g)


def snapshot(model: nn.Module) -> tuple[dict[str, Tensor], list[bool], list[bool]]:
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return state, [m.training for m in model.modules()], [p.requires_grad for p in model.parameters()]


def assert_same(model: nn.Module, before: tuple[dict[str, Tensor], list[bool], list[bool]]) -> None:
    state, modes, grads = before
    now = model.state_dict()
    assert set(now) == set(state)
    for k, v in state.items():
        assert now[k].dtype == v.dtype and torch.equal(now[k], v), k  # bit for bit
    assert [m.training for m in model.modules()] == modes
    assert [p.requires_grad for p in model.parameters()] == grads


def hand_surface(model: nn.Module, dirs: landscape.Directions, xs: np.ndarray, ys: np.ndarray,
                 per_point: Callable[[dict[str, Tensor]], float], moved: Callable[[str], bool] = lambda k: True) -> np.ndarray:
    """θ* + a·dx + b·dy in float64, one point at a time, with parameters given as a dict."""
    origin = {k: p.detach().double() for k, p in model.named_parameters()}
    assert dirs.y is not None
    out = np.empty((len(xs), len(ys)))
    for i, a in enumerate(xs):
        for j, b in enumerate(ys):
            point = {k: o + float(a) * dirs.x[k].double() + float(b) * dirs.y[k].double() if moved(k) else o
                     for k, o in origin.items()}
            out[i, j] = per_point(point)
    return out


def mlp_forward(point: dict[str, Tensor], x: Tensor) -> Tensor:
    h = torch.tanh(x.double() @ point["0.weight"].T + point["0.bias"])
    return h @ point["2.weight"].T + point["2.bias"]


def ce_loop(x: Tensor, y: Tensor) -> Callable[[dict[str, Tensor]], float]:
    return lambda point: float(F.cross_entropy(mlp_forward(point, x), y))


def acc_loop(x: Tensor, y: Tensor) -> Callable[[dict[str, Tensor]], float]:
    return lambda point: float((mlp_forward(point, x).argmax(1) == y).double().mean())


# --- the public names ---------------------------------------------------------------------------------


PUBLIC = [  # sorted: adding or removing a public name is a decision, written down here as well
    "CheckReport",
    "Directions",
    "Filters",
    "FlatSurfaceWarning",
    "HessianResult",
    "LandscapeError",
    "OutputLoss",
    "Recorder",
    "Sharpness",
    "Surface",
    "Trajectory",
    "__version__",
    "causal_lm_loss",
    "check",
    "connect",
    "dataset",
    "hessian",
    "load_checkpoint",
    "load_surface",
    "log_figures",
    "plot",
    "random_directions",
    "register_filter_rule",
    "sharpness",
    "surface",
    "trajectory",
]


def test_public_names_are_pinned() -> None:
    assert sorted(landscape.__all__) == PUBLIC  # a name added, removed or listed twice fails
    assert all(hasattr(landscape, n) for n in PUBLIC)
    # and nothing public beside them: every other name of the namespace is a submodule
    others = {n for n, v in vars(landscape).items() if not n.startswith("_") and n not in PUBLIC
              and not isinstance(v, types.ModuleType | __future__._Feature)}
    assert others == set()


# --- data shapes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["pair", "dataset", "loader", "list", "dict"])
def test_every_data_shape_matches_the_float64_hand_loop(shape: str) -> None:
    model = mlp()
    x, y = classification()
    data: Any = {"pair": (x, y), "dataset": TensorDataset(x, y), "loader": DataLoader(TensorDataset(x, y), batch_size=7),
                 "list": [(x[:13], y[:13]), (x[13:], y[13:])], "dict": {"train": (x, y)}}[shape]
    dirs = landscape.random_directions(model, seed=3)
    s = landscape.surface(model, data, loss="cross_entropy", directions=dirs, x=AXIS, y=AXIS)
    assert s.x.tolist() == [-1.0, 0.0, 1.0] and s.y is not None and s["train_loss"].shape == (3, 3)
    np.testing.assert_allclose(s["train_loss"], hand_surface(model, dirs, s.x, s.y, ce_loop(x, y)), rtol=1e-9)
    np.testing.assert_allclose(s["train_acc"], hand_surface(model, dirs, s.x, s.y, acc_loop(x, y)), rtol=1e-12)


def test_train_and_test_pair_gives_both_splits() -> None:
    model = mlp()
    x, y = classification(60)
    dirs = landscape.random_directions(model, seed=0)
    s = landscape.surface(model, ((x[:40], y[:40]), (x[40:], y[40:])), directions=dirs, x=AXIS, y=AXIS)
    assert s.columns == ["train_loss", "train_acc", "test_loss", "test_acc"]
    np.testing.assert_allclose(s["test_loss"], hand_surface(model, dirs, s.x, s.y, ce_loop(x[40:], y[40:])), rtol=1e-9)


def test_float32_fast_path_matches_the_float64_loop() -> None:
    model = mlp(torch.float32)
    x, y = classification(dtype=torch.float32)
    dirs = landscape.random_directions(model, seed=1)
    s = landscape.surface(model, (x, y), directions=dirs, x=(-1, 1, 5), y=(-1, 1, 5))
    np.testing.assert_allclose(s["train_loss"], hand_surface(model, dirs, s.x, s.y, ce_loop(x, y)), rtol=2e-5)


# --- loss kinds -------------------------------------------------------------------------------------------


class DictModel(nn.Module):
    """A model of dict batches that returns an object with ``.loss`` (as HuggingFace models do)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = mlp()

    def forward(self, inputs: Tensor, labels: Tensor) -> types.SimpleNamespace:
        logits = self.net(inputs)
        return types.SimpleNamespace(loss=F.cross_entropy(logits, labels), logits=logits)


def test_dict_batches_with_a_callable_loss_weight_each_batch_mean_by_its_size() -> None:
    model = DictModel()
    x, y = classification(41)
    batches = [{"inputs": x[:5], "labels": y[:5]}, {"inputs": x[5:], "labels": y[5:]}]  # unequal sizes
    dirs = landscape.random_directions(model, seed=2)
    s = landscape.surface(model, batches, loss=lambda m, b: m(**b).loss, directions=dirs, x=AXIS, y=AXIS,
                          metrics={"acc": lambda m, b: (m(**b).logits.argmax(1) == b["labels"]).double()})
    assert s.columns == ["train_loss", "train_acc"]
    renamed = landscape.Directions({k[4:]: v for k, v in dirs.x.items()}, {k[4:]: v for k, v in (dirs.y or {}).items()})
    want = hand_surface(model.net, renamed, s.x, s.y, ce_loop(x, y))  # the mean over all 41 samples
    np.testing.assert_allclose(s["train_loss"], want, rtol=1e-9)
    np.testing.assert_allclose(s["train_acc"], hand_surface(model.net, renamed, s.x, s.y, acc_loop(x, y)), rtol=1e-12)


def test_a_criterion_instance_and_the_registry_name_agree() -> None:
    model = mlp()
    x, y = classification()
    a = landscape.surface(model, (x, y), loss=nn.CrossEntropyLoss(), x=AXIS, y=AXIS)
    b = landscape.surface(model, (x, y), loss="ce", x=AXIS, y=AXIS)
    np.testing.assert_allclose(a["train_loss"], b["train_loss"], rtol=1e-12)
    np.testing.assert_allclose(a["train_acc"], b["train_acc"], rtol=1e-12)


def test_regression_model_with_float_targets_and_mse() -> None:
    torch.manual_seed(0)
    model = nn.Linear(12, 1).double()
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(30, 12, generator=g, dtype=torch.float64), torch.randn(30, generator=g, dtype=torch.float64)
    dirs = landscape.random_directions(model, seed=0, ignore="none")
    s = landscape.surface(model, (x, y), loss="mse", directions=dirs, x=AXIS, y=AXIS)
    assert s.columns == ["train_loss"]
    want = hand_surface(model, dirs, s.x, s.y, lambda p: float(((x @ p["weight"].T + p["bias"]).squeeze(1) - y).pow(2).mean()))
    np.testing.assert_allclose(s["train_loss"], want, rtol=1e-9)


# --- params subsets -------------------------------------------------------------------------------------------


def test_params_moves_only_the_selected_tensors_and_leaves_the_rest_bit_identical() -> None:
    model = mlp()
    x, y = classification()
    dirs = landscape.random_directions(model, seed=4, ignore="none")
    origin = {k: p.detach().clone() for k, p in model.named_parameters()}
    seen: list[dict[str, Tensor]] = []

    def loss(m: nn.Module, batch: Any) -> Tensor:
        seen.append({k: p.detach().clone() for k, p in m.named_parameters()})
        return F.cross_entropy(m(batch[0]), batch[1])

    s = landscape.surface(model, (x, y), loss=loss, directions=dirs, x=AXIS, y=AXIS, params="0.*")
    points = [(a, b) for a in s.x for b in s.y]
    assert len(seen) == 1 + len(points)  # the first-batch check at θ*, then one batch per point
    for (a, b), params in zip(points, seen[1:], strict=True):
        for k, value in params.items():
            if k.startswith("0."):
                want = origin[k] + float(a) * dirs.x[k].double() + float(b) * dirs.y[k].double()  # type: ignore[index]
                torch.testing.assert_close(value, want, rtol=1e-12, atol=1e-12)
            else:
                assert torch.equal(value, origin[k]), k
    want = hand_surface(model, dirs, s.x, s.y, ce_loop(x, y), moved=lambda k: k.startswith("0."))
    np.testing.assert_allclose(s["train_loss"], want, rtol=1e-9)
    fast = landscape.surface(model, (x, y), directions=dirs, x=AXIS, y=AXIS, params=lambda k: k.startswith("0."))
    np.testing.assert_allclose(fast["train_loss"], want, rtol=1e-9)


def test_params_that_select_nothing_is_one_clear_error() -> None:
    model = mlp()
    with pytest.raises(LandscapeError, match="params selects no tensor"):
        landscape.surface(model, classification(), x=AXIS, y=AXIS, params="encoder.*")


# --- streamed vs cached ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("loss", ["cross_entropy", "callable"])
def test_streamed_and_cached_data_give_the_same_values(loss: str) -> None:
    model = mlp(torch.float32)
    x, y = classification(90, torch.float32)
    loader = DataLoader(TensorDataset(x, y), batch_size=16)
    spec: Any = loss if loss != "callable" else (lambda m, b: F.cross_entropy(m(b[0]), b[1], reduction="none"))
    cached = landscape.surface(model, loader, loss=spec, x=AXIS, y=AXIS)
    streamed = landscape.surface(model, loader, loss=spec, x=AXIS, y=AXIS, memory_budget=1000)
    assert cached.attrs["streamed"] == [] and streamed.attrs["streamed"] == ["train"]
    np.testing.assert_allclose(streamed["train_loss"], cached["train_loss"], rtol=1e-6)


def test_a_one_shot_iterator_is_refused_in_one_line() -> None:
    x, y = classification()
    with pytest.raises(DataError, match="one-shot iterator"):
        landscape.surface(mlp(), iter([(x, y)]), x=AXIS, y=AXIS, memory_budget=10)


# --- the model is never touched -------------------------------------------------------------------------------


class Exploding(nn.Module):
    """A model whose forward raises ``error`` on call number ``at`` (counted over copies too)."""

    calls = 0

    def __init__(self, at: int, error: type[BaseException]) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 3))
        self.at, self.error = at, error

    def forward(self, x: Tensor) -> Tensor:
        Exploding.calls += 1
        if Exploding.calls == self.at:
            raise self.error("injected")
        return self.net(x)  # type: ignore[no-any-return]


@pytest.mark.parametrize("error", [KeyboardInterrupt, RuntimeError])
@pytest.mark.parametrize("loss", ["cross_entropy", "callable"])
def test_model_is_bit_identical_after_success_and_after_an_interrupt(error: type[BaseException], loss: str) -> None:
    torch.manual_seed(0)
    x, y = classification(32, torch.float32)
    spec: Any = loss if loss != "callable" else (lambda m, b: F.cross_entropy(m(b[0]), b[1]))
    model = Exploding(at=10**9, error=error)
    model.train()
    model.net[0].weight.requires_grad_(False)
    before = snapshot(model)
    landscape.surface(model, (x, y), loss=spec, x=AXIS, y=AXIS)
    landscape.hessian(model, (x, y), loss=spec, top_k=1, max_iter=5, trace_samples=2)
    assert_same(model, before)
    Exploding.calls = 0
    model.at = 12  # mid-evaluation: after the set-up checks, among the grid points
    with pytest.raises(error, match="injected"):
        landscape.surface(model, (x, y), loss=spec, x=(-1, 1, 5), y=(-1, 1, 5))
    assert Exploding.calls >= 12
    assert_same(model, before)


class WritesItsBuffer(nn.Module):
    """A forward that writes into a buffer even in eval mode (a call counter, a running cache)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(6, 3)
        self.register_buffer("seen", torch.zeros(()))

    def forward(self, x: Tensor) -> Tensor:
        self.seen += x.shape[0]
        return self.fc(x)  # type: ignore[no-any-return]


@pytest.mark.parametrize("loss", ["cross_entropy", "callable"])
def test_a_forward_that_writes_a_buffer_never_writes_the_callers(loss: str) -> None:
    x, y = classification(32, torch.float32)
    spec: Any = loss if loss != "callable" else (lambda m, b: F.cross_entropy(m(b[0]), b[1]))
    model = WritesItsBuffer()
    before = snapshot(model)
    landscape.surface(model, (x, y), loss=spec, x=AXIS, y=AXIS)
    landscape.surface(model, (x, y), loss=spec, x=AXIS, y=AXIS, memory_budget=1)  # streamed: the batch engine
    landscape.hessian(model, (x, y), loss=spec, top_k=1, max_iter=5, trace_samples=2)
    assert float(model.seen) == 0.0
    assert_same(model, before)


# --- directions, files, figures -------------------------------------------------------------------------------------


def test_directions_from_a_direction_file_and_a_surface_file(tmp_path: Path) -> None:
    model = mlp()
    data = classification()
    dirs = landscape.random_directions(model, seed=7)
    save_directions(tmp_path / "d.h5", dirs, model)
    a = landscape.surface(model, data, directions=dirs, x=AXIS, y=AXIS)
    b = landscape.surface(model, data, directions=tmp_path / "d.h5", x=AXIS, y=AXIS)
    np.testing.assert_allclose(a["train_loss"], b["train_loss"], rtol=1e-6)  # the file stores float32
    a.save(tmp_path / "s.h5")
    c = landscape.surface(model, data, directions=str(tmp_path / "s.h5"), x=AXIS, y=AXIS)
    np.testing.assert_allclose(c["train_loss"], b["train_loss"], rtol=1e-12)


def test_default_directions_are_the_papers_with_the_clis_seed_123() -> None:
    model = mlp()
    dirs = landscape.random_directions(model)
    assert dirs.meta["seed"] == 123 == DirectionsConfig().seed and dirs.meta["norm"] == "filter"
    assert not dirs.x["0.bias"].any() and dirs.y is not None
    for k in ("0.weight", "2.weight"):  # each filter (row) has the norm of the weights' row
        torch.testing.assert_close(dirs.x[k].double().norm(dim=1), model.state_dict()[k].norm(dim=1), rtol=1e-5, atol=1e-6)
    s = landscape.surface(model, classification(), x=AXIS, y=AXIS)
    t = landscape.surface(model, classification(), directions=dirs, x=AXIS, y=AXIS)
    np.testing.assert_array_equal(s["train_loss"], t["train_loss"])


def test_save_and_load_round_trip_in_the_cli_format(tmp_path: Path) -> None:
    from landscape.figures.files import plot_surface_file
    from landscape.io.surface_file import read_surface

    model = mlp()
    s = landscape.surface(model, classification(), x=AXIS, y=(-0.5, 0.5, 5))
    path = s.save(tmp_path / "s.h5")
    sf = read_surface(path)
    assert sf.columns == s.columns and bool(sf.done.all())
    t = landscape.load_surface(path)
    np.testing.assert_array_equal(t["train_loss"], s["train_loss"])
    np.testing.assert_array_equal(t.y, s.y)
    assert t.directions is not None and t.directions.fingerprint() == s.directions.fingerprint()  # type: ignore[union-attr]
    written = plot_surface_file(path, tmp_path, PlotConfig(formats=("png",)), kinds=["contour"])
    assert written and written[0].stat().st_size > 1000


def test_plot_draws_every_kind_that_applies() -> None:
    model = mlp()
    s2 = landscape.surface(model, classification(), x=(-1, 1, 5), y=(-1, 1, 5))
    for kind in ("contour", "filled", "heatmap", "surface3d"):
        assert landscape.plot(s2, kind=kind).axes
    s1 = landscape.surface(model, classification(), directions=landscape.random_directions(model, dims=1), x=(-1, 1, 5), y=None)
    assert s1.y is None and s1["train_loss"].shape == (5,)
    assert landscape.plot(s1, kind="line").axes
    with pytest.raises(LandscapeError, match="needs a 1D surface"):
        landscape.plot(s2, kind="line")


def test_plot_draws_into_the_callers_axes_for_every_kind_but_panels() -> None:
    """Each kind lands in the given axes of the caller's figure (one panel of several), nowhere else."""
    import matplotlib.pyplot as plt

    model = mlp()
    s2 = landscape.surface(model, classification(), x=(-1, 1, 5), y=(-1, 1, 5))
    s1 = landscape.surface(model, classification(), directions=landscape.random_directions(model, dims=1), x=(-1, 1, 5), y=None)
    steps = []
    for k in range(3):  # a short path that ends at the model
        state = {n: v + 0.1 * (3 - k) * torch.randn_like(v) for n, v in model.state_dict().items()}
        steps.append(state)
    path = landscape.trajectory([*steps, model.state_dict()], model=model)
    fig = plt.figure()
    try:
        spare = fig.add_subplot(2, 3, 1)  # another panel of the user's figure: it must stay empty
        for k, (kind, surface, extra) in enumerate([("contour", s2, {}), ("filled", s2, {}), ("heatmap", s2, {}),
                                                    ("trajectory", s2, {"trajectory": path}), ("line", s1, {})], start=2):
            ax = fig.add_subplot(2, 3, k)
            assert landscape.plot(surface, kind=kind, ax=ax, **extra) is fig
            assert ax.collections or ax.lines, kind
            if kind == "trajectory":  # the path, as given, oldest first
                np.testing.assert_allclose(np.c_[ax.lines[0].get_xdata(), ax.lines[0].get_ydata()], path.coords)
            if kind == "line":  # one curve per loss column, at the surface's values
                curves = {tuple(np.round(line.get_ydata(), 12)) for line in ax.lines}
                assert tuple(np.round(s1["train_loss"], 12)) in curves and ax.get_legend() is not None
        assert not spare.collections and not spare.lines
        assert fig.axes[1].get_xlabel() == "α (filter-normalized)"  # the contour's axis names its directions
        on_plane = landscape.surface(model, classification(), directions=path, x=(-1, 1, 3), y=(-1, 1, 3))
        assert landscape.plot(on_plane, kind="contour").axes[0].get_xlabel().startswith("PC1 (")
        ax3 = fig.add_subplot(2, 3, 6, projection="3d")
        assert landscape.plot(s2, kind="surface3d", ax=ax3) is fig and ax3.collections
        with pytest.raises(ConfigError, match="3D axes"):
            landscape.plot(s2, kind="surface3d", ax=spare)
        with pytest.raises(ConfigError, match="2D axes"):
            landscape.plot(s2, kind="contour", ax=ax3)
        several = landscape.surface(model, classification(), loss=["cross_entropy", "mse"], x=(-1, 1, 3), y=(-1, 1, 3))
        assert landscape.plot(several, kind="panels").axes  # its own figure, one panel per loss
        with pytest.raises(ConfigError, match="panels"):
            landscape.plot(several, kind="panels", ax=spare)
    finally:
        plt.close(fig)


# --- the Hessian ------------------------------------------------------------------------------------------------------------


def test_hessian_matches_the_dense_float64_hessian() -> None:
    model = mlp()
    x, y = classification(25)
    names = ["0.weight", "2.weight"]
    origin = {k: p.detach() for k, p in model.named_parameters()}
    shapes = [origin[k].shape for k in names]
    sizes = [origin[k].numel() for k in names]

    def loss_of(flat: Tensor) -> Tensor:
        parts = dict(zip(names, (t.reshape(s) for t, s in zip(torch.split(flat, sizes), shapes, strict=True)), strict=True))
        return F.cross_entropy(mlp_forward({**origin, **parts}, x), y)

    dense = torch.autograd.functional.hessian(loss_of, torch.cat([origin[k].reshape(-1) for k in names]))
    eig = torch.linalg.eigvalsh(dense).numpy()
    h = landscape.hessian(model, (x, y), top_k=2, tol=1e-8, max_iter=80)
    assert h.names == names and h.dim == dense.shape[0]
    np.testing.assert_allclose(h.eigenvalues, eig[::-1][:2], rtol=1e-6)
    np.testing.assert_allclose(h.min_eigenvalue, eig[0], rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(h.trace, float(torch.trace(dense)), rtol=1e-9)
    batched = landscape.hessian(DictModel(), [{"inputs": x[:9], "labels": y[:9]}, {"inputs": x[9:], "labels": y[9:]}],
                                loss=lambda m, b: m(**b).loss, top_k=2, tol=1e-8, max_iter=80)
    assert batched.names == ["net." + n for n in names]
    np.testing.assert_allclose(batched.eigenvalues, eig[::-1][:2], rtol=1e-6)


# --- errors ------------------------------------------------------------------------------------------------------------


def test_bad_input_is_one_line_landscape_errors() -> None:
    model = mlp()
    cases: list[tuple[Callable[[], Any], type[Exception], str]] = [
        (lambda: landscape.surface(model, "data.csv", x=AXIS, y=AXIS), DataError, "must be an"),
        (lambda: landscape.surface(model, classification(), loss="nope", x=AXIS, y=AXIS), RegistryError, "unknown loss"),
        (lambda: landscape.surface(model, classification(), x=(1, -1, 3), y=AXIS), GridError, "MIN < MAX"),
        (lambda: landscape.surface(model, [{"a": torch.ones(2, 6)}], loss="mse", x=AXIS, y=AXIS), DataError, "tuples"),
        (lambda: landscape.surface(model, classification(), loss=lambda m, b: m(b), x=AXIS, y=AXIS), LandscapeError, "fails"),
    ]
    for call, kind, text in cases:
        with pytest.raises(kind, match=text) as err:
            call()
        assert "\n" not in str(err.value)


def test_every_public_argument_and_field_is_documented() -> None:
    """Each parameter of a public function, and each constructor field of a public class, is named in its docstring."""
    import inspect
    import re

    missing = {}
    for name in landscape.__all__:
        obj = getattr(landscape, name)
        if not callable(obj) or (inspect.isclass(obj) and issubclass(obj, Exception)):
            continue
        doc = inspect.getdoc(obj) or ""
        if inspect.isclass(obj):
            doc += "\n" + (inspect.getdoc(obj.__init__) or "")
        params = inspect.signature(obj).parameters
        gaps = [p for p, v in params.items() if v.kind not in (v.VAR_POSITIONAL, v.VAR_KEYWORD) and not re.search(rf"\b{p}\b", doc)]
        if gaps:
            missing[name] = gaps
    assert not missing
