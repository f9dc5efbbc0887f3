"""The other commands on task=detect: audioseq-eval scores a detector only on data whose
classes are its own (in order), audioseq-predict points to stream/eval instead of giving
top-k labels of whole clips, and task=classify on the dialling recordings is refused
before anything runs."""

import json
from pathlib import Path

import pytest
from in_process import audioseq, train
from long_recordings import write_dialling_manifest


@pytest.fixture(scope="module")
def detector(tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    """A tiny task=detect checkpoint trained on manifests of dialling recordings (40 s of
    training recordings: every key is pressed, so every key is a class)."""
    root = tmp_path_factory.mktemp("detect_cli")
    manifests = {
        split: write_dialling_manifest(root / split, seconds, seed)
        for split, seconds, seed in (("train", [20.0, 20.0], 1), ("val", [4.0], 2),
                                     ("test", [4.0], 3))
    }  # fmt: skip
    train(
        "task=detect", "data=manifest",
        *(f"data.{split}_manifest={path}" for split, path in manifests.items()),
        "data.augment.time_shift_seconds=0", "model=gru", "model.encoder.hidden_size=8",
        "model.encoder.num_layers=1", "task.tbptt_frames=100", "trainer.max_epochs=1",
        f"hydra.run.dir={root / 'run'}", cwd=root,
    )  # fmt: skip
    return root / "run" / "checkpoints" / "best.ckpt", manifests


def last_line(done) -> str:
    return done.stderr.strip().splitlines()[-1]


def test_eval_scores_a_detector_on_its_own_classes(detector, tmp_path: Path) -> None:
    checkpoint, _ = detector
    audioseq("eval", f"ckpt_path={checkpoint}", f"hydra.run.dir={tmp_path}", cwd=tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert {"test/event_f1", "test/frame_acc", "test/loss"} <= set(metrics)


def test_eval_refuses_data_whose_classes_differ(detector, tmp_path: Path) -> None:
    """Recordings annotated with one key only: class 1 would mean another key than the
    model's class 1, so the scores would be wrong, silently."""
    checkpoint, manifests = detector
    line = json.loads(manifests["test"].read_text().splitlines()[0])
    key = line["events"][0]["label"]
    line["events"] = [e for e in line["events"] if e["label"] == key]
    line["audio_filepath"] = str(manifests["test"].parent / line["audio_filepath"])
    other = tmp_path / "one_key.jsonl"
    other.write_text(json.dumps(line) + "\n")
    done = audioseq(
        "eval", f"ckpt_path={checkpoint}", f"data.train_manifest={other}",
        f"data.val_manifest={other}", f"data.test_manifest={other}",
        f"hydra.run.dir={tmp_path / 'eval'}",
        cwd=tmp_path, returncode=2,
    )  # fmt: skip
    assert last_line(done).startswith(f"error: data labels ['_background_', '{key}'] differ ")


def test_predict_on_a_detector_names_stream_and_eval(detector, tmp_path: Path) -> None:
    checkpoint, manifests = detector
    done = audioseq(
        "predict", f"ckpt_path={checkpoint}", f"inputs=[{manifests['test'].parent}]",
        f"hydra.run.dir={tmp_path}", cwd=tmp_path, returncode=2,
    )  # fmt: skip
    assert last_line(done) == (
        f"error: ckpt_path: {checkpoint}: a task=detect checkpoint finds events in recordings, "
        "not a label per clip: audioseq-stream ckpt_path=... input=FILE prints a recording's "
        "events, audioseq-eval ckpt_path=... scores them on annotated data"
    )


def test_classify_on_dialling_recordings_is_refused_up_front(tmp_path: Path) -> None:
    done = train("data.corpus=dialling", f"hydra.run.dir={tmp_path}", cwd=tmp_path, returncode=2)
    assert last_line(done).startswith(
        "error: data.corpus=dialling makes long recordings labelled at every frame: train them "
        "with task=detect, not task=classify (got task._target_="
    )
    assert not (tmp_path / "checkpoints").exists()
