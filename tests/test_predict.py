"""audioseq-predict: files, folders and manifests through a checkpoint trained in the test."""

import csv
import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from in_process import audioseq
from tiny_classifier import tiny_classifier_run

from audioseq.data.audio import read_audio
from audioseq.data.skipping import SkipPolicy
from audioseq.data.sources.dtmf import dtmf_clip
from audioseq.data.workers import auto_workers, usable_cores
from audioseq.errors import ConfigError, DataError
from audioseq.inference.inputs import list_inputs
from audioseq.inference.predictor import Predictor, predict_entries, window_spans
from audioseq.inference.writer import PredictionWriter
from audioseq.tasks.checkpoint import TASK_KEY, load_checkpoint, task_path
from audioseq.tasks.forecasting import FrameForecaster


def _key_clip(key: int, seconds: float, rate: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return dtmf_clip(rng, key, round(seconds * rate), rate)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return tiny_classifier_run(tmp_path_factory) / "checkpoints" / "best.ckpt"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Clips at 16 kHz, 8 kHz and 44.1 kHz stereo, WAV and FLAC, a long file, a manifest,
    a folder without audio and a file that is not audio."""
    root = tmp_path_factory.mktemp("corpus")
    (root / "clips" / "nested").mkdir(parents=True)
    sf.write(root / "clips" / "a_16k.wav", _key_clip(1, 1.0, 16_000, 1), 16_000)
    sf.write(root / "clips" / "d.flac", _key_clip(9, 1.0, 16_000, 2), 16_000)
    sf.write(root / "clips" / "nested" / "b_8k.wav", _key_clip(5, 1.0, 8_000, 3), 8_000)
    mono = _key_clip(11, 1.0, 44_100, 4)
    sf.write(root / "clips" / "nested" / "c_44k.wav", np.stack([mono, mono], axis=1), 44_100)
    sf.write(root / "mono_44k.wav", mono, 44_100)
    (root / "clips" / "notes.txt").write_text("not audio, not listed")
    long = np.concatenate([_key_clip(k, 1.0, 16_000, 10 + k) for k in (2, 3, 4)])
    sf.write(root / "long.wav", np.concatenate([long, long[:8_000]]), 16_000)  # 3.5 s
    lines = [
        {"audio_filepath": "long.wav", "offset": 0.5, "duration": 2.0, "label": "3"},
        {"audio_filepath": "clips/a_16k.wav"},
    ]
    (root / "list.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    (root / "empty").mkdir()
    (root / "empty" / "readme.txt").write_text("no audio here")
    (root / "bad.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk" + bytes(64))
    return root


@pytest.fixture(scope="module")
def predictor(checkpoint: Path) -> Predictor:
    return Predictor.from_checkpoint(checkpoint, device="cpu")


@pytest.fixture(scope="module")
def model(checkpoint: Path) -> torch.nn.Module:
    """A second copy of the trained model, applied directly (no Predictor)."""
    return load_checkpoint(checkpoint)[0]


def direct(model: torch.nn.Module, audio: torch.Tensor) -> dict[str, float]:
    """``{label: probability}`` of one waveform, the model called by hand."""
    with torch.inference_mode():
        logits = model(audio[None], torch.tensor([audio.shape[0]]))
    return dict(zip(model.labels, logits.softmax(-1)[0].tolist(), strict=True))


def predict_all(predictor: Predictor, inputs: list[Path], **options) -> list:
    options.setdefault("top_k", len(predictor.labels))
    return list(predict_entries(predictor, list_inputs(inputs), SkipPolicy(), **options))


def assert_matches(p, expected: dict[str, float]) -> None:
    for label, prob in zip(p.labels, p.probs, strict=True):
        assert prob == pytest.approx(expected[label], abs=2e-6), (p.path, label)


def test_predictions_equal_the_model_applied_directly(predictor, model, corpus) -> None:
    # Batches of 4 mix the 3.5 s file with 1 s clips: padding must not change anything.
    preds = predict_all(predictor, [corpus / "clips", corpus / "long.wav"], batch_size=4)
    assert [Path(p.path).name for p in preds] == [
        "a_16k.wav",
        "d.flac",
        "b_8k.wav",
        "c_44k.wav",
        "long.wav",
    ]
    for p in preds:
        assert p.window is None and p.start == 0.0
        audio = read_audio(p.path)  # resampled to 16 kHz, channels averaged
        assert p.end == pytest.approx(audio.shape[0] / 16_000)
        assert_matches(p, direct(model, audio))


def test_other_rates_and_stereo_are_resampled_and_averaged(predictor, corpus) -> None:
    stereo, mono = predict_all(
        predictor, [corpus / "clips" / "nested" / "c_44k.wav", corpus / "mono_44k.wav"]
    )
    assert stereo.labels == mono.labels
    assert stereo.probs == pytest.approx(mono.probs, abs=1e-6)
    assert stereo.end == mono.end == pytest.approx(1.0)


def test_top_k_is_sorted_and_capped(predictor, corpus) -> None:
    for p in predict_all(predictor, [corpus / "clips"], top_k=3):
        assert len(p.labels) == len(set(p.labels)) == 3
        assert p.probs == sorted(p.probs, reverse=True)
        assert 0 < sum(p.probs) <= 1 + 1e-5
    (p, *_) = predict_all(predictor, [corpus / "clips"], top_k=100)
    assert sorted(p.labels) == sorted(predictor.labels)
    assert sum(p.probs) == pytest.approx(1.0, abs=1e-4)


def test_inputs_keep_their_order(corpus) -> None:
    entries = list_inputs([corpus / "list.jsonl", corpus / "clips", corpus / "long.wav"])
    names = [e.path.relative_to(corpus).as_posix() for e in entries]
    assert names == [
        "long.wav",
        "clips/a_16k.wav",
        "clips/a_16k.wav",
        "clips/d.flac",
        "clips/nested/b_8k.wav",
        "clips/nested/c_44k.wav",
        "long.wav",
    ]
    assert (entries[0].offset, entries[0].duration) == (0.5, 2.0)


def test_manifest_offset_and_duration(predictor, model, corpus) -> None:
    part, whole = predict_all(predictor, [corpus / "list.jsonl"])
    assert (part.start, part.end) == (0.5, 2.5)
    assert_matches(part, direct(model, read_audio(corpus / "long.wav", 0.5, 2.0)))
    assert (whole.start, whole.end) == (0.0, 1.0)


@pytest.mark.parametrize(
    ("hop", "spans"),
    [
        (0.5, [(0.0, 1.0), (0.5, 1.5), (1.0, 2.0), (1.5, 2.5), (2.0, 3.0), (2.5, 3.5)]),
        (None, [(0.0, 1.0), (1.0, 2.0), (2.0, 3.0), (3.0, 3.5)]),
    ],
)
def test_windows_of_a_long_file(predictor, model, corpus, hop, spans) -> None:
    inputs = [corpus / "long.wav", corpus / "clips" / "a_16k.wav"]
    preds = predict_all(predictor, inputs, window_seconds=1.0, hop_seconds=hop, batch_size=3)
    # long.wav: its whole-file row, then its windows; the 1 s clip is one window: no extra rows
    assert [p.window for p in preds] == [None, *range(len(spans)), None]
    assert [(p.start, p.end) for p in preds[1:-1]] == spans
    audio = read_audio(corpus / "long.wav")
    for p in preds[1:-1]:
        assert_matches(p, direct(model, audio[round(p.start * 16_000) : round(p.end * 16_000)]))


def test_window_spans() -> None:
    assert window_spans(10, 4, 4) == [(0, 4), (4, 8), (8, 10)]
    assert window_spans(10, 4, 3) == [(0, 4), (3, 7), (6, 10)]
    assert window_spans(3, 4, 2) == [(0, 3)]
    assert window_spans(10, 2, 9) == [(0, 2), (9, 10)]  # a gap between windows
    assert window_spans(10, 2, 10) == [(0, 2)]  # the next one would start at the end
    with pytest.raises(ConfigError):
        window_spans(10, 0, 1)


def test_windows_must_have_a_length(predictor, corpus) -> None:
    with pytest.raises(ConfigError, match="window_seconds and hop_seconds must be > 0"):
        predict_all(predictor, [corpus / "long.wav"], window_seconds=1.0, hop_seconds=0)


def test_unreadable_input_raises_naming_the_file(predictor, corpus) -> None:
    with pytest.raises(DataError, match=r"bad\.wav: cannot decode audio"):
        predict_all(predictor, [corpus / "clips" / "a_16k.wav", corpus / "bad.wav"])


def test_unreadable_input_can_be_skipped(predictor, corpus) -> None:
    policy = SkipPolicy("skip")
    entries = list_inputs([corpus / "bad.wav", corpus / "clips"])
    with pytest.warns(UserWarning, match=r"skipping \(corrupt\).*bad\.wav"):
        preds = list(predict_entries(predictor, entries, policy))
    assert len(preds) == 4 and dict(policy.counts) == {"corrupt": 1}


def test_missing_input_and_folder_without_audio(corpus) -> None:
    with pytest.raises(DataError, match=r"empty: no audio files \(\.wav, \.flac, \.ogg\)"):
        list_inputs([corpus / "clips", corpus / "empty"])
    with pytest.raises(DataError, match=r"nowhere\.wav: input not found"):
        list_inputs([corpus / "nowhere.wav"])


def test_missing_checkpoint(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"ckpt_path: checkpoint not found: .*none\.ckpt"):
        Predictor.from_checkpoint(tmp_path / "none.ckpt")


def test_forecast_checkpoint_is_refused(checkpoint: Path, tmp_path: Path) -> None:
    """A checkpoint of another task, saved as Lightning saves it, is a clear ConfigError."""
    saved = torch.load(checkpoint, weights_only=False)["hyper_parameters"]
    keep = ("features", "model", "labels", "optimizer")
    forecaster = FrameForecaster(**{k: saved[k] for k in keep})
    path = tmp_path / "forecast.ckpt"
    torch.save(
        {
            "state_dict": forecaster.state_dict(),
            "hyper_parameters": dict(forecaster.hparams),
            TASK_KEY: task_path(forecaster),
        },
        path,
    )
    with pytest.raises(ConfigError, match="predict needs a classifier checkpoint"):
        Predictor.from_checkpoint(path)


def test_writer_refuses_unknown_formats_and_keeps_old_files(predictor, corpus, tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"must end in \.csv or \.jsonl"):
        PredictionWriter(tmp_path / "out.txt", 3)
    out = tmp_path / "out.jsonl"
    out.write_text("earlier results\n")
    (p,) = predict_all(predictor, [corpus / "clips" / "d.flac"])
    with pytest.raises(RuntimeError), PredictionWriter(out, len(p.labels)) as writer:
        writer.write(p)
        raise RuntimeError("interrupted")
    assert out.read_text() == "earlier results\n"
    assert sorted(f.name for f in tmp_path.iterdir()) == ["out.jsonl"]


# --- the command line, as a user runs it ---------------------------------------------------


def test_cli_writes_json_lines_into_its_run_directory(checkpoint, model, corpus, tmp_path):
    run_dir = tmp_path / "run"
    result = audioseq(
        "predict",
        f"ckpt_path={checkpoint}",
        f"inputs=[{corpus / 'clips'},{corpus / 'list.jsonl'},{corpus / 'long.wav'}]",
        "window_seconds=1",
        "top_k=2",
        "device=auto",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    rows = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    files = [(Path(r["path"]).name, r["window"], r["start"], r["end"]) for r in rows]
    assert files == [
        ("a_16k.wav", None, 0.0, 1.0),
        ("d.flac", None, 0.0, 1.0),
        ("b_8k.wav", None, 0.0, 1.0),
        ("c_44k.wav", None, 0.0, 1.0),
        ("long.wav", None, 0.5, 2.5),  # the manifest's part of it, then its windows
        ("long.wav", 0, 0.5, 1.5),
        ("long.wav", 1, 1.5, 2.5),
        ("a_16k.wav", None, 0.0, 1.0),
        ("long.wav", None, 0.0, 3.5),
        ("long.wav", 0, 0.0, 1.0),
        ("long.wav", 1, 1.0, 2.0),
        ("long.wav", 2, 2.0, 3.0),
        ("long.wav", 3, 3.0, 3.5),
    ]
    expected = direct(model, read_audio(corpus / "clips" / "nested" / "b_8k.wav"))
    top = rows[2]["top_k"]
    assert [t["label"] for t in top] == sorted(expected, key=expected.get, reverse=True)[:2]
    assert [t["prob"] for t in top] == pytest.approx([expected[t["label"]] for t in top], abs=2e-6)
    assert "top-k (probability)" in result.stdout  # the summary table
    assert "7 clip(s), 6 window(s) written to" in result.stdout
    cores = usable_cores()  # the default num_workers=auto says what it chose
    expected_workers = auto_workers(cores, local_ranks=1)
    assert f"num_workers=auto: {expected_workers} decoding workers ({cores} cores)" in result.stdout


def test_cli_writes_csv_and_skips_unreadable_inputs(checkpoint, corpus, tmp_path) -> None:
    result = audioseq(
        "predict",
        f"ckpt_path={checkpoint}",
        f"inputs=[{corpus / 'bad.wav'},{corpus / 'clips'}]",
        "output=out/predictions.csv",  # relative to where the command was started
        "on_error=skip",
        "top_k=2",
        "num_workers=0",
        "progress=false",
        f"hydra.run.dir={tmp_path / 'run'}",
        cwd=tmp_path,
    )
    with (tmp_path / "out" / "predictions.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == [
        "path",
        "window",
        "start",
        "end",
        "label_1",
        "prob_1",
        "label_2",
        "prob_2",
    ]
    assert [Path(r["path"]).name for r in rows] == ["a_16k.wav", "d.flac", "b_8k.wav", "c_44k.wav"]
    for r in rows:
        assert r["window"] == "" and float(r["prob_1"]) >= float(r["prob_2"]) > 0
    assert "skipping (corrupt)" in result.stderr and "bad.wav" in result.stderr
    assert "skipped 1 unreadable input(s)" in result.stdout


@pytest.mark.parametrize("value", ["-1", "many"])
def test_cli_refuses_a_bad_worker_count_in_one_line(checkpoint, tmp_path, value) -> None:
    result = audioseq(
        "predict", f"ckpt_path={checkpoint}", "inputs=[x.wav]", f"num_workers={value}",
        f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path, returncode=None,
    )  # fmt: skip
    assert result.returncode == 2
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: num_workers={value}: must be an integer >= 0 (or 'auto')"), last


def test_cli_input_error_is_one_line(checkpoint, corpus, tmp_path) -> None:
    """What the user sees for a bad input (the other errors above take the same way out)."""
    run_dir = tmp_path / "run"
    result = audioseq(
        "predict",
        f"ckpt_path={checkpoint}",
        "inputs=[clips/a_16k.wav,bad.wav]",  # relative to the working directory
        f"hydra.run.dir={run_dir}",
        cwd=corpus,
        returncode=None,
    )
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert re.fullmatch(
        rf"error: {re.escape(str(corpus))}/bad\.wav: cannot decode audio \(.+\)", last
    )
    assert not list(run_dir.glob("predictions.jsonl*"))  # nothing half-written
