"""Splitting an epoch's work between DDP ranks and DataLoader workers.

Policy: every rank gets the same number of samples, so every rank runs the same number of
batches and no collective operation can hang. Training drops the last ``size % world``
samples of the (reshuffled) epoch order; evaluation wraps around and repeats up to
``world - 1`` samples instead, like torch's DistributedSampler, so every sample is seen.
Workers of one rank then take whole batches in turn, which keeps the batch order of a rank
independent of the number of workers.
"""

import math

import torch


def rank_indices(size: int, rank: int, world_size: int, *, drop_last: bool) -> list[int]:
    """The positions (into an epoch order of ``size`` items) that ``rank`` handles."""
    if drop_last:
        per_rank = size // world_size
        return list(range(rank, per_rank * world_size, world_size))
    per_rank = math.ceil(size / world_size)
    return [(rank + world_size * i) % size for i in range(per_rank)] if size else []


def batches(positions: list[int], batch_size: int) -> list[list[int]]:
    """Consecutive batches of ``batch_size`` (the last one may be shorter)."""
    return [positions[i : i + batch_size] for i in range(0, len(positions), batch_size)]


def worker_share(items: list, worker: int | None = None, num_workers: int | None = None) -> list:
    """The items this DataLoader worker handles: every ``num_workers``-th, from its id."""
    if worker is None:
        info = torch.utils.data.get_worker_info()
        worker, num_workers = (0, 1) if info is None else (info.id, info.num_workers)
    return items[worker::num_workers]


def resumed_workers(counts: list[int], consumed: int) -> tuple[list[int], int]:
    """Where each of a loader's workers (``counts[w]`` batches each) stood once the loader
    had yielded ``consumed`` batches: how many each had delivered, and whose turn was next.

    A DataLoader takes the next batch from its workers in turn (0, 1, ..., 0, 1, ...),
    passing over those that have run out; a resumed loader starts again at worker 0, so
    its worker ``p`` must continue the work of worker ``(p + next) % len(counts)``.
    """
    taken, turn = [0] * len(counts), 0
    while consumed > 0 and taken != counts:
        if taken[turn] < counts[turn]:
            taken[turn] += 1
            consumed -= 1
        turn = (turn + 1) % len(counts)
    return taken, turn
