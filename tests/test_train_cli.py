"""End to end through the real entry points: Hydra, Lightning, TensorBoard files, checkpoints."""

import json
from pathlib import Path

import pytest
from in_process import audioseq
from processes import script
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

# Small and quick, but a real run: 2 epochs over 640 clips with a small LSTM.
QUICK = [
    "data.train_size=640",
    "data.val_size=128",
    "data.test_size=128",
    "data.batch_size=32",
    "data.num_workers=1",
    "model.encoder.hidden_size=32",
    "model.encoder.num_layers=1",
    "trainer.max_epochs=2",
    "features.stats_batches=4",
]


def tensorboard_tags(run_dir: Path) -> dict[str, set[str]]:
    """All tags of all event files in ``run_dir``, by kind (scalars, images, audio, ...)."""
    tags: dict[str, set[str]] = {}
    for events in run_dir.glob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0, "images": 0, "audio": 0})
        acc.Reload()
        for kind, names in acc.Tags().items():
            if isinstance(names, list):
                tags.setdefault(kind, set()).update(names)
        if acc.summary_metadata:
            tags.setdefault("plugins", set()).update(
                meta.plugin_data.plugin_name for meta in acc.summary_metadata.values()
            )
    return tags


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """One real training run shared by the tests below, by the console script in its own
    process (its smoke test); returns its run directory."""
    work = tmp_path_factory.mktemp("train")
    run_dir = work / "run"
    script("train", *QUICK, f"hydra.run.dir={run_dir}", cwd=work, timeout=900)
    return run_dir


def test_run_directory_layout(trained: Path) -> None:
    assert (trained / ".hydra" / "config.yaml").is_file()
    assert (trained / "checkpoints" / "best.ckpt").is_file()
    assert (trained / "checkpoints" / "last.ckpt").is_file()
    metrics = json.loads((trained / "metrics.json").read_text())
    for key in ("val/acc", "val/acc_best", "val/loss", "test/acc", "test/loss", "test/f1_macro"):
        assert 0.0 <= metrics[key] < 100, key
    assert metrics["epochs"] == 2
    assert metrics["train_seconds"] > 0
    assert metrics["val/acc_best"] >= metrics["val/acc"] - 1e-6


def test_training_beats_chance(trained: Path) -> None:
    metrics = json.loads((trained / "metrics.json").read_text())
    chance = 1 / 12
    assert metrics["val/acc_best"] > 2.5 * chance, metrics
    assert metrics["test/acc"] > 2.5 * chance, metrics


def test_tensorboard_has_the_expected_tags(trained: Path) -> None:
    tags = tensorboard_tags(trained)
    scalars = tags["scalars"]
    for tag in ("train/loss_step", "train/acc", "val/loss", "val/acc", "val/acc_best", "test/acc"):
        assert tag in scalars, (tag, sorted(scalars))
    assert any(t.startswith("lr-") for t in scalars), sorted(scalars)
    assert "hp/test/acc" in scalars
    images = tags["images"]
    assert "val/confusion_matrix" in images and "test/confusion_matrix" in images
    assert any(t.startswith("samples/") and t.endswith("/features") for t in images)
    assert any(t.startswith("samples/") for t in tags["audio"])
    assert any(t.startswith("misclassified/") for t in tags["audio"]), sorted(tags["audio"])
    assert "hparams" in tags["plugins"]


def test_eval_reproduces_the_test_metric(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    result = script(  # audioseq-eval's smoke test: the console script in its own process
        "eval",
        f"ckpt_path={trained / 'checkpoints' / 'best.ckpt'}",
        f"hydra.run.dir={out}",
        cwd=tmp_path,
    )
    trained_metrics = json.loads((trained / "metrics.json").read_text())
    eval_metrics = json.loads((out / "metrics.json").read_text())
    assert eval_metrics["test/acc"] == pytest.approx(trained_metrics["test/acc"], abs=1e-6)
    assert eval_metrics["test/loss"] == pytest.approx(trained_metrics["test/loss"], rel=1e-5)
    assert '"test/acc"' in result.stdout


def test_eval_accepts_data_overrides(trained: Path, tmp_path: Path) -> None:
    out = tmp_path / "eval"
    audioseq(
        "eval",
        f"ckpt_path={trained / 'checkpoints' / 'last.ckpt'}",
        "data.test_size=40",
        "data.batch_size=8",
        "split=test",
        f"hydra.run.dir={out}",
        cwd=tmp_path,
    )
    assert "test/acc" in json.loads((out / "metrics.json").read_text())


def test_resolved_config_reproduces_the_run(trained: Path) -> None:
    config = (trained / ".hydra" / "config.yaml").read_text()
    assert "seed: 1234" in config and "hidden_size: 32" in config


@pytest.mark.slow
def test_default_training_reaches_095(tmp_path: Path) -> None:
    """What `make train` promises: the default config reaches val accuracy >= 0.95."""
    audioseq("train", f"hydra.run.dir={tmp_path}", cwd=tmp_path)
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["val/acc_best"] >= 0.95, metrics
    assert metrics["test/acc"] >= 0.95, metrics


def test_csv_and_tensorboard_loggers_together(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    audioseq(
        "train",
        "debug=fast",
        "logger=many",
        "features.normalize=utterance",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    assert "val/acc" in (run_dir / "metrics.csv").read_text().splitlines()[0]
    assert list(run_dir.glob("events.out.tfevents.*"))


def test_the_same_seed_and_config_give_the_same_metrics(trained: Path, tmp_path: Path) -> None:
    """A second run of the shared run's command, on CPU, with a loader worker: every
    metric the same (training is deterministic where it runs: same data, same draws)."""
    again = tmp_path / "again"
    audioseq("train", *QUICK, f"hydra.run.dir={again}", cwd=tmp_path)
    first = json.loads((trained / "metrics.json").read_text())
    second = json.loads((again / "metrics.json").read_text())
    for key, value in first.items():
        if key != "train_seconds":
            assert second[key] == pytest.approx(value, rel=1e-5, abs=1e-6), key
