"""Models in bfloat16 or float64 on float32 data, and torch.compile'd models, through the API and the CLI.

Oracles: a float64 hand loop that sets the weights θ* + α·δ + β·η itself, and the closed-form
Hessian of a linear model under squared error, H = 2/n XᵀX.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.func import functional_call

import landscape
from landscape.cli import main


def _conv_net(dtype: torch.dtype, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(1, 3, 3), nn.Tanh(), nn.Flatten(), nn.Linear(3 * 4 * 4, 4)).to(dtype)


def _images() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    return torch.randn(40, 1, 6, 6, generator=g), torch.randint(0, 4, (40,), generator=g)  # float32 inputs


def _hand_loss(model: nn.Module, dirs: landscape.Directions, a: float, b: float,
               x: torch.Tensor, y: torch.Tensor) -> float:
    """Cross-entropy at θ* + a·δ + b·η, every weight and the forward in float64."""
    assert dirs.y is not None
    weights = {k: v.detach().double() for k, v in model.named_parameters()}
    for k in dirs.x:
        weights[k] = weights[k] + a * dirs.x[k].double() + b * dirs.y[k].double()
    plain = _conv_net(torch.float64)
    with torch.no_grad():
        return float(nn.functional.cross_entropy(functional_call(plain, weights, (x.double(),)), y))


# bfloat16 keeps 8 bits of mantissa: weights off by up to 2^-8 relative, and the forward rounds
# again; 3 % on a loss near ln 4 is well above that and far below any real error.
@pytest.mark.parametrize(("dtype", "rtol"), [(torch.bfloat16, 3e-2), (torch.float64, 1e-12)])
def test_surface_of_a_bf16_or_float64_model_on_float32_data(dtype: torch.dtype, rtol: float) -> None:
    model, (x, y) = _conv_net(dtype), _images()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    s = landscape.surface(model, (x, y), loss="cross_entropy", x=(-1, 1, 3), y=(-1, 1, 3), progress=False)
    assert s.directions is not None
    for i, j in [(1, 1), (2, 0), (0, 2)]:
        want = _hand_loss(model, s.directions, float(s.x[i]), float(s.y[j]), x, y)  # type: ignore[index]
        assert s["train_loss"][i, j] == pytest.approx(want, rel=rtol)
    assert x.dtype == torch.float32  # the caller's data are not converted
    assert all(torch.equal(before[k], v) and v.dtype == dtype for k, v in model.state_dict().items())


def test_dict_batches_cast_only_floating_tensors() -> None:
    """A bfloat16 model reading {"pixels": float, "ids": int} batches: pixels cast, ids left as they are."""
    class Net(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.emb, self.lin = nn.Embedding(5, 3), nn.Linear(4, 3)

        def forward(self, pixels: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
            return self.lin(pixels) + self.emb(ids)

    torch.manual_seed(0)
    net = Net().to(torch.bfloat16)
    g = torch.Generator().manual_seed(0)
    batches = [{"pixels": torch.randn(8, 4, generator=g), "ids": torch.randint(0, 5, (8,), generator=g),
                "y": torch.randint(0, 3, (8,), generator=g)} for _ in range(2)]
    seen: list[tuple[torch.dtype, torch.dtype]] = []

    def loss(m: nn.Module, b: dict[str, torch.Tensor]) -> torch.Tensor:
        seen.append((b["pixels"].dtype, b["ids"].dtype))
        return nn.functional.cross_entropy(m(b["pixels"], b["ids"]).float(), b["y"])

    s = landscape.surface(net, batches, loss=loss, x=(-1, 1, 3), y=None, progress=False)
    assert np.isfinite(s["train_loss"]).all()
    assert set(seen) == {(torch.bfloat16, torch.int64)}


def _linear_problem() -> tuple[nn.Module, torch.Tensor, torch.Tensor, np.ndarray]:
    """A bias-free linear model in float64, float32 data, and its Hessian under MSE: 2/n XᵀX."""
    g = torch.Generator().manual_seed(5)
    x, y = torch.randn(50, 5, generator=g), torch.randn(50, 1, generator=g)
    torch.manual_seed(0)
    lin = nn.Linear(5, 1, bias=False).double()
    xd = x.double().numpy()
    return lin, x, y, 2.0 / len(xd) * xd.T @ xd


def test_hessian_of_a_float64_model_on_float32_data() -> None:
    lin, x, y, h = _linear_problem()
    res = landscape.hessian(lin, (x, y), loss="mse", top_k=2, tol=1e-10, progress=False)
    eig = np.linalg.eigvalsh(h)
    np.testing.assert_allclose(res.eigenvalues, eig[::-1][:2], rtol=1e-9)
    assert res.min_eigenvalue == pytest.approx(eig[0], rel=1e-9)
    assert res.trace == pytest.approx(np.trace(h), rel=1e-9)


# --- torch.compile -----------------------------------------------------------------------------------------


def test_surface_and_hessian_of_a_compiled_model_equal_the_plain_ones() -> None:
    net, (x, y) = _conv_net(torch.float32), _images()
    compiled = torch.compile(net)
    plain = landscape.surface(net, (x, y), x=(-1, 1, 3), y=(-1, 1, 3), progress=False)
    comp = landscape.surface(compiled, (x, y), x=(-1, 1, 3), y=(-1, 1, 3), progress=False)
    assert np.array_equal(plain["train_loss"], comp["train_loss"])
    assert plain.directions is not None
    for i, j in [(0, 0), (2, 1)]:
        want = _hand_loss(net, plain.directions, float(plain.x[i]), float(plain.y[j]), x, y)  # type: ignore[index]
        assert comp["train_loss"][i, j] == pytest.approx(want, rel=1e-5)
    assert set(landscape.random_directions(compiled).x) == {k for k, _ in net.named_parameters()}
    lin, xl, yl, h = _linear_problem()
    res = landscape.hessian(torch.compile(lin), (xl, yl), loss="mse", top_k=1, tol=1e-10, progress=False)
    assert res.eigenvalues[0] == pytest.approx(float(np.linalg.eigvalsh(h)[-1]), rel=1e-9)
    assert res.names == ["weight"]


def test_trajectory_and_connect_of_compiled_models() -> None:
    nets = [_conv_net(torch.float32, seed) for seed in (1, 2, 3)]
    plain = landscape.trajectory(nets)
    comp = landscape.trajectory([torch.compile(n) for n in nets])
    np.testing.assert_array_equal(plain.coords, comp.coords)
    x, y = _images()
    a = landscape.connect(nets[0], nets[1], (x, y), curve="line", points=5, figures=False)
    b = landscape.connect(torch.compile(nets[0]), torch.compile(nets[1]), (x, y), curve="line", points=5, figures=False)
    np.testing.assert_array_equal(a.values["line"]["train_loss"], b.values["line"]["train_loss"])


COMPILED_PY = '''
import torch
from torch import nn

def make(input_shape=(1, 6, 6), output_shape=(4,)):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.Tanh(), nn.Flatten(), nn.Linear(3 * 4 * 4, 4))
    return torch.compile(net)

def data():
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(40, 1, 6, 6, generator=g), torch.randint(0, 4, (40,), generator=g)
    return (x, y), (x[:8], y[:8])
'''


def test_cli_compiled_factory_and_checkpoint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A factory returning torch.compile(net), and a checkpoint saved from the compiled model (_orig_mod. names)."""
    (tmp_path / "c.py").write_text(COMPILED_PY)
    trained = torch.compile(_conv_net(torch.float32, seed=7))
    torch.save(trained.state_dict(), tmp_path / "net.pt")
    user = ["--model", f"{tmp_path / 'c.py'}:make", "--data", f"{tmp_path / 'c.py'}:data", "--loss", "cross_entropy"]
    assert main(["--quiet", "surface", str(tmp_path / "net.pt"), *user, "--x", "-1:1:3", "--out", str(tmp_path / "s.h5")]) == 0
    assert main(["--quiet", "hessian", str(tmp_path / "net.pt"), *user, "--top-k", "1", "--max-iter", "10",
                 "--trace-samples", "2", "--out", str(tmp_path / "h.json")]) == 0
    capsys.readouterr()
    x, y = _images()
    with torch.no_grad():
        want = float(nn.functional.cross_entropy(_conv_net(torch.float64, seed=7)(x.double()), y))
    s = landscape.load_surface(tmp_path / "s.h5")
    assert s["train_loss"][1] == pytest.approx(want, rel=1e-6)
    assert json.loads((tmp_path / "h.json").read_text())["loss"] == pytest.approx(want, rel=1e-6)


DTYPED_PY = '''
import torch
from torch import nn

def make(input_shape=(1, 6, 6), output_shape=(4,), dtype="float64"):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(1, 3, 3), nn.Tanh(), nn.Flatten(), nn.Linear(3 * 4 * 4, 4))
    return net.to(getattr(torch, dtype))

def data():
    g = torch.Generator().manual_seed(3)
    x, y = torch.randn(40, 1, 6, 6, generator=g), torch.randint(0, 4, (40,), generator=g)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=16)
    return loader, loader
'''


@pytest.mark.parametrize(("dtype", "budget", "rtol"), [("float64", "0", 1e-12), ("float64", "1", 1e-12),
                                                      ("bfloat16", "0", 3e-2), ("bfloat16", "1", 3e-2)])
def test_cli_bf16_and_float64_models_on_float32_data(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                     dtype: str, budget: str, rtol: float) -> None:
    """In memory and streamed (--memory-budget 1): the origin against a float64 hand loss, as in the API."""
    (tmp_path / "d.py").write_text(DTYPED_PY)
    model = _conv_net(getattr(torch, dtype))
    torch.save(model.state_dict(), tmp_path / "net.pt")
    budget_flag = ["--memory-budget", budget] if budget != "0" else []
    argv = ["--quiet", "surface", str(tmp_path / "net.pt"), "--model", f"{tmp_path / 'd.py'}:make",
            "--set", f'model.options={{dtype = "{dtype}"}}', "--data", f"{tmp_path / 'd.py'}:data",
            "--loss", "cross_entropy", "--x", "-1:1:3", *budget_flag, "--out", str(tmp_path / "s.h5")]
    assert main(argv) == 0, capsys.readouterr().err
    x, y = _images()
    weights = {k: v.double() for k, v in model.state_dict().items()}  # the saved (bf16-rounded) weights, in float64
    with torch.no_grad():
        want = float(nn.functional.cross_entropy(functional_call(_conv_net(torch.float64), weights, (x.double(),)), y))
    assert landscape.load_surface(tmp_path / "s.h5")["train_loss"][1] == pytest.approx(want, rel=rtol)
