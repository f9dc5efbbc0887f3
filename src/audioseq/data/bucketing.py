"""Duration bucketing: batches of clips of similar length, so little of a batch is padding."""

import math
from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler


class DurationBucketSampler(Sampler[list[int]]):
    """A DDP-aware batch sampler that groups clips of similar duration.

    Clips are sorted into ``num_buckets`` duration quantiles; each epoch every bucket is
    shuffled (from ``seed`` and the epoch) and cut into batches; the full batches are
    shuffled and the partial ones (at most one per bucket) come last, as a shuffling
    DataLoader leaves its last batch. Every rank gets the same number of batches: in
    training the surplus batches (partial ones first) are dropped (``drop_last``), in
    evaluation the batch list wraps around so every clip is seen (a few twice). Clips
    without a declared duration share one bucket, so with ``num_buckets=1`` and no
    durations this is a plain seeded shuffle.
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
        per_rank = len(self)
        picked = (
            [
                batches[(self.rank + self.world_size * i) % len(batches)]
                for i in range(self.start, per_rank)
            ]
            if batches
            else []
        )
        return iter(picked)

    def __len__(self) -> int:
        total = sum(math.ceil(len(b) / self.batch_size) for b in self.buckets)
        return total // self.world_size if self.drop_last else math.ceil(total / self.world_size)
