"""Where a reader's positions lie in a sharded split: the shards and members to open.

A split's ``N`` samples (counts from ``index.json``) are laid end to end in the epoch's
shard order (reshuffled every training epoch from the seed; the same on every rank), and
each reader takes a contiguous range of that sequence (which range:
:func:`audioseq.data.partition.worker_span`). Each reader opens only the shards its
range overlaps and starts mid-shard when it must (skipping members without decoding
them), so a shard is read about once per epoch, plus the head of at most one shard per
reader. Bad or missing samples still fill their slot (as Skipped markers), so the batch
count never depends on the data's health.
"""


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
