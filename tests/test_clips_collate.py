"""crop (random for training, centre for evaluation) and collate (the only padding)."""

import pytest
import torch

from audioseq.data.batching import collate, crop
from audioseq.data.example import Example


def ramp(n: int) -> torch.Tensor:
    return torch.arange(n, dtype=torch.float32)


def start_of(clip: torch.Tensor) -> int:
    return int(clip[0])


# ---- crop ---------------------------------------------------------------------------------


def test_random_crop_is_a_contiguous_window_within_bounds():
    audio = ramp(1000)
    for seed in range(50):
        clip = crop(audio, 100, random=True, generator=torch.Generator().manual_seed(seed))
        start = start_of(clip)
        assert clip.shape == (100,)
        assert 0 <= start <= 900
        assert torch.equal(clip, ramp(1000)[start : start + 100])


def test_random_crop_reaches_both_ends():
    audio = ramp(12)
    gen = torch.Generator().manual_seed(0)
    starts = {start_of(crop(audio, 10, random=True, generator=gen)) for _ in range(200)}
    assert starts == {0, 1, 2}


def test_random_crop_varies_with_the_generator_and_repeats_with_its_seed():
    audio = ramp(16000)
    starts = [
        start_of(crop(audio, 1600, random=True, generator=torch.Generator().manual_seed(s)))
        for s in range(10)
    ]
    assert len(set(starts)) > 5
    again = crop(audio, 1600, random=True, generator=torch.Generator().manual_seed(3))
    assert start_of(again) == starts[3]


def test_random_crop_without_a_generator_uses_the_global_rng():
    audio = ramp(16000)
    torch.manual_seed(1)
    first = crop(audio, 100, random=True)
    torch.manual_seed(1)
    assert torch.equal(crop(audio, 100, random=True), first)


@pytest.mark.parametrize(("length", "size", "start"), [(10, 4, 3), (11, 4, 3), (1000, 100, 450)])
def test_centre_crop_is_deterministic(length, size, start):
    audio = ramp(length)
    clips = [crop(audio, size, random=False) for _ in range(3)]
    for clip in clips:
        assert torch.equal(clip, ramp(length)[start : start + size])
    # the generator is ignored for evaluation crops
    gen = torch.Generator().manual_seed(5)
    assert torch.equal(crop(audio, size, random=False, generator=gen), clips[0])


@pytest.mark.parametrize("random", [True, False])
@pytest.mark.parametrize("length", [0, 1, 99, 100])
def test_short_and_exact_clips_are_untouched(random, length):
    audio = ramp(length)
    assert crop(audio, 100, random=random) is audio


# ---- collate ------------------------------------------------------------------------------


def ex(key: str, n: int, label: int | None = 0, value: float = 1.0) -> Example:
    return Example(key, torch.full((n,), value), label)


def test_collate_pads_to_the_longest_without_pad_to():
    batch = collate([ex("a", 3, 1, 1.0), ex("b", 5, 2, 2.0), ex("c", 1, 0, 3.0)])

    assert batch["audio"].shape == (3, 5)
    assert batch["audio"].dtype == torch.float32
    assert batch["lengths"].dtype == torch.int64
    assert batch["label"].dtype == torch.int64
    assert batch["lengths"].tolist() == [3, 5, 1]
    assert batch["label"].tolist() == [1, 2, 0]
    assert batch["key"] == ["a", "b", "c"]
    expected = torch.tensor(
        [[1, 1, 1, 0, 0], [2, 2, 2, 2, 2], [3, 0, 0, 0, 0]], dtype=torch.float32
    )
    assert torch.equal(batch["audio"], expected)


def test_collate_pads_to_pad_to():
    batch = collate([ex("a", 3), ex("b", 5)], pad_to=8)
    assert batch["audio"].shape == (2, 8)
    assert batch["lengths"].tolist() == [3, 5]
    assert batch["audio"][0, 3:].abs().sum() == 0
    assert batch["audio"][1, 5:].abs().sum() == 0
    assert batch["audio"][1, :5].eq(1).all()


def test_collate_never_truncates_below_the_longest():
    batch = collate([ex("a", 3), ex("b", 10)], pad_to=4)
    assert batch["audio"].shape == (2, 10)
    assert batch["lengths"].tolist() == [3, 10]


def test_collate_keeps_the_true_lengths_and_samples():
    audio = [torch.randn(n) for n in (7, 2, 9)]
    batch = collate([Example(str(i), a, i) for i, a in enumerate(audio)], pad_to=9)
    for row, a in enumerate(audio):
        n = int(batch["lengths"][row])
        assert torch.equal(batch["audio"][row, :n], a)
        assert batch["audio"][row, n:].abs().sum() == 0


def test_collate_drops_none_entries():
    batch = collate([None, ex("a", 4, 3), None, ex("b", 2, 5), None], pad_to=6)
    assert batch["key"] == ["a", "b"]
    assert batch["audio"].shape == (2, 6)
    assert batch["lengths"].tolist() == [4, 2]
    assert batch["label"].tolist() == [3, 5]


def test_collate_missing_label_is_minus_one():
    batch = collate([ex("a", 2, None), ex("b", 2, 4), ex("c", 2, 0)])
    assert batch["label"].tolist() == [-1, 4, 0]
    assert batch["label"].dtype == torch.int64


def test_collate_all_unlabelled_is_int64():
    batch = collate([ex("a", 2, None)])
    assert batch["label"].tolist() == [-1]
    assert batch["label"].dtype == torch.int64


@pytest.mark.parametrize("pad_to", [None, 16])
def test_collate_of_only_skipped_samples_is_an_empty_batch(pad_to):
    """A batch whose every sample was skipped (on_error=skip) must not crash the worker."""
    batch = collate([None, None], pad_to=pad_to)
    assert batch["audio"].shape == (0, pad_to or 0)
    assert batch["audio"].dtype == torch.float32
    assert batch["lengths"].shape == (0,)
    assert batch["lengths"].dtype == torch.int64
    assert batch["label"].shape == (0,)
    assert batch["label"].dtype == torch.int64
    assert batch["key"] == []
