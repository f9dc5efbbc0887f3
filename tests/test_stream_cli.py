"""audioseq-stream end to end: a checkpoint trained here, a 44.1 kHz file, PCM on stdin."""

import itertools
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import torchaudio
from in_process import attempt, audioseq
from processes import script
from tiny_models import make_classifier, save_checkpoint

from audioseq.data.audio import read_audio
from audioseq.tasks.checkpoint import load_checkpoint

#: A small, short, real training run with settings that stream.
STREAMABLE = [
    "data.train_size=128",
    "data.val_size=32",
    "data.test_size=32",
    "data.batch_size=32",
    "model=gru",
    "model.encoder.hidden_size=16",
    "model.encoder.num_layers=1",
    "model.pooling=last",
    "features.normalize=global",
    "features.stats_batches=2",
    "trainer.max_epochs=1",
    "test=false",
]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("train")
    audioseq("train", *STREAMABLE, f"hydra.run.dir={work / 'run'}", cwd=work)
    return work / "run" / "checkpoints" / "best.ckpt"


def dtmf_audio(seconds: float = 2.0) -> np.ndarray:
    """Key presses of 697 + 1209 Hz ('1') in noise, at 16 kHz."""
    t = np.arange(round(seconds * 16000)) / 16000
    rng = np.random.default_rng(0)
    audio = 0.01 * rng.standard_normal(t.shape)
    press = (t % 1.0 > 0.3) & (t % 1.0 < 0.5)
    audio += press * 0.3 * (np.sin(2 * np.pi * 697 * t) + np.sin(2 * np.pi * 1209 * t))
    return audio.astype(np.float32)


def records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def offline_posteriors(ckpt: Path, audio: torch.Tensor) -> torch.Tensor:
    """The checkpoint's posteriors for the whole of ``audio`` at once (last pooling)."""
    model, _ = load_checkpoint(ckpt)
    with torch.no_grad():
        return model(audio[None], torch.tensor([audio.shape[0]])).softmax(-1)[0]


def check_stream_output(result: subprocess.CompletedProcess, jsonl: Path, seconds: float):
    assert result.returncode == 0, result.stderr[-3000:]
    out = result.stdout
    lines = [line for line in out.splitlines() if " chunk " in line]
    assert len(lines) >= 15, out
    assert "real-time factor" in out and "per-chunk latency: mean" in out
    chunks = [r for r in records(jsonl) if r["type"] == "chunk"]
    assert chunks[-1]["end"] == pytest.approx(seconds, abs=1e-3)
    assert all(a["end"] == pytest.approx(b["start"]) for a, b in itertools.pairwise(chunks))
    assert sum(sum(r["posteriors"]) for r in chunks) == pytest.approx(len(chunks), abs=1e-3)
    return chunks


def test_stream_a_44k_file_in_chunks(checkpoint: Path, tmp_path: Path, write_wav) -> None:
    audio16 = torch.from_numpy(dtmf_audio())
    audio44 = torchaudio.functional.resample(audio16, 16000, 44100).numpy()
    path = write_wav(tmp_path / "long.wav", audio44, 44100, subtype="FLOAT")
    jsonl = tmp_path / "out.jsonl"
    args = [f"ckpt_path={checkpoint}", f"input={path}", f"output={jsonl}", "chunk_ms=70"]
    result = attempt("stream", *args, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    chunks = check_stream_output(result, jsonl, len(read_audio(path)) / 16000)
    # The stream's last posteriors are the model's for the whole (resampled) file.
    want = offline_posteriors(checkpoint, read_audio(path))
    torch.testing.assert_close(torch.tensor(chunks[-1]["posteriors"]), want, atol=1e-4, rtol=0)
    summary = json.loads((tmp_path / "run" / "stream_summary.json").read_text())
    assert summary["chunks"] >= 25 and summary["real_time_factor"] > 0


def test_stream_raw_pcm_from_stdin(checkpoint: Path, tmp_path: Path) -> None:
    audio = dtmf_audio(1.5)
    pcm = (np.clip(audio, -1, 1) * 32767).astype("<i2")
    jsonl, raw = tmp_path / "out.jsonl", tmp_path / "audio.pcm"
    raw.write_bytes(pcm.tobytes())
    args = [f"ckpt_path={checkpoint}", "input=-", f"output={jsonl}", "threshold=0.0"]
    # audioseq-stream's smoke test: the console script in its own process, PCM on its stdin
    result = script("stream", *args, f"hydra.run.dir={tmp_path}", cwd=tmp_path, stdin=raw)
    chunks = check_stream_output(result, jsonl, 1.5)
    assert len(chunks) == 15  # 100 ms chunks
    want = offline_posteriors(checkpoint, torch.from_numpy(pcm.astype(np.float32) / 32768))
    torch.testing.assert_close(torch.tensor(chunks[-1]["posteriors"]), want, atol=1e-4, rtol=0)
    # threshold 0: the first frame fires, then a change of top class after the refractory
    events = [r for r in records(jsonl) if r["type"] == "event"]
    assert events and events[0]["time"] == pytest.approx(0.025)
    assert all(b["time"] - a["time"] >= 0.5 - 1e-6 for a, b in itertools.pairwise(events))
    assert " event " in result.stdout


def test_unreadable_input_is_one_clear_line(checkpoint: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF\x00\x00 this is not audio")
    result = attempt("stream", f"ckpt_path={checkpoint}", f"input={bad}", cwd=tmp_path)
    assert result.returncode == 2
    err = result.stderr.strip()
    assert err.startswith(f"error: input: {bad}: cannot decode audio"), err
    assert len(err.splitlines()) == 1 and "Traceback" not in err


def test_missing_checkpoint_is_one_clear_line(tmp_path: Path) -> None:
    result = attempt("stream", "ckpt_path=missing.ckpt", "input=x.wav", cwd=tmp_path)
    assert result.returncode == 2
    err = result.stderr.strip()
    assert err == f"error: ckpt_path: checkpoint not found: {tmp_path / 'missing.ckpt'}", err


def test_a_model_that_cannot_stream_is_refused(tmp_path: Path, sine, write_wav) -> None:
    ckpt = save_checkpoint(make_classifier(bidirectional=True), tmp_path / "bi.ckpt")
    wav = write_wav(tmp_path / "a.wav", sine(440, 0.5, 16000), 16000)
    result = attempt("stream", f"ckpt_path={ckpt}", f"input={wav}", cwd=tmp_path)
    assert result.returncode == 2
    err = result.stderr.strip()
    assert err.startswith("error: cannot stream a bidirectional encoder"), err
    assert "model.pooling=last, features.normalize=global|none" in err
