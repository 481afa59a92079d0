"""The surface engine: metrics at every point ``θ(α, β) = θ* + α·δ + β·η`` of a 1D or 2D grid.

Why it is fast: the evaluation data is moved to the device once as contiguous tensors; each grid point
is written into preallocated parameters with fused ``torch._foreach_*`` ops, always from the pristine
origin (no drift from accumulated updates); every metric comes from the same forward pass and is summed
on the device; where it pays, K grid points are evaluated in one call with ``torch.func.vmap`` over
stacked weights (K is chosen by timing the first points). Only tensors whose direction is non-zero are
rewritten (biases and BatchNorm are zero by default). What is linear in (α, β) is computed once (the
first layer; fixed BatchNorm folded into the convolution before it), the traced forward folds ReLUs and
residual adds into the layer before them; every such rewrite is checked against the unmodified model.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from typing import ClassVar, Protocol

import numpy as np
import torch
from torch import Tensor, nn
from torch.func import functional_call, vmap

from landscape.engine.connect import recompute_bn_
from landscape.engine.directions import Directions, check_directions, uses_effective
from landscape.engine.losses import Metrics
from landscape.engine.moved import MovedTensors, moved_names, working_copy
from landscape.engine.rewrites import (
    LinearStem,
    StopForward,
    fast_conv_available,
    fuse_traced,
    in_layout_of,
)
from landscape.errors import ConfigError
from landscape.testhooks import break_rewrite
from landscape.zoo.data import TensorSplit


class Evaluator(Protocol):
    """What the surface job needs from an engine (:class:`SurfaceEngine`, the eig-ratio engine).

    ``evaluate`` returns (k, len(columns)) float64 values for k (α, β) rows; ``calibrate`` may
    evaluate a first few rows while tuning ``points_per_call`` and returns (values, how many).
    """

    columns: list[str]
    points_per_call: int

    def evaluate(self, coords: np.ndarray) -> np.ndarray: ...

    def calibrate(self, coords: np.ndarray) -> tuple[np.ndarray, int]: ...


# a rewritten model's side of an equivalence check: (α, β, first batch, its cache key) -> outputs
_Side = Callable[[float, float, Tensor, tuple[str, int]], list[Tensor]]
CHECK_POINT = (0.37, -0.21)  # the off-origin point (α, β) every set-up rewrite is checked at

STEM_CACHE_BYTES = 1 << 30  # precompute the first layer only when its three outputs fit in this


class SurfaceEngine:
    """Evaluates metrics at points of the plane spanned by ``directions`` around ``model``.

    The caller's model is never touched: the engine works on a private copy on ``device`` that
    owns only the tensors a point rewrites (:func:`~landscape.engine.moved.working_copy`); the
    origin and the directions alias the caller's tensors. So a surface holds the model, one more
    copy of its moved tensors and the two directions, whatever set-up rewrites are kept.
    ``splits`` maps a split name (``train``/``test``) to its data; result columns are
    ``<split>_<metric>`` in :attr:`columns` order.
    """

    def __init__(self, model: nn.Module, directions: Directions, splits: Mapping[str, TensorSplit],
                 metrics: Metrics, *, device: torch.device | str = "cpu", batch_size: int = 0,
                 bn: str = "keep", bn_data: TensorSplit | None = None, bn_batches: int = 8,
                 points_per_call: int = 0, moved: Callable[[str], bool] | None = None) -> None:
        check_directions(directions, model)
        self.device = torch.device(device)
        self.model = working_copy(model, moved_names(directions, moved), self.device, effective=uses_effective(model, directions))
        self.metrics = metrics
        self.splits = {name: s.to(self.device) for name, s in splits.items()}
        self.batch_sizes = {name: batch_size for name in self.splits} if batch_size else self._activation_batch_sizes()
        self.columns = [f"{split}_{m}" for split in self.splits for m in metrics.names]
        # only tensors whose direction is non-zero need rewriting at every point; the origin
        # aliases the caller's own tensors where it can (never written to): one copy of the model less
        self.moved = MovedTensors.build(self.model, directions, self.device, pristine=model, moved=moved)
        self.reference: Tensor | None = None  # the unmodified model's output at CHECK_POINT, first batch
        self.chunk: tuple[str, int] | None = None  # set by moments(): evaluate one batch of one split
        self.bn = bn
        if bn == "recompute":
            if directions.dir_type == "states":
                raise ConfigError("--bn recompute re-estimates BatchNorm statistics, so it cannot be combined with "
                                  "--dir-type states (which moves them along the directions)")
            if bn_data is None:
                raise ConfigError("--bn recompute needs training data")
            n = min(len(bn_data), bn_batches * 128)  # batches of 128 re-estimate the statistics at every point
            self.bn_inputs = list(torch.split(bn_data.inputs[:n].to(self.device), 128))
        self.points_per_call = points_per_call if bn == "keep" else 1
        self.stem: LinearStem | None = None
        self.stem_name = ""
        self.channels_last = False
        self.variances: list[Tensor] = []
        for split in self.splits.values():  # the metrics on two samples first: a wrong output shape fails here
            with torch.inference_mode():
                out = self.model(split.inputs[:2])
            self.metrics.check(out, split.targets[:2])
        if self.device.type == "cpu" and any(isinstance(m, nn.Conv2d) for m in self.model.modules()):
            self._use_channels_last()
        self.reference = self._reference_output()
        if bn == "keep":
            self._fold_batchnorm()
            self._install_stem()
        self._use_fast_layers()
        self.variances = [t for k, t in zip(self.moved.names, self.moved.params, strict=True) if k.endswith("running_var")]
        if self.stem is not None and break_rewrite():  # a test hook (landscape.testhooks): a broken set-up rewrite
            self.stem.cache = {k: (base * 1.001, ux, uy) for k, (base, ux, uy) in self.stem.cache.items()}

    @property
    def names(self) -> list[str]:
        """Names of the tensors every point rewrites (those the first-layer cache took over excluded)."""
        return self.moved.names

    # --- layout and first-layer precomputation (set up once) ----------------------------------

    def _use_channels_last(self) -> None:
        """NHWC convolutions are markedly faster on CPUs (oneDNN); values agree to float32 rounding.

        Kept only if the forward still runs: a model that ``.view()``s a convolution's output
        needs NCHW strides and stays as it is.
        """
        splits = {name: TensorSplit(s.inputs.contiguous(memory_format=torch.channels_last) if s.inputs.ndim == 4
                                    else s.inputs, s.targets) for name, s in self.splits.items()}
        self.moved.params = []  # the old working tensors are freed as each is converted (no second copy at once)
        self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        try:
            with torch.inference_mode():
                self.model(next(iter(splits.values())).inputs[:2])
        except RuntimeError:
            splits = self.splits
            self.model.to(memory_format=torch.contiguous_format)  # type: ignore[call-overload]
        self.channels_last = splits is not self.splits
        self.moved.relayout(dict(self.model.named_parameters()) | dict(self.model.named_buffers()))  # new tensors
        self.moved.reset()  # (the origin and the directions stay in the caller's layout: a point's writes convert)
        self.splits = splits

    @torch.no_grad()
    def _fold_batchnorm(self) -> None:
        """Fold each eval-mode BatchNorm into the convolution that feeds it.

        ``BN(W∗x + b) = s·(W∗x + b − μ) + β`` with ``s = γ / √(σ² + ε)``: a convolution with
        weight ``s·W`` and bias ``s·(b − μ) + β``, so every grid point skips a pass over the
        activations. The folded convolution keeps the convolution's own working weight, into which
        a point writes ``s·(W* + α·δ + β·η)`` (an affine map on the moved tensor): neither the origin
        nor the directions are copied or scaled, and nothing of the model's size is allocated. Only
        when the BatchNorm itself does not move (its parameters and statistics have zero
        directions, the default); checked against the unfolded model before it is kept.
        """
        moving = set(self.moved.names)
        pairs = []
        for parent_name, parent in self.model.named_modules():
            kids = list(parent.named_children())
            for (conv_key, conv), (bn_key, norm) in itertools.pairwise(kids):
                prefix = f"{parent_name}." if parent_name else ""
                if not (type(conv) is nn.Conv2d and type(norm) is nn.BatchNorm2d and norm.num_features == conv.out_channels
                        and norm.running_mean is not None and norm.running_var is not None):
                    continue
                if any(k.startswith(f"{prefix}{bn_key}.") for k in moving):
                    continue
                pairs.append((parent, prefix + conv_key, conv_key, conv, bn_key, norm))
        if not pairs:
            return
        for parent, conv_name, conv_key, conv, bn_key, norm in pairs:
            setattr(parent, conv_key, self._folded(conv_name, conv, norm, moving))
            setattr(parent, bn_key, nn.Identity())
        self.moved.reset()
        if not self._equivalent(self._one_point):
            for parent, _, conv_key, conv, bn_key, norm in pairs:
                setattr(parent, conv_key, conv)
                setattr(parent, bn_key, norm)
            self.moved.affine.clear()
            self.moved.reset()

    def _folded(self, conv_name: str, conv: nn.Conv2d, norm: nn.BatchNorm2d, moving: set[str]) -> nn.Conv2d:
        """``conv`` with ``norm`` folded in; a moved weight or bias stays the same tensor and gets the affine map."""
        mean, var = norm.running_mean, norm.running_var
        assert mean is not None and var is not None  # checked when the pair was chosen
        inv_std = torch.rsqrt(var + norm.eps)
        s = norm.weight * inv_std if norm.affine else inv_std
        beta = norm.bias if norm.affine else torch.zeros_like(mean)
        fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,  # type: ignore[arg-type]
                          conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode,  # type: ignore[arg-type]
                          device="meta", dtype=conv.weight.dtype)  # no storage: its tensors are set below
        if f"{conv_name}.weight" in moving:
            fused.weight = conv.weight
            self.moved.affine[f"{conv_name}.weight"] = (s.view(-1, 1, 1, 1), None)
        else:  # a fixed weight may be the caller's own storage: the folded one is new
            fused.weight = nn.Parameter(conv.weight * s.view(-1, 1, 1, 1), requires_grad=False)
        if f"{conv_name}.bias" in moving:
            assert conv.bias is not None
            fused.bias = conv.bias
            self.moved.affine[f"{conv_name}.bias"] = (s, beta - s * mean)
        else:
            bias0 = conv.bias if conv.bias is not None else torch.zeros_like(mean)
            fused.bias = nn.Parameter(s * (bias0 - mean) + beta, requires_grad=False)
        return fused

    def _adopt(self, model: nn.Module) -> None:
        """Make ``model`` the engine's model: the moved tensors, the stand-in and BatchNorms are its own."""
        self.model = model
        self.moved.relayout(dict(model.named_parameters()) | dict(model.named_buffers()))
        if self.stem is not None:
            stem = model.get_submodule(self.stem_name)
            assert isinstance(stem, LinearStem)
            self.stem = stem

    @torch.no_grad()
    def _use_fast_layers(self) -> None:
        """Swap layers for faster equivalents, found by tracing the forward with ``torch.fx``;
        kept only if the outputs at an off-origin point equal those of the unmodified model.

        What follows a layer is folded into it: the first-layer stand-in applies a ReLU on its own
        fresh output; on the CPU a float32 Conv2d followed by a ReLU, or by a residual add and a
        ReLU (a ResNet block), becomes one fused :class:`FastConv` call (one point per call only);
        on the CPU 2×2 max-pools become :class:`MaxPool2x2`. The traced model shares every layer
        and tensor with the original, so nothing is copied. A model that cannot be traced keeps
        its layers as they are.
        """
        cpu = self.device.type == "cpu"
        fused = fuse_traced(self.model, cpu, cpu and self.points_per_call <= 1 and fast_conv_available())
        if fused is None:
            return
        names = dict(fused.named_parameters()) | dict(fused.named_buffers()) | dict(fused.named_modules())
        if not all(k in names for k in self.names) or (self.stem_name and self.stem_name not in names):
            return
        reference = self.model
        self._adopt(fused)
        if not self._equivalent(self._one_point):
            self._adopt(reference)

    def _check_batch(self) -> tuple[Tensor, tuple[str, int]]:
        """The first batch of the first split (what a first-layer cache holds) and its cache key."""
        split_name, split = next(iter(self.splits.items()))
        return split.inputs[: self.batch_sizes[split_name]], (split_name, 0)

    def _check_point(self) -> tuple[float, float]:
        return (CHECK_POINT[0], CHECK_POINT[1] if self.moved.dy is not None else 0.0)

    def _one_point(self, a: float, b: float, x: Tensor, key: tuple[str, int]) -> list[Tensor]:
        """The engine's model as it is now at (α, β) on batch ``x``, as evaluation runs one point."""
        if self.stem is not None:
            self.stem.key = key
        self._set_point(a, b)
        return [self.model(x)]

    def _reference_output(self) -> Tensor:
        """The unmodified model's output at the check point on the first batch: what every rewrite must give.

        Kept (a batch of outputs) instead of a copy of the model to compare against.
        """
        x, key = self._check_batch()
        try:
            with torch.inference_mode():
                return self._one_point(*self._check_point(), x, key)[0]
        finally:
            self._reset_to_origin()

    def _equivalent(self, rewritten: _Side) -> bool:
        """The one check every set-up rewrite passes before it is kept.

        At the off-origin point (α, β) = (0.37, −0.21) and on the first batch (what a first-layer
        cache holds), every output of the ``rewritten`` side must equal the unmodified model's
        (:attr:`reference`; ``allclose``, rtol 1e-4, atol 1e-5). Any exception means "not
        equivalent": a stand-in can make a user's forward fail, and is then simply not used. The
        moved tensors are back at the origin afterwards, whatever happens.
        """
        assert self.reference is not None
        x, key = self._check_batch()
        self._reset_to_origin()
        try:
            with torch.inference_mode():
                fast = rewritten(*self._check_point(), x, key)
        except Exception:  # a stand-in can make any user forward fail: then it is simply not used
            return False
        finally:
            self._reset_to_origin()
        ref = self.reference
        return all(f.shape == ref.shape and bool(torch.allclose(f, ref, rtol=1e-4, atol=1e-5)) for f in fast)

    # per batch, for the widest layer: cache-sized working sets on a CPU; on a GPU, big batches
    ACTIVATION_BYTES: ClassVar[Mapping[str, int]] = {"cpu": 4 << 20, "cuda": 256 << 20}

    def _activation_batch_sizes(self) -> dict[str, int]:
        """Batch size from the widest activation: measured once on a few samples.

        Large batches amortize per-call overhead (small models take the whole split at once),
        but convolutions slow down when a layer's output no longer fits in cache.
        """
        widest = 0

        def hook(mod: nn.Module, args: object, out: object) -> None:
            nonlocal widest
            if isinstance(out, Tensor):
                widest = max(widest, out.numel() * out.element_size())

        probe = 8
        with contextlib.ExitStack() as hooks, torch.inference_mode():  # every hook removed on the way out
            for m in self.model.modules():
                if not list(m.children()):
                    hooks.callback(m.register_forward_hook(hook).remove)
            self.model(next(iter(self.splits.values())).inputs[:probe])
        per_sample = max(1, widest // probe)
        size = max(32, self.ACTIVATION_BYTES.get(self.device.type, 4 << 20) // per_sample)
        return {name: min(len(s), size) for name, s in self.splits.items()}

    def _find_stem(self) -> str | None:
        """Name of the Linear/Conv layer that receives the raw input (a view of it), if any."""
        split = next(iter(self.splits.values()))
        x = split.inputs[: self.batch_sizes[next(iter(self.splits))]]
        found: list[str] = []
        with contextlib.ExitStack() as hooks, torch.inference_mode():  # every hook removed on the way out
            for name, m in self.model.named_modules():
                if isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d) and f"{name}.weight" in self.names:
                    def pre(mod: nn.Module, args: tuple[Tensor, ...], name: str = name) -> None:
                        seen = args[0] if args and isinstance(args[0], Tensor) else None  # the raw input, a view of it
                        if seen is not None and seen.data_ptr() == x.data_ptr() and seen.numel() == x.numel():
                            found.append(name)
                    hooks.callback(m.register_forward_pre_hook(pre).remove)
            self.model(x)
        return found[0] if len(found) == 1 else None

    @torch.no_grad()
    def _install_stem(self) -> None:
        """Replace the first layer by :class:`LinearStem` when that is exact and fits in memory."""
        name = self._find_stem()
        if name is None:
            return
        parent_name, _, child = name.rpartition(".")
        parent = self.model.get_submodule(parent_name)
        layer = parent.get_submodule(child)
        own = [k for k in self.names if k.startswith(f"{name}.") and k.count(".") == name.count(".") + 1]
        idx = {k: self.names.index(k) for k in own}
        # as the layer's tensors move (a folded BatchNorm's scale applied): only the first layer's size
        dx = {k.rsplit(".", 1)[1]: self.moved.direction(i, "x") for k, i in idx.items()}
        dy = {k.rsplit(".", 1)[1]: self.moved.direction(i, "y") for k, i in idx.items()} if self.moved.dy is not None else None
        cache: dict[tuple[str, int], tuple[Tensor, Tensor, Tensor | None]] = {}
        captured: list[Tensor] = []

        def capture(m: nn.Module, args: tuple[Tensor, ...], out: Tensor) -> None:
            if not captured:  # the model's own call (not the direction terms below)
                captured.extend([args[0], out])
                raise StopForward  # the rest of the model is not needed

        hook = layer.register_forward_hook(capture)
        nbytes = 0
        try:
            with torch.inference_mode():
                for split_name, split in self.splits.items():
                    bs = self.batch_sizes[split_name]
                    for start in range(0, len(split), bs):
                        captured.clear()
                        with contextlib.suppress(StopForward):
                            self.model(split.inputs[start : start + bs])
                        inp, base = captured
                        ux = self._term(layer, dx, inp, base)
                        uy = None if dy is None else self._term(layer, dy, inp, base)
                        nbytes += base.numel() * base.element_size() * (2 if uy is None else 3)
                        if nbytes > STEM_CACHE_BYTES:
                            return
                        cache[(split_name, start)] = (base, ux, uy)
        finally:
            hook.remove()
        stem = LinearStem(cache, self.device)
        setattr(parent, child, stem)
        keep = [i for i, k in enumerate(self.names) if k not in idx]
        if not self._stem_is_exact(stem, layer, parent, child, keep):
            return
        self.stem, self.stem_name = stem, name
        self.moved = self.moved.narrow(keep)

    @staticmethod
    def _term(layer: nn.Module, given: Mapping[str, Tensor], inp: Tensor, base: Tensor) -> Tensor:
        """``layer`` on ``inp`` with a direction's tensors ``given`` (no bias: a zero one), in ``base``'s memory
        layout (no copy when already alike): mixed layouts make every point's axpy ~4× slower."""
        bias = getattr(layer, "bias", None)
        zero = {} if bias is None or "bias" in given else {"bias": torch.zeros_like(bias)}
        return in_layout_of(base, functional_call(layer, dict(given) | zero, (inp,)))

    def _stem_is_exact(self, stem: LinearStem, layer: nn.Module, parent: nn.Module, child: str, keep: list[int]) -> bool:
        """The stand-in (both its paths: ``coef`` as under vmap, and one point) against the unmodified model.

        The stand-in's side runs as evaluation will: only the tensors in ``keep`` move, the
        layer's own stay at the origin. A layer whose tensors are also used elsewhere (tied
        weights) therefore fails the comparison instead of freezing them there.
        """
        full = self.moved

        def rewritten(a: float, b: float, x: Tensor, key: tuple[str, int]) -> list[Tensor]:
            self.moved = full.narrow(keep)
            try:
                stem.key = key
                stem.coef.copy_(torch.tensor([a, b]))
                self._set_point(a, b)
                by_coef = self.model(x)  # the vmap path
                stem.point = (a, b)
                one_point = self.model(x)
                return [by_coef, one_point]
            finally:
                stem.point = None
                self.moved = full

        if self._equivalent(rewritten):
            return True
        setattr(parent, child, layer)
        return False

    @torch.no_grad()
    def _reset_to_origin(self) -> None:
        """Back to θ*: later set-up steps (the first-layer cache) are computed from the origin."""
        self.moved.reset()
        if self.stem is not None:
            self.stem.point = None

    # --- one point at a time -------------------------------------------------------------------

    @torch.no_grad()
    def _set_point(self, a: float, b: float) -> None:
        self.moved.set_point(a, b)  # nothing when the stem took over every moved tensor (a bias-free linear model)
        if self.variances:
            # running variances moved along a direction (--dir-type states) can cross zero, which
            # would make BatchNorm divide by the square root of a negative number: keep them ≥ 0
            torch._foreach_clamp_min_(self.variances, 0.0)
        if self.stem is not None:
            self.stem.point = (a, b)
        if self.bn == "recompute":
            recompute_bn_(self.model, self.bn_inputs)  # cumulative average over the fixed batches, at this point

    def _sums(self, forward: object) -> Tensor:
        """Metric means per split, concatenated in column order; with :attr:`chunk` set, the raw
        per-sample moments (every metric's Σv, then every Σv²) of that one batch of that one split."""
        cols = []
        for name, split in self.splits.items() if self.chunk is None else [(self.chunk[0], self.splits[self.chunk[0]])]:
            bs = self.batch_sizes[name]
            total = None
            for start in range(0, len(split), bs) if self.chunk is None else [self.chunk[1] * bs]:
                x, y = split.inputs[start : start + bs], split.targets[start : start + bs]
                if self.stem is not None:
                    self.stem.key = (name, start)
                s = forward(x, y)  # type: ignore[operator]
                total = s if total is None else total + s
            assert total is not None
            cols.append(total / len(split) if self.chunk is None else total)
        return torch.cat(cols, dim=-1)

    def _reduce(self, output: Tensor, y: Tensor) -> Tensor:
        return self.metrics.batch_sums(output, y) if self.chunk is None else self.metrics.batch_moments(output, y).reshape(-1)

    # --- K points per call with vmap over stacked weights -------------------------------------------

    def _eval_stacked(self, coords: np.ndarray) -> Tensor:
        a = torch.as_tensor(coords[:, 0], dtype=torch.float32, device=self.device)
        b = torch.as_tensor(coords[:, 1], dtype=torch.float32, device=self.device)
        with torch.inference_mode():
            stacked = {}
            mv = self.moved
            for i, name in enumerate(mv.names):
                shape = (-1,) + (1,) * mv.origin[i].ndim
                w = mv.origin[i].unsqueeze(0) + a.view(shape).to(mv.origin[i].dtype) * mv.dx[i].unsqueeze(0)
                if mv.dy is not None:
                    w = w + b.view(shape).to(mv.origin[i].dtype) * mv.dy[i].unsqueeze(0)
                stacked[name] = mv.mapped(name, w)  # (K, ...) weights; a folded BatchNorm's scale broadcasts
            if self.stem is not None:
                self.stem.point = None
                stacked[f"{self.stem_name}.coef"] = torch.stack([a, b], dim=1)

            def one(params: dict[str, Tensor], x: Tensor, y: Tensor) -> Tensor:
                return self._reduce(functional_call(self.model, params, (x,)), y)

            batched = vmap(one, in_dims=(0, None, None))
            return self._sums(lambda x, y: batched(stacked, x, y))

    # --- public --------------------------------------------------------------------------------

    def evaluate(self, coords: np.ndarray) -> np.ndarray:
        """Metric values at each (α, β) row of ``coords``: (k, len(columns)) float64 on the host."""
        coords = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
        if len(coords) == 0:
            return np.empty((0, self._width()))
        k = self.points_per_call
        if k <= 1:
            out = torch.empty(len(coords), self._width(), dtype=torch.float64, device=self.device)
            for i, (a, b) in enumerate(coords):
                self._set_point(float(a), float(b))
                with torch.inference_mode():
                    out[i] = self._sums(lambda x, y: self._reduce(self.model(x), y))
            return out.cpu().numpy()
        parts = [self._eval_stacked(coords[s : s + k]) for s in range(0, len(coords), k)]
        return torch.cat(parts).cpu().numpy()

    def _width(self) -> int:
        return len(self.columns) if self.chunk is None else 2 * len(self.metrics.names)

    def chunk_sizes(self) -> dict[str, list[int]]:
        """Samples in each batch of each split, in reading order: the chunks of :meth:`moments`."""
        return {k: [min(self.batch_sizes[k], len(s) - i) for i in range(0, len(s), self.batch_sizes[k])] for k, s in self.splits.items()}

    def moments(self, coords: np.ndarray, split: str, chunk: int) -> np.ndarray:
        """Σv and Σv² of each metric's per-sample values over batch ``chunk`` of ``split`` at each (α, β) row:
        (k, 2, len(metrics)) float64 (progressive evaluation, :mod:`landscape.engine.progressive`)."""
        self.chunk = (split, chunk)
        try:
            return self.evaluate(coords).reshape(len(coords), 2, len(self.metrics.names))
        finally:
            self.chunk = None

    def calibrate(self, coords: np.ndarray, candidates: Sequence[int] | None = None) -> tuple[np.ndarray, int]:
        """Pick points-per-call by timing real work on the first points; returns their values too.

        Every candidate evaluates points the caller needs anyway, so nothing is wasted. Without
        ``candidates`` the CPU takes one point per call untimed: the intra-op threads already keep
        the cores busy, and ``vmap``'s first call costs more than it could save (digits MLP, CNN,
        ResNet-20); elsewhere K = 1, 4, 16, 64 are timed (a small model cannot fill a GPU). A K that
        fails where the same points work one per call (an op vmap cannot batch, K-fold memory) ends
        the search; any other error, and every error at K = 1, reaches the caller.
        """
        if candidates is None and self.device.type == "cpu" and not self.points_per_call:
            self.points_per_call = 1
        if self.points_per_call or self.bn != "keep":
            self.points_per_call = max(1, self.points_per_call)
            return np.empty((0, len(self.columns))), 0
        done: list[np.ndarray] = []
        used, best, best_rate = 0, 1, 0.0
        for k in candidates or (1, 4, 16, 64):
            n = k if k > 1 else 2
            if used + n > len(coords):
                break
            self.points_per_call = k
            t0 = time.perf_counter()
            try:
                vals = self.evaluate(coords[used : used + n])
            except (RuntimeError, NotImplementedError):
                if k == 1:
                    raise
                self.points_per_call = 1  # vmap's limit only if the same points work one at a time, else raises
                done.append(self.evaluate(coords[used : used + n]))
                used += n
                break
            elapsed = time.perf_counter() - t0
            rate = n / elapsed
            done.append(vals)
            used += n
            if rate > best_rate:
                best, best_rate = k, rate
            elif rate < 0.8 * best_rate:
                break
            if elapsed * 4 > 3.0:  # the next candidate would take too long (and too much memory)
                break
        self.points_per_call = best
        return (np.concatenate(done) if done else np.empty((0, len(self.columns)))), used
