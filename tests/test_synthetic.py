"""The built-in DTMF corpus: determinism, the tones themselves, splitting work across DDP
ranks and DataLoader workers, epoch reshuffling, and the synthetic AudioDataModule."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from audioseq import SAMPLE_RATE
from audioseq.data.batching import collate
from audioseq.data.datamodule import AudioDataModule, build_source
from audioseq.data.epoch_loader import EpochLoader
from audioseq.data.sources import dtmf
from audioseq.data.sources.synthetic import SyntheticBatches, SyntheticSource
from audioseq.data.spec import LoaderSpec
from audioseq.errors import ConfigError

CLIP = 0.02  # seconds: 320 samples keep the loader tests fast


def make(
    split: str = "train",
    size: int = 23,
    *,
    seed: int = 0,
    rank: int = 0,
    world_size: int = 1,
    batch_size: int = 4,
    clip_seconds: float | None = CLIP,
) -> SyntheticBatches:
    spec = LoaderSpec(
        batch_size=batch_size,
        clip_seconds=clip_seconds,
        train=split == "train",
        rank=rank,
        world_size=world_size,
    )
    return SyntheticBatches(split, size, seed, spec)


def index_of(key: str) -> int:
    return int(key.rsplit("/", 1)[1])


def batch_indices(loader) -> list[list[int]]:
    return [[index_of(k) for k in batch["key"]] for batch in loader]


def flat(nested: list[list[int]]) -> list[int]:
    return [i for batch in nested for i in batch]


# ---- determinism -------------------------------------------------------------------------


def test_examples_are_deterministic_from_seed_split_and_index():
    a, b = make("train", seed=3), make("train", seed=3)
    for i in (0, 1, 22):
        x, y = a.example(i), b.example(i)
        assert x.key == y.key == f"synthetic/train/{i:07d}"
        assert x.label == y.label
        assert torch.equal(x.audio, y.audio)
        assert x.audio.dtype == torch.float32
        assert x.audio.shape == (round(CLIP * SAMPLE_RATE),)


def test_splits_indices_and_seeds_give_different_audio():
    train, val, test = make("train"), make("val"), make("test")
    clips = [train.example(0).audio, val.example(0).audio, test.example(0).audio]
    clips += [train.example(1).audio, make("train", seed=1).example(0).audio]
    for i in range(len(clips)):
        for j in range(i + 1, len(clips)):
            assert not torch.equal(clips[i], clips[j]), (i, j)


def test_every_class_appears_and_clips_are_sane():
    ds = make("train", size=240, clip_seconds=0.05)
    examples = [ds.example(i) for i in range(240)]
    assert {ex.label for ex in examples} == set(range(12))
    for ex in examples[:24]:
        assert torch.isfinite(ex.audio).all()
        assert 0 < float(ex.audio.abs().max()) < 2.0


def test_default_clip_is_one_second():
    assert make(clip_seconds=None).example(0).audio.shape == (SAMPLE_RATE,)


# ---- the DTMF tones ----------------------------------------------------------------------


def two_peaks(clip: np.ndarray, rate: int = SAMPLE_RATE) -> list[float]:
    spectrum = np.abs(np.fft.rfft(clip * np.hanning(len(clip))))
    hz = np.fft.rfftfreq(len(clip), 1 / rate)
    first = int(np.argmax(spectrum))
    spectrum[np.abs(hz - hz[first]) < 40] = 0  # blank the first peak's lobe
    second = int(np.argmax(spectrum))
    return sorted([float(hz[first]), float(hz[second])])


def test_keypad_table_is_itu_dtmf():
    assert dtmf.TONES["1"] == (697.0, 1209.0)
    assert dtmf.TONES["5"] == (770.0, 1336.0)
    assert dtmf.TONES["9"] == (852.0, 1477.0)
    assert dtmf.TONES["*"] == (941.0, 1209.0)
    assert dtmf.TONES["0"] == (941.0, 1336.0)
    assert dtmf.TONES["#"] == (941.0, 1477.0)
    assert len(set(dtmf.TONES.values())) == 12
    assert set(dtmf.TONES) == set(dtmf.KEYS)


@pytest.mark.parametrize("key", range(12))
def test_the_two_strongest_peaks_are_the_keys_row_and_column(key):
    clip = dtmf.dtmf_clip(
        np.random.default_rng(key),
        key,
        SAMPLE_RATE,
        SAMPLE_RATE,
        jitter=0.0,
        duration_range=(0.5, 0.5),
        snr_db_range=(40.0, 40.0),
        distractor_prob=0.0,
    )
    assert clip.dtype == np.float32
    assert clip.shape == (SAMPLE_RATE,)
    low, high = dtmf.TONES[dtmf.KEYS[key]]
    found = two_peaks(clip)
    assert found[0] == pytest.approx(low, abs=2.0)
    assert found[1] == pytest.approx(high, abs=2.0)


@pytest.mark.parametrize("seed", range(6))
def test_jittered_tones_stay_nearest_to_their_nominal_frequencies(seed):
    rng = np.random.default_rng(100 + seed)
    key = seed * 2
    clip = dtmf.dtmf_clip(rng, key, 8000, SAMPLE_RATE, snr_db_range=(30, 30), distractor_prob=0)
    low, high = dtmf.TONES[dtmf.KEYS[key]]
    found_low, found_high = two_peaks(clip)
    rows = sorted({r for r, _ in dtmf.TONES.values()})
    cols = sorted({c for _, c in dtmf.TONES.values()})
    assert min(rows, key=lambda f: abs(f - found_low)) == low
    assert min(cols, key=lambda f: abs(f - found_high)) == high


# ---- the batch path: the clips made one at a time, and their distribution -----------------


def memory_set(split: str, seed: int, delay: float, clip_seconds: float | None = None):
    spec = LoaderSpec(batch_size=8, clip_seconds=clip_seconds, train=split == "train")
    return SyntheticBatches(split, 64, seed, spec, corpus="memory", delay_seconds=delay)


def assert_same_batch(got: dict, want: dict) -> None:
    assert got["key"] == want["key"]
    assert got["skipped"] == want["skipped"] == {}
    for field in ("audio", "lengths", "label"):
        assert got[field].dtype == want[field].dtype, field
        assert torch.equal(got[field], want[field]), field


SCATTERED = [0, 1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 610, 987, 4181, 999_999]


@pytest.mark.parametrize("seed", [0, 7])
@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_dtmf_batches_hold_exactly_the_clips_made_one_at_a_time(split, seed):
    ds = make(split, seed=seed, clip_seconds=0.25)
    indices = SCATTERED + list(range(100, 130))
    expected = collate([ds.example(i) for i in indices], pad_to=ds.pad_to)
    assert_same_batch(ds.batch(indices), expected)


def test_the_default_one_second_batch_is_the_collated_examples():
    ds = make("train", seed=3, clip_seconds=None)
    indices = [4, 0, 17, 9]
    assert_same_batch(ds.batch(indices), collate([ds.example(i) for i in indices]))
    assert ds.batch(indices)["audio"].shape == (4, SAMPLE_RATE)


@pytest.mark.parametrize(
    ("split", "seed", "delay", "clip_seconds"),
    [
        ("train", 0, 0.0, None),
        ("val", 5, 0.3, None),
        ("test", 2, 0.3, 0.5),
        ("train", 9, 1.0, None),
    ],
)
def test_memory_batches_hold_exactly_the_clips_made_one_at_a_time(split, seed, delay, clip_seconds):
    ds = memory_set(split, seed, delay, clip_seconds)
    indices = SCATTERED[:12]
    expected = collate([ds.example(i) for i in indices], pad_to=ds.pad_to)
    assert_same_batch(ds.batch(indices), expected)


def test_a_clip_does_not_depend_on_the_batch_it_is_in():
    ds = make("val", seed=1, clip_seconds=0.1)
    alone = ds.batch([42])["audio"][0]
    for batch in ([42, 1, 2], [7, 42], [3, 9, 11, 42], list(range(30, 50))):
        got = ds.batch(batch)
        assert torch.equal(got["audio"][batch.index(42)], alone)
    assert torch.equal(alone, ds.example(42).audio)


def test_iterating_the_dataset_gives_the_batch_path():
    ds = make("val", 10, batch_size=4)
    for got, indices in zip(ds, [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]], strict=True):
        assert_same_batch(got, collate([ds.example(i) for i in indices], pad_to=ds.pad_to))


@pytest.mark.parametrize(
    "samples, clips",
    [(20_001, 40), (dtmf.BANK_SAMPLES // 8 + 1, 7)],  # from the banks; drawn sample by sample
)
def test_the_noise_is_gaussian(samples, clips):
    """A press of no length leaves the noise alone: whitened per clip, its samples have the
    standard normal's tails and kurtosis, and a flat spectrum, whether the clip takes its
    noise from the banks or (a long recording) draws it by Box-Muller."""
    rng = np.random.default_rng(11)
    clips = [
        dtmf.dtmf_clip(rng, 0, samples, SAMPLE_RATE, duration_range=(0.0, 0.0), distractor_prob=0)
        for _ in range(clips)
    ]
    z = np.concatenate([(c - c.mean()) / c.std() for c in clips]).astype(np.float64)
    assert np.isfinite(z).all()
    for k, tail in ((1, 0.3173), (2, 0.0455), (3, 0.0027)):
        assert np.mean(np.abs(z) > k) == pytest.approx(tail, rel=0.05 if k < 3 else 0.2), k
    assert np.mean(z**4) == pytest.approx(3.0, abs=0.05)
    assert np.abs(z).max() < 6.7
    half = samples // 2  # Box-Muller pairs sample i with sample half + i
    assert abs(np.corrcoef(clips[0][:half], clips[0][half : 2 * half])[0, 1]) < 0.05
    spectrum = np.abs(np.fft.rfft(clips[0][:20_000])) ** 2  # white: flat across the band
    bands = spectrum[1:].reshape(-1, 1000).mean(axis=1)
    assert bands.max() < 1.3 * bands.min()


def test_clips_share_noise_only_where_their_bank_windows_overlap():
    """Clips take their noise from the same two banks at random offsets. At lag 0 any two
    are as uncorrelated as independent noise (mean |r| 0.0063 for 16,000 samples); at
    other lags, a pair whose windows overlap in a bank shares that stretch, shifted,
    which for 1 s clips and banks of 2**20 samples is about 5 % of pairs (2 x 2 x 16,000 /
    2**20): all the rest look independent at every lag."""
    count, n = 80, SAMPLE_RATE
    noises = np.empty((count, n), dtype=np.float32)
    for row, seed in zip(noises, range(count), strict=True):
        dtmf._noise(row, np.random.default_rng(seed), 1.0)
    assert np.mean(np.abs(np.corrcoef(noises)[np.triu_indices(count, 1)])) < 0.012
    spectra = np.fft.rfft(noises, n=2 * n, axis=1)
    peaks = []  # the largest cross-correlation of each pair, at any lag
    for a in range(count - 1):
        products = spectra[a + 1 :] * spectra[a].conj()
        peaks.extend(np.abs(np.fft.irfft(products, n=2 * n, axis=1)).max(axis=1))
    peaks = np.array(peaks) / np.sum(noises**2, axis=1).mean()
    assert np.median(peaks) < 0.04  # independent noise: about 4.5 standard errors
    assert np.mean(peaks > 0.1) < 0.1


@pytest.mark.parametrize("snr_db", [0.0, 10.0, 20.0, 30.0])
def test_the_noise_sits_at_the_drawn_snr(snr_db):
    """Fit the two sines (known frequencies: no jitter) and measure what is left, away
    from the 5 ms edges, which a steady sine does not fit."""
    key, n = 5, SAMPLE_RATE
    clip = dtmf.dtmf_clip(np.random.default_rng(int(snr_db)), key, n, SAMPLE_RATE, jitter=0.0,
                          duration_range=(1.0, 1.0), snr_db_range=(snr_db, snr_db),
                          distractor_prob=0.0)  # fmt: skip
    t = np.arange(n) / SAMPLE_RATE
    basis = np.stack(
        [fn(2 * np.pi * f * t) for f in dtmf.TONES[dtmf.KEYS[key]] for fn in (np.sin, np.cos)], 1
    )
    steady = slice(100, n - 100)
    basis, clip = basis[steady], clip[steady].astype(np.float64)
    coef, *_ = np.linalg.lstsq(basis, clip, rcond=None)
    tone = basis @ coef
    measured = 10 * np.log10(np.mean(tone**2) / np.mean((clip - tone) ** 2))
    assert measured == pytest.approx(snr_db, abs=0.3)


def test_labels_are_balanced_and_presses_last_80_to_400_ms():
    labels = make("train", 2400, clip_seconds=0.02).batch(list(range(2400)))["label"]
    counts = torch.bincount(labels, minlength=12)
    assert counts.min() >= 150 and counts.max() <= 250, counts  # 200 expected, sd 13.5
    rng = np.random.default_rng(4)
    lengths = []
    for index in range(40):
        clip = dtmf.dtmf_clip(rng, index % 12, SAMPLE_RATE, SAMPLE_RATE,
                              snr_db_range=(80.0, 80.0), distractor_prob=0.0)  # fmt: skip
        loud = np.flatnonzero(np.abs(clip) > 0.01 * np.abs(clip).max())
        lengths.append((loud[-1] - loud[0]) / SAMPLE_RATE)
    assert 0.08 - 0.01 <= min(lengths) < 0.15 and 0.33 < max(lengths) <= 0.4, lengths


# ---- ranks x workers through real DataLoaders --------------------------------------------


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_two_ranks_two_workers_partition_the_epoch(split):
    size, batch_size, world = 23, 4, 2
    per_rank = []
    for rank in range(world):
        ds = make(split, size, rank=rank, world_size=world, batch_size=batch_size)
        got = batch_indices(DataLoader(ds, batch_size=None, num_workers=2))
        assert len(got) == len(ds)  # __len__ matches what is yielded
        assert all(0 < len(b) <= batch_size for b in got)
        assert len(flat(got)) == len(set(flat(got)))  # no repeats within a rank
        per_rank.append(got)

    assert len(per_rank[0]) == len(per_rank[1])  # same number of batches on every rank
    everything = flat(per_rank[0]) + flat(per_rank[1])
    if split == "train":  # drop the remainder: disjoint, size - size % world samples
        assert len(everything) == len(set(everything)) == size - size % world
    else:  # wrap: every sample, at most world - 1 repeats
        assert set(everything) == set(range(size))
        assert len(everything) == size + (-size) % world


def test_batches_from_workers_match_the_in_process_batches():
    ds = make("val", 11, batch_size=3)
    reference = list(ds)
    loaded = list(DataLoader(ds, batch_size=None, num_workers=2))
    assert [b["key"] for b in loaded] == [b["key"] for b in reference]
    for got, want in zip(loaded, reference, strict=True):
        assert torch.equal(got["audio"], want["audio"])
        assert torch.equal(got["label"], want["label"])


@pytest.mark.filterwarnings("ignore:This DataLoader will create")
def test_batch_order_does_not_depend_on_the_number_of_workers():
    ds = make("train", 30, rank=1, world_size=2, batch_size=2)
    ds.set_epoch(4)
    alone = batch_indices(DataLoader(ds, batch_size=None, num_workers=0))
    shared = batch_indices(DataLoader(ds, batch_size=None, num_workers=3))
    assert alone == shared


def test_batches_are_collated_and_padded_to_the_clip():
    (batch, *_) = list(make("test", 5, batch_size=4))
    assert batch["audio"].shape == (4, 320)
    assert batch["audio"].dtype == torch.float32
    assert batch["lengths"].dtype == torch.int64
    assert batch["lengths"].tolist() == [320] * 4
    assert batch["label"].dtype == torch.int64
    assert ((batch["label"] >= 0) & (batch["label"] < 12)).all()


def test_fewer_samples_than_ranks():
    for rank in range(2):
        assert len(make("train", 1, rank=rank, world_size=2)) == 0
        assert list(make("train", 1, rank=rank, world_size=2)) == []
        assert batch_indices(make("val", 1, rank=rank, world_size=2)) == [[0]]


# ---- epochs ------------------------------------------------------------------------------


def epoch_order(ds: SyntheticBatches, epoch: int) -> list[int]:
    ds.set_epoch(epoch)
    return flat(batch_indices(ds))


def test_train_order_changes_with_the_epoch_and_repeats_for_the_same_epoch():
    ds = make("train", 40)
    e0, e1, e0_again, e1_again = (epoch_order(ds, e) for e in (0, 1, 0, 1))
    assert e0 != e1
    assert e0 == e0_again
    assert e1 == e1_again
    assert sorted(e0) == sorted(e1) == list(range(40))
    assert epoch_order(make("train", 40), 1) == e1  # a fresh dataset: same order


def test_train_ranks_stay_disjoint_in_a_later_epoch():
    shares = []
    for rank in range(2):
        ds = make("train", 23, rank=rank, world_size=2)
        shares.append(epoch_order(ds, 5))
    assert not set(shares[0]) & set(shares[1])


def test_eval_order_ignores_the_epoch():
    ds = make("val", 13)
    assert epoch_order(ds, 0) == epoch_order(ds, 3) == list(range(13))


@pytest.mark.parametrize("persistent", [True, False])
def test_epoch_loader_advances_the_epoch_on_every_iter(persistent):
    reference = make("train", 24, batch_size=3)
    expected = [epoch_order(reference, e) for e in range(3)]
    assert expected[0] != expected[1] != expected[2]

    ds = make("train", 24, batch_size=3)
    loader = EpochLoader(ds, batch_size=None, num_workers=2, persistent_workers=persistent)
    assert len(loader) == 8
    seen = [flat(batch_indices(loader)) for _ in range(3)]
    assert seen == expected


# ---- SyntheticSource, build_source, AudioDataModule --------------------------------------


def test_source_sizes_and_labels():
    source = SyntheticSource(train_size=5, val_size=0, test_size=2)
    spec = LoaderSpec(batch_size=2, clip_seconds=CLIP, train=False)
    assert source.labels == list(dtmf.KEYS)
    assert source.dataset("val", spec) is None
    assert len(source.dataset("test", spec)) == 1
    with pytest.raises(ConfigError, match="val_size"):
        SyntheticSource(val_size=-1)


def test_build_source_unknown_name():
    with pytest.raises(ConfigError) as info:
        build_source("nope", {})
    message = str(info.value)
    assert "'nope'" in message
    assert "manifest" in message
    assert "synthetic" in message


def test_unknown_source_option_names_it_and_the_known_ones():
    with pytest.raises(ConfigError) as info:
        AudioDataModule(source="synthetic", train_siez=10)
    message = str(info.value)
    assert "train_siez" in message
    assert "train_size" in message


def test_unknown_source_name_in_the_datamodule():
    with pytest.raises(ConfigError, match="unknown source 'synthetc'"):
        AudioDataModule(source="synthetc")


@pytest.mark.parametrize(
    ("option", "value", "text"),
    [
        ("batch_size", 0, "batch_size"),
        ("batch_size", -4, "batch_size"),
        ("num_workers", -1, "num_workers"),
        ("clip_seconds", 0.0, "clip_seconds"),
        ("on_error", "ignore", "on_error"),
        ("pin_memory", "yes", "pin_memory"),
    ],
)
def test_bad_datamodule_options(option, value, text):
    with pytest.raises(ConfigError, match=text):
        AudioDataModule(**{option: value})


def test_datamodule_labels_and_num_classes():
    dm = AudioDataModule(train_size=4, val_size=4, test_size=4)
    assert dm.labels == list(dtmf.KEYS)
    assert dm.num_classes == 12


def test_datamodule_loaders_give_batches_of_the_contract():
    dm = AudioDataModule(
        batch_size=4, num_workers=0, clip_seconds=0.1, train_size=10, val_size=6, test_size=5
    )
    sizes = {"train": 10, "val": 6, "test": 5}
    for split, loader in (
        ("train", dm.train_dataloader()),
        ("val", dm.val_dataloader()),
        ("test", dm.test_dataloader()),
    ):
        assert isinstance(loader, EpochLoader)
        count = 0
        for batch in loader:
            b = len(batch["key"])
            assert batch["audio"].shape == (b, 1600)
            assert batch["audio"].dtype == torch.float32
            assert batch["lengths"].dtype == torch.int64
            assert batch["lengths"].shape == (b,)
            assert batch["label"].dtype == torch.int64
            assert batch["label"].shape == (b,)
            assert ((batch["label"] >= 0) & (batch["label"] < 12)).all()
            count += b
        assert count == sizes[split]
        assert len(loader) == -(-sizes[split] // 4)


def test_datamodule_with_persistent_workers_reshuffles_train_each_epoch():
    dm = AudioDataModule(
        batch_size=4, num_workers=2, clip_seconds=CLIP, train_size=16, val_size=8, test_size=0
    )
    train = dm.train_dataloader()
    assert train.persistent_workers
    first, second = flat(batch_indices(train)), flat(batch_indices(train))
    assert sorted(first) == sorted(second) == list(range(16))
    assert first != second
    val = dm.val_dataloader()
    assert flat(batch_indices(val)) == flat(batch_indices(val)) == list(range(8))
    assert not dm.has_split("test")
    with pytest.raises(ConfigError, match="no test split"):
        dm.test_dataloader()
