"""Duration bucketing: less padding, DDP-equal batch counts, every clip once in evaluation."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioseq.data.batching import DurationBucketSampler
from audioseq.data.datamodule import AudioDataModule


def padding_share(batches: list[list[int]], durations: list[float]) -> float:
    padded = sum(len(b) * max(durations[i] for i in b) for b in batches)
    return 1 - sum(durations[i] for b in batches for i in b) / padded


@pytest.fixture
def durations() -> list[float]:
    return list(np.random.default_rng(0).uniform(0.2, 4.0, 500))


def test_buckets_cut_padding(durations: list[float]) -> None:
    bucketed = list(DurationBucketSampler(durations, batch_size=16, num_buckets=10, seed=1))
    order = np.random.default_rng(1).permutation(len(durations)).tolist()
    random_batches = [order[i : i + 16] for i in range(0, len(order), 16)]
    assert padding_share(bucketed, durations) < 0.5 * padding_share(random_batches, durations)


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_training_ranks_get_equal_disjoint_batches(durations, world_size) -> None:
    samplers = [
        DurationBucketSampler(durations, 16, rank=r, world_size=world_size, drop_last=True)
        for r in range(world_size)
    ]
    per_rank = [list(s) for s in samplers]
    assert len({len(b) for b in per_rank}) == 1
    assert all(len(s) == len(b) for s, b in zip(samplers, per_rank, strict=True))
    seen = [i for batches in per_rank for batch in batches for i in batch]
    assert len(seen) == len(set(seen))


@pytest.mark.parametrize("world_size", [1, 2, 3])
def test_evaluation_sees_every_clip(durations, world_size) -> None:
    per_rank = [
        list(
            DurationBucketSampler(
                durations, 16, shuffle=False, rank=r, world_size=world_size, drop_last=False
            )
        )
        for r in range(world_size)
    ]
    assert len({len(b) for b in per_rank}) == 1
    seen = {i for batches in per_rank for batch in batches for i in batch}
    assert seen == set(range(len(durations)))


def test_epochs_reshuffle_deterministically(durations) -> None:
    sampler = DurationBucketSampler(durations, 16, seed=3)
    first = list(sampler)
    sampler.set_epoch(1)
    second = list(sampler)
    sampler.set_epoch(0)
    assert list(sampler) == first != second


def test_clips_without_duration_share_a_bucket() -> None:
    durations = [1.0, None, 2.0, None, 3.0, None]
    batches = list(
        DurationBucketSampler(durations, 3, num_buckets=1, shuffle=False, drop_last=False)
    )
    assert [1, 3, 5] in batches


def test_datamodule_with_bucketing_and_whole_clips(tmp_path: Path) -> None:
    """clip_seconds=null + bucketing: batches pad to their own longest clip, which is short."""
    rng = np.random.default_rng(0)
    lines = []
    for i, seconds in enumerate([0.2, 0.25, 0.3, 1.5, 1.6, 1.7, 0.21, 1.55]):
        sf.write(
            tmp_path / f"c{i}.wav",
            rng.normal(0, 0.1, round(seconds * 16000)).astype(np.float32),
            16000,
        )
        lines.append({"audio_filepath": f"c{i}.wav", "duration": seconds, "label": "ab"[i % 2]})
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(x) + "\n" for x in lines))
    dm = AudioDataModule(
        source="manifest",
        train_manifest=str(manifest),
        val_manifest=str(manifest),
        clip_seconds=None,
        bucketing=True,
        num_buckets=2,
        batch_size=4,
        num_workers=0,
    )
    batches = list(dm.val_dataloader())
    assert sum(len(b["label"]) for b in batches) == 8
    widths = sorted(b["audio"].shape[1] for b in batches)
    assert widths == [round(0.3 * 16000), round(1.7 * 16000)]
    for b in batches:
        assert b["lengths"].max() == b["audio"].shape[1]
