"""Products through the kept gradient graph against recomputed ones and a dense float64 Hessian.

The oracle is ``torch.autograd.functional.hessian`` of the flat mean loss written here, over all
samples at once (no batches, no problem object). Which path ran is read from
``HessianProblem.product_path``, never inferred from timing.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call

from landscape.engine.hessian import HessianProblem, lanczos
from landscape.engine.operators import convert, curvature_problem
from landscape.engine.slq import hutchpp_trace

DT = torch.float64
N, D, C = 45, 6, 3
SIZES = [20, 16, 9]  # uneven batches: the loss is the mean over all N samples


def mlp() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(D, 7), nn.Tanh(), nn.Linear(7, C)).to(DT)


def data() -> tuple[Tensor, Tensor]:
    g = torch.Generator().manual_seed(1)
    return torch.randn(N, D, generator=g, dtype=DT), torch.randint(0, C, (N,), generator=g)


def batches() -> list[tuple[Tensor, Tensor]]:
    x, y = data()
    return list(zip(torch.split(x, SIZES), torch.split(y, SIZES), strict=True))


def ce(out: Tensor, y: Tensor) -> Tensor:
    return F.cross_entropy(out, y, reduction="none")


NAMES = ["0.weight", "0.bias", "2.weight"]


def oracle(model: nn.Module) -> np.ndarray:
    """The dense Hessian of mean cross-entropy over NAMES, by autograd.functional on a flat vector."""
    x, y = data()
    own = dict(model.named_parameters())
    shapes = [own[n].shape for n in NAMES]
    theta0 = torch.cat([own[n].detach().reshape(-1) for n in NAMES])

    def loss(theta: Tensor) -> Tensor:
        parts = torch.split(theta, [s.numel() for s in shapes])
        params = {**{k: p.detach() for k, p in own.items()},
                  **{n: p.reshape(s) for n, p, s in zip(NAMES, parts, shapes, strict=True)}}
        return F.cross_entropy(functional_call(model, params, (x,)), y)

    return torch.autograd.functional.hessian(loss, theta0).numpy()  # type: ignore[no-any-return]


def dense_of(problem: HessianProblem) -> np.ndarray:
    eye = torch.eye(problem.dim, dtype=DT)
    return torch.stack([problem.hvp_flat(eye[i]) for i in range(problem.dim)], dim=1).numpy()


class Stream:
    """A re-iterable that is not a Sequence: the batches are read anew at every pass (streamed data)."""

    def __init__(self, parts: list[tuple[Tensor, Tensor]]) -> None:
        self.parts, self.passes = parts, 0

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        self.passes += 1
        return iter(self.parts)


def test_kept_graph_equals_recomputed_and_the_dense_hessian() -> None:
    model = mlp()
    exact = oracle(model)
    kept = HessianProblem(model, NAMES, batches(), ce)
    recomputed = HessianProblem(model, NAMES, batches(), ce, graph_budget=1)  # 1 byte: nothing fits
    assert kept.product_path is None and recomputed.product_path is None  # decided at the first product
    h_kept, h_re = dense_of(kept), dense_of(recomputed)
    assert kept.product_path == "kept graph" and recomputed.product_path == "recomputed"
    np.testing.assert_allclose(h_kept, exact, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h_re, exact, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(h_kept, h_re, rtol=1e-12, atol=1e-14)
    # the gradient read from the kept graph is the recomputed one
    (l_kept, g_kept), (l_re, g_re) = kept.loss_and_grad(), recomputed.loss_and_grad()
    assert l_kept == pytest.approx(l_re, rel=1e-14)
    for a, b in zip(g_kept, g_re, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_streamed_data_recompute_and_agree() -> None:
    model = mlp()
    stream = Stream(batches())
    problem = HessianProblem(model, NAMES, stream, ce)
    before = stream.passes
    h = dense_of(problem)
    assert problem.product_path == "recomputed"
    assert stream.passes - before == problem.dim  # one pass over the data per product
    np.testing.assert_allclose(h, oracle(model), rtol=1e-10, atol=1e-12)


def test_budget_between_one_batch_and_all_falls_back() -> None:
    """The estimate scales the first batch's saved tensors by the number of batches."""
    model = mlp()
    one = batches()[:1]
    probe = HessianProblem(model, NAMES, one, ce)
    probe.hvp_flat(torch.ones(probe.dim, dtype=DT))
    assert probe.product_path == "kept graph" and probe.graph_bytes is not None
    # the activations alone: 20 samples × (7 + 7 + 3) float64 values are saved at least
    assert probe.graph_bytes >= 20 * 17 * 8
    budget = 3 * probe.graph_bytes  # one batch fits, ten copies of it do not
    fits = HessianProblem(model, NAMES, one, ce, graph_budget=budget)
    over = HessianProblem(model, NAMES, one * 10, ce, graph_budget=budget)
    for p in (fits, over):
        p.hvp_flat(torch.ones(p.dim, dtype=DT))
    assert fits.product_path == "kept graph" and over.product_path == "recomputed"
    assert over.graph_bytes == 10 * probe.graph_bytes
    np.testing.assert_allclose(dense_of(over), dense_of(fits), rtol=1e-12, atol=1e-14)


def test_points_operators_and_blocks_keep_the_budget() -> None:
    model = mlp()
    base = HessianProblem(model, NAMES, batches(), ce, graph_budget=1)
    shifted = {n: p.detach() + 0.1 for n, p in model.named_parameters()}
    for derived in (base.at(shifted), convert(base, "ggn"), convert(base, "fisher"), convert(base, names=["2.weight"])):
        derived.hvp_flat(torch.ones(derived.dim, dtype=DT))
        assert derived.product_path == "recomputed"
    # the kept graph at another point is the Hessian there, not at the first point
    kept = HessianProblem(model, NAMES, batches(), ce)
    kept.hvp_flat(torch.ones(kept.dim, dtype=DT))
    moved = model.__class__(*[m for m in model])  # same modules; the point is what differs
    moved.load_state_dict(shifted)
    np.testing.assert_allclose(dense_of(kept.at(shifted)), oracle(moved), rtol=1e-10, atol=1e-12)


def test_a_loss_linear_in_the_parameters_has_a_zero_hessian_on_the_kept_graph() -> None:
    """The gradient of a loss linear in θ carries no graph: the product is zero, not an error."""
    torch.manual_seed(2)
    model = nn.Linear(D, 1).to(DT)
    x, y = data()
    problem = HessianProblem(model, ["weight", "bias"], [(x, y.to(DT))], lambda out, t: out.reshape(-1) - t)
    out = problem.hvp_flat(torch.ones(problem.dim, dtype=DT))
    assert problem.product_path == "kept graph"
    assert torch.count_nonzero(out) == 0


def test_a_reducer_sums_ranks() -> None:
    """``reduce`` as two ranks holding the same shard would sum: the same Hessian, twice the samples."""
    model = mlp()
    single = HessianProblem(model, NAMES, batches(), ce)
    twice = HessianProblem(model, NAMES, batches(), ce, reduce=lambda t: 2 * t)
    assert twice.num_samples == 2 * N and twice.local_samples == N
    np.testing.assert_allclose(dense_of(twice), dense_of(single), rtol=1e-13, atol=1e-15)
    (l1, g1), (l2, g2) = single.loss_and_grad(), twice.loss_and_grad()
    assert l2 == pytest.approx(l1, rel=1e-14)
    torch.testing.assert_close(g2[0], g1[0], rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("operator", ["hessian", "ggn", "fisher"])
def test_krylov_results_do_not_depend_on_the_path(operator: str) -> None:
    model = mlp()
    runs = [curvature_problem(operator, model, NAMES, batches(), ce, graph_budget=b) for b in (1, 1 << 30)]
    tops = [lanczos(p, 3, tol=1e-10, max_iter=60, vectors=False).eigenvalues for p in runs]
    traces = [hutchpp_trace(p, samples=30, seed=4).estimate for p in runs]
    np.testing.assert_allclose(tops[0], tops[1], rtol=1e-9)
    assert traces[0] == pytest.approx(traces[1], rel=1e-9)


def test_batched_products_equal_single_ones_and_the_oracle() -> None:
    """``products_per_call`` K: the kept graph's products K at a time (one batched backward), the same
    probes, the same Lanczos runs in lockstep: the estimates equal the one-at-a-time ones."""
    from landscape.engine.hessian import exact_trace, hutchinson_trace
    from landscape.engine.slq import slq_density

    model = mlp()
    one = HessianProblem(model, NAMES, batches(), ce)
    many = HessianProblem(model, NAMES, batches(), ce, products_per_call=4)
    assert many.batched_products and many.product_path == "kept graph"
    rows = torch.randn(6, many.dim, generator=torch.Generator().manual_seed(5), dtype=DT)
    np.testing.assert_allclose(many.hvp_many(rows).numpy(), rows.numpy() @ oracle(model).T, rtol=1e-10, atol=1e-12)
    for a, b in ((hutchinson_trace(one, samples=11), hutchinson_trace(many, samples=11)),
                 (hutchpp_trace(one, samples=14), hutchpp_trace(many, samples=14)),
                 (exact_trace(one), exact_trace(many))):
        assert b.estimate == pytest.approx(a.estimate, rel=1e-10) and b.hvps == a.hvps
        assert b.stderr == pytest.approx(a.stderr, rel=1e-8, abs=1e-14)
    assert exact_trace(many).estimate == pytest.approx(float(np.trace(oracle(model))), rel=1e-10)
    d1, d4 = slq_density(one, runs=5, steps=9, seed=2), slq_density(many, runs=5, steps=9, seed=2)
    np.testing.assert_allclose(d4.nodes, d1.nodes, rtol=1e-8, atol=1e-12)
    np.testing.assert_allclose(d4.weights, d1.weights, rtol=1e-6, atol=1e-12)
    assert d4.hvps == d1.hvps == 45
    # recomputed products (streamed data, other operators) are taken one by one, with the same result
    ggn = convert(many, "ggn")
    assert not ggn.batched_products and ggn.products_per_call == 4
    np.testing.assert_allclose(ggn.hvp_many(rows[:3]).numpy(), torch.stack([ggn.hvp_flat(r) for r in rows[:3]]).numpy(),
                               rtol=1e-12, atol=1e-14)
    with pytest.raises(Exception, match="products_per_call must be at least 1, got 0"):
        HessianProblem(model, NAMES, batches(), ce, products_per_call=0)


def test_api_products_per_call_gives_the_same_result() -> None:
    import landscape

    model = mlp()
    x, y = data()
    kw: dict[str, object] = {"top_k": 2, "tol": 1e-10, "trace_samples": 9, "density": True, "density_runs": 3,
                             "density_steps": 8, "progress": False, "ignore": "none"}
    one = landscape.hessian(model, (x, y), **kw)  # type: ignore[arg-type]
    many = landscape.hessian(model, (x, y), products_per_call=4, **kw)  # type: ignore[arg-type]
    np.testing.assert_allclose(many.eigenvalues, one.eigenvalues, rtol=1e-10)
    assert many.exact_trace == pytest.approx(one.exact_trace, rel=1e-10)
    assert many.trace_std == pytest.approx(one.trace_std, rel=1e-8)
    assert many.density is not None and one.density is not None
    assert many.density.trace == pytest.approx(one.density.trace, rel=1e-8)


def test_shards_cover_the_data_once() -> None:
    """torchrun's shards: contiguous sample slices of tensor data, every N-th batch of other data."""
    from landscape.workflows._distributed import Group
    from landscape.workflows.hessian import EveryNth, batch_shard, sample_shard
    from landscape.zoo.data import TensorSplit
    from landscape.zoo.userdata import Streamed

    x, y = data()
    parts = [sample_shard(TensorSplit(x, y), Group(rank=r, world_size=4)) for r in range(4)]
    assert [len(p) for p in parts] == [11, 11, 11, 12]
    torch.testing.assert_close(torch.cat([p.inputs for p in parts]), x, rtol=0, atol=0)
    listed = list(range(10))
    assert [batch_shard(listed, Group(rank=r, world_size=3)) for r in range(3)] == [[0, 3, 6, 9], [1, 4, 7], [2, 5, 8]]
    stream = Stream([(x[i : i + 5], y[i : i + 5]) for i in range(0, N, 5)])  # 9 batches, read anew at each pass
    shard = batch_shard(stream, Group(rank=1, world_size=2))
    for _ in range(2):  # re-iterable, like the stream
        assert [int(b[0][0, 0] == x[i, 0]) for b, i in zip(shard, (5, 15, 25, 35), strict=True)] == [1, 1, 1, 1]
    assert batch_shard(listed, None) is listed
    streamed = batch_shard(Streamed(stream, torch.device("cpu")), Group(rank=0, world_size=3))
    # the shard is taken from the source, before any batch is moved to the device
    assert isinstance(streamed, Streamed) and isinstance(streamed.source, EveryNth)
    assert [int(b[0][0, 0] == x[i, 0]) for b, i in zip(streamed, (0, 15, 30), strict=True)] == [1, 1, 1]


def test_one_sum_over_ranks_per_call_whichever_path() -> None:
    """Under torchrun every rank must call the collective equally often: K products are one sum, kept or not."""
    model = mlp()
    calls: list[tuple[int, ...]] = []

    def reduce(t: Tensor) -> Tensor:
        calls.append(tuple(t.shape))
        return t

    for budget in (1, 1 << 30):  # recomputed, kept graph
        p = HessianProblem(model, NAMES, batches(), ce, graph_budget=budget, reduce=reduce, products_per_call=3)
        rows = torch.ones(3, p.dim, dtype=DT)
        calls.clear()
        p.hvp_many(rows)
        assert calls == [(3, p.dim)]
