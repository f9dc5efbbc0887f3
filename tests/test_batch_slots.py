"""Reused batch buffers between loader workers and the training process: the buffers'
bookkeeping, and real loaders with 2 workers giving the batches that no workers give."""

import json
from pathlib import Path

import pytest
import torch
from shard_corpus import make_shards, write_corpus
from torch.utils.data import Dataset

from audioseq.data.batch_slots import BatchSlots, SlotLoader
from audioseq.data.batching import collate
from audioseq.data.datamodule import AudioDataModule
from audioseq.data.example import Example


def test_a_buffer_is_claimed_until_its_audio_is_taken():
    slots = BatchSlots(workers=2, per_worker=2, rows=3, width=4)
    first, ref = slots.claim(1, 2, 4)
    first.copy_(torch.arange(8.0).view(2, 4))
    second, _ = slots.claim(1, 3, 4)
    assert slots.claim(1, 1, 4) is None  # both of worker 1's buffers are claimed
    assert slots.claim(0, 1, 4) is not None  # worker 0 has its own
    assert second.data_ptr() != first.data_ptr()
    taken = slots.take(ref)
    assert torch.equal(taken, torch.arange(8.0).view(2, 4))
    again, _ = slots.claim(1, 2, 4)  # the freed buffer, reused
    assert again.data_ptr() == first.data_ptr()
    again.fill_(-1.0)
    assert torch.equal(taken, torch.arange(8.0).view(2, 4))  # a copy: the batch is kept
    assert not taken.is_shared()


def test_a_batch_larger_than_a_buffer_is_not_given_one():
    slots = BatchSlots(workers=1, per_worker=1, rows=2, width=4)
    assert slots.claim(0, 3, 4) is None
    assert slots.claim(0, 1, 9) is None
    audio, _ = slots.claim(0, 1, 8)  # fewer rows of wider clips fit: a buffer is flat
    assert audio.shape == (1, 8)


def test_a_new_generation_frees_what_the_last_left_claimed():
    slots = BatchSlots(workers=1, per_worker=1, rows=1, width=2)
    _, stale = slots.claim(0, 1, 2)  # a batch an abandoned epoch never delivered
    assert slots.claim(0, 1, 2) is None
    slots.next_generation()
    _, fresh = slots.claim(0, 1, 2)
    assert fresh.generation == stale.generation + 1
    slots.take(stale)  # late: must not free the buffer the new generation holds
    assert slots.claim(0, 1, 2) is None
    slots.take(fresh)
    assert slots.claim(0, 1, 2) is not None


def _manifest(tmp_path, n=24, seconds=0.25):
    return str(write_corpus(tmp_path, n, flac_every=4, seconds=seconds))


SOURCES = {
    "manifest": lambda tmp_path: dict(
        source="manifest",
        train_manifest=_manifest(tmp_path),
        clip_seconds=0.2,
        augment={"gain_db": 6.0},
    ),
    "manifest_slowed": lambda tmp_path: dict(  # no crop: widths up to 0.25 s / 0.8
        source="manifest", train_manifest=_manifest(tmp_path), augment={"speed": [0.8, 1.25]}
    ),
    "synthetic": lambda tmp_path: dict(source="synthetic", train_size=96, val_size=8),
    "shards": lambda tmp_path: dict(
        source="shards", train_shards=str(make_shards(tmp_path, 40, 10)), clip_seconds=0.2
    ),
}


def _epochs(options: dict, workers: int) -> tuple[SlotLoader, list[list[dict]]]:
    """An abandoned epoch (one batch taken), then two whole ones, every batch kept."""
    dm = AudioDataModule(**options, batch_size=4, num_workers=workers)
    loader = dm.train_dataloader()
    abandoned = [next(iter(loader))]
    return loader, [abandoned, list(loader), list(loader)]


def _rows(batches: list[dict]) -> dict[str, tuple]:
    return {
        key: (audio[:length], int(label))
        for b in batches
        for key, audio, length, label in zip(
            b["key"], b["audio"], b["lengths"], b["label"], strict=True
        )
    }


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_two_workers_deliver_through_buffers_what_no_workers_deliver(tmp_path, source):
    options = SOURCES[source](tmp_path)
    loader, with_workers = _epochs(options, workers=2)
    _, without = _epochs(options, workers=0)
    assert loader.slots is not None
    for epoch, reference in zip(with_workers[1:], without[1:], strict=True):
        rows, expected = _rows(epoch), _rows(reference)
        assert rows.keys() == expected.keys()
        for key, (audio, label) in rows.items():  # every batch kept intact until now
            # (resampling for speed rounds differently on a worker's single thread)
            torch.testing.assert_close(audio, expected[key][0], msg=key)
            assert label == expected[key][1], key
    delivered = [b["audio"] for epoch in with_workers for b in epoch]
    via_buffers = [not audio.is_shared() for audio in delivered]  # copied out of a buffer
    # Map-style loaders keep each worker within its buffers; shard workers that run out
    # at an epoch's end hand their prefetching to the others, who may fall back.
    assert all(via_buffers) if source != "shards" else sum(via_buffers) > len(delivered) // 2
    # Every batch of the last epoch was taken, so none of its buffers is still claimed
    # (an older generation's claims count as free).
    assert not (loader.slots.claimed == loader.slots.generation).any()


class _Clips(Dataset):
    """Clips of 4 samples, but every fifth 8 long."""

    def __len__(self) -> int:
        return 20

    def __getitem__(self, index: int) -> Example:
        return Example(str(index), torch.full((8 if index % 5 == 4 else 4,), float(index)), 0)


def test_a_batch_wider_than_its_buffer_comes_in_fresh_shared_memory():
    slots = BatchSlots(workers=2, per_worker=5, rows=2, width=4)
    loader = SlotLoader(_Clips(), batch_size=2, collate_fn=collate, num_workers=2, slots=slots)
    batches = list(loader)
    wide = [b["audio"].shape == (2, 8) for b in batches]
    assert [b["audio"].is_shared() for b in batches] == wide and 0 < sum(wide) < len(wide)
    expected = list(SlotLoader(_Clips(), batch_size=2, collate_fn=collate))
    assert all(torch.equal(b["audio"], e["audio"]) for b, e in zip(batches, expected, strict=True))


def test_no_buffers_without_workers_or_a_known_width(tmp_path):
    manifest = _manifest(tmp_path)
    dm = AudioDataModule(source="manifest", train_manifest=manifest, num_workers=0)
    assert dm.train_dataloader().slots is None
    lines = [json.loads(line) for line in Path(manifest).read_text().splitlines()]
    del lines[0]["duration"]  # one clip of unknown length: no width to size buffers by
    (tmp_path / "undeclared.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    dm = AudioDataModule(
        source="manifest", train_manifest=str(tmp_path / "undeclared.jsonl"), num_workers=2
    )
    loader = dm.train_dataloader()
    assert loader.slots is None
    assert all(b["audio"].is_shared() for b in loader)  # the way batches always came
