"""Batch buffers made once and reused: how a batch's audio crosses from a loader worker.

A batch collated in fresh shared memory costs its worker the first touch of every page,
and the training process the mapping, first read and unmapping of every page: about
11 ms of CPU per 4 MB batch on the development machine, three times what decoding its
64 clips costs the worker (docs/PERFORMANCE.md). Instead each worker owns a few buffers
in shared memory, made before the workers start. It collates into a free one and sends
the buffer's number in place of the audio. The loader copies the audio out in the
training process and frees the buffer before it hands the batch on, so no view of a
buffer ever leaves the loader, and a batch kept by a callback is never overwritten.
"""

import multiprocessing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, get_worker_info


@dataclass(frozen=True)
class SlotRef:
    """What crosses instead of a batch's audio: the worker's buffer that holds it, the
    loader iterator (generation) it was claimed for, and the audio's shape."""

    worker: int
    slot: int
    generation: int
    rows: int
    width: int


def shared_empty(count: int) -> torch.Tensor:
    """An uninitialised float32 vector in shared memory, its pages not yet touched
    (``share_memory_`` would copy an existing tensor's pages in)."""
    storage = torch.empty(0, dtype=torch.float32)._typed_storage()._new_shared(count)
    return torch.empty(0, dtype=torch.float32).new(storage)


class BatchSlots:
    """``per_worker`` buffers of up to ``rows * width`` float32 samples for each worker.

    A buffer is claimed by its worker for the current generation and freed by the loader
    once the audio is copied out. Every new loader iterator is a new generation: torch
    drops the batches still in flight from an abandoned epoch, so their buffers, claimed
    for an older generation, count as free. A claim, a free and a new generation each
    happen under one lock, which also orders the buffer's writes and reads across the
    processes. A worker that finds no free buffer (or a batch larger than one) collates
    into fresh shared memory as before, so nothing waits on a buffer.
    """

    def __init__(self, workers: int, per_worker: int, rows: int, width: int) -> None:
        self.size = rows * width
        self.audio = shared_empty(workers * per_worker * self.size).view(workers, per_worker, -1)
        self.claimed = torch.zeros(workers, per_worker, dtype=torch.int64).share_memory_()
        self.generation = torch.ones(1, dtype=torch.int64).share_memory_()
        self.lock = multiprocessing.Lock()

    def claim(self, worker: int, rows: int, width: int) -> tuple[torch.Tensor, SlotRef] | None:
        """A free buffer of ``worker`` shaped [rows, width] and the reference to send in
        its place; None when none is free or the batch does not fit."""
        if rows * width > self.size:
            return None
        with self.lock:
            generation = int(self.generation[0])
            free = (self.claimed[worker] != generation).nonzero()
            if len(free) == 0:
                return None
            slot = int(free[0, 0])
            self.claimed[worker, slot] = generation
        audio = self.audio[worker, slot, : rows * width].view(rows, width)
        return audio, SlotRef(worker, slot, generation, rows, width)

    def take(self, ref: SlotRef, pin_memory: bool = False) -> torch.Tensor:
        """In the training process: the audio ``ref`` points to, copied out (into pinned
        memory for a GPU), and its buffer freed."""
        audio = torch.empty(ref.rows, ref.width, pin_memory=pin_memory)
        audio.view(-1).copy_(self.audio[ref.worker, ref.slot, : ref.rows * ref.width])
        with self.lock:
            if int(self.claimed[ref.worker, ref.slot]) == ref.generation:
                self.claimed[ref.worker, ref.slot] = 0
        return audio

    def next_generation(self) -> None:
        """A new loader iterator starts (before torch drops the last one's batches)."""
        with self.lock:
            self.generation += 1


_installed: BatchSlots | None = None  # this worker's loader's buffers


def install(slots: BatchSlots | None) -> None:
    """In a loader worker (``worker_init_fn``): collate into ``slots`` from now on."""
    global _installed
    _installed = slots


def batch_buffer(rows: int, width: int) -> tuple[torch.Tensor, torch.Tensor | SlotRef]:
    """An uninitialised [rows, width] float32 batch to collate into, and what the batch
    sends as its audio: the tensor itself, or in a worker with buffers the reference.

    Without buffers, a worker's batch is still allocated in shared memory, as torch's
    default_collate does, so that it is not copied into shared memory on its way out."""
    info = get_worker_info()
    if info is None:
        audio = torch.empty(rows, width, dtype=torch.float32)
        return audio, audio
    claimed = None if _installed is None else _installed.claim(info.id, rows, width)
    if claimed is not None:
        return claimed
    audio = shared_empty(rows * width).view(rows, width)
    return audio, audio


class SlotLoader(DataLoader):
    """A DataLoader whose workers collate into ``slots``: it installs them in each worker
    (before the given ``worker_init_fn``) and puts each batch's audio back in place."""

    def __init__(
        self,
        *args: Any,
        slots: BatchSlots | None = None,
        worker_init_fn: Callable[[int], None] | None = None,
        **kwargs: Any,
    ) -> None:
        if slots is not None:
            worker_init_fn = _WorkerStart(slots, worker_init_fn)
        super().__init__(*args, worker_init_fn=worker_init_fn, **kwargs)
        self.slots = slots

    def __iter__(self) -> Iterator[Any]:
        if self.slots is None:
            return super().__iter__()
        self.slots.next_generation()
        return self._received(super().__iter__())

    def _received(self, batches: Iterator[Any]) -> Iterator[Any]:
        for batch in batches:
            if isinstance(batch, dict) and isinstance(batch.get("audio"), SlotRef):
                batch["audio"] = self.slots.take(batch["audio"], self.pin_memory)
            yield batch


@dataclass(frozen=True)
class _WorkerStart:
    """A worker's ``worker_init_fn``: the buffers installed, then the user's start-up
    (a picklable callable, for workers that are spawned rather than forked)."""

    slots: BatchSlots
    then: Callable[[int], None] | None

    def __call__(self, worker_id: int) -> None:
        install(self.slots)
        if self.then is not None:
            self.then(worker_id)
