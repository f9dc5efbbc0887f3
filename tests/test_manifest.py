"""JSON Lines manifests: parsing, path resolution, label sets, errors naming file:line,
ManifestDataset (crop, labels, on_error) and the manifest DataModule."""

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

from audioseq import SAMPLE_RATE
from audioseq.data.datamodule import AudioDataModule
from audioseq.data.entries import read_manifest
from audioseq.data.skipping import Skipped
from audioseq.data.sources.manifest import ManifestSource
from audioseq.data.spec import LoaderSpec
from audioseq.errors import ConfigError, DataError, one_line

RAMP = np.arange(SAMPLE_RATE, dtype=np.float32) / SAMPLE_RATE  # 1 s; sample i holds i / 16000


def write_manifest(path: Path, records: list) -> Path:
    """One JSON object (or a raw string line) per line."""
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def corpus(tmp_path, write_wav):
    """Three 1 s float ramps at 16 kHz under tmp_path/audio/ and a train/val/test manifest."""
    for name in ("a", "b", "c"):
        write_wav(tmp_path / "audio" / f"{name}.wav", RAMP, SAMPLE_RATE, "FLOAT")
    train = write_manifest(
        tmp_path / "train.jsonl",
        [
            {"audio_filepath": "audio/a.wav", "duration": 1.0, "label": "yes"},
            {"audio_filepath": "audio/b.wav", "duration": 1.0, "label": "no"},
            {"audio_filepath": "audio/c.wav", "duration": 1.0, "label": "up"},
        ],
    )
    val = write_manifest(
        tmp_path / "val.jsonl",
        [{"audio_filepath": "audio/a.wav", "duration": 1.0, "label": "up"}],
    )
    test = write_manifest(
        tmp_path / "test.jsonl",
        [
            {"audio_filepath": "audio/b.wav", "duration": 1.0, "label": "yes"},
            {"audio_filepath": "audio/c.wav", "duration": 1.0, "label": "no"},
        ],
    )
    return tmp_path, train, val, test


def spec(train: bool, clip_seconds: float | None = None, on_error: str = "raise") -> LoaderSpec:
    return LoaderSpec(batch_size=2, clip_seconds=clip_seconds, train=train, on_error=on_error)


def data_error(manifest: Path, line: int) -> str:
    """The error of checking ``manifest`` as a train manifest (parsing, files, labels)."""
    with pytest.raises(DataError) as info:
        ManifestSource(train_manifest=str(manifest))
    message = str(info.value)
    assert message.startswith(f"{manifest}:{line}: "), message
    assert "\n" not in message
    return message


# ---- read_manifest -----------------------------------------------------------------------


def test_relative_paths_resolve_against_the_manifest_folder(corpus, tmp_path, monkeypatch):
    root, train, _, _ = corpus
    monkeypatch.chdir(tmp_path / "audio")  # not the manifest's folder
    entries = read_manifest(train)
    assert [e.path for e in entries] == [root / "audio" / f"{n}.wav" for n in "abc"]
    assert [e.label for e in entries] == ["yes", "no", "up"]
    assert [e.duration for e in entries] == [1.0, 1.0, 1.0]
    assert [e.offset for e in entries] == [0.0, 0.0, 0.0]
    assert [e.where for e in entries] == [f"{train}:{i}" for i in (1, 2, 3)]


def test_relative_manifest_path(corpus, monkeypatch):
    root, _, _, _ = corpus
    monkeypatch.chdir(root)
    entries = read_manifest("train.jsonl")
    assert entries[0].path.resolve() == (root / "audio" / "a.wav").resolve()
    assert entries[0].path.is_file()


def test_manifest_in_a_subfolder_with_parent_relative_paths(corpus):
    root, _, _, _ = corpus
    (root / "lists").mkdir()
    manifest = write_manifest(
        root / "lists" / "m.jsonl", [{"audio_filepath": "../audio/b.wav", "label": "x"}]
    )
    (entry,) = read_manifest(manifest)
    assert entry.path.resolve() == (root / "audio" / "b.wav").resolve()


def test_absolute_paths_are_kept(corpus, tmp_path_factory):
    root, _, _, _ = corpus
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    absolute = root / "audio" / "c.wav"
    manifest = write_manifest(elsewhere / "m.jsonl", [{"audio_filepath": str(absolute)}])
    (entry,) = read_manifest(manifest)
    assert entry.path == absolute
    assert entry.label is None
    assert entry.duration is None


def test_offset_duration_and_numeric_labels(corpus):
    root, _, _, _ = corpus
    manifest = write_manifest(
        root / "m.jsonl",
        [{"audio_filepath": "audio/a.wav", "offset": 0.25, "duration": 0.5, "label": 7}],
    )
    (entry,) = read_manifest(manifest)
    assert entry.offset == 0.25
    assert entry.duration == 0.5
    assert entry.label == "7"


def test_blank_lines_are_skipped_and_line_numbers_stay_true(corpus):
    root, _, _, _ = corpus
    manifest = root / "m.jsonl"
    manifest.write_text(
        "\n"
        + json.dumps({"audio_filepath": "audio/a.wav"})
        + "\n   \n"
        + json.dumps({"audio_filepath": "audio/missing.wav"})
        + "\n",
        encoding="utf-8",
    )
    message = data_error(manifest, 4)
    assert "missing.wav" in message


def test_crlf_line_endings(corpus):
    root, _, _, _ = corpus
    manifest = root / "m.jsonl"
    manifest.write_bytes(
        b'{"audio_filepath": "audio/a.wav"}\r\n{"audio_filepath": "audio/b.wav"}\r\n'
    )
    assert len(read_manifest(manifest)) == 2


# ---- read_manifest errors: file:line and the reason --------------------------------------


def test_malformed_json_line(corpus):
    root, _, _, _ = corpus
    manifest = write_manifest(
        root / "m.jsonl", [{"audio_filepath": "audio/a.wav"}, '{"audio_filepath": "audio/b.wav"']
    )
    assert "malformed JSON" in data_error(manifest, 2)


def test_missing_audio_filepath(corpus):
    root, _, _, _ = corpus
    manifest = write_manifest(root / "m.jsonl", [{"path": "audio/a.wav", "label": "x"}])
    assert "audio_filepath" in data_error(manifest, 1)


def test_line_that_is_not_an_object(corpus):
    root, _, _, _ = corpus
    manifest = write_manifest(root / "m.jsonl", ['["audio/a.wav"]'])
    assert "audio_filepath" in data_error(manifest, 1)


def test_missing_audio_file(corpus):
    root, _, _, _ = corpus
    manifest = write_manifest(
        root / "m.jsonl",
        [{"audio_filepath": "audio/a.wav"}, {"audio_filepath": "audio/gone.wav"}],
    )
    message = data_error(manifest, 2)
    assert "not found" in message
    assert str(root / "audio" / "gone.wav") in message


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("duration", "1.5"),
        ("duration", "abc"),
        ("offset", "0"),
        ("duration", True),
        ("duration", [1]),
        ("duration", -1.0),
        ("offset", -0.5),
    ],
)
def test_bad_numbers(corpus, key, value):
    root, _, _, _ = corpus
    record = {"audio_filepath": "audio/a.wav", key: value}
    manifest = write_manifest(root / "m.jsonl", [{"audio_filepath": "audio/b.wav"}, record])
    assert f"'{key}'" in data_error(manifest, 2)


def test_null_duration_means_to_the_end(corpus):
    root, _, _, _ = corpus
    manifest = write_manifest(
        root / "m.jsonl", [{"audio_filepath": "audio/a.wav", "duration": None}]
    )
    assert read_manifest(manifest)[0].duration is None


def test_non_finite_duration(corpus):
    root, _, _, _ = corpus
    manifest = root / "m.jsonl"
    manifest.write_text('{"audio_filepath": "audio/a.wav", "duration": NaN}\n', encoding="utf-8")
    assert "'duration'" in data_error(manifest, 1)


def test_empty_manifest(tmp_path):
    manifest = tmp_path / "empty.jsonl"
    manifest.write_text("\n\n", encoding="utf-8")
    with pytest.raises(DataError, match="empty") as info:
        read_manifest(manifest)
    assert str(manifest) in str(info.value)


def test_missing_manifest(tmp_path):
    with pytest.raises(DataError, match="not found") as info:
        read_manifest(tmp_path / "nope.jsonl")
    assert str(tmp_path / "nope.jsonl") in str(info.value)


def test_manifest_that_is_not_utf8_names_the_line(corpus):
    root, _, _, _ = corpus
    manifest = root / "m.jsonl"
    manifest.write_bytes(b'{"audio_filepath": "audio/a.wav"}\n{"audio_filepath": "caf\xe9.wav"}\n')
    assert "UTF-8" in data_error(manifest, 2)


# ---- ManifestSource ----------------------------------------------------------------------


def test_labels_are_the_sorted_train_labels(corpus):
    _, train, val, test = corpus
    source = ManifestSource(train_manifest=str(train), val_manifest=str(val), test_manifest=test)
    assert source.labels == ["no", "up", "yes"]


def test_given_labels_are_kept_in_their_order(corpus):
    _, train, val, _ = corpus
    source = ManifestSource(
        train_manifest=str(train), val_manifest=str(val), labels=["yes", "up", "no", "left"]
    )
    assert source.labels == ["yes", "up", "no", "left"]
    ds = source.dataset("train", spec(train=False))
    assert [ds[i].label for i in range(3)] == [0, 2, 1]


def test_unknown_label_in_val_or_test_names_the_line(corpus):
    root, train, _, _ = corpus
    val = write_manifest(
        root / "val2.jsonl",
        [
            {"audio_filepath": "audio/a.wav", "label": "no"},
            {"audio_filepath": "audio/b.wav", "label": "maybe"},
        ],
    )
    with pytest.raises(DataError) as info:
        ManifestSource(train_manifest=str(train), val_manifest=str(val))
    assert str(info.value).startswith(f"{val}:2: unknown label 'maybe'")

    test = write_manifest(
        root / "test2.jsonl", [{"audio_filepath": "audio/c.wav", "label": "down"}]
    )
    with pytest.raises(DataError) as info:
        ManifestSource(train_manifest=str(train), test_manifest=str(test))
    assert str(info.value).startswith(f"{test}:1: unknown label 'down'")


def test_unknown_train_label_when_labels_are_given(corpus):
    _, train, _, _ = corpus
    with pytest.raises(DataError, match=r"train\.jsonl:1: unknown label 'yes'"):
        ManifestSource(train_manifest=str(train), labels=["no", "up"])


def test_missing_label_names_the_line(corpus):
    root, _, _, _ = corpus
    train = write_manifest(
        root / "t.jsonl",
        [{"audio_filepath": "audio/a.wav", "label": "x"}, {"audio_filepath": "audio/b.wav"}],
    )
    with pytest.raises(DataError, match=r"t\.jsonl:2: no 'label'"):
        ManifestSource(train_manifest=str(train))


def test_train_manifest_is_required():
    with pytest.raises(ConfigError, match="train_manifest"):
        ManifestSource()


def test_splits_without_a_manifest_have_no_dataset(corpus):
    _, train, _, _ = corpus
    source = ManifestSource(train_manifest=str(train))
    assert source.dataset("val", spec(train=False)) is None
    assert source.dataset("test", spec(train=False)) is None
    assert len(source.dataset("train", spec(train=True))) == 3


# ---- ManifestDataset ---------------------------------------------------------------------


def test_dataset_returns_examples_with_label_indices(corpus):
    _, train, _, test = corpus
    source = ManifestSource(train_manifest=str(train), test_manifest=str(test))
    ds = source.dataset("test", spec(train=False))
    assert len(ds) == 2
    first, second = ds[0], ds[1]
    assert first.key.endswith("b.wav")
    assert first.label == source.labels.index("yes")
    assert second.label == source.labels.index("no")
    assert first.audio.dtype == torch.float32
    assert first.audio.shape == (SAMPLE_RATE,)
    np.testing.assert_array_equal(first.audio.numpy(), RAMP)


def test_dataset_applies_offset_and_duration(corpus):
    root, _, _, _ = corpus
    train = write_manifest(
        root / "t.jsonl",
        [{"audio_filepath": "audio/a.wav", "offset": 0.5, "duration": 0.25, "label": "x"}],
    )
    ds = ManifestSource(train_manifest=str(train)).dataset("train", spec(train=False))
    np.testing.assert_array_equal(ds[0].audio.numpy(), RAMP[8000:12000])


def test_eval_crops_the_centre_every_time(corpus):
    _, train, _, test = corpus
    ds = ManifestSource(train_manifest=str(train), test_manifest=str(test)).dataset(
        "test", spec(train=False, clip_seconds=0.1)
    )
    clips = [ds[0].audio for _ in range(5)]
    for clip in clips:
        np.testing.assert_array_equal(clip.numpy(), RAMP[7200:8800])


def test_train_crops_randomly(corpus):
    _, train, _, _ = corpus
    ds = ManifestSource(train_manifest=str(train)).dataset(
        "train", spec(train=True, clip_seconds=0.1)
    )
    starts = set()
    for epoch in range(20):  # a new crop every epoch, the same one for the same epoch
        ds.set_epoch(epoch)
        clip = ds[0].audio.numpy()
        assert clip.shape == (1600,)
        start = round(float(clip[0]) * SAMPLE_RATE)
        assert 0 <= start <= SAMPLE_RATE - 1600
        np.testing.assert_array_equal(clip, RAMP[start : start + 1600])
        np.testing.assert_array_equal(clip, ds[0].audio.numpy())
        starts.add(start)
    assert len(starts) > 10


def test_clip_longer_than_the_audio_is_not_padded_here(corpus):
    _, train, _, _ = corpus
    ds = ManifestSource(train_manifest=str(train)).dataset(
        "train", spec(train=True, clip_seconds=2.0)
    )
    assert ds[1].audio.shape == (SAMPLE_RATE,)


@pytest.fixture
def with_bad_file(corpus):
    """A train manifest whose line 2 names an existing file that cannot be decoded."""
    root, _, _, _ = corpus
    (root / "audio" / "bad.wav").write_bytes(b"not a wav file" * 100)
    manifest = write_manifest(
        root / "bad.jsonl",
        [
            {"audio_filepath": "audio/a.wav", "label": "x"},
            {"audio_filepath": "audio/bad.wav", "label": "y"},
            {"audio_filepath": "audio/c.wav", "label": "y"},
        ],
    )
    return manifest, root / "audio" / "bad.wav"


def test_on_error_raise_names_the_manifest_line_and_the_file(with_bad_file):
    manifest, bad = with_bad_file
    ds = ManifestSource(train_manifest=str(manifest)).dataset("train", spec(train=True))
    assert ds[0] is not None
    with pytest.raises(DataError) as info:
        ds[1]
    message = str(info.value)
    assert message.startswith(f"{manifest}:2: ")
    assert str(bad) in message
    assert "\n" not in message


def test_on_error_skip_returns_a_counted_marker_and_warns_once(with_bad_file):
    manifest, bad = with_bad_file
    ds = ManifestSource(train_manifest=str(manifest)).dataset(
        "train", spec(train=True, on_error="skip")
    )
    with pytest.warns(UserWarning, match=r"bad\.jsonl:2") as record:
        assert ds[1] == Skipped(f"{manifest}:2", "corrupt")
    assert any(str(bad) in str(w.message) for w in record)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a second read of the same file stays quiet
        assert isinstance(ds[1], Skipped)
    assert ds.policy.counts == {"corrupt": 2}
    assert ds[2].label == 1


# ---- the manifest DataModule -------------------------------------------------------------


def test_datamodule_loaders_give_padded_batches(corpus):
    _, train, val, test = corpus
    dm = AudioDataModule(
        source="manifest",
        train_manifest=str(train),
        val_manifest=str(val),
        test_manifest=str(test),
        batch_size=2,
        num_workers=0,
        clip_seconds=0.5,
    )
    assert dm.labels == ["no", "up", "yes"]
    assert dm.num_classes == 3
    sizes = {"train": 3, "val": 1, "test": 2}
    for split, loader in (
        ("train", dm.train_dataloader()),
        ("val", dm.val_dataloader()),
        ("test", dm.test_dataloader()),
    ):
        seen = 0
        for batch in loader:
            assert batch["audio"].dtype == torch.float32
            assert batch["audio"].shape == (len(batch["key"]), 8000)
            assert batch["lengths"].dtype == torch.int64
            assert batch["lengths"].tolist() == [8000] * len(batch["key"])
            assert batch["label"].dtype == torch.int64
            assert ((batch["label"] >= 0) & (batch["label"] < 3)).all()
            seen += len(batch["key"])
        assert seen == sizes[split]


def test_datamodule_without_clip_pads_to_the_longest(corpus, write_wav):
    root, _, _, _ = corpus
    write_wav(root / "audio" / "short.wav", RAMP[:4000], SAMPLE_RATE, "FLOAT")
    train = write_manifest(
        root / "t.jsonl",
        [
            {"audio_filepath": "audio/short.wav", "label": "s"},
            {"audio_filepath": "audio/a.wav", "label": "l"},
        ],
    )
    dm = AudioDataModule(
        source="manifest",
        train_manifest=str(train),
        batch_size=2,
        num_workers=0,
        clip_seconds=None,
    )
    (batch,) = list(dm.train_dataloader())
    assert batch["audio"].shape == (2, SAMPLE_RATE)
    for row, key in enumerate(batch["key"]):
        n = 4000 if key.endswith("short.wav") else SAMPLE_RATE
        assert int(batch["lengths"][row]) == n
        np.testing.assert_array_equal(batch["audio"][row, :n].numpy(), RAMP[:n])
        assert batch["audio"][row, n:].abs().sum() == 0
    assert not dm.has_split("val")
    with pytest.raises(ConfigError, match="no val split"):
        dm.val_dataloader()


def test_datamodule_skip_drops_the_bad_sample(with_bad_file):
    manifest, _ = with_bad_file
    dm = AudioDataModule(
        source="manifest",
        train_manifest=str(manifest),
        batch_size=3,
        num_workers=0,
        on_error="skip",
        clip_seconds=0.25,
    )
    with pytest.warns(UserWarning, match="skipping"):
        (batch,) = list(dm.train_dataloader())
    assert len(batch["key"]) == 2
    assert batch["audio"].shape == (2, 4000)
    assert not any(k.endswith("bad.wav") for k in batch["key"])


def test_datamodule_raise_from_a_worker_is_a_one_line_data_error(with_bad_file):
    manifest, _ = with_bad_file
    dm = AudioDataModule(
        source="manifest",
        train_manifest=str(manifest),
        batch_size=1,
        num_workers=1,
        persistent_workers=False,
    )
    with pytest.raises(DataError) as info:
        list(dm.train_dataloader())
    assert one_line(info.value).startswith(f"{manifest}:2: ")


def test_datamodule_unknown_manifest_option():
    with pytest.raises(ConfigError, match="train_manfest"):
        AudioDataModule(source="manifest", train_manfest="x.jsonl")
