"""Permutation alignment by weight matching (Ainsworth, Hayase & Srinivasa, "Git Re-Basin", ICLR 2023).

Hidden units of a network can be permuted without changing its function: permute the rows of a
layer (its weight, bias and the BatchNorm after it) and the matching input columns of the next
layer. Weight matching looks for the permutations ``P_l`` of model B's hidden units that maximize
``Σ_l ⟨W_l^A, P_l W_l^B P_{l−1}^T⟩``. With every other permutation fixed, the terms that contain
``P_l`` are linear in it, so ``P_l`` is a linear assignment problem; the method sweeps over the
layers in a seeded random order and repeats until no permutation changes.

The linear assignment is solved by :func:`linear_sum_assignment`, our own shortest augmenting
path (Jonker–Volgenant style Hungarian method, O(n³)): numpy has none, and scipy is not a
dependency.

Supported: plain chains of ``nn.Linear`` and ``nn.Conv2d`` (``groups = 1``) with optional
``BatchNorm1d``/``BatchNorm2d`` after each and any parameter-free layers between (activations,
pooling, flatten, global average pooling). Residual connections (an addition of two
activations), other parameterized layers and grouped convolutions are refused naming the layer.
"""

from __future__ import annotations

import operator
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from landscape.errors import ModelError

TensorDict = dict[str, Tensor]
_BN = nn.BatchNorm1d | nn.BatchNorm2d


class AlignmentError(ModelError):
    """The model cannot be permuted (a residual connection, an unsupported layer)."""


def linear_sum_assignment(cost: np.ndarray) -> np.ndarray:
    """Minimum-cost perfect matching of a square matrix: ``cols[i]`` is the column of row ``i``.

    Shortest augmenting paths with row/column potentials (the Hungarian method in the
    Jonker–Volgenant form): each row is added by a Dijkstra-like search over reduced costs
    ``cost[i, j] − u[i] − v[j] ≥ 0``, then the potentials are updated so they stay feasible.
    O(n³) overall; the inner loop over columns is vectorized.
    """
    c = np.asarray(cost, dtype=np.float64)
    if c.ndim != 2 or c.shape[0] != c.shape[1]:
        raise ValueError(f"linear_sum_assignment needs a square matrix, got shape {c.shape}")
    if not np.isfinite(c).all():
        raise ValueError("linear_sum_assignment needs finite costs")
    n = c.shape[0]
    # 1-based columns with a virtual column 0, as in the textbook formulation
    u = np.zeros(n + 1)
    v = np.zeros(n + 1)
    row_of = np.zeros(n + 1, dtype=np.int64)  # row_of[j]: the row (1-based) matched to column j; 0 = free
    way = np.zeros(n + 1, dtype=np.int64)
    for i in range(1, n + 1):
        row_of[0] = i
        j0 = 0
        minv = np.full(n + 1, np.inf)
        used = np.zeros(n + 1, dtype=bool)
        while True:
            used[j0] = True
            i0 = row_of[j0]
            free = ~used[1:]
            reduced = c[i0 - 1] - u[i0] - v[1:]  # reduced costs from row i0 to every column
            better = free & (reduced < minv[1:])
            minv[1:][better] = reduced[better]
            way[1:][better] = j0
            candidates = np.where(free, minv[1:], np.inf)
            j1 = int(np.argmin(candidates)) + 1
            delta = candidates[j1 - 1]
            # shift potentials: visited rows/columns by delta, unvisited columns' distances down
            u[row_of[used]] += delta
            v[used] -= delta
            minv[1:][free] -= delta
            j0 = j1
            if row_of[j0] == 0:
                break
        while j0:  # augment along the path back to the virtual column
            j1 = way[j0]
            row_of[j0] = row_of[j1]
            j0 = j1
    cols = np.empty(n, dtype=np.int64)
    for j in range(1, n + 1):
        cols[row_of[j] - 1] = j - 1
    return cols


@dataclass(frozen=True)
class Occurrence:
    """Where a permutation acts: tensor ``key``, along ``axis``, in blocks of ``factor`` entries per unit."""

    key: str
    axis: int
    factor: int = 1


@dataclass(frozen=True)
class PermutationSpec:
    """The hidden-unit groups of a chain: ``groups[g]`` lists every place permutation ``g`` acts on."""

    groups: tuple[tuple[Occurrence, ...], ...]
    sizes: tuple[int, ...]
    names: tuple[str, ...]  # the layer whose outputs each group permutes


def _check_no_residual(model: nn.Module) -> None:
    """Trace the forward and refuse an addition (or concatenation) of two activations."""
    import torch.fx

    try:
        graph = torch.fx.symbolic_trace(model).graph
    except Exception:  # a forward fx cannot trace: the output check after permuting decides
        return
    adds = {operator.add, operator.iadd, torch.add, torch.cat}
    last = "the input"
    for node in graph.nodes:
        if node.op == "call_module":
            last = str(node.target)
        two_tensors = sum(isinstance(a, torch.fx.Node) for a in node.args) >= 2 or (
            node.target is torch.cat and node.args and isinstance(node.args[0], list | tuple))
        add = (node.op == "call_function" and node.target in adds) or (node.op == "call_method" and node.target in ("add", "add_"))
        if add and two_tensors:
            raise AlignmentError(f"weight matching cannot permute {type(model).__name__}: a residual connection "
                                 f"(an addition of two activations) follows layer {last!r}; only plain chains are supported")


def permutation_spec(model: nn.Module) -> PermutationSpec:
    """Read the chain of layers of ``model`` (module order) and where each hidden permutation acts.

    Every leaf module with parameters must be a Linear, a Conv2d (groups 1) or a BatchNorm after
    one; anything else raises :class:`AlignmentError` naming the layer.
    """
    _check_no_residual(model)
    layers: list[tuple[str, nn.Module]] = []
    for name, m in model.named_modules():
        if any(True for _ in m.children()) or not any(True for _ in m.parameters(recurse=False)):
            continue
        if isinstance(m, nn.Conv2d) and m.groups != 1:
            raise AlignmentError(f"layer {name!r} is a grouped convolution (groups={m.groups}): weight matching cannot permute it")
        if not isinstance(m, nn.Linear | nn.Conv2d | _BN):
            raise AlignmentError(f"layer {name!r} ({type(m).__name__}) cannot be permuted by weight matching; "
                                 "supported: Linear, Conv2d, BatchNorm1d/2d in a plain chain")
        layers.append((name, m))
    weights = [(n, m) for n, m in layers if not isinstance(m, _BN)]
    if len(weights) < 2:
        raise AlignmentError(f"{type(model).__name__} has {len(weights)} Linear/Conv2d layer(s): no hidden units to permute")
    groups: list[list[Occurrence]] = []
    sizes: list[int] = []
    names: list[str] = []
    current: list[Occurrence] | None = None
    for name, m in layers:
        prefix = f"{name}." if name else ""
        if isinstance(m, _BN):
            if current is None or m.num_features != sizes[-1]:
                raise AlignmentError(f"BatchNorm layer {name!r} does not follow a Linear/Conv2d layer of its width")
            current += [Occurrence(prefix + k, 0) for k in ("weight", "bias", "running_mean", "running_var")
                        if getattr(m, k, None) is not None]
            continue
        assert isinstance(m, nn.Linear | nn.Conv2d)
        fan_in = m.in_features if isinstance(m, nn.Linear) else m.in_channels
        if current is not None:  # the inputs of this layer are the previous group's units
            if fan_in % sizes[-1] != 0:
                raise AlignmentError(f"layer {name!r} takes {fan_in} inputs, not a multiple of the {sizes[-1]} units of "
                                     f"{names[-1]!r}: the chain cannot be followed")
            if isinstance(m, nn.Conv2d) and fan_in != sizes[-1]:
                raise AlignmentError(f"layer {name!r} takes {fan_in} channels but {names[-1]!r} gives {sizes[-1]}")
            current.append(Occurrence(prefix + "weight", 1, fan_in // sizes[-1]))
        if (name, m) == weights[-1]:
            break  # the output layer's units are the model's outputs: never permuted
        out = m.out_features if isinstance(m, nn.Linear) else m.out_channels
        current = [Occurrence(prefix + "weight", 0)] + ([Occurrence(prefix + "bias", 0)] if m.bias is not None else [])
        groups.append(current)
        sizes.append(out)
        names.append(name)
    return PermutationSpec(tuple(tuple(g) for g in groups), tuple(sizes), tuple(names))


def _index(perm: Tensor, factor: int) -> Tensor:
    """Unit permutation → index over ``factor``-blocks (unit-major: entry u·factor + s)."""
    if factor == 1:
        return perm
    return (perm[:, None] * factor + torch.arange(factor, device=perm.device)).reshape(-1)


def apply_permutation(state: Mapping[str, Tensor], spec: PermutationSpec, perms: list[Tensor],
                      skip: int | None = None) -> TensorDict:
    """A new state dict with ``out[key]`` indexed by each group's permutation (group ``skip`` left out)."""
    out = dict(state)
    for g, (occurrences, perm) in enumerate(zip(spec.groups, perms, strict=True)):
        if g == skip:
            continue
        for occ in occurrences:
            out[occ.key] = out[occ.key].index_select(occ.axis, _index(perm.to(out[occ.key].device), occ.factor))
    return out


def _units_first(t: Tensor, axis: int, units: int) -> Tensor:
    """(…, units·f, …) → (units, rest): one row per unit."""
    return t.movedim(axis, 0).reshape(units, -1)


def weight_matching(spec: PermutationSpec, state_a: Mapping[str, Tensor], state_b: Mapping[str, Tensor],
                    max_iter: int = 100, seed: int = 0) -> list[Tensor]:
    """Permutations (one per group) that align B's units to A's: ``B'[i] = B[perm[i]]`` matches ``A[i]``.

    Coordinate ascent over the groups (in a seeded random order each sweep); each step solves
    ``max_P Σ_occ ⟨A_occ, P·B_occ⟩`` exactly as a linear assignment on the (units × units)
    similarity matrix; stops when a sweep changes nothing.
    """
    a = {k: v.detach().double().cpu() for k, v in state_a.items()}
    b = {k: v.detach().double().cpu() for k, v in state_b.items()}
    perms = [torch.arange(n) for n in spec.sizes]
    rng = np.random.default_rng(seed)
    for _ in range(max_iter):
        changed = False
        for g in rng.permutation(len(spec.groups)):
            others = apply_permutation(b, spec, perms, skip=int(g))
            n = spec.sizes[g]
            sim = torch.zeros(n, n, dtype=torch.float64)
            for occ in spec.groups[g]:
                sim += _units_first(a[occ.key], occ.axis, n) @ _units_first(others[occ.key], occ.axis, n).T
            new = torch.from_numpy(linear_sum_assignment(-sim.numpy()))
            old_score = float(sim[torch.arange(n), perms[g]].sum())
            new_score = float(sim[torch.arange(n), new].sum())
            if new_score > old_score + 1e-12 * max(1.0, abs(old_score)):
                perms[g] = new
                changed = True
        if not changed:
            break
    return perms


def align_state(model: nn.Module, state_a: Mapping[str, Tensor], state_b: Mapping[str, Tensor], *,
                max_iter: int = 100, seed: int = 0) -> tuple[TensorDict, list[Tensor]]:
    """B's state dict permuted to match A's (same function as B), and the permutations used."""
    spec = permutation_spec(model)
    perms = weight_matching(spec, state_a, state_b, max_iter=max_iter, seed=seed)
    return apply_permutation(state_b, spec, perms), perms
