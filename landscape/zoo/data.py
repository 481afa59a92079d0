"""Datasets: a registry of builders that return tensors, and the user's own data.

Every dataset ends up as a :class:`DataBundle`: train and test splits held as contiguous
tensors (the surface engine moves them to the device once), plus the task they define.
Builders return ``((train_inputs, train_targets), (test_inputs, test_targets))``; integer
targets mean class labels, float targets mean regression.
"""

from __future__ import annotations

import gzip
import hashlib
import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from landscape.config import DataConfig
from landscape.errors import DataError, LandscapeError, RegistryError
from landscape.zoo.registry import Registry, is_user_spec, load_callable

Task = Literal["classification", "binary", "regression", "reconstruction"]
Pair = tuple[Tensor, Tensor]
Builder = Callable[..., tuple[Pair, Pair]]

DATASETS: Registry[Builder] = Registry("dataset")


@dataclass(frozen=True)
class TensorSplit:
    """One split held as two tensors: ``inputs`` (n, *input_shape), ``targets`` (n, ...)."""

    inputs: Tensor
    targets: Tensor

    def __len__(self) -> int:
        return int(self.inputs.shape[0])

    def subset(self, n: int) -> TensorSplit:
        return TensorSplit(self.inputs[:n], self.targets[:n]) if 0 < n < len(self) else self

    def to(self, device: torch.device | str) -> TensorSplit:
        return TensorSplit(self.inputs.to(device).contiguous(), self.targets.to(device).contiguous())


@dataclass(frozen=True)
class DataBundle:
    """Train and test splits plus the task they define (which sets the model's output shape)."""

    name: str
    train: TensorSplit
    test: TensorSplit
    task: Task
    num_classes: int  # 0 for regression and reconstruction

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.train.inputs.shape[1:])

    @property
    def output_shape(self) -> tuple[int, ...]:
        if self.task == "classification":
            return (self.num_classes,)
        if self.task == "binary":
            return (1,)
        return tuple(self.train.targets.shape[1:])

    def split(self, name: str) -> TensorSplit:
        if name not in ("train", "test"):
            raise DataError(f"unknown split {name!r}; choose 'train' or 'test'")
        return self.train if name == "train" else self.test

    def fingerprint(self) -> str:
        """sha256 of both splits' tensors (values, shapes, dtypes): the same data give the same text.

        Checkpoints record it, so a surface computed later can tell when a data function is not
        deterministic or its files changed (the surface would then not be around the model's
        own training loss).
        """
        h = hashlib.sha256()
        for t in (self.train.inputs, self.train.targets, self.test.inputs, self.test.targets):
            h.update(f"{tuple(t.shape)}{t.dtype};".encode())
            h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().data)
        return h.hexdigest()


# --- built-in datasets -------------------------------------------------------------------


@DATASETS.register("digits")
def digits(test_fraction: float = 0.2, seed: int = 0) -> tuple[Pair, Pair]:
    """The 8×8 handwritten digits (UCI; 1,797 images, 10 classes), shipped with the package.

    Pixels are scaled from 0..16 to [0, 1]; images are (1, 8, 8). The train/test cut is a fixed
    seeded permutation (80/20 by default), the same on every machine.
    """
    ref = resources.files("landscape").joinpath("zoo/data_files/digits.csv.gz")
    with ref.open("rb") as raw, gzip.open(raw, "rt") as fh:
        table = np.loadtxt(fh, delimiter=",", dtype=np.float32)
    images = torch.from_numpy(table[:, :-1] / 16.0).reshape(-1, 1, 8, 8)
    labels = torch.from_numpy(table[:, -1].astype(np.int64))
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    n_test = round(test_fraction * len(labels))
    test, train = order[:n_test], order[n_test:]
    return (images[train], labels[train]), (images[test], labels[test])


@DATASETS.register("digits_augmented")
def digits_augmented(n_train: int = 60_000, test_fraction: float = 0.2, shift: float = 1.0, rotate: float = 12.0,
                     scale: float = 0.1, noise: float = 0.05, seed: int = 0) -> tuple[Pair, Pair]:
    """The 8×8 digits with the training split grown to ``n_train`` images by random small affine moves
    plus noise: a ≥ 50,000-sample set for benchmarks, with no download.

    The train/test cut is :func:`digits`' (same ``test_fraction`` and ``seed``); the test split is the
    untouched originals. Training image k is original ``k mod n`` (so every original appears
    ``n_train / n`` times, the first copy unchanged), moved by one draw of: a shift of up to ``shift``
    pixels along each axis, a rotation of up to ``rotate`` degrees, a zoom of up to ``1 ± scale``
    (all uniform), applied by bilinear resampling (zeros outside the image), then Gaussian pixel noise
    of standard deviation ``noise``, clipped to [0, 1]. Every draw comes from one generator seeded with
    ``seed``: the same options give the same tensors on every machine.
    """
    (x, y), test = digits(test_fraction=test_fraction, seed=seed)
    if n_train < len(y):
        raise DataError(f"digits_augmented n_train = {n_train} must be at least the {len(y)} original training images")
    g = torch.Generator().manual_seed(seed)
    source = torch.arange(n_train) % len(y)
    u = 2 * torch.rand(n_train, 4, generator=g) - 1  # uniform in [-1, 1): shift x, shift y, angle, zoom
    u[: len(y)] = 0  # the originals themselves come first
    angle = torch.deg2rad(rotate * u[:, 2])
    zoom = 1 + scale * u[:, 3]
    # affine_grid maps output coordinates (in [-1, 1], 2/8 per pixel) to input ones: inverse rotation and zoom
    cos, sin = torch.cos(angle) / zoom, torch.sin(angle) / zoom
    theta = torch.stack([torch.stack([cos, -sin, u[:, 0] * shift / 4], 1),
                         torch.stack([sin, cos, u[:, 1] * shift / 4], 1)], 1)  # (n_train, 2, 3)
    images = x[source]
    grid = torch.nn.functional.affine_grid(theta, list(images.shape), align_corners=False)
    moved = torch.nn.functional.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    noisy = moved + noise * torch.randn(moved.shape, generator=g) * (torch.arange(n_train) >= len(y)).view(-1, 1, 1, 1)
    return (noisy.clamp(0.0, 1.0).contiguous(), y[source]), test


@DATASETS.register("linreg")
def linreg(n_train: int = 256, n_test: int = 256, dim: int = 8, noise: float = 0.1, seed: int = 0) -> tuple[Pair, Pair]:
    """Linear regression ``y = X w* + ε`` with Gaussian X; the least-squares optimum is known.

    Targets are (n, 1) float32. With noise 0 the optimum is ``w*`` itself and the loss there is 0.
    """
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(dim, 1, generator=g)
    x = torch.randn(n_train + n_test, dim, generator=g)
    y = x @ w + noise * torch.randn(n_train + n_test, 1, generator=g)
    return (x[:n_train], y[:n_train]), (x[n_train:], y[n_train:])


@DATASETS.register("blobs")
def blobs(n_train: int = 600, n_test: int = 300, classes: int = 3, dim: int = 2, spread: float = 1.0, seed: int = 0) -> tuple[Pair, Pair]:
    """Gaussian clusters around random centres: a small multi-class problem."""
    g = torch.Generator().manual_seed(seed)
    centres = 3.0 * torch.randn(classes, dim, generator=g)
    n = n_train + n_test
    labels = torch.randint(0, classes, (n,), generator=g)
    x = centres[labels] + spread * torch.randn(n, dim, generator=g)
    return (x[:n_train], labels[:n_train]), (x[n_train:], labels[n_train:])


@DATASETS.register("spirals")
def spirals(n_train: int = 600, n_test: int = 300, noise: float = 0.1, seed: int = 0) -> tuple[Pair, Pair]:
    """Two interleaved spirals: a binary problem that needs a non-linear model."""
    g = torch.Generator().manual_seed(seed)
    n = n_train + n_test
    labels = torch.randint(0, 2, (n,), generator=g)
    t = 0.5 + 3.0 * math.pi * torch.rand(n, generator=g)
    angle = t + math.pi * labels
    x = torch.stack([t * torch.cos(angle), t * torch.sin(angle)], dim=1) / (3.0 * math.pi)
    x = x + noise * torch.randn(n, 2, generator=g) / 3.0
    return (x[:n_train], labels[:n_train]), (x[n_train:], labels[n_train:])


def _images(name: str, root: str, download: bool) -> tuple[Pair, Pair]:
    from landscape.zoo import datafiles

    path = Path(root).expanduser()
    if name == "cifar10":
        (xtr, ytr), (xte, yte) = datafiles.load_cifar10(path, download=download)
        mean = torch.tensor([0.4914, 0.4822, 0.4465]).view(1, 3, 1, 1)
        std = torch.tensor([0.2470, 0.2435, 0.2616]).view(1, 3, 1, 1)
        return ((xtr.float() / 255 - mean) / std, ytr), ((xte.float() / 255 - mean) / std, yte)
    (xtr, ytr), (xte, yte) = datafiles.load_mnist_like(path, name, download=download)  # type: ignore[arg-type]
    return (xtr.float().unsqueeze(1) / 255, ytr), (xte.float().unsqueeze(1) / 255, yte)


for _name in ("mnist", "fashion-mnist", "cifar10"):
    DATASETS.add(_name, lambda root="data", download=False, _n=_name: _images(_n, root, download))


# --- user data and conversion -------------------------------------------------------------


def _as_pair(obj: Any, what: str) -> Pair:
    """Accept an ``(inputs, targets)`` pair of tensors/arrays or a map-style torch Dataset."""
    if (isinstance(obj, tuple | list) and len(obj) == 2 and not isinstance(obj, Dataset)
            and not all(isinstance(v, tuple | list) for v in obj)):  # two (x, y) batches are batches
        x, y = (torch.as_tensor(v) for v in obj)
    elif isinstance(obj, Dataset):
        try:
            n = len(obj)  # type: ignore[arg-type]
            items = [obj[i] for i in range(n)]
            x = torch.stack([torch.as_tensor(a) for a, _ in items])
            y = torch.stack([torch.as_tensor(b) for _, b in items])
        except Exception as err:
            raise DataError(f"{what}: cannot read the Dataset as (input, target) items: {err}") from err
    elif isinstance(obj, Iterable) and not isinstance(obj, str | bytes | dict):  # a DataLoader, a list of batches
        x, y = _concatenated(obj, what)
    else:
        raise DataError(f"{what} must be a torch Dataset or an (inputs, targets) pair, got {type(obj).__name__} "
                        "(a DataLoader or an iterable of (inputs, targets) batches works too)")
    if x.shape[0] != y.shape[0]:
        raise DataError(f"{what}: {x.shape[0]} inputs but {y.shape[0]} targets")
    if x.shape[0] == 0:
        raise DataError(f"{what} is empty")
    return x, y


def _concatenated(batches: Iterable[Any], what: str) -> Pair:
    """The (inputs, targets) batches of a DataLoader or another iterable, read once and concatenated
    (in the loader's order: use one without shuffling for a fixed evaluation set)."""
    xs, ys = [], []
    for batch in batches:
        if not (isinstance(batch, tuple | list) and len(batch) >= 2):
            raise DataError(f"{what}: batches must be (inputs, targets) tuples here, got {type(batch).__name__}; batches of "
                            "other shapes (dicts) work with a batch loss --loss file.py:fn in landscape surface and "
                            "hessian, and through the Python API: landscape.surface(model, loader, loss=fn)")
        xs.append(torch.as_tensor(batch[0]))
        ys.append(torch.as_tensor(batch[1]))
    if not xs:
        raise DataError(f"{what} is empty")
    try:
        return torch.cat(xs), torch.cat(ys)
    except RuntimeError as err:
        raise DataError(f"{what}: the batches do not fit together: {str(err).splitlines()[0]}") from err


def call_data_fn(cfg: DataConfig) -> Any:
    """What the user's data function ``file.py:fn`` returns, called with ``cfg.options``."""
    fn = load_callable(cfg.name)
    try:
        return fn(**cfg.options)
    except LandscapeError:
        raise
    except Exception as err:  # the user's code: any failure is reported as a data problem
        raise DataError(f"calling {cfg.name!r} failed: {type(err).__name__}: {err}") from err


def _raw(cfg: DataConfig, given: Any = None) -> tuple[Pair, Pair]:
    if given is not None:
        result = given
    elif is_user_spec(cfg.name):
        result = call_data_fn(cfg)
    else:
        builder = DATASETS.get(cfg.name)
        options = dict(cfg.options)
        if cfg.name in ("mnist", "fashion-mnist", "cifar10"):
            options.update(root=cfg.root, download=cfg.download)
        try:
            result = builder(**options)
        except TypeError as err:
            raise DataError(f"dataset {cfg.name!r} rejected options {cfg.options}: {err}") from err
    if not (isinstance(result, tuple | list) and len(result) == 2):
        raise DataError(f"dataset {cfg.name!r} must return (train, test), got {type(result).__name__}")
    return _as_pair(result[0], f"{cfg.name} train split"), _as_pair(result[1], f"{cfg.name} test split")


def _select_classes(pair: Pair, classes: tuple[int, ...]) -> Pair:
    x, y = pair
    keep = torch.isin(y, torch.tensor(classes, dtype=y.dtype))
    relabel = torch.full((max(int(y.max()), *classes) + 1,), -1, dtype=torch.int64)
    relabel[torch.tensor(classes)] = torch.arange(len(classes))
    return x[keep], relabel[y[keep]]


def resize_images(x: Tensor, size: int, name: str) -> Tensor:
    """Images ``(n, c, h, w)`` resampled to ``(n, c, size, size)`` by bilinear interpolation
    (``align_corners=False``; PyTorch's antialiasing when shrinking)."""
    if size < 1:
        raise DataError(f"data.resize = {size} must be a positive image size (or 0 to keep the images as they are)")
    if x.ndim != 4:
        raise DataError(f"data.resize = {size} needs images (n, channels, height, width); {name!r} has inputs of shape {tuple(x.shape[1:])}")
    if tuple(x.shape[2:]) == (size, size):
        return x
    shrink = size < x.shape[2] or size < x.shape[3]
    return torch.nn.functional.interpolate(x.float(), size=(size, size), mode="bilinear", align_corners=False,
                                           antialias=shrink)


def load_data(cfg: DataConfig, given: Any = None) -> DataBundle:
    """Build the :class:`DataBundle` that ``cfg`` describes (float32 inputs, contiguous).

    ``given``: what the data function of a ``file.py:fn`` spec already returned (it is not called again).
    """
    train, test = _raw(cfg, given)
    if cfg.resize:
        train = (resize_images(train[0], cfg.resize, cfg.name), train[1])
        test = (resize_images(test[0], cfg.resize, cfg.name), test[1])
    labels = not train[1].is_floating_point()
    if cfg.classes:
        if not labels:
            raise DataError(f"data.classes = {list(cfg.classes)} needs class labels, but {cfg.name!r} has float targets")
        present = sorted({int(v) for v in torch.cat([train[1].reshape(-1), test[1].reshape(-1)]).tolist()})
        absent = [c for c in cfg.classes if c not in present]
        if absent or len(set(cfg.classes)) != len(cfg.classes):  # a negative label would silently wrap around
            raise DataError(f"data.classes = {list(cfg.classes)} must name distinct labels of {cfg.name!r}; "
                            f"{'not among them: ' + str(absent) if absent else 'some are repeated'} (labels: {present[:20]})")
        train, test = _select_classes(train, cfg.classes), _select_classes(test, cfg.classes)
    xtr, ytr = train[0].float().contiguous(), train[1]
    xte, yte = test[0].float().contiguous(), test[1]
    if not (torch.isfinite(xtr).all() and torch.isfinite(xte).all()):
        raise DataError(f"dataset {cfg.name!r} has NaN or inf inputs")
    task: Task
    num_classes = 0
    if cfg.target == "input":
        task, ytr, yte = "reconstruction", xtr, xte
    elif labels:
        ytr, yte = ytr.long(), yte.long()
        if ytr.ndim != 1 or yte.ndim != 1:
            raise DataError(f"class labels must be one number per sample, got shape {tuple(ytr.shape)}")
        if int(min(ytr.min(), yte.min())) < 0:
            raise DataError(f"dataset {cfg.name!r} has negative class labels")
        num_classes = int(max(ytr.max(), yte.max())) + 1
        task = "classification"
        if cfg.binary:
            if num_classes != 2:
                raise DataError(f"data.binary needs exactly 2 classes, {cfg.name!r} has {num_classes}; set data.classes = [a, b]")
            task, ytr, yte = "binary", ytr.float().unsqueeze(1), yte.float().unsqueeze(1)
    else:
        ytr, yte = ytr.float(), yte.float()
        ytr = ytr.unsqueeze(1) if ytr.ndim == 1 else ytr
        yte = yte.unsqueeze(1) if yte.ndim == 1 else yte
        if not (torch.isfinite(ytr).all() and torch.isfinite(yte).all()):
            raise DataError(f"dataset {cfg.name!r} has NaN or inf targets")
        task = "regression"
    bundle = DataBundle(cfg.name, TensorSplit(xtr, ytr.contiguous()), TensorSplit(xte, yte.contiguous()), task, num_classes)
    return replace(bundle, train=bundle.train.subset(cfg.max_train), test=bundle.test.subset(cfg.max_test))


__all__ = ["DATASETS", "DataBundle", "RegistryError", "Task", "TensorSplit", "load_data"]
