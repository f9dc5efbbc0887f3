"""Reused batch buffers between loader workers and the training process: the buffers'
bookkeeping, and real loaders with 2 workers giving the batches that no workers give."""

import gc
import json
import multiprocessing
from pathlib import Path

import pytest
import torch
from shard_corpus import make_shards, write_corpus
from torch.utils.data import Dataset

from audioseq.data.batch_slots import BatchSlots, SlotLoader
from audioseq.data.batching import collate
from audioseq.data.datamodule import AudioDataModule
from audioseq.data.example import Example


def test_a_buffer_is_lent_until_the_last_view_of_its_batch_is_dropped():
    slots = BatchSlots(workers=2, per_worker=2, rows=3, width=4)
    first, ref = slots.claim(1, 2, 4)
    first.copy_(torch.arange(8.0).view(2, 4))
    second, _ = slots.claim(1, 3, 4)
    assert second.data_ptr() != first.data_ptr()
    assert slots.claim(1, 1, 4) is None  # both of worker 1's buffers are claimed
    assert slots.claim(0, 1, 4) is not None  # worker 0 has its own
    audio = slots.take(ref)
    assert torch.equal(audio, torch.arange(8.0).view(2, 4))
    assert audio.data_ptr() == first.data_ptr()  # the buffer itself, not a copy
    view = audio[:, 1:]
    del audio
    slots.next_generation()  # a new epoch does not free what the training process holds
    assert slots.claim(1, 1, 4)[1].slot != ref.slot
    assert slots.claim(1, 1, 4) is None
    del view
    again, _ = slots.claim(1, 2, 4)  # freed with the batch's last view, and reused
    assert again.data_ptr() == first.data_ptr()


def test_buffers_made_under_inference_mode_change_state_outside_it():
    with torch.inference_mode():  # as Lightning's evaluation loops make their loaders
        slots = BatchSlots(workers=1, per_worker=1, rows=1, width=2)
    _, ref = slots.claim(0, 1, 2)
    lent = slots.take(ref)
    del lent  # freed outside inference mode
    assert slots.claim(0, 1, 2) is not None


def test_a_batch_for_a_gpu_is_copied_into_pinned_memory_at_once():
    if not torch.cuda.is_available():
        pytest.skip("pinned memory needs a CUDA device")
    slots = BatchSlots(workers=1, per_worker=1, rows=1, width=4)
    audio, ref = slots.claim(0, 1, 4)
    audio.fill_(2.0)
    pinned = slots.take(ref, pin_memory=True)
    assert pinned.is_pinned() and torch.equal(pinned, torch.full((1, 4), 2.0))
    assert slots.claim(0, 1, 4) is not None


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
    assert fresh.slot == stale.slot and fresh.generation == stale.generation + 1
    assert slots.claim(0, 1, 2) is None  # claimed again, for this generation


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


def _epochs(options: dict, workers: int, keep: bool) -> tuple[SlotLoader, list, list]:
    """An abandoned epoch (one batch taken), then two whole ones: each clip's row, label
    and whether it came in a worker's buffer (its tensor is not in torch's shared memory)
    as training would see them (``keep``: every batch kept until the end)."""
    dm = AudioDataModule(**options, batch_size=4, num_workers=workers)
    loader = dm.train_dataloader()
    kept, epochs = [], []
    for epoch in range(3):
        rows = []
        for batch in loader:
            rows += _rows(batch)
            if keep:
                kept.append((batch, rows[-len(batch["key"]) :]))
            if epoch == 0:
                break
        epochs.append(rows)
    dm.teardown("fit")
    return loader, epochs, kept


def _rows(batch: dict) -> list[tuple]:
    via_buffer = not batch["audio"].is_shared()
    return [
        (key, audio[:length].clone(), int(label), via_buffer)
        for key, audio, length, label in zip(
            batch["key"], batch["audio"], batch["lengths"], batch["label"], strict=True
        )
    ]


@pytest.mark.parametrize("source", sorted(SOURCES))
def test_two_workers_deliver_through_buffers_what_no_workers_deliver(tmp_path, source):
    options = SOURCES[source](tmp_path)
    loader, with_workers, _ = _epochs(options, workers=2, keep=False)
    _, without, _ = _epochs(options, workers=0, keep=False)
    assert loader.slots is not None
    for epoch, reference in zip(with_workers[1:], without[1:], strict=True):  # whole epochs
        expected = {key: (audio, label) for key, audio, label, _ in reference}
        assert sorted(key for key, *_ in epoch) == sorted(expected)
        for key, audio, label, _ in epoch:
            # (resampling for speed rounds differently on a worker's single thread)
            torch.testing.assert_close(audio, expected[key][0], msg=key)
            assert label == expected[key][1], key
    via_buffers = [row[-1] for epoch in with_workers for row in epoch]
    # Map-style loaders keep each worker within its buffers; shard workers that run out
    # at an epoch's end hand their prefetching to the others, who may fall back.
    assert all(via_buffers) if source != "shards" else sum(via_buffers) > len(via_buffers) // 2
    # Every batch was taken and dropped: no buffer is claimed or lent (an older
    # generation's claims count as free). A batch caught in a reference cycle holds its
    # buffer until the garbage collector runs.
    gc.collect()
    assert not (
        (loader.slots.claimed == loader.slots.generation) | (loader.slots.claimed < 0)
    ).any()


def test_batches_kept_by_the_training_process_are_never_overwritten(tmp_path):
    options = SOURCES["manifest"](tmp_path)
    loader, _, kept = _epochs(options, workers=2, keep=True)
    intact = [  # 13 batches kept, 6 buffers per worker: some fell back
        torch.equal(batch["audio"][row, : len(audio)], audio)
        for batch, rows in kept
        for row, (_, audio, _, _) in enumerate(rows)
    ]
    assert all(intact)
    via_buffers = [rows[0][-1] for _, rows in kept]
    assert 0 < sum(via_buffers) < len(via_buffers)
    assert (loader.slots.claimed < 0).sum() == sum(via_buffers)  # all still lent
    del kept
    gc.collect()
    assert not (loader.slots.claimed < 0).any()  # freed with the batches


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


def test_pin_memory_without_an_accelerator_leaves_the_batches_in_their_buffers():
    slots = BatchSlots(workers=2, per_worker=5, rows=2, width=8)
    loader = SlotLoader(
        _Clips(), batch_size=2, collate_fn=collate, num_workers=2, pin_memory=True, slots=slots
    )
    if torch.accelerator.is_available():
        pytest.skip("an accelerator pins the batches")
    with pytest.warns(UserWarning, match="pin_memory"):  # torch's own: nothing to pin to
        audio = [batch["audio"] for batch in loader]
    assert not any(a.is_pinned() or a.is_shared() for a in audio)  # lent buffers


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
    shared = [batch["audio"].is_shared() for batch in loader]
    assert all(shared)  # the way batches always came
    loader.close()


def test_teardown_stops_the_persistent_workers_and_a_new_epoch_starts_others():
    dm = AudioDataModule(source="synthetic", train_size=32, val_size=8, batch_size=4, num_workers=2)
    train, val = dm.train_dataloader(), dm.val_dataloader()
    first = [batch["key"] for batch in train]
    assert len(list(val)) == 2
    assert len(multiprocessing.active_children()) == 4  # both loaders' workers, kept
    dm.teardown("fit")
    assert not multiprocessing.active_children()
    assert len([batch["key"] for batch in train]) == len(first)  # workers started again
    train.close()
    assert not multiprocessing.active_children()
