"""Model registry: factories that build a network to fit the data's input and output shapes.

Every factory has the signature ``factory(input_shape, output_shape, **options) -> nn.Module``
(see ``docs/CONTRACTS.md``): the model maps float32 ``(n, *input_shape)`` to
``(n, *output_shape)``. Built-in entries are the networks of Li et al. 2018 (the CIFAR ResNets
of He et al. with and without skip connections, VGG-9) plus small models for quick CPU runs.
Image models accept flat inputs whose size is a perfect square (the 64 pixels of 8×8 digits)
and view them as one-channel images. Options are keyword-only arguments of the factory;
:func:`build_model` rejects unknown keys with the accepted ones, and every factory checks the
types of its values. Initialization draws from torch's global RNG, so the caller's seed fixes it.
"""

from __future__ import annotations

import inspect
import itertools
import math
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import Tensor, nn

from landscape.errors import ModelError
from landscape.zoo.modules import eval_mode, plain_module
from landscape.zoo.registry import Registry, is_user_spec, load_callable

# factory(input_shape, output_shape, **options) -> nn.Module
ModelFactory = Callable[..., nn.Module]

MODELS: Registry[ModelFactory] = Registry("model")

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "gelu": nn.GELU}

# The two shape arguments every factory receives; everything else is an option.
_SHAPE_ARGS = ("input_shape", "output_shape")


# --- option checks (the values come from TOML files and flags, so they are user input) ---


def _check_int(model: str, key: str, value: object) -> int:
    """A positive int option (bool is rejected although it is an int subclass)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ModelError(f"model {model!r}: option {key!r} must be a positive integer, got {value!r}")
    return value


def _check_int_list(model: str, key: str, value: object) -> list[int]:
    """A list of positive ints, e.g. hidden layer widths; the empty list is allowed."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ModelError(f"model {model!r}: option {key!r} must be a list of positive integers, got {value!r}")
    return [_check_int(model, key, v) for v in value]


def _check_bool(model: str, key: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise ModelError(f"model {model!r}: option {key!r} must be true or false, got {value!r}")
    return value


def _check_activation(model: str, value: object) -> type[nn.Module]:
    if not isinstance(value, str) or value not in ACTIVATIONS:
        raise ModelError(f"model {model!r}: option 'activation' must be one of {', '.join(ACTIVATIONS)}, got {value!r}")
    return ACTIVATIONS[value]


# --- shape helpers ------------------------------------------------------------------------


def _image_shape(model: str, input_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """The (channels, height, width) an image model sees: flat square inputs become (1, s, s)."""
    if len(input_shape) == 3:
        c, h, w = input_shape
        return c, h, w
    if len(input_shape) == 1:
        side = math.isqrt(input_shape[0])
        if side * side == input_shape[0]:
            return 1, side, side
    raise ModelError(
        f"model {model!r} needs images: input shape (C, H, W), or a flat (D,) with D a perfect square "
        f"(viewed as (1, √D, √D)); got {input_shape}"
    )


def _image_view(input_shape: tuple[int, ...], image: tuple[int, int, int]) -> nn.Module:
    """A parameter-free first layer: (n, D) -> (n, 1, s, s) for flat data, identity for images."""
    return nn.Identity() if len(input_shape) == 3 else nn.Unflatten(1, image)


def _pool_or_skip(size: tuple[int, int]) -> tuple[nn.Module, tuple[int, int]]:
    """A 2×2 max pool while the (H, W) map is larger than 1×1 in both sides, else identity.

    The identity keeps layer indices (and so state-dict keys) the same for every input size.
    ``ceil_mode`` keeps odd sizes covered (7 -> 4), as the paper's VGG code does.
    Returns the module and the spatial size after it.
    """
    h, w = size
    if h > 1 and w > 1:
        return nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True), ((h + 1) // 2, (w + 1) // 2)
    return nn.Identity(), size


class _Head(nn.Module):
    """Final linear layer whose outputs are reshaped to ``output_shape``: (n, F) -> (n, *output_shape)."""

    def __init__(self, in_features: int, output_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.output_shape = output_shape
        self.fc = nn.Linear(in_features, math.prod(output_shape))

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.fc(x)  # (n, prod(output_shape))
        return out.reshape(x.shape[0], *self.output_shape)


# --- small models -------------------------------------------------------------------------


def _mlp_layers(
    sizes: Sequence[int], act: type[nn.Module], batchnorm: bool, prefix: str
) -> list[tuple[str, nn.Module]]:
    """Named Linear[-BN]-activation layers for consecutive widths ``sizes`` (the last layer excluded)."""
    layers: list[tuple[str, nn.Module]] = []
    for i, (fan_in, fan_out) in enumerate(itertools.pairwise(sizes), start=1):
        layers.append((f"{prefix}{i}", nn.Linear(fan_in, fan_out)))
        if batchnorm:
            layers.append((f"bn{i}", nn.BatchNorm1d(fan_out)))
        layers.append((f"act{i}", act()))
    return layers


@MODELS.register("linear")
def linear(input_shape: tuple[int, ...], output_shape: tuple[int, ...], *, bias: bool = True) -> nn.Module:
    """A linear model (multinomial logistic / least-squares regression): flatten -> Linear.

    With MSE its loss is exactly quadratic in the weights: a closed form to test surfaces against.
    """
    use_bias = _check_bool("linear", "bias", bias)
    fc = nn.Linear(math.prod(input_shape), math.prod(output_shape), bias=use_bias)
    return nn.Sequential(
        OrderedDict([("flatten", nn.Flatten()), ("fc", fc), ("unflatten", nn.Unflatten(1, output_shape))])
    )


@MODELS.register("mlp")
def mlp(
    input_shape: tuple[int, ...],
    output_shape: tuple[int, ...],
    *,
    hidden: Sequence[int] = (64, 64),
    activation: str = "relu",
    batchnorm: bool = False,
) -> nn.Module:
    """A multilayer perceptron: flatten -> [Linear -> (BatchNorm1d) -> activation] per hidden width -> Linear."""
    widths = _check_int_list("mlp", "hidden", hidden)
    act = _check_activation("mlp", activation)
    bn = _check_bool("mlp", "batchnorm", batchnorm)
    sizes = [math.prod(input_shape), *widths]
    layers = [("flatten", nn.Flatten()), *_mlp_layers(sizes, act, bn, prefix="fc")]
    layers += [("out", nn.Linear(sizes[-1], math.prod(output_shape))), ("unflatten", nn.Unflatten(1, output_shape))]
    return nn.Sequential(OrderedDict(layers))


class SmallCNN(nn.Module):
    """A three-layer conv net with BatchNorm for quick image experiments.

    conv3x3(w)-BN-ReLU, conv3x3(2w)-BN-ReLU-maxpool, conv3x3(4w)-BN-ReLU, global average pool,
    Linear. Convs have no bias because the BatchNorm after each one has its own shift.
    """

    def __init__(self, input_shape: tuple[int, ...], output_shape: tuple[int, ...], width: int) -> None:
        super().__init__()
        image = _image_shape("cnn", input_shape)
        self.to_image = _image_view(input_shape, image)
        pool, _ = _pool_or_skip(image[1:])
        widths = (image[0], width, 2 * width, 4 * width)
        blocks: list[tuple[str, nn.Module]] = []
        for i, (c_in, c_out) in enumerate(itertools.pairwise(widths), start=1):
            blocks += [
                (f"conv{i}", nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)),
                (f"bn{i}", nn.BatchNorm2d(c_out)),
                (f"relu{i}", nn.ReLU()),
            ]
            if i == 2:
                blocks.append(("pool", pool))
        self.features = nn.Sequential(OrderedDict(blocks))
        self.head = _Head(widths[-1], output_shape)

    def forward(self, x: Tensor) -> Tensor:
        h: Tensor = self.features(self.to_image(x))  # (n, 4w, H', W')
        out: Tensor = self.head(h.mean(dim=(2, 3)))  # global average pool -> (n, 4w) -> (n, *output_shape)
        return out


@MODELS.register("cnn")
def cnn(input_shape: tuple[int, ...], output_shape: tuple[int, ...], *, width: int = 16) -> nn.Module:
    """A small conv net (3 conv-BN-ReLU layers, global average pool, linear); channels w, 2w, 4w."""
    return SmallCNN(input_shape, output_shape, _check_int("cnn", "width", width))


# --- CIFAR ResNets (He et al. 2016, §4.2) and their no-skip twins (Li et al. 2018, §5) ----


class BasicBlock(nn.Module):
    """The two-layer residual block: relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)).

    When the block changes the shape (stride 2 or new width) the shortcut is a 1×1 strided conv
    with BatchNorm (He et al.'s option B, as in the paper's code). With ``skip=False`` the
    shortcut is gone entirely, so the no-skip net has exactly the residual net's parameters
    minus the projection shortcuts.
    """

    def __init__(self, c_in: int, c_out: int, stride: int, skip: bool) -> None:
        super().__init__()
        self.skip = skip
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut: nn.Module | None = None
        if skip and (stride != 1 or c_in != c_out):
            conv = nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False)
            self.shortcut = nn.Sequential(OrderedDict([("conv", conv), ("bn", nn.BatchNorm2d(c_out))]))

    def forward(self, x: Tensor) -> Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))  # (n, c_out, H/stride, W/stride)
        out = self.bn2(self.conv2(out))
        if self.skip:
            out = out + (x if self.shortcut is None else self.shortcut(x))
        return torch.relu(out)


class CifarResNet(nn.Module):
    """The CIFAR ResNet-(6n+2) of He et al.: conv3x3(w), 3 stages of n BasicBlocks, GAP, Linear.

    Stages have w, 2w, 4w channels; the first block of stages 2 and 3 halves the spatial size.
    Depth counts conv and linear layers on the main path: 1 + 3·2n + 1 = 6n + 2.
    Convs use Kaiming-normal (fan-in) init as in He et al.; BN and Linear keep PyTorch's defaults.
    """

    def __init__(
        self, input_shape: tuple[int, ...], output_shape: tuple[int, ...], depth: int, width: int, skip: bool
    ) -> None:
        super().__init__()
        if (depth - 2) % 6 != 0:
            raise ModelError(f"CIFAR ResNet depth must be 6n+2, got {depth}")
        n = (depth - 2) // 6
        image = _image_shape(f"resnet{depth}" + ("" if skip else "_noshort"), input_shape)
        self.to_image = _image_view(input_shape, image)
        self.conv1 = nn.Conv2d(image[0], width, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        stages: list[nn.Module] = []
        c_in = width
        for stage, c_out in enumerate((width, 2 * width, 4 * width)):
            blocks = [
                BasicBlock(c_in if b == 0 else c_out, c_out, 2 if stage > 0 and b == 0 else 1, skip) for b in range(n)
            ]
            stages.append(nn.Sequential(*blocks))
            c_in = c_out
        self.layer1, self.layer2, self.layer3 = stages
        self.head = _Head(4 * width, output_shape)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")

    def forward(self, x: Tensor) -> Tensor:
        h = torch.relu(self.bn1(self.conv1(self.to_image(x))))  # (n, w, H, W)
        h = self.layer3(self.layer2(self.layer1(h)))  # (n, 4w, ⌈H/4⌉, ⌈W/4⌉)
        out: Tensor = self.head(h.mean(dim=(2, 3)))  # global average pool -> (n, 4w) -> (n, *output_shape)
        return out


def _resnet_entry(depth: int, skip: bool) -> ModelFactory:
    """A registry factory for one depth, with ``width`` as its only option."""
    name = f"resnet{depth}" + ("" if skip else "_noshort")

    def factory(input_shape: tuple[int, ...], output_shape: tuple[int, ...], *, width: int = 16) -> nn.Module:
        return CifarResNet(input_shape, output_shape, depth, _check_int(name, "width", width), skip)

    kind = ("with skip connections (1×1 conv projection when the shape changes)" if skip
            else "with every skip connection removed")
    factory.__doc__ = f"The CIFAR ResNet-{depth} of He et al. {kind}; base width w (channels w, 2w, 4w)."
    factory.__name__ = factory.__qualname__ = name
    return factory


for _depth in (20, 56, 110):
    MODELS.add(f"resnet{_depth}", _resnet_entry(_depth, skip=True))
    MODELS.add(f"resnet{_depth}_noshort", _resnet_entry(_depth, skip=False))


# --- VGG-9 (the paper's code: 7 conv + 2 FC weight layers) ---------------------------------


class VGG9(nn.Module):
    """VGG-9 as in Li et al.'s code: 7 conv3x3 and 2 fully connected layers, BN after each.

    Channels (w, w, M, 2w, 2w, M, 4w, 4w, 4w, M) with w = 64 by default, then flatten ->
    Linear(4w·h·w', 4w)-BN-ReLU -> Linear(4w, out). The feature map is flattened, not averaged,
    as in the paper (4×4 for 32×32 inputs); a 2×2 max pool is skipped once the map is 1×1, so
    8×8 digits end with a 1×1 map. Convs keep their bias, as in the paper's code.
    """

    def __init__(
        self, input_shape: tuple[int, ...], output_shape: tuple[int, ...], width: int, batchnorm: bool
    ) -> None:
        super().__init__()
        image = _image_shape("vgg9", input_shape)
        self.to_image = _image_view(input_shape, image)
        plan = [width, width, None, 2 * width, 2 * width, None, 4 * width, 4 * width, 4 * width, None]  # None: pool
        layers: list[nn.Module] = []
        c_in, size = image[0], image[1:]
        for c_out in plan:
            if c_out is None:
                pool, size = _pool_or_skip(size)
                layers.append(pool)
                continue
            bn: nn.Module = nn.BatchNorm2d(c_out) if batchnorm else nn.Identity()
            layers += [nn.Conv2d(c_in, c_out, 3, padding=1), bn, nn.ReLU()]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        bn1d: nn.Module = nn.BatchNorm1d(c_in) if batchnorm else nn.Identity()
        self.fc = nn.Sequential(nn.Linear(c_in * size[0] * size[1], c_in), bn1d, nn.ReLU())
        self.head = _Head(c_in, output_shape)

    def forward(self, x: Tensor) -> Tensor:
        h: Tensor = self.features(self.to_image(x))  # (n, 4w, h, w')
        out: Tensor = self.head(self.fc(h.flatten(1)))  # (n, 4w·h·w') -> (n, 4w) -> (n, *output_shape)
        return out


@MODELS.register("vgg9")
def vgg9(
    input_shape: tuple[int, ...], output_shape: tuple[int, ...], *, width: int = 64, batchnorm: bool = True
) -> nn.Module:
    """VGG-9 of Li et al. (7 conv + 2 FC, BatchNorm); ``batchnorm = false`` gives the no-BN variant."""
    return VGG9(
        input_shape, output_shape, _check_int("vgg9", "width", width), _check_bool("vgg9", "batchnorm", batchnorm)
    )


# --- autoencoder ---------------------------------------------------------------------------


class Autoencoder(nn.Module):
    """A fully connected autoencoder: flatten -> encoder MLP -> linear code -> mirrored decoder.

    With hidden = [h1, ..., hk] the encoder is D -> h1 -> ... -> hk (the last, the code, is
    linear) and the decoder hk -> ... -> h1 -> D. Outputs are raw logits reshaped to
    ``output_shape``; BCE-with-logits losses apply the sigmoid.
    """

    def __init__(
        self, input_shape: tuple[int, ...], output_shape: tuple[int, ...], hidden: list[int], act: type[nn.Module]
    ) -> None:
        super().__init__()
        if not hidden:
            raise ModelError("model 'autoencoder': option 'hidden' needs at least one width (the code size)")
        self.output_shape = output_shape
        enc = _mlp_layers([math.prod(input_shape), *hidden], act, batchnorm=False, prefix="fc")
        # The code layer stays linear: drop the activation after the last encoder Linear.
        self.encoder = nn.Sequential(OrderedDict([("flatten", nn.Flatten()), *enc[:-1]]))
        dec = _mlp_layers(hidden[::-1], act, batchnorm=False, prefix="fc")
        self.decoder = nn.Sequential(OrderedDict([*dec, ("out", nn.Linear(hidden[0], math.prod(output_shape)))]))

    def forward(self, x: Tensor) -> Tensor:
        code = self.encoder(x)  # (n, hk)
        out: Tensor = self.decoder(code)  # (n, prod(output_shape)) logits
        return out.reshape(x.shape[0], *self.output_shape)


@MODELS.register("autoencoder")
def autoencoder(
    input_shape: tuple[int, ...],
    output_shape: tuple[int, ...],
    *,
    hidden: Sequence[int] = (64, 16),
    activation: str = "relu",
) -> nn.Module:
    """A fully connected autoencoder D -> 64 -> 16 -> 64 -> D by default (16-number code for 8×8 digits)."""
    widths = _check_int_list("autoencoder", "hidden", hidden)
    return Autoencoder(input_shape, output_shape, widths, _check_activation("autoencoder", activation))


# --- building and checking -----------------------------------------------------------------


def model_options(factory: ModelFactory) -> dict[str, object]:
    """The options a factory accepts and their defaults (its arguments other than the two shapes)."""
    params = inspect.signature(factory).parameters.values()
    return {p.name: p.default for p in params if p.name not in _SHAPE_ARGS and p.kind is not p.VAR_KEYWORD}


def _parameters(factory: Callable[..., object]) -> Mapping[str, inspect.Parameter] | None:
    try:
        return inspect.signature(factory).parameters
    except (TypeError, ValueError):  # some builtins and C callables have no signature: the call says what is wrong
        return None


def _call_user_factory(spec: str, factory: Callable[..., object], options: Mapping[str, object],
                       shapes: Mapping[str, tuple[int, ...]]) -> nn.Module:
    """``factory(**shapes, **options)`` of the user spec ``spec``; a failure, or anything but a module, is one error."""
    try:
        model = factory(**shapes, **options)
    except Exception as err:  # user code: any failure becomes one clear message
        raise ModelError(f"user model {spec!r} failed to build with options {dict(options)}: "
                         f"{type(err).__name__}: {err}") from err
    if not isinstance(model, nn.Module):
        raise ModelError(f"model {spec!r} must be a torch.nn.Module, got {type(model).__name__}")
    return model


def build_model(
    name: str,
    input_shape: Sequence[int],
    output_shape: Sequence[int],
    options: Mapping[str, object] | None = None,
) -> nn.Module:
    """Build a registered model or a user spec (``file.py:fn`` / ``pkg.mod:fn``) and check its output shape.

    A user factory is called with the shapes when its signature takes them, else with the options only.
    """
    in_shape, out_shape = tuple(int(s) for s in input_shape), tuple(int(s) for s in output_shape)
    opts = dict(options or {})
    if is_user_spec(name):
        user = load_callable(name)
        params = _parameters(user)
        takes_shapes = params is not None and (
            all(k in params for k in _SHAPE_ARGS) or any(p.kind is p.VAR_KEYWORD for p in params.values()))
        shapes = {"input_shape": in_shape, "output_shape": out_shape} if takes_shapes else {}
        model = _call_user_factory(name, user, opts, shapes)
    else:
        factory = MODELS.get(name)
        accepted = model_options(factory)
        unknown = [key for key in opts if key not in accepted]
        if unknown:
            known = ", ".join(sorted(accepted)) or "none"
            raise ModelError(f"model {name!r} has no option {unknown[0]!r}; accepted options: {known}")
        model = factory(in_shape, out_shape, **opts)
        if not isinstance(model, nn.Module):
            raise ModelError(f"model {name!r} must be a torch.nn.Module, got {type(model).__name__}")
    model = plain_module(model)  # a factory returning torch.compile(net): net (the same parameters)
    check_output_shape(model, in_shape, out_shape, name=name)
    return model


def build_unshaped_model(name: str, options: Mapping[str, object] | None = None) -> nn.Module:
    """Build a user factory ``file.py:fn`` for data that give no shapes (dict batches): called as
    ``fn(**options)``, so its ``input_shape``/``output_shape`` need defaults or values in the options.

    There is no output-shape check: only the batch loss knows what the model returns.
    """
    opts = dict(options or {})
    if not is_user_spec(name):
        raise ModelError(f"model {name!r} is built from the data's input and output shapes, which batches that are not "
                         "(inputs, targets) tuples do not give: name a factory file.py:fn that builds the model itself")
    factory = load_callable(name)
    params = _parameters(factory)
    missing = [] if params is None else [
        k for k, p in params.items() if k in _SHAPE_ARGS and k not in opts and p.default is p.empty
        and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if missing:
        raise ModelError(f"model factory {name!r} needs {' and '.join(missing)}, which batches that are not (inputs, targets) "
                         f"tuples do not give: give {'them' if len(missing) > 1 else 'it'} a default, or values in model.options")
    return plain_module(_call_user_factory(name, factory, opts, {}))


def check_output_shape(
    model: nn.Module, input_shape: Sequence[int], output_shape: Sequence[int], name: str | None = None
) -> None:
    """Run 2 zero samples through ``model`` in eval mode and check it returns (2, *output_shape).

    Each module's train/eval mode is restored afterwards, so the check never changes the model.
    """
    label = name or type(model).__name__
    ref = next(iter(model.parameters()), None)
    device = ref.device if ref is not None else torch.device("cpu")
    dtype = ref.dtype if ref is not None and ref.is_floating_point() else torch.float32
    x = torch.zeros((2, *input_shape), device=device, dtype=dtype)  # (2, *input_shape)
    want = (2, *output_shape)
    try:
        with eval_mode(model), torch.no_grad():
            out = model(x)
    except Exception as err:  # any failure of a forward pass on valid-shaped input is a shape misfit
        raise ModelError(f"model {label!r} fails on a batch of shape {tuple(x.shape)}: "
                         f"{type(err).__name__}: {err}") from err
    if not isinstance(out, Tensor):
        raise ModelError(f"model {label!r} must return a tensor, got {type(out).__name__}")
    if tuple(out.shape) != want:
        raise ModelError(f"model {label!r} returns shape {tuple(out.shape)} but the data/loss needs {want}")
