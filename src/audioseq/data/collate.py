"""Batching: the only place padding happens."""

from collections import Counter
from typing import TypedDict

import torch

from audioseq.data.example import Example
from audioseq.data.skipping import Skipped


class Batch(TypedDict):
    """``audio`` [B, T] float32, ``lengths`` [B] int64 valid samples, ``label`` [B] int64;
    ``key`` names each clip, ``skipped`` counts samples dropped from this batch by reason."""

    audio: torch.Tensor
    lengths: torch.Tensor
    label: torch.Tensor
    key: list[str]
    skipped: dict[str, int]


def collate(items: list[Example | Skipped | None], pad_to: int | None = None) -> Batch:
    """Stack examples, zero-padding to ``pad_to`` (or the longest); no label becomes -1.

    Skipped markers (``on_error=skip``) are counted and left out, so a batch can be
    smaller than the batch size, even empty.
    """
    examples = [ex for ex in items if isinstance(ex, Example)]
    skipped = Counter(item.reason for item in items if isinstance(item, Skipped))
    lengths = torch.tensor([ex.audio.shape[0] for ex in examples], dtype=torch.int64)
    longest = int(lengths.max()) if examples else 0
    width = longest if pad_to is None else max(pad_to, longest)
    audio = torch.zeros(len(examples), width, dtype=torch.float32)
    for row, ex in enumerate(examples):
        audio[row, : ex.audio.shape[0]] = ex.audio
    labels = torch.tensor(
        [-1 if ex.label is None else ex.label for ex in examples], dtype=torch.int64
    )
    return Batch(
        audio=audio,
        lengths=lengths,
        label=labels,
        key=[ex.key for ex in examples],
        skipped=dict(skipped),
    )
