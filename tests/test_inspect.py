"""audioseq-inspect on small corpora with planted problems: what the report and the summary
say, the pictures, every kind of source, and the one-line errors."""

import json
import sys
from importlib.metadata import entry_points
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from in_process import run_main
from matplotlib.image import imread
from processes import ROOT, run
from shard_corpus import good_sample, make_shards, wav_bytes, write_tar

from audioseq.cli.inspect_data import main


def inspect(*args: str, cwd: Path, returncode: int | None = 0):
    return run_main(main, args, cwd=cwd, prog="audioseq-inspect", returncode=returncode)


def run_dir(cwd: Path) -> Path:
    (found,) = (cwd / "logs" / "inspect" / "runs").iterdir()
    return found


def tone(seconds: float, rate: int = 16000, channels: int = 1) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    return wave if channels == 1 else np.repeat(wave[:, None], channels, axis=1)


def manifest(path: Path, rows: list[tuple[str, str, str | None]]) -> None:
    """JSON Lines of (file, label, speaker)."""
    lines = []
    for file, label, speaker in rows:
        record = {"audio_filepath": file, "label": label}
        if speaker:
            record["speaker"] = speaker
        lines.append(json.dumps(record))
    path.write_text("\n".join(lines) + "\n")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Manifests over real files: in train 8 good 'a' clips (a stereo one, a 12 s one and
    one shorter than a frame among them) and 2 'b' (one at 44.1 kHz FLAC); a corrupt, an
    empty, a truncated and a missing file; in val a label that train lacks ('zebra') and
    train's speaker s1; a test clip."""
    root = tmp_path_factory.mktemp("corpus")
    clips = root / "clips"
    clips.mkdir()
    for i in range(5):
        sf.write(clips / f"a{i}.wav", tone(1.0), 16000, subtype="PCM_16")
    sf.write(clips / "stereo.wav", tone(1.0, channels=2), 16000, subtype="PCM_16")
    sf.write(clips / "long.wav", tone(12.0), 16000, subtype="PCM_16")
    sf.write(clips / "tiny.wav", tone(0.01), 16000, subtype="PCM_16")  # 160 samples
    sf.write(clips / "b0.wav", tone(0.5), 16000, subtype="PCM_16")
    sf.write(clips / "b44k.flac", tone(1.0, rate=44100), 44100, subtype="PCM_16")
    sf.write(clips / "empty.wav", np.zeros(0, np.float32), 16000, subtype="PCM_16")
    (clips / "corrupt.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" + bytes(64))
    sf.write(clips / "cut.wav", tone(1.0), 16000, subtype="PCM_16")
    whole = (clips / "cut.wav").read_bytes()
    (clips / "cut.wav").write_bytes(whole[: len(whole) // 2])  # the header promises 1 s
    for name in ("v0", "zebra", "t0"):
        sf.write(clips / f"{name}.wav", tone(1.0), 16000, subtype="PCM_16")
    train = [(f"clips/a{i}.wav", "a", "s1" if i < 3 else "s2") for i in range(5)]
    train += [
        ("clips/stereo.wav", "a", "s2"),
        ("clips/long.wav", "a", "s2"),
        ("clips/tiny.wav", "a", "s2"),
        ("clips/b0.wav", "b", "s3"),
        ("clips/b44k.flac", "b", "s3"),
        ("clips/empty.wav", "b", "s3"),
        ("clips/corrupt.wav", "a", "s3"),
        ("clips/cut.wav", "b", "s3"),
        ("clips/gone.wav", "a", "s3"),
    ]
    manifest(root / "train.jsonl", train)
    manifest(root / "val.jsonl", [("clips/v0.wav", "a", "s1"), ("clips/zebra.wav", "zebra", "s4")])
    manifest(root / "test.jsonl", [("clips/t0.wav", "b", "s5")])
    return root


MANIFESTS = (
    "data=manifest",
    "data.train_manifest=train.jsonl",
    "data.val_manifest=val.jsonl",
    "data.test_manifest=test.jsonl",
    "data.max_seconds=5",
)


@pytest.fixture(scope="module")
def inspected(corpus: Path, tmp_path_factory) -> tuple[str, str, Path]:
    """(stdout, report.md, run directory) of the manifests, inspected from ``corpus``."""
    result = inspect(*MANIFESTS, cwd=corpus)
    folder = run_dir(corpus)
    return result.stdout, (folder / "report.md").read_text(), folder


def test_report_counts_clips_and_hours_per_split_label_and_speaker(inspected) -> None:
    _, report, _ = inspected
    # usable train clips: 5 + stereo + long + tiny (a: 18.01 s), b0 + b44k (b: 1.5 s)
    assert f"| train | 10 | {19.51 / 3600:.4f} | 2 | 3 | 4 |" in report
    assert f"| val | 2 | {2 / 3600:.4f} | 2 | 2 | 0 |" in report
    assert f"| test | 1 | {1 / 3600:.4f} | 1 | 1 | 0 |" in report
    assert f"| a | 8 | {18.01 / 3600:.4f} | 1 | {1 / 3600:.4f} | 0 | 0.0000 |" in report
    assert f"| s3 | 2 | {1.5 / 3600:.4f} | 0 | 0.0000 | 0 | 0.0000 |" in report
    assert "`a` 8 clips, `b` 2 (4.00x)" in report


def test_report_names_every_planted_problem(inspected) -> None:
    stdout, report, _ = inspected
    problems = [
        "4 unusable clips: empty 1, corrupt 1, truncated 1, missing 1 (train 4)",
        "val labels missing from train: 'zebra' (1 clip)",
        "1 speaker in more than one split: 's1' (train, val)",
        "1 clip shorter than a frame (400 samples at 16 kHz)",
        "1 clip longer than data.max_seconds=5",
        "class imbalance in train: 'a' has 8 clips, 'b' 2 (4.0x)",
        "1 clip not at 16 kHz (resampled at every read)",
        "1 clip not mono (channels averaged)",
    ]
    for line in problems:
        assert f"- {line}" in report
        assert line in stdout  # the summary prints them too
    unusable = report.split("## Unusable clips")[1]
    for name, reason in [
        ("corrupt.wav", "corrupt"),
        ("empty.wav", "empty"),
        ("cut.wav", "truncated"),
        ("gone.wav", "missing"),
    ]:
        (row,) = [line for line in unusable.splitlines() if name in line]
        assert f"| {reason} |" in row and row.startswith("| train | ")
        assert "train.jsonl:" in row  # named by manifest line, as the loaders name it


def test_report_lists_formats_and_durations(inspected) -> None:
    _, report, _ = inspected
    formats = report.split("## Formats found")[1]
    for row in ("| 16000 Hz | 14 |", "| 44100 Hz | 1 |", "| 1 | 14 |", "| 2 | 1 |"):
        assert row in formats
    assert "| FLAC PCM_16 | 1 |" in formats and "| WAV PCM_16 | 14 |" in formats
    assert "| train | 0.010 | 1.000 | 1.951 | 12.000 |" in report
    assert "| train.jsonl:8 | 0.010 | shorter than a frame" in report  # tiny.wav
    assert "| train.jsonl:7 | 12.000 | longer than data.max_seconds=5" in report  # long.wav


def test_pictures_are_valid_images(inspected) -> None:
    _, report, folder = inspected
    for name in ("durations.png", "labels.png"):
        assert f"]({name})" in report
        image = imread(folder / name)
        assert image.ndim == 3 and image.shape[0] > 100 and image.shape[1] > 100
    assert (folder / ".hydra" / "config.yaml").is_file()


def test_summary_fits_a_screen_and_shows_progress(inspected, corpus: Path) -> None:
    stdout, _, _ = inspected
    assert len(stdout.splitlines()) < 40
    assert "data=manifest: 17 clips read in" in stdout
    assert "sample rates: 16000 Hz (14), 44100 Hz (1)" in stdout
    result = inspect(*MANIFESTS, "hydra.run.dir=again", cwd=corpus)
    assert "reading train" in result.stderr and "14/14" in result.stderr


def test_headers_only_finds_what_headers_show(corpus: Path) -> None:
    inspect(*MANIFESTS, "decode=false", "hydra.run.dir=headers", cwd=corpus)
    report = (corpus / "headers" / "report.md").read_text()
    assert "3 unusable clips: empty 1, corrupt 1, missing 1 (train 3)" in report
    assert "headers only (decode=false)" in report


def test_folder_source(tmp_path: Path) -> None:
    for label, count in (("cat", 3), ("dog", 1)):
        (tmp_path / "birds" / label).mkdir(parents=True)
        for i in range(count):
            sf.write(tmp_path / "birds" / label / f"{i}.wav", tone(0.5), 16000)
    (tmp_path / "birds" / "val.txt").write_text("cat/0.wav\nowl/9.wav\n")
    inspect("data=folder", "data.root=birds", "data.val_list=val.txt", cwd=tmp_path)
    report = (run_dir(tmp_path) / "report.md").read_text()
    assert "| train | 3 |" in report and "| val | 1 |" in report
    assert "1 unusable clip: missing 1 (val 1)" in report  # owl/9.wav is listed, not there
    assert "class imbalance in train: 'cat' has 2 clips, 'dog' 1 (2.0x)" in report


def test_speech_commands_source_takes_speakers_from_file_names(tmp_path: Path) -> None:
    corpus = tmp_path / "sc"
    for word, name in [("yes", "aa11_nohash_0"), ("yes", "bb22_nohash_0"), ("no", "aa11_nohash_1")]:
        (corpus / word).mkdir(parents=True, exist_ok=True)
        sf.write(corpus / word / f"{name}.wav", tone(1.0), 16000, subtype="PCM_16")
    (corpus / "_background_noise_").mkdir()
    sf.write(corpus / "_background_noise_" / "noise.wav", tone(3.0), 16000)
    (corpus / "validation_list.txt").write_text("no/aa11_nohash_1.wav\n")
    (corpus / "testing_list.txt").write_text("")
    inspect("data=speech_commands", f"data.root={corpus}", cwd=tmp_path)
    report = (run_dir(tmp_path) / "report.md").read_text()
    assert "| train | 2 |" in report and "| val | 1 |" in report
    assert "val labels missing from train: 'no' (1 clip)" in report
    assert "1 speaker in more than one split: 'aa11' (train, val)" in report


def test_shard_source_reads_members_and_names_a_bad_shard(tmp_path: Path) -> None:
    make_shards(tmp_path, 6, per_shard=4)
    val = tmp_path / "val"
    broken = good_sample(1)
    broken["wav"] = b"RIFF" + bytes(40)
    write_tar(val, "val-000000.tar", [good_sample(0), broken, good_sample(2)])
    stereo = wav_bytes(tone(0.25, channels=2))
    write_tar(val, "val-000001.tar", [{**good_sample(3), "wav": stereo}])
    shard = val / "val-000001.tar"
    shard.write_bytes(shard.read_bytes()[:700])  # cut inside the first member
    inspect("data=shards", "data.train_shards=train", "data.val_shards=val", cwd=tmp_path)
    report = (run_dir(tmp_path) / "report.md").read_text()
    assert "| train | 6 |" in report and "| val | 2 |" in report
    assert "2 unusable clips: corrupt 1, bad_shard 1 (val 2)" in report
    assert "val-000000.tar:s0001" in report


def test_a_corrupt_sample_of_an_indexed_shard_is_one_unusable_clip(tmp_path: Path) -> None:
    make_shards(tmp_path, 6, per_shard=6)
    (entry,) = json.loads((tmp_path / "train" / "index.json").read_text())["shards"]
    shard, start = tmp_path / "train" / entry["url"], entry["offsets"][2]
    data = bytearray(shard.read_bytes())
    data[start + 124 : start + 136] = b"not octal!!\0"  # sample 2's first header: its size
    shard.write_bytes(bytes(data))
    inspect("data=shards", "data.train_shards=train", cwd=tmp_path)
    report = (run_dir(tmp_path) / "report.md").read_text()
    assert "| train | 5 |" in report  # read by byte range: the samples after it are intact
    assert "1 unusable clip: bad_shard 1 (train 1)" in report


def test_config_and_listing_errors_are_one_line_with_status_2(corpus: Path) -> None:
    missing = inspect("data=manifest", cwd=corpus, returncode=2)
    assert missing.stderr.strip().splitlines() == [
        "error: data.train_manifest: a value is required (add data.train_manifest=...)"
    ]
    (corpus / "bad.jsonl").write_text('{"audio_filepath": "clips/a0.wav"}\n{oops\n')
    bad = inspect("data=manifest", "data.train_manifest=bad.jsonl", cwd=corpus, returncode=2)
    assert bad.stderr.strip().endswith(
        "bad.jsonl:2: malformed JSON (Expecting property name enclosed in double quotes)"
    )
    ratio = inspect("imbalance_ratio=0.5", cwd=corpus, returncode=2)
    assert "error: imbalance_ratio=0.5: must be a number >= 1" in ratio.stderr


def test_console_script_on_the_built_in_data(tmp_path: Path) -> None:
    """The launcher as a user runs it, with no arguments: the README's example (a script
    named inspect.py would break every import of Python's inspect module); the console
    script points at the same main."""
    (script,) = entry_points(group="console_scripts", name="audioseq-inspect")
    assert script.load() is main
    result = run([sys.executable, ROOT / "scripts" / "inspect_data.py"], cwd=tmp_path)
    assert "data=synthetic: 10000 clips read in" in result.stdout
    assert "problems: none found" in result.stdout
    report = (run_dir(tmp_path) / "report.md").read_text()
    assert "| train | 8000 | 2.2222 | 12 | 0 | 0 |" in report
    assert "| generated | 10000 |" in report
