"""``data.cache``: clips decoded once into memory give the same batches as decoding every
time, bad clips are raised or skipped as before, workers read the cache (not the files),
and ``auto`` respects its budget."""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from audioseq import SAMPLE_RATE
from audioseq.data.cache import CacheBudget, physical_memory
from audioseq.data.datamodule import AudioDataModule
from audioseq.errors import ConfigError, DataError

RATES = (16000, 44100, 8000, 22050)


@pytest.fixture
def corpus(tmp_path, sine, write_wav):
    """Eight clips of different lengths, rates, formats and channel counts."""
    records = []
    for i in range(8):
        rate = RATES[i % len(RATES)]
        audio = sine(300 + 50 * i, 0.4 + 0.1 * i, rate)
        if i % 3 == 0:
            audio = np.stack([audio, 0.5 * audio], axis=1)  # stereo
        suffix = ".flac" if i % 2 else ".wav"
        write_wav(tmp_path / "audio" / f"c{i}{suffix}", audio, rate)
        records.append({"audio_filepath": f"audio/c{i}{suffix}", "label": "ab"[i % 2]})
    manifest = tmp_path / "train.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in records))
    return tmp_path, manifest


def datamodule(manifest: Path, cache: str, **options) -> AudioDataModule:
    options = {"batch_size": 3, "num_workers": 0, **options}
    return AudioDataModule(
        source="manifest",
        train_manifest=str(manifest),
        val_manifest=str(manifest),
        test_manifest=str(manifest),
        cache=cache,
        **options,
    )


def batches(loader) -> list[dict]:
    return list(loader)


def test_cached_batches_equal_decoded_ones(corpus):
    """Eval (no randomness): bit-identical; train with augmentation: identical under the
    same seed, since the cache holds exactly what decoding returns."""
    _, manifest = corpus
    for loader in ("val_dataloader", "train_dataloader"):
        results = []
        for cache in ("none", "memory"):
            torch.manual_seed(0)
            dm = datamodule(manifest, cache, augment={"time_shift_seconds": 0.1, "gain_db": 6})
            results.append(batches(getattr(dm, loader)()))
            assert (dm._datasets["val"].cache is not None) == (
                cache == "memory" and loader == "val_dataloader"
            )
        for plain, cached in zip(*results, strict=True):
            assert plain["key"] == cached["key"]
            torch.testing.assert_close(plain["audio"], cached["audio"], rtol=0, atol=0)
            assert torch.equal(plain["lengths"], cached["lengths"])


def test_workers_read_the_cache_not_the_files(corpus):
    """Once filled, the files can go: two workers still deliver every clip."""
    root, manifest = corpus
    dm = datamodule(manifest, "memory", num_workers=2, augment=None)
    dm.setup("fit")
    dm._datasets["train"].fill_cache()
    for path in (root / "audio").iterdir():
        path.unlink()
    keys = [key for batch in dm.train_dataloader() for key in batch["key"]]
    assert len(keys) == 8


def test_eval_fills_only_the_split_it_reads(corpus):
    _, manifest = corpus
    dm = datamodule(manifest, "memory")
    dm.test_dataloader()
    assert dm._datasets["test"].cache is not None
    assert dm._datasets["train"].cache is None and dm._datasets["val"].cache is None


def test_auto_caches_what_fits_its_budget(corpus):
    _, manifest = corpus
    dm = datamodule(manifest, "auto")
    dm.val_dataloader()
    assert dm._datasets["val"].cache is not None
    tiny = 1e-9  # of this machine's RAM: less than one clip
    dm = datamodule(manifest, "auto", cache_budget=tiny)
    dm.val_dataloader()
    assert dm._datasets["val"].cache is None
    budget = CacheBudget("auto", 0.5, local_ranks=4)
    assert budget.remaining == int(physical_memory() * 0.5) // 4


def test_a_bad_clip_is_raised_or_skipped_as_without_cache(corpus, tmp_path):
    root, manifest = corpus
    (root / "audio" / "c3.flac").write_bytes(b"not audio at all")
    with pytest.raises(DataError, match=r"c3\.flac: cannot decode audio"):
        batches(datamodule(manifest, "memory").val_dataloader())
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        got = batches(datamodule(manifest, "memory", on_error="skip").val_dataloader())
    assert sum(len(b["key"]) for b in got) == 7
    assert sum(b["skipped"].get("corrupt", 0) for b in got) == 1


@pytest.mark.parametrize(("option", "value"), [("cache", "ram"), ("cache_budget", 0.0)])
def test_bad_cache_settings_are_config_errors(corpus, option, value):
    _, manifest = corpus
    with pytest.raises(ConfigError, match=rf"data\.{option}"):
        datamodule(manifest, **{"cache": "auto", option: value})


def test_cache_holds_one_flat_tensor_of_the_decoded_samples(corpus):
    _, manifest = corpus
    dm = datamodule(manifest, "memory")
    dm.val_dataloader()
    cache = dm._datasets["val"].cache
    assert cache.audio.is_contiguous() and cache.audio.dtype == torch.float32
    # 0.4 + 0.1 i seconds each, resampled to 16 kHz
    expected = sum(round((0.4 + 0.1 * i) * SAMPLE_RATE) for i in range(8))
    assert abs(cache.audio.numel() - expected) <= 8
    assert cache.nbytes == cache.audio.numel() * 4
