"""Who reads which samples of a sharded split in an epoch: the rank/worker policy.

The split's ``N`` samples (counts from ``index.json``) are laid end to end in the epoch's
shard order (reshuffled every training epoch from the seed; the same on every rank), and
each reader takes a *contiguous range* of that sequence:

1. Rank ``r`` of ``R`` owns positions ``[r*N//R, (r+1)*N//R)``: ranks differ by at most
   one sample, whatever the shard sizes, and even when there are fewer shards than ranks
   (a shard is then split between ranks; each reads only its part).
2. Every rank yields the same number of batches ``B``, fixed up front: the fewest any rank
   needs in training (a rank with a sample more stops before it, so at most ``R - 1``
   samples a training epoch are left out, as with ``drop_last``) and the most any rank
   needs in evaluation (a rank one sample short also reads the next sample of the
   sequence, wrapping at its end, so every sample is evaluated and at most ``R - 1``
   twice). With ``N`` a
   multiple of ``R``, or ``N // R`` not a multiple of the batch size, ``B`` fits every
   rank and each sample is read exactly once.
3. A rank's ``B`` batches are cut into ``W`` contiguous blocks, one per DataLoader worker;
   a worker reads the samples of its block, so ``B`` does not depend on ``W`` and
   workers beyond ``B`` stay idle.

Each reader opens only the shards its range overlaps and starts mid-shard when it must
(skipping members without decoding them), so a shard is read about once per epoch, plus
the head of at most one shard per reader. Bad or missing samples still fill their slot
(as Skipped markers), so the batch count never depends on the data's health.
"""

import math


def rank_span(total: int, rank: int, world_size: int) -> tuple[int, int]:
    """The positions ``[start, stop)`` of the epoch's sequence that ``rank`` owns."""
    return rank * total // world_size, (rank + 1) * total // world_size


def batches_per_rank(total: int, world_size: int, batch_size: int, *, train: bool) -> int:
    """``B``: the fewest batches any rank needs in training, the most in evaluation."""
    sizes = {total // world_size, -(-total // world_size)}  # ranks own one of these
    counts = [math.ceil(size / batch_size) for size in sizes]
    return min(counts) if train else max(counts)


def rank_items(total: int, rank: int, world_size: int, batch_size: int, *, train: bool) -> int:
    """How many positions ``rank`` reads: its own, cut to ``B`` batches or topped up to
    fill the ``B``-th one with a single sample."""
    batches = batches_per_rank(total, world_size, batch_size, train=train)
    if batches == 0:
        return 0
    start, stop = rank_span(total, rank, world_size)
    return min(max(stop - start, (batches - 1) * batch_size + 1), batches * batch_size)


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
    batches = batches_per_rank(total, world_size, batch_size, train=train)
    items = rank_items(total, rank, world_size, batch_size, train=train)
    first, last = worker * batches // num_workers, (worker + 1) * batches // num_workers
    base = rank_span(total, rank, world_size)[0]
    return base + first * batch_size, base + min(last * batch_size, items)


def segments(
    counts: list[int], order: list[int], start: int, stop: int
) -> list[tuple[int, int, int]]:
    """``(shard, first, end)`` sample ranges that cover positions ``[start, stop)`` of the
    sequence of shards ``order`` (positions past the end wrap around to the start)."""
    total = sum(counts[s] for s in order)
    if total == 0 or stop <= start:
        return []
    parts = []
    position = start
    while position < stop:
        offset, base = position % total, position - position % total
        cursor = 0
        for shard in order:
            begin, end = cursor, cursor + counts[shard]
            cursor = end
            if end <= offset or begin == end:
                continue
            if base + begin >= stop:
                break
            first = max(offset, begin) - begin
            last = min(end, stop - base) - begin
            parts.append((shard, first, last))
        position = base + total
    return parts
