"""Long recordings with events in tar shards (task=detect on data=shards): make_shards keeps
each recording's events in its sidecar and lists the background among the index's
classes; the shards source gives the frame labels the manifest gives, refuses crops and
time shifts, and task=detect trains on it with truncated BPTT."""

import json
from pathlib import Path

import pytest
from in_process import train
from long_recordings import write_dialling_manifest
from processes import script
from test_make_shards import members

from audioseq.data.datamodule import AudioDataModule
from audioseq.data.sources.dialling import LABELS

#: Recordings of 10-20 s: member lengths far beyond a clip's.
SECONDS = {"train": [12.0, 18.5, 10.0, 15.2], "val": [11.0, 14.0]}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Manifests of dialling recordings and the shards make_shards writes from them."""
    root = tmp_path_factory.mktemp("calls")
    for split, seconds in SECONDS.items():
        manifest = write_dialling_manifest(root / split, seconds, seed=len(seconds))
        script("make_shards", str(manifest), str(root / "shards" / split),
               "--samples-per-shard", "2", cwd=root, timeout=120)  # fmt: skip
    return root


def test_sidecars_keep_the_events_and_the_index_lists_the_background(corpus: Path) -> None:
    lines = [json.loads(line) for line in (corpus / "train" / "manifest.jsonl").open()]
    events = {Path(line["audio_filepath"]).stem: line["events"] for line in lines}
    sidecars = [
        json.loads(data)
        for shard in sorted((corpus / "shards" / "train").glob("*.tar"))
        for name, data in members(shard).items()
        if name.endswith(".json")
    ]
    assert len(sidecars) == 4
    for meta in sidecars:
        assert "label" not in meta and meta["events"] == events[Path(meta["source"]).stem]
    index = json.loads((corpus / "shards" / "train" / "index.json").read_text())
    assert "_background_" in index["labels"] and index["shards"][0]["labels"]["_background_"] == 2
    # Recordings' events live in the sidecars only: no per-sample label table to read instead.
    assert not any("samples" in shard for shard in index["shards"])


def test_shards_give_the_frame_labels_of_the_manifest(corpus: Path) -> None:
    common = {"batch_size": 2, "num_workers": 0, "augment": {"time_shift_seconds": 0}}
    shards = AudioDataModule(
        source="shards", train_shards=str(corpus / "shards/train"),
        val_shards=str(corpus / "shards/val"), **common,
    )  # fmt: skip
    manifest = AudioDataModule(
        source="manifest", train_manifest=str(corpus / "train/manifest.jsonl"),
        val_manifest=str(corpus / "val/manifest.jsonl"), **common,
    )  # fmt: skip
    assert shards.labels == manifest.labels == [LABELS[0], *sorted(LABELS[1:])]

    def by_recording(data: AudioDataModule) -> dict[str, tuple[int, list[int]]]:
        found = {}
        for batch in data.val_dataloader():
            for row, key in enumerate(batch["key"]):
                length = int(batch["lengths"][row])
                steps = -(-length // 160)
                labels = batch["frame_labels"][row]
                assert (labels[steps:] == -1).all()  # padding past the recording's end
                found[Path(key).stem.rsplit("_", 1)[-1]] = (length, labels[:steps])
        return found

    from_shards, from_manifest = by_recording(shards), by_recording(manifest)
    assert from_shards.keys() == from_manifest.keys() == {"call00", "call01"}
    for name, (length, labels) in from_shards.items():
        assert length == from_manifest[name][0] and labels.equal(from_manifest[name][1])
        assert labels.max() > 0  # presses, not only background


def test_a_time_shift_is_refused_in_one_line(corpus: Path, tmp_path: Path) -> None:
    done = train(
        "task=detect", "data=shards", f"data.train_shards={corpus / 'shards/train'}",
        f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path, returncode=2,
    )  # fmt: skip
    assert (
        done.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "error: data.augment.time_shift_seconds and data.augment.speed move audio against its "
            "event times"
        )
    )


def test_task_detect_trains_on_shards_with_tbptt(corpus: Path, tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    train(
        "task=detect", "data=shards", f"data.train_shards={corpus / 'shards/train'}",
        f"data.val_shards={corpus / 'shards/val'}", "data.augment.time_shift_seconds=0",
        "data.batch_size=2", "model=gru", "model.encoder.hidden_size=8",
        "model.encoder.num_layers=1", "task.tbptt_frames=100", "trainer.max_epochs=2",
        f"hydra.run.dir={run_dir}", cwd=tmp_path,
    )  # fmt: skip
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("val/frame_acc", "val/event_f1", "train/loss"):
        assert key in metrics, key
    # One optimiser step per 1 s chunk of a batch's longer recording (shuffled into
    # batches each epoch): between the shortest and longest pairings' counts.
    assert 2 * (12 + 19) <= metrics["steps"] <= 2 * (16 + 19), metrics["steps"]
