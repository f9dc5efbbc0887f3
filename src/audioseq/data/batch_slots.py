"""Batch buffers made once and reused: how a batch's audio crosses from a loader worker.

A batch collated in fresh shared memory costs its worker the first touch of every page,
and the training process the mapping, first read and unmapping of every page: about
11 ms of CPU per 4 MB batch on the development machine, three times what decoding its
64 clips costs the worker (docs/PERFORMANCE.md). Instead each worker owns a few buffers
in shared memory, made before the workers start. It collates into a free one and sends
the buffer's number in place of the audio. The loader hands the training process the
buffer itself as the batch's audio tensor, and the buffer is lent until the last view of
that tensor is dropped: only then may its worker collate into it again, so a batch that
a callback keeps is never overwritten (its worker uses its other buffers meanwhile).
"""

import multiprocessing
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
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


#: ``BatchSlots.claimed`` of a buffer whose batch the training process holds.
LENT = -1


class BatchSlots:
    """``per_worker`` buffers of up to ``rows * width`` float32 samples for each worker.

    A buffer is free (0), claimed by its worker for a loader generation (> 0), or lent
    to the training process (``LENT``) until the batch's last view is dropped. Every new
    loader iterator is a new generation: torch drops the batches still in flight from an
    abandoned epoch, so the buffers claimed for an older generation count as free, while
    lent ones stay lent. Every change of state happens under one lock, which also orders
    a buffer's writes and reads across the processes. A worker that finds no free buffer
    (or a batch larger than one) collates into fresh shared memory, so nothing waits on a
    buffer.
    """

    def __init__(self, workers: int, per_worker: int, rows: int, width: int) -> None:
        self.size = rows * width
        # Normal tensors even for a loader made under inference mode (Lightning's
        # evaluation loops): their states change outside it too.
        with torch.inference_mode(False):
            audio = shared_empty(workers * per_worker * self.size)
            self.audio = audio.view(workers, per_worker, -1)
            self.claimed = torch.zeros(workers, per_worker, dtype=torch.int64).share_memory_()
            self.generation = torch.ones(1, dtype=torch.int64).share_memory_()
        # Reentrant: a lent batch collected by the garbage collector, while this thread
        # already holds the lock, frees its buffer from inside the held section.
        self.lock = multiprocessing.RLock()

    def claim(self, worker: int, rows: int, width: int) -> tuple[torch.Tensor, SlotRef] | None:
        """A free buffer of ``worker`` shaped [rows, width] and the reference to send in
        its place; None when none is free or the batch does not fit."""
        if rows * width > self.size:
            return None
        with self.lock:
            generation = int(self.generation[0])
            states = self.claimed[worker]
            free = ((states == 0) | ((states > 0) & (states != generation))).nonzero()
            if len(free) == 0:
                return None
            slot = int(free[0, 0])
            self.claimed[worker, slot] = generation
        audio = self.audio[worker, slot, : rows * width].view(rows, width)
        return audio, SlotRef(worker, slot, generation, rows, width)

    def take(self, ref: SlotRef, pin_memory: bool = False) -> torch.Tensor:
        """In the training process: the audio ``ref`` points to, lent until its last view
        is dropped; or for a GPU copied into pinned memory, the buffer freed at once."""
        audio = self.audio[ref.worker, ref.slot, : ref.rows * ref.width]
        if pin_memory:
            pinned = torch.empty(ref.rows, ref.width, pin_memory=True)
            pinned.view(-1).copy_(audio)
            self.free(ref)
            return pinned
        with self.lock:
            self.claimed[ref.worker, ref.slot] = LENT
        lent = audio.numpy().view(_Lent)
        lent.lease = (self, ref)
        return torch.from_numpy(lent).view(ref.rows, ref.width)

    def free(self, ref: SlotRef) -> None:
        with self.lock:
            self.claimed[ref.worker, ref.slot] = 0

    def next_generation(self) -> None:
        """A new loader iterator starts (before torch drops the last one's batches)."""
        with self.lock:
            self.generation += 1


class _Lent(np.ndarray):
    """A lent buffer as numpy sees it: the batch's tensor holds it, and every view of the
    tensor holds the tensor's memory, so it is collected with the last of them."""

    lease: tuple[BatchSlots, SlotRef] | None = None  # only the array the loader made

    def __del__(self) -> None:
        if self.lease is not None:
            slots, ref = self.lease
            slots.free(ref)


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

    def close(self) -> None:
        """Stop the persistent workers now (the next ``iter()`` starts new ones). Left to
        the garbage collector, they stop in whichever thread it runs in, at times one of
        the loader's own queue threads, which then fails on pipes closed under it."""
        iterator, self._iterator = self._iterator, None
        if iterator is not None:
            iterator._shutdown_workers()  # what its __del__ does

    def _received(self, batches: Iterator[Any]) -> Iterator[Any]:
        pin = self.pin_memory and torch.accelerator.is_available()  # as torch's loader pins
        for batch in batches:
            if isinstance(batch, dict) and isinstance(batch.get("audio"), SlotRef):
                batch["audio"] = self.slots.take(batch["audio"], pin)
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
