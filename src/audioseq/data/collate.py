"""Batching: the only place padding happens."""

from collections import Counter
from typing import NotRequired, TypedDict

import torch
from torch.utils.data import get_worker_info

from audioseq.data.example import Example
from audioseq.data.frame_labels import PAD
from audioseq.data.skipping import Skipped


class Batch(TypedDict):
    """``audio`` [B, T] float32, ``lengths`` [B] int64 valid samples, ``label`` [B] int64;
    ``key`` names each clip, ``skipped`` counts samples dropped from this batch by reason.
    Frame-labelled recordings add ``frame_labels`` [B, N] int64 (10 ms steps, -1 padded)."""

    audio: torch.Tensor
    lengths: torch.Tensor
    label: torch.Tensor
    key: list[str]
    skipped: dict[str, int]
    frame_labels: NotRequired[torch.Tensor]


def batch_buffer(rows: int, width: int) -> torch.Tensor:
    """An uninitialised [rows, width] float32 batch. In a loader worker it is allocated in
    shared memory, as torch's default_collate does: the batch then reaches the main
    process without being copied into shared memory on its way (a copy and a page fault
    per 4 KiB of audio, which made two workers cost twice the CPU of none per clip)."""
    if get_worker_info() is None:
        return torch.empty(rows, width, dtype=torch.float32)
    storage = torch.empty(0, dtype=torch.float32)._typed_storage()._new_shared(rows * width)
    return torch.empty(0, dtype=torch.float32).new(storage).view(rows, width)


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
    audio = batch_buffer(len(examples), width)
    for row, ex in enumerate(examples):
        length = ex.audio.shape[0]
        audio[row, :length] = ex.audio
        audio[row, length:] = 0.0
    labels = torch.tensor(
        [-1 if ex.label is None else ex.label for ex in examples], dtype=torch.int64
    )
    batch = Batch(
        audio=audio,
        lengths=lengths,
        label=labels,
        key=[ex.key for ex in examples],
        skipped=dict(skipped),
    )
    frames = [ex.frame_labels for ex in examples if ex.frame_labels is not None]
    if frames:
        batch["frame_labels"] = torch.nn.utils.rnn.pad_sequence(
            frames, batch_first=True, padding_value=PAD
        )
    return batch
