"""A tiny character-level language-modelling corpus shipped with the package (no download).

``gettysburg.txt`` is Lincoln's Gettysburg Address (1863, public domain), about 1.5 kB: enough
to train a two-layer transformer for a few steps on a CPU and to draw its loss landscape. The
tokenizer is one id per distinct character, ids in sorted character order, so the same text
always gives the same ids.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import torch
from torch import Tensor

from landscape.errors import DataError

TEXTS = ("gettysburg",)


def load_text(name: str = "gettysburg") -> str:
    """The text of a shipped corpus by name (one of :data:`TEXTS`)."""
    if name not in TEXTS:
        raise DataError(f"unknown text {name!r}; choose {', '.join(TEXTS)}")
    return resources.files("landscape").joinpath(f"zoo/data_files/{name}.txt").read_text(encoding="utf-8")


@dataclass(frozen=True)
class CharVocab:
    """Character-level tokenizer: ``chars[i]`` is token ``i``."""

    chars: str

    @classmethod
    def of(cls, text: str) -> CharVocab:
        return cls("".join(sorted(set(text))))

    @property
    def size(self) -> int:
        return len(self.chars)

    def encode(self, text: str) -> Tensor:
        """(len(text),) int64 token ids; a character outside the vocabulary is a :class:`DataError`."""
        index = {c: i for i, c in enumerate(self.chars)}
        unknown = sorted({c for c in text if c not in index})
        if unknown:
            raise DataError(f"characters {''.join(unknown)!r} are not in the vocabulary")
        return torch.tensor([index[c] for c in text], dtype=torch.int64)

    def decode(self, ids: Tensor) -> str:
        return "".join(self.chars[int(i)] for i in ids.reshape(-1))


def lm_batches(ids: Tensor, block: int, batch_size: int) -> list[dict[str, Tensor]]:
    """Consecutive non-overlapping windows of ``block`` tokens as causal-LM dict batches.

    Each batch is ``{"input_ids": (b, block), "labels": (b, block)}`` with ``labels`` equal to
    ``input_ids`` (a HuggingFace causal LM shifts them itself); every batch holds ``batch_size``
    windows except perhaps the last. The tail shorter than ``block`` is dropped.
    """
    if block < 2 or batch_size < 1:
        raise DataError(f"block must be ≥ 2 and batch_size ≥ 1, got block={block}, batch_size={batch_size}")
    rows = ids.numel() // block
    if rows == 0:
        raise DataError(f"{ids.numel()} tokens do not fill one window of {block}")
    windows = ids[: rows * block].reshape(rows, block)  # (rows, block)
    return [{"input_ids": w, "labels": w.clone()} for w in torch.split(windows, batch_size)]
