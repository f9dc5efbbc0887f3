"""The rank/worker partition (``audioseq.data.partition``), checked once for every loader
that uses it, over grids of (items, ranks, workers, batch size): every rank runs the same
number of batches; training leaves out, and evaluation repeats, at most ``ranks - 1``
items, and only when the counts force it."""

from collections import Counter
from itertools import pairwise, product

from audioseq.data.partition import (
    batches,
    batches_per_rank,
    per_rank,
    rank_indices,
    rank_span,
    resumed_workers,
    worker_share,
    worker_span,
)

SIZES = range(0, 41)
WORLDS = range(1, 9)
BATCH_SIZES = (1, 2, 3, 5, 8)
WORKERS = range(1, 6)


# ---- strided: synthetic clips, map-style clips, the bucket sampler's batches -------------


def test_strided_ranks_get_equal_shares_disjoint_in_training_covering_in_evaluation():
    for size, world, drop_last in product(SIZES, WORLDS, (True, False)):
        shares = [rank_indices(size, r, world, drop_last=drop_last) for r in range(world)]
        case = (size, world, drop_last)
        assert {len(s) for s in shares} == {per_rank(size, world, drop_last=drop_last)}, case
        seen = Counter(i for share in shares for i in share)
        assert set(seen) <= set(range(size)), case
        if drop_last:  # the last size % world positions are left out, none repeated
            assert seen == Counter(range(size - size % world)), case
        else:  # every position, (-size) % world extra, spread as evenly as can be
            assert set(seen) == set(range(size)), case
            assert sum(seen.values()) - size == (-size) % world, case
            assert max(seen.values(), default=0) - min(seen.values(), default=0) <= 1, case


def test_strided_ranks_take_turns_through_the_epoch_order():
    for size, world in product(range(1, 41), WORLDS):
        shares = [rank_indices(size, r, world, drop_last=False) for r in range(world)]
        interleaved = [shares[r][i] for i in range(len(shares[0])) for r in range(world)]
        assert interleaved == [p % size for p in range(len(interleaved))], (size, world)


def test_batches_cut_in_order_and_only_the_last_is_short():
    for size, bs in product(SIZES, BATCH_SIZES):
        cut = batches(list(range(size)), bs)
        assert [i for b in cut for i in b] == list(range(size))
        assert all(len(b) == bs for b in cut[:-1]) and all(0 < len(b) <= bs for b in cut)


def test_workers_take_whole_batches_in_turn():
    for count, workers in product(range(0, 20), WORKERS):
        items = [[i] for i in range(count)]
        shares = [worker_share(items, w, workers) for w in range(workers)]
        in_turn = [shares[i % workers][i // workers] for i in range(count)]
        assert in_turn == items, (count, workers)
    assert worker_share([1, 2, 3]) == [1, 2, 3]  # the main process: everything


# ---- contiguous: tar shards --------------------------------------------------------------


def test_rank_spans_tile_the_epoch_and_differ_by_at_most_one():
    for total, world in product(SIZES, WORLDS):
        spans = [rank_span(total, r, world) for r in range(world)]
        assert spans[0][0] == 0 and spans[-1][1] == total
        assert all(a[1] == b[0] for a, b in pairwise(spans))
        assert max(b - a for a, b in spans) - min(b - a for a, b in spans) <= 1
    assert [rank_span(10, r, 3) for r in range(3)] == [(0, 3), (3, 6), (6, 10)]


def test_contiguous_equal_batches_per_rank_whatever_the_workers():
    for total, world, bs, train in product(SIZES, WORLDS, BATCH_SIZES, (True, False)):
        count = batches_per_rank(total, world, bs, train=train)
        assert count == -(-per_rank(total, world, drop_last=train) // bs)
        for rank, workers in product(range(world), WORKERS):
            spans = [
                worker_span(total, rank, world, bs, w, workers, train=train) for w in range(workers)
            ]
            case = (total, world, bs, train, rank, workers)
            assert spans[0][0] == rank_span(total, rank, world)[0], case
            assert all(a[1] == b[0] for a, b in pairwise(spans)), case
            sizes = [stop - start for start, stop in spans]
            assert sum(-(-s // bs) for s in sizes) == count, case  # the rank's batches
            read = [s for s in sizes if s]  # only the rank's last batch may be short
            assert all(s % bs == 0 for s in read[:-1]), case


def test_contiguous_reads_each_sample_once_when_the_counts_allow():
    for total, world, bs, train, workers in product(
        range(1, 41), WORLDS, BATCH_SIZES, (True, False), (1, 2, 3)
    ):
        seen: Counter[int] = Counter()
        for rank, w in product(range(world), range(workers)):
            start, stop = worker_span(total, rank, world, bs, w, workers, train=train)
            seen.update(p % total for p in range(start, stop))
        case = (total, world, bs, train, workers)
        if total % world == 0 or (total // world) % bs:
            assert seen == Counter(range(total)), case
        elif train:  # at most world - 1 left out, none twice
            assert max(seen.values(), default=1) == 1 and total - len(seen) < world, case
        else:  # all of them, at most world - 1 extra, spread as evenly as can be
            assert set(seen) == set(range(total)), case
            assert sum(seen.values()) - total < world, case
            assert max(seen.values()) - min(seen.values()) <= 1, case


# ---- a resumed loader ----------------------------------------------------------------------


def test_resumed_workers_account_for_every_consumed_batch():
    for counts in product(range(0, 4), repeat=3):
        for consumed in range(sum(counts) + 2):
            taken, turn = resumed_workers(list(counts), consumed)
            assert sum(taken) == min(consumed, sum(counts))
            assert all(0 <= t <= c for t, c in zip(taken, counts, strict=True))
            assert 0 <= turn < len(counts)
