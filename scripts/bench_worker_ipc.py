"""What a batch costs only to cross from a loader worker to the main process (CPU ms/batch).

    python scripts/bench_worker_ipc.py [--mode batch|file_system|numpy|audio|slots|lent]
        [--batches 400] [--touch]

The dataset does no work but fill a [batch, samples] float32 batch allocated in shared
memory (as audioseq's collate does in a worker), so what is measured is the boundary
itself: shared-memory allocation and first touch in the worker, passing and mapping in the
main process. Modes: ``batch`` sends audio + lengths + label tensors (what the loader
sends), ``file_system`` the same under torch's file_system sharing strategy, ``numpy``
the small tensors as numpy arrays, ``audio`` the audio tensor alone, ``slots`` no audio
at all: each worker fills one of a few shared buffers made before the workers started and
sends its index (the lower bound of a design that recycles batch buffers; the main process
here never copies nor frees them), ``lent`` that design as audioseq's loaders have it
(``audioseq.data.batch_slots``: the buffer lent to the main process as the batch's audio
and freed with it). ``--touch``: the main process reads every batch's audio
(a sum), as a training step does, so its time includes faulting the shared pages in and
unmapping them when the batch is dropped. Prints one JSON line.
"""

import argparse
import json
import os
import time

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from audioseq.data.batch_slots import BatchSlots, SlotLoader, batch_buffer


def shared_batch(rows: int, width: int) -> torch.Tensor:
    storage = torch.empty(0)._typed_storage()._new_shared(rows * width)
    return torch.empty(0).new(storage).view(rows, width)


SLOTS = 4  # buffers per worker: more than the batches a worker can have in flight


class Filled(Dataset):
    """``length`` batches, each only written once in shared memory."""

    def __init__(self, mode: str, length: int, rows: int, width: int, workers: int) -> None:
        self.mode, self.length, self.rows, self.width = mode, length, rows, width
        self.slots = (
            torch.empty(workers, SLOTS, rows, width).share_memory_() if mode == "slots" else None
        )
        self.filled = 0

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        if self.mode == "lent":
            audio, sent = batch_buffer(self.rows, self.width)
            audio.fill_(1.0)
            head = {"audio": sent}
        elif self.slots is not None:  # the audio stays in a buffer the main process has
            worker, slot = get_worker_info().id, self.filled % SLOTS
            self.filled += 1
            self.slots[worker, slot].fill_(1.0)
            head = {"slot": torch.tensor([worker, slot])}
        else:
            head = {"audio": shared_batch(self.rows, self.width).fill_(1.0)}
            if self.mode == "audio":
                return head
        if self.mode == "numpy":
            lengths, labels = np.full(self.rows, self.width), np.zeros(self.rows, np.int64)
        else:
            lengths = torch.full((self.rows,), self.width)
            labels = torch.zeros(self.rows, dtype=torch.int64)
        return {**head, "lengths": lengths, "label": labels}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a live process, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--mode",
        choices=["batch", "file_system", "numpy", "audio", "slots", "lent"],
        default="batch",
    )
    parser.add_argument("--batches", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--samples", type=int, default=16000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--touch", action="store_true", help="read each batch's audio in main")
    args = parser.parse_args()
    if args.mode == "file_system":
        torch.multiprocessing.set_sharing_strategy("file_system")
    dataset = Filled(args.mode, args.batches, args.batch_size, args.samples, args.workers)
    lent = args.mode == "lent"
    slots = BatchSlots(args.workers, 6, args.batch_size, args.samples) if lent else None
    loader = SlotLoader(
        dataset, batch_size=None, num_workers=args.workers, persistent_workers=True, slots=slots
    )
    for _ in loader:  # start the workers; the second pass is measured
        pass
    workers = [w.pid for w in loader._iterator._workers]
    batches = iter(loader)
    main0, workers0, wall0 = time.process_time(), sum(map(cpu_seconds, workers)), time.time()
    count = 0
    for batch in batches:
        count += 1
        if args.touch:
            worker, slot = batch["slot"].tolist() if "slot" in batch else (None, None)
            audio = batch["audio"] if worker is None else dataset.slots[worker, slot]
            float(audio.sum())
    main_ms = 1000 * (time.process_time() - main0) / count
    workers_ms = 1000 * (sum(map(cpu_seconds, workers)) - workers0) / count
    print(json.dumps({
        "mode": args.mode,
        "touch": args.touch,
        "main_ms_per_batch": round(main_ms, 2),
        "workers_ms_per_batch": round(workers_ms, 2),
        "wall_ms_per_batch": round(1000 * (time.time() - wall0) / count, 2),
    }))  # fmt: skip


if __name__ == "__main__":
    main()
