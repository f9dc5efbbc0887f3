"""Bad input through the real commands: one line on stderr naming what and where, exit 2."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from in_process import attempt
from processes import ROOT
from processes import run as run_process

FAST = ["debug=fast", "features.normalize=utterance"]


def error_line(result: subprocess.CompletedProcess) -> str:
    """The single ``error: ...`` line; fails if there is none or a traceback was printed."""
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    lines = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, result.stderr[-3000:]
    return lines[0]


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    """Two classes of real WAV clips and a train manifest with relative paths."""
    rng = np.random.default_rng(0)
    lines = []
    for i in range(8):
        name = f"clip{i}.wav"
        sf.write(tmp_path / name, rng.normal(0, 0.1, 8000).astype(np.float32), 16000)
        lines.append({"audio_filepath": name, "duration": 0.5, "label": "ab"[i % 2]})
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    (tmp_path / "val.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines[:4]))
    return tmp_path


def manifest_run(corpus: Path, *extra: str) -> subprocess.CompletedProcess:
    return attempt(
        "train",
        *FAST,
        "data=manifest",
        f"data.train_manifest={corpus / 'train.jsonl'}",
        f"data.val_manifest={corpus / 'val.jsonl'}",
        f"hydra.run.dir={corpus / 'run'}",
        *extra,
        cwd=corpus,
    )


def test_missing_manifest(tmp_path: Path) -> None:
    # the console script itself, in its own process: the line and status the shell sees
    result = run_process(
        [
            sys.executable,
            ROOT / "scripts" / "train.py",
            *FAST,
            "data=manifest",
            "data.train_manifest=nope.jsonl",
        ],
        cwd=tmp_path,
        returncode=None,
    )
    assert "nope.jsonl: manifest not found" in error_line(result)


def test_malformed_manifest_line(corpus: Path) -> None:
    with (corpus / "train.jsonl").open("a") as f:
        f.write('{"audio_filepath": "clip0.wav", "label": \n')
    line = error_line(manifest_run(corpus))
    assert "train.jsonl:9: malformed JSON" in line


def test_missing_audio_file(corpus: Path) -> None:
    (corpus / "clip3.wav").unlink()
    line = error_line(manifest_run(corpus))
    assert "train.jsonl:4: audio file not found" in line and "clip3.wav" in line


def test_unknown_label_in_val_manifest(corpus: Path) -> None:
    record = {"audio_filepath": "clip0.wav", "duration": 0.5, "label": "zebra"}
    with (corpus / "val.jsonl").open("a") as f:
        f.write(json.dumps(record) + "\n")
    line = error_line(manifest_run(corpus))
    assert "val.jsonl:5: unknown label 'zebra'" in line


def test_no_validation_split(corpus: Path) -> None:
    line = error_line(manifest_run(corpus, "data.val_manifest=null"))
    assert "no validation split" in line


def test_unreadable_audio_found_in_a_worker(corpus: Path) -> None:
    """Only decoding finds this one, inside a DataLoader worker process."""
    (corpus / "clip5.wav").write_bytes(b"RIFF....WAVEnot really audio")
    line = error_line(manifest_run(corpus, "data.num_workers=1"))
    assert "train.jsonl:6" in line and "clip5.wav" in line and "cannot decode audio" in line
    assert not (corpus / "run" / "metrics.json").exists()


def test_bad_config_value(tmp_path: Path) -> None:
    line = error_line(attempt("train", *FAST, "model.pooling=median", cwd=tmp_path))
    assert "model.pooling" in line and "median" in line


def test_unknown_data_option(tmp_path: Path) -> None:
    line = error_line(attempt("train", *FAST, "+data.train_sise=10", cwd=tmp_path))
    assert "train_sise" in line


def test_unknown_config_key_is_refused_by_hydra(tmp_path: Path) -> None:
    result = attempt("train", *FAST, "model.hidden=3", cwd=tmp_path)
    assert result.returncode != 0
    assert "Could not override 'model.hidden'" in result.stderr


def test_eval_missing_checkpoint(tmp_path: Path) -> None:
    line = error_line(attempt("eval", "ckpt_path=missing.ckpt", cwd=tmp_path))
    assert "missing.ckpt" in line and "not found" in line


def test_eval_not_a_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "junk.ckpt").write_bytes(b"\x00" * 100)
    line = error_line(attempt("eval", f"ckpt_path={tmp_path / 'junk.ckpt'}", cwd=tmp_path))
    assert "junk.ckpt: not a usable audioseq checkpoint" in line
