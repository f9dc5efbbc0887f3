"""data=folder: class folders, split lists, durations from headers, bad data, batches and one
run through the real train and eval commands."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from in_process import audioseq

from audioseq.data.datamodule import AudioDataModule
from audioseq.data.sources.folder import FolderSource
from audioseq.data.spec import LoaderSpec
from audioseq.errors import ConfigError, DataError

CLASSES = ("bird", "cat", "dog")


def noise(seconds: float, rate: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-0.3, 0.3, round(seconds * rate)).astype(np.float32)


@pytest.fixture
def corpus(tmp_path, write_wav) -> Path:
    """Three classes of four clips (16 kHz and 8 kHz WAV, a FLAC in a sub-folder), things
    that are not classes or clips, and val/test lists."""
    root = tmp_path / "corpus"
    for c, label in enumerate(CLASSES):
        write_wav(root / label / "a.wav", noise(0.5, 16000, c), 16000)
        write_wav(root / label / "b.wav", noise(0.75, 8000, c), 8000)
        write_wav(root / label / "c.wav", noise(0.25, 16000, c), 16000, "PCM_16")
        write_wav(root / label / "deeper" / "d.flac", noise(1.0, 16000, c), 16000)
        write_wav(root / label / ".ipynb_checkpoints" / "x.wav", noise(0.5, 16000), 16000)
    write_wav(root / "_background_noise_" / "hum.wav", noise(3.0, 16000), 16000)
    write_wav(root / ".cache" / "y.wav", noise(0.5, 16000), 16000)
    write_wav(root / "_extra" / "z.wav", noise(0.5, 16000), 16000)
    (root / "docs").mkdir()
    (root / "docs" / "notes.txt").write_text("not audio\n")
    (root / "val.txt").write_text("bird/a.wav\ncat/b.wav\n\n")
    (root / "test.txt").write_text("dog/deeper/d.flac\n")
    return root


def source(root: Path, **options) -> FolderSource:
    return FolderSource(root=str(root), **options)


def names(src: FolderSource, split: str) -> list[str]:
    return sorted(str(e.path.relative_to(src.root)) for e in src._entries[split])


def test_labels_are_the_sorted_class_folders(corpus):
    src = source(corpus)
    assert src.labels == list(CLASSES)  # not _background_noise_, .cache, _extra, docs
    assert len(names(src, "train")) == 12
    assert not any(".ipynb" in n for n in names(src, "train"))
    assert src.dataset("val", LoaderSpec(2, None, False)) is None  # no list: no split
    assert src.skipped == {}


def test_split_lists_pick_val_and_test_and_train_gets_the_rest(corpus):
    src = source(corpus, val_list=str(corpus / "val.txt"), test_list="test.txt")  # under root
    assert names(src, "val") == ["bird/a.wav", "cat/b.wav"]
    assert names(src, "test") == ["dog/deeper/d.flac"]
    train = names(src, "train")
    assert len(train) == 9 and not set(train) & {"bird/a.wav", "cat/b.wav", "dog/deeper/d.flac"}
    val = {e.path.name: e for e in src._entries["val"]}
    assert val["a.wav"].label == "bird" and val["b.wav"].label == "cat"
    assert val["a.wav"].where == f"{corpus / 'val.txt'}:1"
    assert val["b.wav"].duration == pytest.approx(0.75)  # from the 8 kHz header


def test_durations_come_from_the_headers(corpus):
    src = source(corpus)
    durations = {str(e.path.relative_to(corpus)): e.duration for e in src._entries["train"]}
    assert durations["cat/a.wav"] == pytest.approx(0.5)
    assert durations["cat/b.wav"] == pytest.approx(0.75)
    assert durations["cat/c.wav"] == pytest.approx(0.25)
    assert durations["cat/deeper/d.flac"] == pytest.approx(1.0)


def test_given_labels_set_the_order_and_other_folders_are_unknown(corpus):
    src = source(corpus, labels=["dog", "cat", "bird"])
    assert src.labels == ["dog", "cat", "bird"]
    with pytest.raises(DataError, match=r"dog/a.wav: unknown label 'dog'"):
        source(corpus, labels=["bird", "cat"])
    with pytest.warns(UserWarning, match=r"skipping"):
        src = source(corpus, labels=["bird", "cat"], on_error="skip")
    assert src.skipped == {"unknown_label": 4}
    assert {e.label for e in src._entries["train"]} == {"bird", "cat"}


def test_a_missing_listed_clip_names_the_list_and_line(corpus):
    (corpus / "val.txt").write_text("bird/a.wav\ncat/nope.wav\n")
    with pytest.raises(DataError) as info:
        source(corpus, val_list=str(corpus / "val.txt"))
    message = str(info.value)
    assert message.startswith(f"{corpus / 'val.txt'}:2: audio file not found")
    assert "cat/nope.wav" in message and "\n" not in message
    assert info.value.reason == "missing"
    with pytest.warns(UserWarning):
        src = source(corpus, val_list=str(corpus / "val.txt"), on_error="skip")
    assert src.skipped == {"missing": 1}
    assert names(src, "val") == ["bird/a.wav"]


def test_a_listed_clip_outside_the_classes_is_an_unknown_label(corpus):
    (corpus / "test.txt").write_text("_background_noise_/hum.wav\n")
    with pytest.raises(DataError, match=r"test.txt:1: unknown label '_background_noise_'"):
        source(corpus, test_list=str(corpus / "test.txt"))


def test_a_clip_in_both_lists_is_an_error(corpus):
    (corpus / "test.txt").write_text("cat/b.wav\n")
    with pytest.raises(DataError, match=r"test.txt:1: .*cat/b.wav is also listed at .*val.txt:2"):
        source(corpus, val_list="val.txt", test_list="test.txt")


def test_bad_headers_raise_or_are_skipped_and_counted(corpus):
    (corpus / "cat" / "a.wav").write_bytes(b"RIFF\x00\x00not really a wav file")
    (corpus / "dog" / "b.wav").write_bytes(b"")
    with pytest.raises(DataError) as info:
        source(corpus)
    assert str(info.value).startswith(f"{corpus / 'cat' / 'a.wav'}: cannot read audio header")
    assert info.value.reason == "corrupt"
    with pytest.warns(UserWarning):
        src = source(corpus, on_error="skip")
    assert src.skipped == {"corrupt": 2}  # an empty file has no header either
    assert len(src._entries["train"]) == 10


def test_a_header_without_samples_is_empty(corpus, write_wav):
    write_wav(corpus / "cat" / "silent.wav", np.zeros(0, np.float32), 16000)
    with pytest.raises(DataError, match=r"silent.wav: no audio samples") as info:
        source(corpus)
    assert info.value.reason == "empty"


def test_missing_root_and_root_without_classes(tmp_path):
    with pytest.raises(ConfigError, match=r"data.root is required for data=folder"):
        FolderSource()
    with pytest.raises(DataError, match=r"nowhere: data.root folder not found"):
        source(tmp_path / "nowhere")
    (tmp_path / "empty" / "_background_noise_").mkdir(parents=True)
    (tmp_path / "empty" / "docs").mkdir()
    with pytest.raises(DataError, match=r"empty: no class folders with audio"):
        source(tmp_path / "empty")


def test_a_missing_split_list(corpus):
    with pytest.raises(DataError, match=r"nope.txt: split list not found"):
        source(corpus, val_list=str(corpus / "nope.txt"))


def test_the_datamodule_serves_16k_batches(corpus):
    dm = AudioDataModule(
        source="folder",
        root=str(corpus),
        val_list="val.txt",
        test_list="test.txt",
        clip_seconds=None,
        batch_size=4,
        num_workers=0,
    )
    assert dm.labels == list(CLASSES)
    assert dm.has_split("val") and dm.has_split("test")
    batches = list(dm.train_dataloader())
    assert sum(len(b["label"]) for b in batches) == 9
    (val,) = list(dm.val_dataloader())
    assert val["label"].tolist() == [0, 1]  # bird/a.wav, cat/b.wav
    assert val["lengths"].tolist() == [8000, 12000]  # 0.75 s at 8 kHz, resampled to 16 kHz
    assert val["audio"].shape == (2, 12000) and val["audio"].dtype == torch.float32


def test_train_and_eval_commands(corpus, tmp_path):
    fast = ["debug=fast", "features.normalize=utterance"]
    run = tmp_path / "run"
    audioseq(
        "train",
        *fast,
        "data=folder",
        f"data.root={corpus}",
        "data.val_list=val.txt",
        "data.test_list=test.txt",
        "data.batch_size=4",
        "model.encoder.hidden_size=16",
        f"hydra.run.dir={run}",
        cwd=tmp_path,
    )
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0.0 <= metrics["test/acc"] <= 1.0
    moved = corpus.rename(tmp_path / "moved")  # the checkpoint's root is gone; point elsewhere
    audioseq(
        "eval",
        f"ckpt_path={run / 'checkpoints' / 'best.ckpt'}",
        f"data.root={moved}",
        f"hydra.run.dir={tmp_path / 'eval'}",
        cwd=tmp_path,
    )
    assert "test/acc" in json.loads((tmp_path / "eval" / "metrics.json").read_text())
