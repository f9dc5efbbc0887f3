"""From examples to batches: crop, collate (the only place padding happens) and duration
bucketing (batches of clips of similar length, so little of a batch is padding)."""

import math
from collections import Counter
from collections.abc import Iterator, Sequence
from typing import Any, NotRequired, TypedDict

import numpy as np
import torch
from torch.utils.data import Sampler

from audioseq.data.batch_slots import SlotRef, batch_buffer
from audioseq.data.example import Example
from audioseq.data.frame_labels import PAD
from audioseq.data.partition import per_rank, rank_indices
from audioseq.data.skipping import Skipped


def crop(
    audio: torch.Tensor, num_samples: int, *, random: bool, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Cut a [T] waveform to at most ``num_samples``.

    Longer clips are cropped at a random offset (``random=True``, training) or around the
    centre (evaluation, so every epoch sees the same audio). Shorter clips are returned as
    they are: collate pads them and records their true length.
    """
    excess = audio.shape[0] - num_samples
    if excess <= 0:
        return audio
    start = int(torch.randint(0, excess + 1, (1,), generator=generator)) if random else excess // 2
    return audio[start : start + num_samples]


class Batch(TypedDict):
    """``audio`` [B, T] float32, ``lengths`` [B] int64 valid samples, ``label`` [B] int64;
    ``key`` names each clip, ``skipped`` counts samples dropped from this batch by reason.
    Frame-labelled recordings add ``frame_labels`` [B, N] int64 (10 ms steps, -1 padded).
    Between a loader worker and its loader, ``audio`` may be a reference to the worker's
    buffer instead (:mod:`audioseq.data.batch_slots`); a loader's batches hold tensors."""

    audio: torch.Tensor | SlotRef
    lengths: torch.Tensor
    label: torch.Tensor
    key: list[str]
    skipped: dict[str, int]
    frame_labels: NotRequired[torch.Tensor]


def as_is(item: Any) -> Any:
    """``collate_fn`` of a loader whose dataset yields finished batches (or items that need
    no collating): torch's default would walk every key, list and tensor of each, about
    0.3 ms a batch of 64 clips, to convert nothing."""
    return item


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
    audio, sent = batch_buffer(len(examples), width)
    if examples and int(lengths.min()) == width:  # clips cropped to one length: one call
        torch.stack([ex.audio for ex in examples], out=audio)
    else:  # row by row through numpy: a third of torch's indexing cost per row
        rows = audio.numpy()
        for row, ex in enumerate(examples):
            length = ex.audio.shape[0]
            rows[row, :length] = ex.audio.numpy()
            if length < width:  # an empty slice's assignment still costs a microsecond
                rows[row, length:] = 0.0
    labels = torch.tensor(
        [-1 if ex.label is None else ex.label for ex in examples], dtype=torch.int64
    )
    batch = Batch(
        audio=sent,
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


class DurationBucketSampler(Sampler[list[int]]):
    """A DDP-aware batch sampler that groups clips of similar duration.

    Clips are sorted into ``num_buckets`` duration quantiles; each epoch every bucket is
    shuffled (from ``seed`` and the epoch) and cut into batches; the full batches are
    shuffled and the partial ones (at most one per bucket) come last, as a shuffling
    DataLoader leaves its last batch. The ranks take the batches strided
    (:func:`~audioseq.data.partition.rank_indices`): in training the surplus batches
    (partial ones first) are dropped (``drop_last``), in evaluation the batch list wraps
    around so every clip is seen (a few twice). Clips without a declared duration share
    one bucket, so with ``num_buckets=1`` and no durations this is a plain seeded shuffle.
    """

    def __init__(
        self,
        durations: Sequence[float | None],
        batch_size: int,
        num_buckets: int = 10,
        shuffle: bool = True,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        drop_last: bool = True,
    ) -> None:
        self.batch_size, self.shuffle, self.seed = batch_size, shuffle, seed
        self.rank, self.world_size, self.drop_last = rank, world_size, drop_last
        self.epoch, self.start = 0, 0
        known = np.array([d if d is not None else np.nan for d in durations], dtype=float)
        edges = (
            np.nanquantile(known, np.linspace(0, 1, num_buckets + 1)[1:-1])
            if np.isfinite(known).any()
            else []
        )
        bucket_of = np.where(
            np.isnan(known), num_buckets, np.searchsorted(edges, known, side="right")
        )
        self.buckets = [np.flatnonzero(bucket_of == b) for b in range(num_buckets + 1)]
        self.buckets = [b for b in self.buckets if len(b)]

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """A new shuffle per epoch, leaving out its first ``start`` batches (those a
        resumed run had already trained on)."""
        self.epoch, self.start = epoch, start

    def _all_batches(self) -> list[list[int]]:
        rng = np.random.default_rng([self.seed, self.epoch])
        batches = []
        for bucket in self.buckets:
            order = rng.permutation(bucket) if self.shuffle else bucket
            batches += [
                order[i : i + self.batch_size].tolist()
                for i in range(0, len(order), self.batch_size)
            ]
        if self.shuffle:  # full batches in random order, then each bucket's partial one
            batches = [batches[i] for i in rng.permutation(len(batches))]
            batches.sort(key=lambda batch: len(batch) < self.batch_size)  # stable
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        batches = self._all_batches()
        mine = rank_indices(len(batches), self.rank, self.world_size, drop_last=self.drop_last)
        return iter([batches[i] for i in mine[self.start :]])

    def __len__(self) -> int:
        total = sum(math.ceil(len(b) / self.batch_size) for b in self.buckets)
        return per_rank(total, self.world_size, drop_last=self.drop_last)
