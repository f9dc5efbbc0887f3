"""task=detect end to end: what it refuses, what a run logs, and audioseq-stream on its
checkpoint finding the events the evaluation found."""

import json
import os
from pathlib import Path

import pytest
import torch
from in_process import audioseq
from processes import train
from tensorboard_events import tags
from test_configs import compose_train

from audioseq.cli.train import build_task
from audioseq.data.sources.synthetic import SyntheticSource
from audioseq.data.spec import LoaderSpec
from audioseq.errors import ConfigError
from audioseq.tasks.checkpoint import load_checkpoint
from audioseq.tasks.event_scoring import EventCounts, Onset, f_scores, match, onsets
from audioseq.tasks.events import Event

DIALLING = ["_background_", *"0123456789*#"]


@pytest.mark.parametrize(
    ("overrides", "labels", "message"),
    [
        ([], list("ab"), "task=detect needs frame-labelled data (data.corpus=dialling"),
        (["model.encoder.bidirectional=true"], DIALLING, "task=detect needs a causal encoder"),
        (["model.pooling=max"], DIALLING, "task=detect classifies every frame, so model.pooling"),
        (["features=frames"], DIALLING, "task=detect needs causal features"),
        (
            ["task.tbptt_frames=0"],
            DIALLING,
            "task.tbptt_frames=0: must be an integer >= 1 (or null)",
        ),
    ],
)
def test_non_causal_or_unlabelled_set_ups_are_refused_in_one_line(overrides, labels, message):
    with pytest.raises(ConfigError) as raised:
        build_task(compose_train("task=detect", *overrides), labels)
    assert str(raised.value).startswith(message) and "\n" not in str(raised.value)


def test_frame_targets_are_the_labels_under_each_frame_centre() -> None:
    model = build_task(compose_train("task=detect", "features.normalize=none"), DIALLING)
    labels = torch.tensor([[0, 1, 2, 3, 4, 5, -1, -1], [5, 5, 6, 6, 7, -1, -1, -1]])
    audio, lengths = torch.zeros(2, 1040), torch.tensor([1040, 720])  # 5 and 3 frames
    chunk = next(model.chunks(audio, lengths))
    # a 25 ms frame k centred at 160 k + 200 samples: label step k + 1
    assert model.targets(labels, chunk).tolist() == [[1, 2, 3, 4, 5], [5, 6, 6, -1, -1]]


def test_events_are_hits_within_the_onset_tolerance() -> None:
    labels = torch.tensor([0] * 10 + [3] * 8 + [0] * 20 + [3] * 5 + [0] * 10 + [7] * 6 + [-1] * 4)
    reference = onsets(labels)
    assert reference == [Onset(0.1, 3), Onset(0.38, 3), Onset(0.53, 7)]
    found = [
        Event(0.15, "2", 3, 0.9),  # 50 ms after the first onset: a hit
        Event(0.2, "2", 3, 0.9),  # that onset is taken: a false alarm
        Event(0.6, "6", 7, 0.9),  # a hit
        Event(0.9, "6", 7, 0.9),  # nothing near: a false alarm
    ]  # the second press of 3 is missed
    assert match(found, reference, tolerance=0.1) == EventCounts(2, 2, 1)
    assert f_scores(2, 2, 1) == pytest.approx((0.5, 2 / 3, 4 / 7))


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """A short real task=detect run with TBPTT on 10-second dialling recordings."""
    work = tmp_path_factory.mktemp("detect")
    train(
        "experiment=dialling",
        "data.clip_seconds=10",
        "data.train_size=32",
        "data.val_size=4",
        "data.test_size=4",
        "task.tbptt_frames=100",
        "trainer.max_epochs=4",
        f"hydra.run.dir={work / 'run'}",
        cwd=work,
        timeout=600,
        env={**os.environ, "OMP_NUM_THREADS": "1"},  # tiny model, shared 2-core CPU
    )
    return work / "run"


def test_a_run_logs_frame_and_event_metrics_and_the_posteriors_image(run_dir: Path) -> None:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("val/frame_acc", "val/event_f1", "val/event_f1_best", "test/event_precision",
                "test/event_recall", "test/frame_acc", "train/loss"):  # fmt: skip
        assert key in metrics, key
    assert metrics["test/frame_acc"] > 0.8 and metrics["val/event_f1_best"] > 0.3, metrics
    assert "val/posteriors" in tags(run_dir, "images")


def test_streaming_a_held_out_recording_prints_the_events_of_the_evaluation(
    run_dir: Path, tmp_path: Path, write_wav
) -> None:
    source = SyntheticSource(corpus="dialling", seed=99, train_size=1, val_size=0, test_size=1)
    example = source.dataset("test", LoaderSpec(1, 30.0, False)).example(0)  # unseen seed
    path = write_wav(tmp_path / "call.wav", example.audio.numpy(), 16000, subtype="FLOAT")
    checkpoint = run_dir / "checkpoints" / "best.ckpt"
    model, _ = load_checkpoint(checkpoint)
    with torch.no_grad():
        expected = model.events(example.audio[None], torch.tensor([len(example.audio)]))[0]
    jsonl = tmp_path / "events.jsonl"
    audioseq(
        "stream",
        f"ckpt_path={checkpoint}",
        f"input={path}",
        "print_chunks=false",
        f"output={jsonl}",
        f"hydra.run.dir={tmp_path / 'stream'}",
        cwd=tmp_path,
    )
    streamed = [json.loads(line) for line in jsonl.read_text().splitlines()]
    streamed = [(r["label"], r["time"]) for r in streamed if r["type"] == "event"]
    assert len(expected) >= 5  # the model found presses; a test of no events would be empty
    assert streamed == [(e.label, round(e.time, 4)) for e in expected]
