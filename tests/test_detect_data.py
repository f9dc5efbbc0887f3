"""Frame-labelled data: the synthetic dialling recordings and the event -> frame label grid."""

import json
from pathlib import Path

import in_process
import numpy as np
import pytest
import torch

from audioseq.data.batching import collate
from audioseq.data.datamodule import AudioDataModule
from audioseq.data.frame_labels import LABEL_HOP, PAD, frame_labels, parse_events
from audioseq.data.sources.synthetic import SyntheticSource
from audioseq.data.spec import LoaderSpec
from audioseq.errors import DataError


def dialling(split: str = "train", seed: int = 0, seconds: float = 6.0, batch_size: int = 4):
    source = SyntheticSource(corpus="dialling", seed=seed, train_size=8, val_size=4)
    spec = LoaderSpec(batch_size=batch_size, clip_seconds=seconds, train=split == "train")
    return source, source.dataset(split, spec)


def test_labels_are_background_then_the_keys() -> None:
    source, _ = dialling()
    assert source.labels[0] == "_background_" and source.labels[1:] == list("0123456789*#")


def test_a_recording_depends_on_seed_split_and_index_only() -> None:
    _, train = dialling()
    _, other_batching = dialling(batch_size=3)
    a = train.example(5)
    assert torch.equal(a.audio, other_batching.example(5).audio)
    assert torch.equal(a.frame_labels, other_batching.example(5).frame_labels)
    assert not torch.equal(a.audio, train.example(6).audio)
    assert not torch.equal(a.audio, dialling("val")[1].example(5).audio)
    assert not torch.equal(a.audio, dialling(seed=1)[1].example(5).audio)


def test_a_batch_is_the_collated_recordings() -> None:
    _, train = dialling()
    batch = train.batch([1, 4, 6])
    alone = collate([train.example(i) for i in (1, 4, 6)])
    for key in ("audio", "lengths", "label", "frame_labels"):
        assert torch.equal(batch[key], alone[key]), key
    assert batch["audio"].shape == (3, 6 * 16000)
    assert batch["frame_labels"].shape == (3, 600)  # one label every 10 ms
    assert (batch["label"] == -1).all()  # no clip label


def test_the_default_recording_is_a_minute_of_presses_pauses_and_noise() -> None:
    source = SyntheticSource(corpus="dialling", train_size=1, val_size=0, test_size=0)
    example = source.dataset("train", LoaderSpec(1, None, True)).example(0)
    assert example.audio.shape == (60 * 16000,)
    labels = example.frame_labels.numpy()
    keys = labels > 0
    onsets = np.flatnonzero(keys[1:] & (labels[1:] != labels[:-1])) + 1
    assert 0.1 < keys.mean() < 0.5 and len(onsets) > 50  # presses, pauses between
    assert len(set(labels[keys].tolist())) == 12  # every key turns up in a minute
    # The presses are where the labels say: much louder than the background frames.
    power = example.audio[: len(labels) * LABEL_HOP].reshape(-1, LABEL_HOP).pow(2).mean(1)
    assert power[torch.from_numpy(keys)].median() > 5 * power[~torch.from_numpy(keys)].median()


def test_frame_labels_mark_steps_whose_centre_lies_in_an_event() -> None:
    labels = frame_labels([(80, 400, 3), (1000, 1001, 5)], 1500)
    # step j's centre is 160 j + 80: steps 0 and 1 lie in [80, 400); 1000 is no centre
    assert labels.tolist() == [3, 3, 0, 0, 0, 0, 0, 0, 0, 0]


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ({"start": 1}, "'events' must be a list"),
        ([{"start": 1, "end": 2}], "events[0]: expected an object with 'start', 'end' and 'label'"),
        ([{"start": 2, "end": 1, "label": "a"}], "events[0]: 'start' (2) must be before 'end' (1)"),
        ([{"start": "x", "end": 1, "label": "a"}], "events[0]: 'start' and 'end' must be seconds"),
        ([{"start": 0, "end": 1, "label": ""}], "events[0]: 'label' must be a non-empty string"),
    ],
)
def test_malformed_events_are_one_line_errors(events, message) -> None:
    with pytest.raises(DataError) as raised:
        parse_events(events, "train.jsonl:3")
    assert str(raised.value).startswith(f"train.jsonl:3: {message}"), str(raised.value)


def events_manifest(tmp_path, write_wav, events_line2: object = None) -> Path:
    """Two recordings of different lengths with a 1 kHz beep ('beep') and a 3 kHz one."""
    t = np.arange(16000 * 3) / 16000
    write_wav(
        tmp_path / "a.wav", (0.3 * np.sin(2 * np.pi * 1000 * t) * (t > 1.0) * (t < 1.5)), 16000
    )
    t = np.arange(16000 * 5) / 16000
    write_wav(
        tmp_path / "b.wav", (0.3 * np.sin(2 * np.pi * 3000 * t) * (t > 2.0) * (t < 2.2)), 16000
    )
    high = events_line2 or [{"start": 2.0, "end": 2.2, "label": "high"}]
    lines = [
        {"audio_filepath": "a.wav", "events": [{"start": 1.0, "end": 1.5, "label": "beep"}]},
        {"audio_filepath": "b.wav", "events": high},
    ]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def test_manifest_events_become_frame_labels(tmp_path, write_wav) -> None:
    manifest = events_manifest(tmp_path, write_wav)
    data = AudioDataModule(
        source="manifest", train_manifest=str(manifest), val_manifest=str(manifest),
        batch_size=2, num_workers=0, augment={"time_shift_seconds": 0, "gain_db": 6},
    )  # fmt: skip
    assert data.labels == ["_background_", "beep", "high"]
    batch = next(iter(data.val_dataloader()))
    labels = batch["frame_labels"]
    assert labels.shape == (2, 500) and (labels[0, 300:] == PAD).all()  # 3 s of 5: padding
    assert labels[0, 100:150].eq(1).all() and labels[0, :100].eq(0).all()
    assert labels[1, 200:220].eq(2).all() and labels[1].eq(2).sum() == 20


def test_malformed_events_stop_training_with_the_file_and_line(tmp_path, write_wav) -> None:
    manifest = events_manifest(tmp_path, write_wav, [{"start": 3.0, "end": 2.0, "label": "x"}])
    done = in_process.train(
        "task=detect", "data=manifest", f"data.train_manifest={manifest}",
        f"data.val_manifest={manifest}", f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path, returncode=2,
    )  # fmt: skip
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: {manifest}:2: events[0]: 'start' (3.0) must be before 'end' (2.0)"
    )


def test_task_detect_trains_on_a_manifest_with_events(tmp_path, write_wav) -> None:
    manifest = events_manifest(tmp_path, write_wav)
    run = tmp_path / "run"
    in_process.train(
        "task=detect", "data=manifest", f"data.train_manifest={manifest}",
        f"data.val_manifest={manifest}", "data.augment.time_shift_seconds=0",
        "data.batch_size=2", "model=gru", "model.encoder.hidden_size=8",
        "model.encoder.num_layers=1", "task.tbptt_frames=50", "trainer.max_epochs=2",
        f"hydra.run.dir={run}", cwd=tmp_path,
    )  # fmt: skip
    metrics = json.loads((run / "metrics.json").read_text())
    assert "val/event_f1" in metrics and "val/frame_acc" in metrics
