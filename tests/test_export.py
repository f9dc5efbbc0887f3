"""Exported graphs (TorchScript always, ONNX when installed) equal the PyTorch model."""

import json
from pathlib import Path

import pytest
import torch
from processes import script
from tiny_models import CELLS, make_classifier, save_checkpoint, signal

from audioseq.errors import ConfigError
from audioseq.inference.export import Exported, export_model, onnxruntime_available, run_stream
from audioseq.inference.graphs import StreamGraph
from audioseq.inference.streaming import frame_logits

FORMATS = [
    "torchscript",
    pytest.param(
        "onnx",
        marks=pytest.mark.skipif(
            not onnxruntime_available(), reason="onnx/onnxruntime not installed ([onnx] extra)"
        ),
    ),
]
SUFFIX = {"torchscript": ".pt", "onnx": ".onnx"}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Three clips padded to one length (not the length traced with), one under a window."""
    audio = torch.zeros(3, 20_000)
    audio[0] = signal(1.25, seed=3)
    audio[1, :9_000] = signal(1.25, seed=4)[:9_000]
    audio[2, :300] = signal(1.25, seed=5)[2000:2300]
    return audio, torch.tensor([20_000, 9_000, 300])


def check_round_trip(model, fmt: str, folder: Path) -> dict:
    """Export, load the files back and compare offline logits and streamed frame logits."""
    manifest = export_model(model, fmt, folder, chunk_samples=480)
    assert json.loads((folder / "export.json").read_text()) == manifest
    audio, lengths = batch()
    offline = Exported(folder / f"offline{SUFFIX[fmt]}")
    with torch.no_grad():
        want = model(audio, lengths)
    torch.testing.assert_close(offline(audio, lengths)[0], want, atol=1e-4, rtol=1e-4)
    one = offline(audio[1:2, :9_000], lengths[1:2])[0]  # batch 1, shorter: shapes are dynamic
    torch.testing.assert_close(one, want[1:2], atol=1e-4, rtol=1e-4)
    if manifest["stream"]:
        stream = Exported(folder / manifest["stream"]["file"])
        streamed, end = run_stream(stream, manifest, audio[:1])
        with torch.no_grad():
            frames = frame_logits(model, audio[:1], lengths[:1])
        assert streamed.shape[1] == (end - model.frontend.win_length) // 160 + 1
        torch.testing.assert_close(streamed, frames[:, : streamed.shape[1]], atol=1e-4, rtol=1e-4)
    return manifest


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("cell", CELLS)
def test_round_trip_per_cell(fmt, cell, tmp_path):
    manifest = check_round_trip(make_classifier("logmel", cell), fmt, tmp_path)
    names = [entry["name"] for entry in manifest["stream"]["state"]]
    if cell in ("rnn", "gru"):
        assert names == ["overlap", "h"]
    elif cell == "lstm":
        assert names == ["overlap", "h", "c"]
    else:  # window encoders carry their last tau - 1 input frames
        tau = make_classifier("logmel", cell).encoder.tau
        assert names == ["overlap", "state"]
        assert manifest["stream"]["state"][1]["shape"] == [1, tau - 1, 8]
    assert manifest["stream"]["state"][0]["shape"] == [1, 400 - 160]
    assert manifest["max_abs_diff"]["stream"] <= 1e-4


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("frontend", ["mfcc", "frames"])
def test_round_trip_per_frontend(fmt, frontend, tmp_path):
    manifest = check_round_trip(make_classifier(frontend, "lstm"), fmt, tmp_path)
    if frontend == "frames":  # no overlap between frames: no overlap state
        assert [e["name"] for e in manifest["stream"]["state"]] == ["h", "c"]


@pytest.mark.parametrize("fmt", FORMATS)
def test_models_that_cannot_stream_export_offline_only(fmt, tmp_path):
    model = make_classifier("logmel", "gru", "utterance", "mean", bidirectional=True)
    manifest = check_round_trip(model, fmt, tmp_path)
    assert manifest["stream"] is None
    assert "bidirectional" in manifest["stream_refused"]
    assert not (tmp_path / f"stream{SUFFIX[fmt]}").exists()


def test_stream_chunk_must_be_a_multiple_of_the_hop():
    with pytest.raises(ConfigError, match=r"multiple of the hop \(160 samples = 10 ms\)"):
        StreamGraph(make_classifier(), chunk_samples=1000)


def test_export_cli_writes_files_and_reports(tmp_path):
    ckpt = save_checkpoint(make_classifier("mfcc", "gru"), tmp_path / "m.ckpt")
    # audioseq-export's smoke test: the console script in its own process
    result = script(
        "export",
        f"ckpt_path={ckpt}",
        "chunk_ms=20",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    run = tmp_path / "run"
    manifest = json.loads((run / "export.json").read_text())
    assert manifest["stream"]["chunk_samples"] == 320
    assert manifest["stream"]["frames_per_chunk"] == 2
    assert (run / "offline.pt").is_file() and (run / "stream.pt").is_file()
    assert "verified against PyTorch" in result.stdout
    assert "state (batch 1): overlap [1, 240], h [2, 1, 6]" in result.stdout
