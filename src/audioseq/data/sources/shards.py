"""``data=shards``: WebDataset-format tar shards, streamed and batched in the workers.

A sample is ``KEY.wav`` (or ``.flac``) plus ``KEY.json`` with at least ``label`` and
``duration``; ``scripts/make_shards.py`` writes them with an ``index.json`` whose counts
fix each epoch's length up front. A long recording for task=detect has ``events`` instead
of a label (from a manifest's lines): the index's classes then include the background,
class 0, and each recording gets frame labels from its events, uncropped.

Rank/worker policy (the contiguous layout of :mod:`audioseq.data.partition`): the
epoch's shard order (reshuffled each training epoch from ``(seed, epoch)``) is one long
sequence of samples; each rank owns a contiguous ``1/R`` of it and each DataLoader worker
a contiguous block of whole batches of its rank's share. So every rank yields the same
number of batches, always: with uneven shards, fewer shards than ranks x workers, skipped
samples, truncated shards.

A run resumed in the middle of an epoch leaves out the batches it had trained on: each
worker skips the ones it had delivered (the loader takes them from its workers in turn,
and the resumed loader's workers take over the blocks in the order their turns come),
reading but not decoding them without bucketing, so its shuffle buffer, and every later
batch, are those of the uninterrupted run. Each training clip's augmentation and crop
draw from its own generator, seeded from (seed, epoch, shard, member).

Within a worker, a shuffle buffer of ``shuffle_buffer`` samples (training; reseeded from
``(seed, epoch, rank, worker)``) mixes samples across shards, and with ``bucketing`` a
buffer of ``sort_buffer_batches`` batches is sorted by length before it is cut into batches.
Bad data follows ``on_error``: each bad sample (or each sample a truncated shard lost)
raises a DataError naming the shard and member, or becomes a counted Skipped marker.
"""

import os
import random
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import islice

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info
from webdataset.filters import shuffle

from audioseq.allocator import trim_heap
from audioseq.config_schema import check_all
from audioseq.data.batching import Batch, collate
from audioseq.data.example import Example
from audioseq.data.frame_labels import BACKGROUND
from audioseq.data.partition import batches_per_rank, resumed_workers, worker_span
from audioseq.data.shards.index import ShardInfo, resolve_shards
from audioseq.data.shards.plan import segments
from audioseq.data.shards.storage import ShardReader
from audioseq.data.skipping import Skipped
from audioseq.data.sources.shard_samples import Item, ShardSamples
from audioseq.data.spec import LoaderSpec
from audioseq.errors import ConfigError, DataError


class ShardBatches(IterableDataset):
    """One split's shards, read by this rank's workers and yielded as collated batches.

    ``len()`` is the batch count of every rank (fixed by the index counts); the epoch,
    and the batches of it to leave out, are kept in shared memory so persistent workers
    see ``set_epoch``. Batches depend on the number of workers (each reads its own block).
    """

    batches_depend_on_workers = True

    def __init__(
        self,
        shards: list[ShardInfo],
        label_index: dict[str, int],
        spec: LoaderSpec,
        reader: ShardReader,
        shuffle_buffer: int = 1000,
        bucket_batches: int | None = None,
    ) -> None:
        self.urls = [s.url for s in shards]
        self.counts = [s.count for s in shards]
        self.offsets = [s.offsets for s in shards]
        self.tables = [s.samples for s in shards]
        self.total = sum(self.counts)
        self.spec, self.reader = spec, reader
        self.shuffle_buffer, self.bucket_batches = shuffle_buffer, bucket_batches
        self.samples = ShardSamples(label_index, spec)
        self._position = torch.zeros(2, dtype=torch.int64).share_memory_()

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        self._position[:] = torch.tensor([epoch, start])

    def __len__(self) -> int:
        spec = self.spec
        return batches_per_rank(self.total, spec.world_size, spec.batch_size, train=spec.train)

    def batch_width(self) -> int | None:
        """The widest batch's samples: the crop (None without one: the index holds no
        durations)."""
        return self.samples.pipeline.clip_samples

    def shard_order(self, epoch: int) -> list[int]:
        """The epoch's shard sequence, the same on every rank: reshuffled in training."""
        if not self.spec.train:
            return list(range(len(self.urls)))
        rng = np.random.default_rng([self.spec.seed, 7919, epoch])
        return [int(i) for i in rng.permutation(len(self.urls))]

    def __iter__(self) -> Iterator[Batch]:
        info = get_worker_info()
        process, num_workers = (0, 1) if info is None else (info.id, info.num_workers)
        spec, bs = self.spec, self.spec.batch_size
        epoch, resumed = (int(v) for v in self._position)
        spans = [
            worker_span(
                self.total, spec.rank, spec.world_size, bs, w, num_workers, train=spec.train
            )
            for w in range(num_workers)
        ]
        taken, turn = resumed_workers([-(-(b - a) // bs) for a, b in spans], resumed)
        worker = (process + turn) % num_workers  # the block this process reads
        done, (start, stop) = taken[worker], spans[worker]
        rng = random.Random(f"{spec.seed}/{epoch}/{spec.rank}/{worker}")
        raw = self._raw(segments(self.counts, self.shard_order(epoch), start, stop))
        if spec.train and self.shuffle_buffer > 1:
            raw = shuffle(self.shuffle_buffer, self.shuffle_buffer, rng=rng)(raw)
        if not self.bucket_batches:  # a batch is bs slots: skip those undecoded
            raw, done = islice(raw, done * bs, None), 0
        items = (self.samples.item(sample, epoch) for sample in raw)
        for n, group in enumerate(islice(self._groups(items, rng), done, None), 1):
            yield collate(group, pad_to=self.samples.pipeline.clip_samples)
            if n % TRIM_EVERY_BATCHES == 0:
                trim_heap()

    def _raw(self, parts: list[tuple[int, int, int]]) -> Iterator[dict | Skipped]:
        """Raw samples of this worker's ranges, one per slot (lost ones as Skipped)."""
        for shard, first, end in parts:
            url = self.urls[shard]
            read = self.reader.samples(url, first, end, self.offsets[shard], self.tables[shard])
            for member, sample in read:
                if isinstance(sample, DataError):
                    yield self.samples.policy(sample, url, url)
                else:
                    sample["__clip__"] = (shard, member)
                    yield sample

    def _groups(self, items: Iterable[Item], rng: random.Random) -> Iterator[list[Item]]:
        """Batches of ``batch_size`` slots (only the last may be short, so a worker yields
        ``ceil(slots / bs)``). With bucketing, a buffer of ``bucket_batches`` batches is
        sorted by clip length before it is cut, and its batches are shuffled."""
        bs, buffer = self.spec.batch_size, []
        span = bs * (self.bucket_batches or 1)
        for item in items:
            buffer.append(item)
            if len(buffer) == span:
                yield from self._cut(buffer, rng)
                buffer = []
        if buffer:
            yield from self._cut(buffer, rng)

    def _cut(self, buffer: list[Item], rng: random.Random) -> Iterator[list[Item]]:
        bs = self.spec.batch_size
        if self.bucket_batches:
            buffer = sorted(buffer, key=lambda x: x.audio.shape[0] if isinstance(x, Example) else 0)
        groups = [buffer[i : i + bs] for i in range(0, len(buffer), bs)]
        if self.bucket_batches and self.spec.train:
            rng.shuffle(groups)
        yield from groups


#: Batches between two looks at the heap's free memory (``trim_heap``).
TRIM_EVERY_BATCHES = 16


@dataclass
class ShardSource:
    """Train/val/test shard sets (folder or URL with ``index.json``, brace pattern, list).

    ``labels``: null = the train split's (from its index); a list fixes their order.
    """

    train_shards: str | list[str] | None = None
    val_shards: str | list[str] | None = None
    test_shards: str | list[str] | None = None
    labels: list[str] | None = None
    shuffle_buffer: int = 1000
    timeout_seconds: float = 30.0
    retries: int = 3
    bucketing: bool = False
    sort_buffer_batches: int = 10  # with bucketing: batches sorted by length together

    def __post_init__(self) -> None:
        if not self.train_shards:
            raise ConfigError("data.train_shards is required for data=shards")
        keys = ("shuffle_buffer", "sort_buffer_batches", "retries", "timeout_seconds")
        check_all("data", **{key: getattr(self, key) for key in keys})
        self.reader = ShardReader(self.timeout_seconds, self.retries)
        self._shards: dict[str, list[ShardInfo]] = {}
        seen: list[str] = []
        for split in ("train", "val", "test"):
            spec = getattr(self, f"{split}_shards")
            if spec:
                self._shards[split], labels = resolve_shards(_plain(spec), self.reader)
                seen = seen or labels
        if self.labels is None and BACKGROUND in seen:  # recordings with events: class 0
            seen = [BACKGROUND, *(label for label in seen if label != BACKGROUND)]
        self.labels = [str(label) for label in (seen if self.labels is None else self.labels)]
        if not self.labels:
            raise ConfigError("data=shards: no labels in the index; set data.labels")

    @property
    def skipped(self) -> Counter:
        """Nothing is dropped at set-up: bad samples are found (and counted) as they stream."""
        return Counter()

    def dataset(self, split: str, spec: LoaderSpec) -> ShardBatches | None:
        shards = self._shards.get(split)
        if shards is None:
            return None
        return ShardBatches(
            shards,
            {name: i for i, name in enumerate(self.labels)},
            spec,
            self.reader,
            shuffle_buffer=self.shuffle_buffer,
            bucket_batches=self.sort_buffer_batches if self.bucketing else None,
        )


def _plain(spec: object) -> str | list[str]:
    """A plain str or list of str (Hydra hands lists over as ListConfig; tests, Paths)."""
    if isinstance(spec, str | os.PathLike):
        return str(spec)
    return [str(item) for item in spec]  # type: ignore[union-attr]
