"""Which items of an epoch each DDP rank and DataLoader worker takes: every loader asks here.

Every rank runs the same number of batches, so no collective operation can hang. Two
layouts, one per way of reading (tests/test_partition.py checks both over grids):

- **Strided** (``rank_indices``, then ``batches`` and ``worker_share``): rank ``r`` of
  ``R`` takes positions ``r, r + R, r + 2R, ...`` of the epoch order, for items that cost
  the same wherever they sit (synthetic clips, map-style clips, a bucket sampler's
  batches). Every rank gets ``per_rank`` items: training drops the last ``size % R`` of
  the (reshuffled) order; evaluation wraps around and repeats up to ``R - 1`` instead,
  like torch's DistributedSampler, so every item is seen. Workers of one rank then take
  whole batches in turn, which keeps a rank's batch order independent of the workers.
- **Contiguous** (``rank_span``, ``worker_span``): for tar shards, which are read front
  to back, so each reader wants one unbroken range of the epoch's sequence of ``N``
  samples. Rank ``r`` owns ``[r*N//R, (r+1)*N//R)`` (ranks differ by at most one
  sample, whatever the shard sizes); every rank yields ``batches_per_rank`` batches, the
  fewest any rank needs in training (a rank with a sample more stops before it, so at
  most ``R - 1`` samples are left out, as with ``drop_last``) and the most in evaluation
  (a rank one sample short reads the next sample of the sequence, wrapping at its end, so
  at most ``R - 1`` are read twice). With ``N`` a multiple of ``R``, or ``N // R`` not a
  multiple of the batch size, each sample is read exactly once. A rank's batches are cut
  into one contiguous block per worker, so the batch count does not depend on the
  workers (workers beyond it stay idle).
"""

import math

import torch


def per_rank(size: int, world_size: int, *, drop_last: bool) -> int:
    """How many of ``size`` items every rank takes: the fewest any rank owns when the
    remainder is dropped, the most when it is topped up."""
    return size // world_size if drop_last else math.ceil(size / world_size)


def rank_indices(size: int, rank: int, world_size: int, *, drop_last: bool) -> list[int]:
    """The positions (into an epoch order of ``size`` items) that ``rank`` handles."""
    count = per_rank(size, world_size, drop_last=drop_last)
    return [(rank + world_size * i) % size for i in range(count)] if size else []


def batches(positions: list[int], batch_size: int) -> list[list[int]]:
    """Consecutive batches of ``batch_size`` (the last one may be shorter)."""
    return [positions[i : i + batch_size] for i in range(0, len(positions), batch_size)]


def worker_share(items: list, worker: int | None = None, num_workers: int | None = None) -> list:
    """The items this DataLoader worker handles: every ``num_workers``-th, from its id."""
    if worker is None:
        info = torch.utils.data.get_worker_info()
        worker, num_workers = (0, 1) if info is None else (info.id, info.num_workers)
    return items[worker::num_workers]


def rank_span(total: int, rank: int, world_size: int) -> tuple[int, int]:
    """The positions ``[start, stop)`` of the epoch's sequence that ``rank`` owns."""
    return rank * total // world_size, (rank + 1) * total // world_size


def batches_per_rank(total: int, world_size: int, batch_size: int, *, train: bool) -> int:
    """The contiguous layout's batch count: the fewest any rank needs in training, the
    most in evaluation."""
    return math.ceil(per_rank(total, world_size, drop_last=train) / batch_size)


def rank_items(total: int, rank: int, world_size: int, batch_size: int, *, train: bool) -> int:
    """How many positions ``rank`` reads: its own, cut to ``batches_per_rank`` batches or
    topped up to fill the last one with a single sample."""
    count = batches_per_rank(total, world_size, batch_size, train=train)
    if count == 0:
        return 0
    start, stop = rank_span(total, rank, world_size)
    return min(max(stop - start, (count - 1) * batch_size + 1), count * batch_size)


def worker_span(
    total: int,
    rank: int,
    world_size: int,
    batch_size: int,
    worker: int,
    num_workers: int,
    *,
    train: bool,
) -> tuple[int, int]:
    """Positions ``[start, stop)`` (taken modulo ``total``) that one worker of ``rank``
    reads: a contiguous block of whole batches of the rank's share."""
    count = batches_per_rank(total, world_size, batch_size, train=train)
    items = rank_items(total, rank, world_size, batch_size, train=train)
    first, last = worker * count // num_workers, (worker + 1) * count // num_workers
    base = rank_span(total, rank, world_size)[0]
    return base + first * batch_size, base + min(last * batch_size, items)


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
