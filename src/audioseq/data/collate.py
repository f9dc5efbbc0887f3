"""Batching: the only place padding happens."""

from typing import TypedDict

import torch

from audioseq.data.example import Example


class Batch(TypedDict):
    """``audio`` [B, T] float32, ``lengths`` [B] int64 valid samples, ``label`` [B] int64."""

    audio: torch.Tensor
    lengths: torch.Tensor
    label: torch.Tensor
    key: list[str]


def collate(examples: list[Example | None], pad_to: int | None = None) -> Batch:
    """Stack examples, zero-padding to ``pad_to`` (or the longest); no label becomes -1.

    ``None`` entries (samples a source skipped with ``on_error=skip``) are dropped.
    """
    examples = [ex for ex in examples if ex is not None]
    lengths = torch.tensor([ex.audio.shape[0] for ex in examples], dtype=torch.int64)
    longest = int(lengths.max()) if examples else 0  # every sample skipped: an empty batch
    width = longest if pad_to is None else max(pad_to, longest)
    audio = torch.zeros(len(examples), width, dtype=torch.float32)
    for row, ex in enumerate(examples):
        audio[row, : ex.audio.shape[0]] = ex.audio
    labels = torch.tensor(
        [-1 if ex.label is None else ex.label for ex in examples], dtype=torch.int64
    )
    return Batch(audio=audio, lengths=lengths, label=labels, key=[ex.key for ex in examples])
