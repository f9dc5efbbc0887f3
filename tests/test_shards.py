"""``data=shards``: shard ranges, exact epochs over simulated ranks x real workers,
reshuffling, bucketing, index handling, and every bad-data case for raise and skip."""

import json
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from shard_corpus import LABELS, good_sample, make_shards, shard_keys, tone, wav_bytes, write_tar

from audioseq.data.datamodule import AudioDataModule
from audioseq.data.epoch_loader import EpochLoader
from audioseq.data.shards.plan import segments
from audioseq.data.sources.shards import ShardSource
from audioseq.data.spec import LoaderSpec
from audioseq.errors import ConfigError, DataError

# ---- the plan (pure; the rank/worker spans are in test_partition.py) -----------------------


def test_segments_cover_ranges_across_shards_and_wrap_around():
    counts = [3, 0, 4, 2]
    order = [2, 0, 3, 1]  # positions: shard 2 -> 0..3, shard 0 -> 4..6, shard 3 -> 7..8
    assert segments(counts, order, 2, 8) == [(2, 2, 4), (0, 0, 3), (3, 0, 1)]
    assert segments(counts, order, 7, 11) == [(3, 0, 2), (2, 0, 2)]  # wraps to the start
    assert segments(counts, order, 5, 5) == []


# ---- loaders over real shards --------------------------------------------------------------


def run_epochs(source, split, rank, world, bs, *, train, epochs=2, workers=2, **spec_kw):
    """Per epoch: (len(loader), batches yielded, keys in order, skipped by reason)."""
    spec = LoaderSpec(
        batch_size=bs,
        clip_seconds=None,
        train=train,
        rank=rank,
        world_size=world,
        seed=3,
        **spec_kw,
    )
    dataset = source.dataset(split, spec)
    loader = EpochLoader(
        dataset, batch_size=None, num_workers=workers, persistent_workers=workers > 0
    )
    results = []
    for _ in range(epochs):
        keys, skipped, count = [], Counter(), 0
        for batch in loader:
            count += 1
            keys += batch["key"]
            skipped.update(batch["skipped"])
            assert len(batch["key"]) <= bs
        results.append((len(loader), count, keys, skipped))
    return results


@pytest.mark.parametrize(
    ("total", "per_shard", "world", "bs"),
    [
        (24, 6, 2, 4),  # even: 4 shards over 2 ranks x 2 workers
        (23, 5, 2, 4),  # uneven: 5 + 5 + 5 + 5 + 3
        (10, 5, 3, 2),  # 2 shards for 3 ranks x 2 workers
    ],
)
def test_every_sample_once_per_epoch_and_equal_batches(tmp_path, total, per_shard, world, bs):
    folder = make_shards(tmp_path, total, per_shard)
    source = ShardSource(train_shards=str(folder), val_shards=str(folder), shuffle_buffer=8)
    everything = shard_keys(folder)
    assert len(everything) == total
    for split, train in (("train", True), ("val", False)):
        per_rank = [run_epochs(source, split, r, world, bs, train=train) for r in range(world)]
        for epoch in range(2):
            lengths = {ranks[epoch][0] for ranks in per_rank}
            counts = {ranks[epoch][1] for ranks in per_rank}
            assert len(lengths) == 1 and lengths == counts, (split, epoch, lengths, counts)
            keys = [k for ranks in per_rank for k in ranks[epoch][2]]
            assert sorted(keys) == sorted(everything), (split, epoch)
        orders = [[k for ranks in per_rank for k in ranks[e][2]] for e in range(2)]
        assert (orders[0] != orders[1]) == train  # reshuffled per training epoch only


def test_when_counts_do_not_allow_train_drops_and_eval_repeats_at_most_ranks_minus_one(tmp_path):
    folder = make_shards(tmp_path, 9, 4)  # ranks own 4 and 5 samples; batches of 4
    source = ShardSource(train_shards=str(folder), val_shards=str(folder))
    for split, train in (("train", True), ("val", False)):
        per_rank = [run_epochs(source, split, r, 2, 4, train=train, epochs=1) for r in range(2)]
        assert {r[0][0] for r in per_rank} == {r[0][1] for r in per_rank} == {1 if train else 2}
        keys = Counter(k for r in per_rank for k in r[0][2])
        if train:
            assert len(keys) == 8 and set(keys.values()) == {1}
        else:
            assert set(keys) == set(shard_keys(folder)) and sum(keys.values()) == 10


def test_same_seed_same_order_and_worker_count_does_not_change_the_batches(tmp_path):
    folder = make_shards(tmp_path, 20, 5)
    source = ShardSource(train_shards=str(folder), shuffle_buffer=4)
    first = run_epochs(source, "train", 0, 1, 3, train=True, workers=2)
    again = run_epochs(source, "train", 0, 1, 3, train=True, workers=2)
    assert [e[2] for e in first] == [e[2] for e in again]
    alone = run_epochs(source, "train", 0, 1, 3, train=True, workers=0)
    assert [e[1] for e in alone] == [e[1] for e in first]  # same batch count
    assert [sorted(e[2]) for e in alone] == [sorted(e[2]) for e in first]


def test_datamodule_reads_labels_and_counts_from_the_index(tmp_path):
    folder = make_shards(tmp_path, 12, 5, flac=True)
    index = json.loads((folder / "index.json").read_text())
    assert [s["count"] for s in index["shards"]] == [5, 5, 2]
    dm = AudioDataModule(
        source="shards", train_shards=str(folder), batch_size=4, num_workers=0, clip_seconds=0.2
    )
    assert dm.labels == sorted(LABELS)
    assert not dm.has_split("val")
    batches = list(dm.train_dataloader())
    assert len(batches) == 3
    assert all(b["audio"].shape[1] == 3200 for b in batches)  # cropped to 0.2 s
    assert sorted(k for b in batches for k in b["key"]) == sorted(shard_keys(folder))


def test_brace_pattern_and_list_and_index_less_folder(tmp_path):
    folder = make_shards(tmp_path, 11, 4)
    pattern = str(folder / "train-{000000..000002}.tar")
    listed = [str(folder / "train-000000.tar"), str(folder / "train-{000001..000002}.tar")]
    for spec in (pattern, listed):
        source = ShardSource(train_shards=spec)
        assert [s.count for s in source._shards["train"]] == [4, 4, 3]
    (folder / "index.json").unlink()  # counted and labelled by a scan instead
    for spec in (pattern, str(folder)):
        source = ShardSource(train_shards=spec)
        assert [s.count for s in source._shards["train"]] == [4, 4, 3]
        assert source.labels == sorted(LABELS)


def test_an_index_less_shard_is_read_by_the_byte_ranges_and_table_its_scan_found(tmp_path):
    """Without index.json the set-up scan finds what the index holds: where each sample
    begins and the sample table (key, audio range, label, duration); the batches match."""
    folder = make_shards(tmp_path, 11, 4, seconds=lambda i: 0.2 + 0.01 * i)
    options = dict(source="shards", train_shards=str(folder), batch_size=4, clip_seconds=0.2)

    def shards_and_batches() -> tuple[list, list]:
        dm = AudioDataModule(**options, num_workers=0)
        batches = [(b["key"], b["audio"]) for b in dm.train_dataloader()]
        return dm.source._shards["train"], batches

    indexed, expected = shards_and_batches()
    (folder / "index.json").unlink()
    scanned, got = shards_and_batches()
    for index, scan in zip(indexed, scanned, strict=True):
        # where each sample begins; the last sample runs on to the end of the file
        assert scan.offsets[:-1].tolist() == index.offsets[:-1].tolist()
        assert scan.offsets[-1] == Path(scan.url).stat().st_size > index.offsets[-1]
        ours, theirs = scan.samples, index.samples
        assert ours.keys.tolist() == theirs.keys.tolist()
        assert ours.audio.tolist() == theirs.audio.tolist()
        assert [ours.meta(i) for i in range(scan.count)] == [
            theirs.meta(i) for i in range(index.count)
        ]
    assert [keys for keys, _ in got] == [keys for keys, _ in expected]
    assert all(torch.equal(a, b) for (_, a), (_, b) in zip(got, expected, strict=True))


def test_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="train_shards is required"):
        ShardSource()
    with pytest.raises(ConfigError, match="neither a shard folder"):
        ShardSource(train_shards=str(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match="shard not found"):
        ShardSource(train_shards=str(tmp_path / "x-{000000..000001}.tar"))
    with pytest.raises(ConfigError, match="unknown option"):
        AudioDataModule(source="shards", train_shards=str(tmp_path), shard_size=3)


def test_bucketing_cuts_padding_and_keeps_the_epoch_exact(tmp_path):
    lengths = lambda i: 0.1 + 0.9 * ((i * 7) % 24) / 23  # noqa: E731
    folder = make_shards(tmp_path, 48, 12, seconds=lengths)
    padding = {}
    for bucketing in (False, True):
        source = ShardSource(train_shards=str(folder), bucketing=bucketing, sort_buffer_batches=12)
        ((length, count, keys, _),) = run_epochs(source, "train", 0, 1, 4, train=True, epochs=1)
        assert length == count == 12 and sorted(keys) == sorted(shard_keys(folder))
        spec = LoaderSpec(batch_size=4, clip_seconds=None, train=True, seed=3)
        loader = EpochLoader(source.dataset("train", spec), batch_size=None)
        audio = [(b["lengths"].sum().item(), b["audio"].numel()) for b in loader]
        padding[bucketing] = 1 - sum(a for a, _ in audio) / sum(n for _, n in audio)
    assert padding[True] < padding[False] / 2, padding


# ---- bad data: raise names shard and member; skip counts -----------------------------------


def bad_member(case: str) -> tuple[dict, str, dict]:
    """A sample for ``case``, the reason it is dropped for, and extra loader settings."""
    sample = good_sample(2)
    extra: dict = {}
    if case == "corrupt":
        sample["wav"] = b"RIFF\x00\x00 this is not a wav file at all" * 10
    elif case == "empty":
        sample["wav"] = wav_bytes(np.zeros(0, dtype=np.float32))
    elif case == "nonfinite":
        audio = tone(2)
        audio[100] = np.nan
        sample["wav"] = wav_bytes(audio, "FLOAT")
    elif case == "truncated":
        sample["wav"] = sample["wav"][: len(sample["wav"]) // 2]
    elif case == "no_label":
        sample["json"] = {"duration": 0.25}
    elif case == "unknown_label":
        sample["json"] = {"label": "sideways", "duration": 0.25}
    elif case == "too_short":
        sample = {"__key__": "s0002", "wav": wav_bytes(tone(2, 0.05)), "json": {"label": "go"}}
        extra = {"min_seconds": 0.1}
    elif case == "malformed_json":
        sample["json"] = "not json"
    return sample, {"malformed_json": "corrupt"}.get(case, case), extra


BAD_CASES = [
    "corrupt",
    "empty",
    "nonfinite",
    "truncated",
    "no_label",
    "unknown_label",
    "too_short",
    "malformed_json",
]


def bad_folder(tmp_path: Path, case: str) -> tuple[Path, str, dict]:
    sample, reason, extra = bad_member(case)
    samples = [good_sample(0), good_sample(1), sample, good_sample(3), good_sample(4)]
    write_tar(tmp_path / "bad", "bad-000000.tar", samples)
    write_tar(tmp_path / "bad", "bad-000001.tar", [good_sample(i) for i in range(5, 9)])
    return tmp_path / "bad", reason, extra


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_member_raise_names_shard_and_member(tmp_path, case):
    folder, reason, extra = bad_folder(tmp_path, case)
    source = ShardSource(train_shards=str(folder), labels=list(LABELS))
    with pytest.raises(DataError) as info:
        run_epochs(source, "train", 0, 1, 2, train=False, epochs=1, workers=0, **extra)
    message = str(info.value)
    assert "\n" not in message and info.value.reason == reason
    assert f"{folder / 'bad-000000.tar'}:s0002" in message, message


@pytest.mark.parametrize("case", BAD_CASES)
def test_bad_member_skip_counts_and_keeps_ranks_in_step(tmp_path, case):
    folder, reason, extra = bad_folder(tmp_path, case)
    source = ShardSource(train_shards=str(folder), labels=list(LABELS))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ranks = [
            run_epochs(
                source, "train", r, 2, 3, train=False, epochs=1, workers=0, on_error="skip", **extra
            )[0]
            for r in range(2)
        ]
    assert ranks[0][0] == ranks[0][1] == ranks[1][0] == ranks[1][1] == 2  # 4 + 5 slots
    keys = [k for r in ranks for k in r[2]]
    assert sorted(keys) == [f"bad-00000{s // 5}.tar/s{s:04d}" for s in range(9) if s != 2]
    assert sum((r[3] for r in ranks), Counter()) == {reason: 1}
    assert sum("skipping" in str(w.message) for w in caught) == 1


def test_max_seconds_leaves_long_clips_out_without_counting_them(tmp_path):
    samples = [good_sample(i) for i in range(4)] + [good_sample(4, seconds=0.6)]
    write_tar(tmp_path / "d", "d-000000.tar", samples)
    source = ShardSource(train_shards=str(tmp_path / "d"))
    ((length, count, keys, skipped),) = run_epochs(
        source, "train", 0, 1, 2, train=False, epochs=1, workers=0, max_seconds=0.5
    )
    assert length == count == 3 and len(keys) == 4 and not skipped


def truncated_shard(
    tmp_path: Path, cut: float | None = None, members: int | None = None, offsets: bool = False
) -> Path:
    folder = tmp_path / "cut"
    write_tar(folder, "cut-000000.tar", [good_sample(i) for i in range(6)], offsets)
    write_tar(folder, "cut-000001.tar", [good_sample(i) for i in range(6, 9)], offsets)
    path = folder / "cut-000000.tar"
    data = path.read_bytes()
    if members is not None:  # a clean cut after whole samples: the tar just ends early
        import tarfile

        with tarfile.open(path) as tar:
            end = tar.getmembers()[members].offset
        data = data[:end]
    else:
        data = data[: int(len(data) * cut)]
    path.write_bytes(data)
    return folder


@pytest.mark.parametrize("by_range", [False, True])  # streamed; read by the index's offsets
@pytest.mark.parametrize("members", [None, 6])  # mid-member cut; clean cut after 3 samples
def test_truncated_shard(tmp_path, members, by_range):
    folder = truncated_shard(tmp_path, cut=0.55, members=members, offsets=by_range)
    source = ShardSource(train_shards=str(folder))
    with pytest.raises(DataError) as info:
        run_epochs(source, "train", 0, 1, 4, train=False, epochs=1, workers=0)
    assert info.value.reason == "bad_shard" and "cut-000000.tar" in str(info.value)
    # Read by range, any cut shows as the shard ending early: the next range is not there.
    expected = "shard ends after 3" if members or by_range else "unreadable tar"
    assert expected in str(info.value)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ((length, count, keys, skipped),) = run_epochs(
            source, "train", 0, 1, 4, train=False, epochs=1, workers=2, on_error="skip"
        )
    assert length == count == 3
    first = [k for k in keys if k.startswith("cut-000000")]
    assert first == [f"cut-000000.tar/s{i:04d}" for i in range(len(first))]  # a prefix
    assert len(first) + skipped["bad_shard"] == 6 and len(keys) == len(first) + 3


def offset_shards(tmp_path: Path, n: int = 6) -> tuple[Path, list[int]]:
    """One shard of ``n`` good samples with their offsets in the index, and the offsets."""
    folder = tmp_path / "o"
    entry = write_tar(folder, "o-000000.tar", [good_sample(i) for i in range(n)], offsets=True)
    return folder, entry["offsets"]


def test_the_sample_table_and_byte_ranges_give_what_streaming_gives(tmp_path):
    """The index's sample table (only the audio read, label and duration from the index)
    and its offsets (each sample read whole) change how samples are read, not which
    batches come out: the same keys, labels and audio as streaming the shards, shuffled and
    split over 2 workers, in two epochs."""
    folder = make_shards(tmp_path, 23, 5, seconds=lambda i: 0.15 + 0.01 * (i % 7))
    epochs = {}
    for mode in ("table", "range", "stream"):
        source = ShardSource(train_shards=str(folder), shuffle_buffer=6)
        for shard in source._shards["train"]:
            assert shard.offsets is not None and len(shard.offsets) == shard.count + 1
            assert shard.samples is not None and len(shard.samples.keys) == shard.count
            shard.samples = shard.samples if mode == "table" else None
            shard.offsets = None if mode == "stream" else shard.offsets
        spec = LoaderSpec(batch_size=4, clip_seconds=0.2, train=True, seed=3)
        dataset = source.dataset("train", spec)
        loader = EpochLoader(dataset, batch_size=None, num_workers=2, persistent_workers=True)
        epochs[mode] = [[dict(b) for b in loader] for _ in range(2)]
    for mode in ("table", "range"):
        for ours, streamed in zip(epochs[mode], epochs["stream"], strict=True):
            assert len(ours) == len(streamed) == 6
            for a, b in zip(ours, streamed, strict=True):
                assert a["key"] == b["key"] and a["label"].tolist() == b["label"].tolist()
                assert a["audio"].equal(b["audio"]) and a["lengths"].equal(b["lengths"])
    assert [b["key"] for b in epochs["table"][0]] != [b["key"] for b in epochs["table"][1]]


def test_a_scanned_shard_gets_no_table_where_a_sample_needs_its_sidecar(tmp_path):
    """Shards written by webdataset's own writer (pax headers for fractional mtimes: the
    member's own header still holds its name) get a table; one with a sample without a
    duration, or whose name is too long for its own header, is read by byte range,
    sidecars included."""
    folder = tmp_path / "w"
    long = "k" * 120
    write_tar(folder, "w-000000.tar", [good_sample(0), good_sample(1)])
    write_tar(folder, "w-000001.tar", [good_sample(2), {**good_sample(3), "__key__": long}])
    bare = {**good_sample(4), "json": {"label": LABELS[0]}}
    write_tar(folder, "w-000002.tar", [good_sample(5), bare])
    (folder / "index.json").unlink()
    shards = ShardSource(train_shards=str(folder))._shards["train"]
    assert [s.samples is not None for s in shards] == [True, False, False]
    assert all(s.offsets is not None for s in shards)
    keys = run_epochs(ShardSource(train_shards=str(folder)), "train", 0, 1, 2, train=False)
    names = ["w-000000.tar/s0000", "w-000000.tar/s0001", "w-000001.tar/s0002"]
    names += [f"w-000001.tar/{long}", "w-000002.tar/s0005", "w-000002.tar/s0004"]
    assert sorted(keys[0][2]) == sorted(names)


def test_a_shard_rewritten_after_its_index_gives_bad_samples_not_wrong_labels(tmp_path):
    """The same clips written again in another order over a shard whose index.json stays:
    where the table's key is not the audio member's, the sample is refused with a reason;
    every clip that comes out has its own label."""
    folder = make_shards(tmp_path, 12, 12, seed=0)
    again = make_shards(tmp_path, 12, 12, name="again", seed=1)
    (again / "again-000000.tar").replace(folder / "train-000000.tar")
    truth = {}
    for line in (tmp_path / "train_src" / "clips.jsonl").read_text().splitlines():
        record = json.loads(line)
        truth[Path(record["audio_filepath"]).stem] = record["label"]
    source = ShardSource(train_shards=str(folder))
    with pytest.raises(DataError, match=r"train-000000\.tar: sample \d+: no audio member of "):
        run_epochs(source, "train", 0, 1, 3, train=False, epochs=1, workers=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = source.dataset(
            "train", LoaderSpec(batch_size=3, clip_seconds=None, train=False, on_error="skip")
        )
        batches = list(EpochLoader(dataset, batch_size=None, num_workers=0))
    kept = [
        (key, int(label)) for b in batches for key, label in zip(b["key"], b["label"], strict=True)
    ]
    assert sum(sum(b["skipped"].values()) for b in batches) == 12 - len(kept) > 0
    for key, label in kept:  # "train-000000.tar/0000003_clip007": the clip's own label
        assert source.labels[label] == truth[key.split("_", 1)[1]]


@pytest.mark.parametrize(
    "change",
    [
        lambda t: t.pop("keys"),
        lambda t: t["labels"].pop(),
        lambda t: t["audio"].__setitem__(0, [100, 10]),
        lambda t: t["audio"].__setitem__(0, [600.5, 10]),
        lambda t: t["durations"].__setitem__(0, "1.0"),
        lambda t: t["keys"].__setitem__(0, "clé"),
    ],
)
def test_a_malformed_sample_table_fails_at_set_up(tmp_path, change):
    folder = make_shards(tmp_path, 4, 4)
    index = json.loads((folder / "index.json").read_text())
    change(index["shards"][0]["samples"])
    (folder / "index.json").write_text(json.dumps(index))
    with pytest.raises(DataError, match=r"index\.json: shard 'train-000000\.tar': 'samples' must"):
        ShardSource(train_shards=str(folder))


def test_a_sample_read_by_range_that_is_corrupt_costs_only_itself(tmp_path):
    folder, offsets = offset_shards(tmp_path)
    path = folder / "o-000000.tar"
    data = bytearray(path.read_bytes())
    data[offsets[2] + 124 : offsets[2] + 136] = b"not octal!!\0"  # sample 2's first header size
    path.write_bytes(bytes(data))
    source = ShardSource(train_shards=str(folder))
    with pytest.raises(
        DataError, match=r"o-000000\.tar: sample 2: unreadable tar \(invalid header\)"
    ):
        run_epochs(source, "train", 0, 1, 3, train=False, epochs=1, workers=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ((length, count, keys, skipped),) = run_epochs(
            source, "train", 0, 1, 3, train=False, epochs=1, workers=0, on_error="skip"
        )
    assert length == count == 2 and skipped == {"bad_shard": 1}
    assert keys == [f"o-000000.tar/s{i:04d}" for i in (0, 1, 3, 4, 5)]


@pytest.mark.parametrize(
    ("stale", "reason"),
    [
        (lambda o: [o[0], *(x + 512 for x in o[1:-1]), o[-1]], "past the sample's byte range"),
        (lambda o: [o[0], *o[2:], o[-1] + 1], "a second sample"),
    ],
)
def test_offsets_that_do_not_fit_the_shard_are_bad_samples_not_wrong_ones(tmp_path, stale, reason):
    """An index.json left over from another writing of the shards: ranges that cut
    members, or that hold two samples, are refused with a reason; none becomes a
    wrongly-labelled clip."""
    folder, offsets = offset_shards(tmp_path)
    index = json.loads((folder / "index.json").read_text())
    index["shards"][0]["offsets"] = stale(offsets)
    index["shards"][0]["count"] = len(index["shards"][0]["offsets"]) - 1
    (folder / "index.json").write_text(json.dumps(index))
    source = ShardSource(train_shards=str(folder))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ((_, _, keys, skipped),) = run_epochs(
            source, "train", 0, 1, 3, train=False, epochs=1, workers=0, on_error="skip"
        )
    assert skipped["bad_shard"] >= 1 and len(set(keys)) == len(keys)
    with pytest.raises(DataError, match=reason):
        run_epochs(source, "train", 0, 1, 3, train=False, epochs=1, workers=0)


@pytest.mark.parametrize(
    "offsets",
    [[0, 10], [0, 20, 10, 30, 40, 50, 60], [0, 1.5, 2, 3, 4, 5, 6], "0,1", [-1, *range(1, 7)]],
)
def test_malformed_offsets_in_the_index_fail_at_set_up(tmp_path, offsets):
    folder, _ = offset_shards(tmp_path)
    index = json.loads((folder / "index.json").read_text())
    index["shards"][0]["offsets"] = offsets
    (folder / "index.json").write_text(json.dumps(index))
    with pytest.raises(DataError, match=r"index\.json: shard 'o-000000\.tar': 'offsets' must be 7"):
        ShardSource(train_shards=str(folder))


@pytest.mark.parametrize("by_range", [False, True])
def test_missing_shard_is_skipped_or_raised(tmp_path, by_range):
    folder = tmp_path / "m"
    write_tar(folder, "m-000000.tar", [good_sample(i) for i in range(3)], by_range)
    write_tar(folder, "m-000001.tar", [good_sample(i) for i in range(3, 5)], by_range)
    (folder / "m-000001.tar").unlink()
    source = ShardSource(train_shards=str(folder))
    with pytest.raises(DataError, match=r"m-000001\.tar: not found"):
        run_epochs(source, "train", 0, 1, 2, train=False, epochs=1, workers=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ((length, count, keys, skipped),) = run_epochs(
            source, "train", 0, 1, 2, train=False, epochs=1, workers=0, on_error="skip"
        )
    assert length == count == 3 and len(keys) == 3 and skipped == {"missing": 2}
