"""Every kind of bad sample in a file-list source, under data.on_error=raise and =skip."""

import json
import struct
import warnings
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from in_process import audioseq
from processes import script
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from audioseq.data.batching import collate
from audioseq.data.datamodule import AudioDataModule
from audioseq.data.skipping import REASONS, Skipped, SkipPolicy
from audioseq.errors import ConfigError, DataError


def good_clip(path: Path, seconds: float = 0.5, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    sf.write(path, (0.1 * rng.standard_normal(round(seconds * 16000))).astype(np.float32), 16000)


def truncated_wav(path: Path) -> None:
    good_clip(path, 1.0)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # the header still promises one second


def nan_wav(path: Path) -> None:
    audio = np.zeros(8000, dtype=np.float32)
    audio[100] = np.nan
    sf.write(path, audio, 16000, subtype="FLOAT")


def empty_wav(path: Path) -> None:
    sf.write(path, np.zeros(0, dtype=np.float32), 16000)


def corrupt_header(path: Path) -> None:
    path.write_bytes(b"RIFF" + struct.pack("<I", 36) + b"WAVEjunkjunkjunk")


def zero_length_file(path: Path) -> None:
    path.write_bytes(b"")


BAD_FILES = {
    "zero_length": (zero_length_file, "corrupt"),
    "corrupt_header": (corrupt_header, "corrupt"),
    "truncated": (truncated_wav, "truncated"),
    "nan": (nan_wav, "nonfinite"),
    "empty_clip": (empty_wav, "empty"),
    "too_short": (lambda p: good_clip(p, 0.1), "too_short"),
}


def corpus(tmp_path: Path, bad: dict[str, dict]) -> Path:
    """A train manifest of 6 good clips (labels a/b) plus the ``bad`` lines given."""
    lines = []
    for i in range(6):
        good_clip(tmp_path / f"good{i}.wav", seed=i)
        lines.append({"audio_filepath": f"good{i}.wav", "label": "ab"[i % 2]})
    lines.extend(bad.values())
    manifest = tmp_path / "train.jsonl"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return manifest


def datamodule(manifest: Path, on_error: str, **options) -> AudioDataModule:
    return AudioDataModule(
        source="manifest",
        train_manifest=str(manifest),
        labels=["a", "b"],
        num_workers=0,
        batch_size=4,
        clip_seconds=None,
        min_seconds=0.25,
        on_error=on_error,
        **options,
    )


def all_batches(dm: AudioDataModule) -> list[dict]:
    dm.setup()
    return list(dm.train_dataloader())


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_audio_raises_naming_the_line_and_file(tmp_path: Path, kind: str) -> None:
    make, reason = BAD_FILES[kind]
    make(tmp_path / "bad.wav")
    manifest = corpus(tmp_path, {kind: {"audio_filepath": "bad.wav", "label": "a"}})
    with pytest.raises(DataError) as info:
        all_batches(datamodule(manifest, "raise"))
    message = str(info.value)
    assert message.startswith(f"{manifest}:7: ") and "bad.wav" in message, message
    assert info.value.reason == reason


@pytest.mark.parametrize("kind", sorted(BAD_FILES))
def test_bad_audio_is_skipped_and_counted(tmp_path: Path, kind: str) -> None:
    make, reason = BAD_FILES[kind]
    make(tmp_path / "bad.wav")
    manifest = corpus(tmp_path, {kind: {"audio_filepath": "bad.wav", "label": "a"}})
    with pytest.warns(UserWarning, match="bad.wav"):
        batches = all_batches(datamodule(manifest, "skip"))
    assert sum(len(b["label"]) for b in batches) == 6
    counts: dict[str, int] = {}
    for b in batches:
        for key, value in b["skipped"].items():
            counts[key] = counts.get(key, 0) + value
    assert counts == {reason: 1}


@pytest.mark.parametrize(
    ("line", "reason", "text"),
    [
        ({"audio_filepath": "gone.wav", "label": "a"}, "missing", "audio file not found"),
        ({"audio_filepath": "good0.wav", "label": "zebra"}, "unknown_label", "unknown label"),
        ({"audio_filepath": "good0.wav"}, "no_label", "no 'label'"),
    ],
)
def test_list_problems_raise_or_are_counted_at_setup(tmp_path, line, reason, text) -> None:
    manifest = corpus(tmp_path, {"bad": line})
    with pytest.raises(DataError, match=rf"train\.jsonl:7: .*{text}"):
        datamodule(manifest, "raise")
    with pytest.warns(UserWarning, match=r"train\.jsonl:7"):
        dm = datamodule(manifest, "skip")
    assert dm.skipped_at_setup == {reason: 1}
    assert sum(len(b["label"]) for b in all_batches(dm)) == 6


def test_declared_durations_filter_without_counting(tmp_path: Path) -> None:
    manifest = corpus(tmp_path, {})
    lines = [json.loads(x) for x in manifest.read_text().splitlines()]
    for i, line in enumerate(lines):
        line["duration"] = 0.5 if i < 4 else 3.0  # declared; max_seconds drops the last two
    manifest.write_text("".join(json.dumps(x) + "\n" for x in lines))
    dm = datamodule(manifest, "raise", max_seconds=2.0)
    assert sum(len(b["label"]) for b in all_batches(dm)) == 4
    assert dm.skipped_at_setup == {}


def test_skip_policy_and_collate_counts() -> None:
    policy = SkipPolicy("skip")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        marker = policy(DataError("x.wav: broken", "corrupt"), "m.jsonl:3", "x.wav")
    assert marker == Skipped("m.jsonl:3", "corrupt")
    batch = collate([marker, marker])
    assert batch["audio"].shape == (0, 0) and batch["skipped"] == {"corrupt": 2}
    with pytest.raises(DataError, match=r"^m\.jsonl:3: x\.wav: broken$"):
        SkipPolicy("raise")(DataError("x.wav: broken"), "m.jsonl:3")
    with pytest.raises(ConfigError, match="on_error"):
        SkipPolicy("ignore")
    assert set(REASONS) >= {r for _, r in BAD_FILES.values()}


def skipped_scalars(run_dir: Path) -> dict[str, float]:
    values: dict[str, float] = {}
    for events in run_dir.glob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            if tag.startswith("data/"):
                values[tag] = acc.Scalars(tag)[0].value
    return values


def many_bad_corpus(tmp_path: Path) -> Path:
    """Mostly bad clips, so that whole batches (of 2) are empty on some rank."""
    bad = {}
    for i, kind in enumerate(sorted(BAD_FILES) * 2):
        BAD_FILES[kind][0](tmp_path / f"bad{i}.wav")
        bad[f"{kind}{i}"] = {"audio_filepath": f"bad{i}.wav", "label": "ab"[i % 2]}
    bad["unknown"] = {"audio_filepath": "good0.wav", "label": "zebra"}
    manifest = corpus(tmp_path, bad)
    (tmp_path / "val.jsonl").write_text(
        "".join(
            json.dumps({"audio_filepath": f"good{i}.wav", "label": "ab"[i % 2]}) + "\n"
            for i in range(4)
        )
    )
    return manifest


SKIP_RUN = [
    "data=manifest",
    "data.labels=[a,b]",
    "data.on_error=skip",
    "data.min_seconds=0.25",
    "data.clip_seconds=null",
    "data.batch_size=2",
    "data.num_workers=1",
    "features.normalize=utterance",
    "trainer.max_epochs=1",
    "model.encoder.hidden_size=8",
    "model.encoder.num_layers=1",
]


def test_skipped_samples_reach_tensorboard(tmp_path: Path) -> None:
    manifest = many_bad_corpus(tmp_path)
    run_dir = tmp_path / "run"
    audioseq(
        "train",
        *SKIP_RUN,
        f"data.train_manifest={manifest}",
        f"data.val_manifest={tmp_path / 'val.jsonl'}",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    scalars = skipped_scalars(run_dir)
    assert scalars["data/skipped"] == 13
    assert scalars["data/skipped/unknown_label"] == 1
    assert scalars["data/skipped/corrupt"] == 4
    assert 0.0 <= scalars["data/padding_share"] < 1.0


@pytest.mark.parametrize("bucketing", ["false", "true"])
def test_ddp_ranks_stay_in_step_when_batches_are_skipped(tmp_path: Path, bucketing: str) -> None:
    manifest = many_bad_corpus(tmp_path)
    run_dir = tmp_path / "run"
    script(  # DDP ranks re-run the command: a process of its own
        "train",
        *SKIP_RUN,
        f"data.bucketing={bucketing}",
        "trainer=ddp_cpu",
        "trainer.max_epochs=2",
        f"data.train_manifest={manifest}",
        f"data.val_manifest={tmp_path / 'val.jsonl'}",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs"] == 2
    assert skipped_scalars(run_dir)["data/skipped"] == 13
