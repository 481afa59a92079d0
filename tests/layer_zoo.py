"""A zoo of real layer types, built from configs with random weights (nothing is downloaded).

Each entry builds the same model for the same seed (so a test can build a second, independent
instance for its float64 hand loop), gives a small batch of data and a per-sample loss
``loss(model, (inputs, targets))`` that works in any float dtype, and names a ``params`` glob
for the subset tests. ``named`` entries return a tensor and are also drawn with the registry
loss ``named`` (the surface engine's fast path); the others only with their callable loss.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm, weight_norm

Batch = tuple[Tensor, Tensor]


@dataclass(frozen=True)
class Entry:
    name: str
    build: Callable[[], nn.Module]
    data: Callable[[], Batch]
    loss: Callable[[nn.Module, Batch], Tensor]
    params: str  # a glob choosing a subset of the tensors
    named: str = ""  # a registry loss for models that return a tensor ("" : callable only)
    rtol: float = 2e-5  # against the float64 hand loop
    needs: str = ""  # an optional package the entry imports (skipped without it)


def _ce(model: nn.Module, batch: Batch) -> Tensor:
    x, y = batch
    return F.cross_entropy(model(x).double(), y, reduction="none")


def _mse(model: nn.Module, batch: Batch) -> Tensor:
    x, y = batch
    return ((model(x).double() - y.double()) ** 2).flatten(1).mean(1)


def _seeded(make: Callable[[], nn.Module], seed: int = 0) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        torch.manual_seed(seed)
        return make().eval()
    return build


def _images(c: int, hw: int, classes: int, n: int = 6, dtype: torch.dtype = torch.float32) -> Callable[[], Batch]:
    def data() -> Batch:
        g = torch.Generator().manual_seed(1)
        return torch.randn(n, c, hw, hw, generator=g).to(dtype), torch.randint(0, classes, (n,), generator=g)
    return data


# --- a ResNet-18 in torchvision's layout (names conv1, bn1, layer1.0.conv1, ..., downsample.0, fc) ---


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                           if stride != 1 or cin != cout else None)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + (x if self.downsample is None else self.downsample(x)))


class ResNet18(nn.Module):
    def __init__(self, width: int = 4, classes: int = 5) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        widths = [width, 2 * width, 4 * width, 8 * width]
        cin = width
        for i, w in enumerate(widths):
            stride = 1 if i == 0 else 2
            setattr(self, f"layer{i + 1}", nn.Sequential(BasicBlock(cin, w, stride), BasicBlock(w, w, 1)))
            cin = w
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(cin, classes)
        for m in self.modules():  # non-trivial BatchNorm statistics, as a trained model has
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 1.5)

    def forward(self, x: Tensor) -> Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# --- convolutions of other kinds ---------------------------------------------------------------------------


def _autoencoder() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, groups=2), nn.ReLU(),
        nn.ConvTranspose2d(8, 6, 4, stride=2, padding=1, groups=2), nn.ReLU(),
        nn.ConvTranspose2d(6, 3, 3, padding=1))


def _reconstruction() -> Batch:
    x = _images(3, 8, 2)()[0]
    return x, x.clone()


def _separable() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 12, 3, padding=1, groups=3), nn.Conv2d(12, 16, 1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 4))


class ConvTranspose13(nn.Module):
    """ConvTranspose1d and ConvTranspose3d with groups, and a Conv1d and Conv3d."""

    def __init__(self) -> None:
        super().__init__()
        self.t1 = nn.ConvTranspose1d(4, 6, 3, groups=2)
        self.c1 = nn.Conv1d(6, 4, 3, groups=2)
        self.t3 = nn.ConvTranspose3d(2, 4, 2, groups=2)
        self.c3 = nn.Conv3d(4, 3, 2)
        self.head = nn.Linear(4 + 3, 3)

    def forward(self, x: Tensor) -> Tensor:
        a = self.c1(torch.relu(self.t1(x.flatten(2)[:, :4, :5]))).mean(-1)
        b = self.c3(torch.relu(self.t3(x[:, :2, :2, :2].unsqueeze(2)))).flatten(2).mean(-1)
        return self.head(torch.cat([a, b], 1))


# --- attention and recurrent layers ------------------------------------------------------------------------


class Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inp = nn.Linear(3, 8)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True, add_bias_kv=True)
        self.cross = nn.MultiheadAttention(8, 2, kdim=5, vdim=6, batch_first=True)
        self.head = nn.Linear(8, 3)

    def forward(self, x: Tensor) -> Tensor:
        h = self.inp(x)  # (n, T, 8)
        h, _ = self.attn(h, h, h, need_weights=False)
        h, _ = self.cross(h, x[..., :1].expand(-1, -1, 5), x[..., :1].expand(-1, -1, 6), need_weights=False)
        return self.head(h.mean(1))  # type: ignore[no-any-return]


class Recurrent(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lstm = nn.LSTM(3, 6, num_layers=2, batch_first=True, bidirectional=True, proj_size=4)
        self.gru = nn.GRU(8, 5, batch_first=True)
        self.head = nn.Linear(5, 3)

    def forward(self, x: Tensor) -> Tensor:
        h, _ = self.lstm(x)
        h, _ = self.gru(h)
        return self.head(h[:, -1])  # type: ignore[no-any-return]


class Tokens(nn.Module):
    """Embedding, EmbeddingBag and Bilinear on token ids."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(20, 6)
        self.bag = nn.EmbeddingBag(20, 5, mode="mean")
        self.bil = nn.Bilinear(6, 5, 4)
        self.head = nn.Linear(4, 3)

    def forward(self, ids: Tensor) -> Tensor:
        return self.head(torch.tanh(self.bil(self.emb(ids).mean(1), self.bag(ids))))  # type: ignore[no-any-return]


def _sequences() -> Batch:
    g = torch.Generator().manual_seed(1)
    return torch.randn(6, 5, 3, generator=g), torch.randint(0, 3, (6,), generator=g)


# --- parametrized weights --------------------------------------------------------------------------------------


class Symmetric(nn.Module):
    """A user's parametrization: the weight is the symmetric part of its original."""

    def forward(self, w: Tensor) -> Tensor:
        return w.triu() + w.triu(1).transpose(0, 1)


def _parametrized() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(weight_norm(nn.Conv2d(3, 16, 3)), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(),
                        spectral_norm(nn.Linear(64, 10)), nn.ReLU(), nn.Linear(10, 10), nn.ReLU(), nn.Linear(10, 4))
    parametrize.register_parametrization(net[6], "weight", Symmetric())
    return net


# --- transformers -------------------------------------------------------------------------------------------------


def _gpt2() -> nn.Module:
    from transformers import GPT2Config, GPT2LMHeadModel

    cfg = GPT2Config(vocab_size=40, n_positions=8, n_embd=16, n_layer=2, n_head=2, resid_pdrop=0.0, embd_pdrop=0.0,
                     attn_pdrop=0.0)
    return GPT2LMHeadModel(cfg)


def _tokens(vocab: int, classes: int = 0) -> Callable[[], Batch]:
    def data() -> Batch:
        g = torch.Generator().manual_seed(1)
        ids = torch.randint(0, vocab, (4, 8), generator=g)
        return ids, (torch.randint(0, classes, (4,), generator=g) if classes else ids)
    return data


def _lm_loss(model: nn.Module, batch: Batch) -> Tensor:
    ids, _ = batch
    logits = model(input_ids=ids).logits.double()
    return F.cross_entropy(logits[:, :-1].transpose(1, 2), ids[:, 1:], reduction="none").mean(1)


def _bert() -> nn.Module:
    from transformers import BertConfig, BertForSequenceClassification

    cfg = BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24,
                     max_position_embeddings=8, num_labels=3, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return BertForSequenceClassification(cfg)


def _vit() -> nn.Module:
    from transformers import ViTConfig, ViTForImageClassification

    cfg = ViTConfig(image_size=8, patch_size=4, num_channels=3, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=24, num_labels=3, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    return ViTForImageClassification(cfg)


def _logits_loss(model: nn.Module, batch: Batch) -> Tensor:
    x, y = batch
    kw = {"input_ids": x} if not x.is_floating_point() else {"pixel_values": x}
    return F.cross_entropy(model(**kw).logits.double(), y, reduction="none")


# --- LoRA ---------------------------------------------------------------------------------------------------------


class Mlp(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(6, 8)
        self.fc2 = nn.Linear(8, 3)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(torch.tanh(self.fc1(x)))  # type: ignore[no-any-return]


def lora(fresh: bool) -> nn.Module:
    """``Mlp`` with peft LoRA adapters (r = 2) on fc1 and fc2; ``fresh``: B = 0, as peft initializes them."""
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    model = get_peft_model(Mlp(), LoraConfig(r=2, lora_alpha=4, target_modules=["fc1", "fc2"], init_lora_weights=True))
    if not fresh:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.normal_(0.0, 0.3)
    return model.eval()


def _vectors() -> Batch:
    g = torch.Generator().manual_seed(1)
    return torch.randn(8, 6, generator=g), torch.randint(0, 3, (8,), generator=g)


def _cnn(dtype: torch.dtype) -> Callable[[], nn.Module]:
    def make() -> nn.Module:
        return nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), nn.Flatten(), nn.Linear(6 * 6 * 6, 4)).to(dtype)
    return make


ZOO: list[Entry] = [
    Entry("resnet18", _seeded(ResNet18), _images(3, 16, 5), _ce, "layer3.*", named="cross_entropy"),
    Entry("autoencoder", _seeded(_autoencoder), _reconstruction, _mse, "4.*", named="mse"),
    Entry("separable", _seeded(_separable), _images(3, 6, 4), _ce, "0.*", named="cross_entropy"),
    Entry("transposed_1d_3d", _seeded(ConvTranspose13), _images(6, 5, 3), _ce, "t*", named="cross_entropy"),
    Entry("attention", _seeded(Attention), _sequences, _ce, "attn.*", named="cross_entropy"),
    Entry("lstm", _seeded(Recurrent), _sequences, _ce, "lstm.*", named="cross_entropy"),
    Entry("embeddings_bilinear", _seeded(Tokens), _tokens(20, 3), _ce, "b*", named="cross_entropy"),
    Entry("parametrized", _seeded(_parametrized), _images(3, 6, 4), _ce, "0.*", named="cross_entropy"),
    Entry("gpt2", _seeded(_gpt2), _tokens(40), _lm_loss, "*.mlp.*", needs="transformers"),
    Entry("bert", _seeded(_bert), _tokens(40, 3), _logits_loss, "bert.encoder.layer.1.*", needs="transformers"),
    Entry("vit", _seeded(_vit), _images(3, 8, 3, n=4), _logits_loss, "vit.layers.1.*", needs="transformers"),
    Entry("lora", lambda: lora(fresh=False), _vectors, _ce, "*lora_*", named="cross_entropy", needs="peft"),
    Entry("bfloat16", _seeded(_cnn(torch.bfloat16)), _images(3, 8, 4, dtype=torch.bfloat16), _ce, "3.*",
          named="cross_entropy", rtol=3e-2),
    Entry("float64", _seeded(_cnn(torch.float64)), _images(3, 8, 4, dtype=torch.float64), _ce, "0.*",
          named="cross_entropy", rtol=1e-9),
]
