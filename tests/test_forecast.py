"""task=forecast (next-frame prediction without labels) and model.init_from / freeze_encoder."""

import json
from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import pytest
import soundfile as sf
import torch
from hydra import compose, initialize_config_dir
from in_process import audioseq
from torch.utils.data import DataLoader

from audioseq.cli.config_dir import config_dir
from audioseq.cli.train import build_task
from audioseq.data.batching import collate
from audioseq.data.example import Example
from audioseq.data.sources import dtmf
from audioseq.errors import ConfigError
from audioseq.tasks.classification import AudioClassifier
from audioseq.tasks.forecasting import FrameForecaster, shifted_l1
from audioseq.tasks.init_from import load_encoder

RATE = 16_000
# A small GRU on 16 log-mel bands: what the in-process tests build through build_task.
SMALL = (
    "model=gru",
    "model.encoder.hidden_size=16",
    "model.encoder.num_layers=1",
    "features.n_mels=16",
    "features.stats_batches=2",
    "task.optimizer.lr=0.02",
    "task.scheduler.warmup_steps=5",
)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: one intra-op thread is faster, and immune to a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def compose_train(*overrides: str):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("train", overrides=list(overrides))


def unlabelled_clips(split: int, count: int, seconds: float = 0.5) -> list[Example]:
    """Keypad tones in noise with no label at all (collate turns None into -1)."""
    clips = []
    for index in range(count):
        rng = np.random.default_rng([split, index])
        key = int(rng.integers(len(dtmf.KEYS)))
        audio = dtmf.dtmf_clip(rng, key, round(seconds * RATE), RATE)
        clips.append(Example(f"clip{split}_{index}", torch.from_numpy(audio), None))
    return clips


class UnlabelledAudio(pl.LightningDataModule):
    """Train and val loaders of unlabelled clips, as a folder of recordings would give."""

    def __init__(self, train: int = 480, val: int = 64, batch_size: int = 16) -> None:
        super().__init__()
        self.train, self.val = unlabelled_clips(0, train), unlabelled_clips(1, val)
        self.batch_size = batch_size

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.train, self.batch_size, shuffle=True, collate_fn=collate)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.val, self.batch_size, collate_fn=collate)

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()


def cpu_trainer(root: Path, **options) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu",
        devices=1,
        num_sanity_val_steps=0,
        default_root_dir=root,
        **options,
    )


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory) -> dict:
    """A short forecasting run (3 epochs of 30 steps, ~3 s) on unlabelled audio, built as
    the CLI builds it (val/loss_ratio ~0.89 over seeds 0-3); returns
    the fitted task, its validation/test metrics and a real checkpoint file."""
    pl.seed_everything(0)
    cfg = compose_train("task=forecast", *SMALL)
    task = build_task(cfg, labels=[])
    data = UnlabelledAudio()
    root = tmp_path_factory.mktemp("forecast")
    trainer = cpu_trainer(root, max_epochs=3)
    trainer.fit(task, datamodule=data)
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items()}
    tested = trainer.test(task, datamodule=data, verbose=False)[0]
    path = root / "forecast.ckpt"
    trainer.save_checkpoint(path)
    return {"task": task, "metrics": metrics, "test": tested, "ckpt": path}


def test_forecasting_learns_from_unlabelled_audio_and_beats_copying(pretrained) -> None:
    assert isinstance(pretrained["task"], FrameForecaster)
    assert bool(pretrained["task"].frontend.norm.ready)  # global stats from unlabelled batches
    metrics = pretrained["metrics"]
    assert metrics["val/loss_ratio"] < 0.95, metrics
    assert metrics["val/loss_ratio"] == pytest.approx(
        metrics["val/loss"] / metrics["val/baseline_loss"], rel=1e-5
    )
    assert metrics["val/loss_best"] <= metrics["val/loss"] + 1e-6
    assert metrics["train/loss"] > 0
    tested = pretrained["test"]
    assert {"test/loss", "test/baseline_loss", "test/loss_ratio"} <= set(tested)
    assert tested["test/loss"] == pytest.approx(metrics["val/loss"], rel=1e-5)  # same clips


def test_an_untrained_forecaster_is_the_copy_baseline() -> None:
    """The head starts at zero and predicts the change: training starts from copying."""
    task = build_task(compose_train("task=forecast", *SMALL, "features.normalize=utterance"), [])
    errors = task.eval().errors(collate(unlabelled_clips(2, 3)))
    torch.testing.assert_close(errors["model"], errors["baseline"])


def test_shifted_l1_counts_only_pairs_inside_each_clip() -> None:
    features = torch.arange(2 * 6 * 2, dtype=torch.float32).reshape(2, 6, 2)
    predictions = torch.zeros_like(features)
    lengths = torch.tensor([6, 4])
    total, count = shifted_l1(predictions, features, lengths, shift=2)
    # clip 0: targets are frames 2..5; clip 1 (4 frames): frames 2..3 only
    expected = features[0, 2:6].sum() + features[1, 2:4].sum()
    assert float(total) == float(expected)
    assert int(count) == (4 + 2) * 2
    total, count = shifted_l1(predictions, features, torch.tensor([2, 1]), shift=2)
    assert float(total) == 0 and int(count) == 0  # too short to predict anything
    total, count = shifted_l1(predictions, features, lengths, shift=6)
    assert float(total) == 0 and int(count) == 0


@pytest.mark.parametrize("normalize", ["utterance", "global"])
def test_padded_frames_never_reach_the_loss(pretrained, normalize: str) -> None:
    """A clip alone, zero-padded, or in a batch with a longer clip: the same errors."""
    task = pretrained["task"].eval()
    task.frontend.norm.mode = normalize
    short, long = unlabelled_clips(3, 2)
    short.audio = short.audio[:5000]
    try:
        with torch.no_grad():
            alone = task.errors(collate([short]))
            padded = task.errors(collate([short], pad_to=8000))
            other = task.errors(collate([long]))
            together = task.errors(collate([short, long]))
    finally:
        task.frontend.norm.mode = "global"
    assert float(alone["model"]) != float(alone["baseline"])  # a trained model, not copying
    for key in ("model", "baseline", "count"):
        torch.testing.assert_close(padded[key], alone[key], rtol=1e-5, atol=1e-4)
        torch.testing.assert_close(together[key], alone[key] + other[key], rtol=1e-5, atol=1e-4)


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_training_step_is_the_mean_absolute_error_of_valid_pairs() -> None:
    cfg = compose_train("task=forecast", *SMALL, "features.normalize=utterance")
    task = build_task(cfg, []).eval()  # no trainer: self.log is a no-op
    torch.nn.init.normal_(task.head.weight)  # not the copy baseline
    batch = collate(unlabelled_clips(4, 3, seconds=0.3))
    batch["audio"][1, 3000:] = 0
    batch["lengths"][1] = 3000
    loss = task.training_step(batch, 0)
    with torch.no_grad():
        inputs, targets, frames = task.features(batch["audio"], batch["lengths"])
        predictions = task.predict_frames(inputs, frames)
    pairs = [
        (predictions[i, : n - 3] - targets[i, 3:n]).abs() for i, n in enumerate(frames.tolist())
    ]
    expected = torch.cat([p.flatten() for p in pairs]).mean()
    torch.testing.assert_close(loss, expected)


def test_forecasting_rejects_what_would_see_the_future() -> None:
    with pytest.raises(ConfigError, match="bidirectional"):
        build_task(compose_train("task=forecast", *SMALL, "model.encoder.bidirectional=true"), [])
    with pytest.raises(ConfigError, match=r"task\.shift"):
        build_task(compose_train("task=forecast", *SMALL, "task.shift=0"), [])


def test_each_task_brings_its_checkpoint_metric() -> None:
    classify, forecast = compose_train(), compose_train("task=forecast")
    assert (
        classify.callbacks.model_checkpoint.monitor,
        classify.callbacks.model_checkpoint.mode,
    ) == (
        "val/acc",
        "max",
    )
    assert (
        forecast.callbacks.model_checkpoint.monitor,
        forecast.callbacks.model_checkpoint.mode,
    ) == (
        "val/loss",
        "min",
    )


# --- model.init_from ------------------------------------------------------------------------


def classifier(pretrained, *overrides: str) -> AudioClassifier:
    """A classifier built by build_task with ``model.init_from`` = the forecast checkpoint."""
    cfg = compose_train(*SMALL, f"model.init_from={pretrained['ckpt']}", *overrides)
    return build_task(cfg, labels=list(dtmf.KEYS))


def test_init_from_loads_the_encoder_and_feature_statistics_exactly(pretrained) -> None:
    source = pretrained["task"]
    task = classifier(pretrained)
    assert isinstance(task, AudioClassifier)
    for name, value in source.encoder.state_dict().items():
        assert torch.equal(task.encoder.state_dict()[name], value), name
    for name in ("mean", "std", "ready"):
        assert torch.equal(getattr(task.frontend.norm, name), getattr(source.frontend.norm, name))
    assert all(p.requires_grad for p in task.parameters())
    scratch = build_task(compose_train(*SMALL), labels=list(dtmf.KEYS))
    assert not torch.equal(scratch.encoder.rnn.weight_hh_l0, task.encoder.rnn.weight_hh_l0)


def test_freeze_encoder_keeps_the_encoder_fixed_while_the_head_learns(pretrained) -> None:
    task = classifier(pretrained, "model.freeze_encoder=true", "task.scheduler=null")
    assert not any(p.requires_grad for p in task.encoder.parameters())
    optimizer = task.configure_optimizers()
    optimised = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert optimised == {id(p) for p in task.head.parameters()}
    encoder = {k: v.clone() for k, v in task.encoder.state_dict().items()}
    head = {k: v.clone() for k, v in task.head.state_dict().items()}
    batch = collate(unlabelled_clips(5, 8))
    batch["label"] = torch.arange(8) % 12
    for _ in range(3):
        optimizer.zero_grad()
        loss = task.loss_fn(task(batch["audio"], batch["lengths"]), batch["label"])
        loss.backward()
        assert all(p.grad is None for p in task.encoder.parameters())
        optimizer.step()
    for name, value in task.encoder.state_dict().items():
        assert torch.equal(value, encoder[name]), name
    assert any(not torch.equal(v, head[k]) for k, v in task.head.state_dict().items())


def test_init_from_with_another_encoder_shape_is_a_clear_error(pretrained) -> None:
    with pytest.raises(ConfigError) as info:
        classifier(pretrained, "model.encoder.hidden_size=24")
    message = str(info.value)
    assert message.startswith("model.init_from: encoder.rnn.weight_ih_l0 is [48, 16] in ")
    assert "but [72, 16] here" in message and "hidden_size" in message
    with pytest.raises(
        ConfigError, match=r"model\.init_from: .* has no encoder\.rnn\.weight_ih_l1"
    ):
        classifier(pretrained, "model.encoder.num_layers=2")


def test_init_from_with_other_features_or_no_file_is_a_clear_error(pretrained, tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"trained with features \{'n_mels': 16\}.*'n_mels': 20"):
        classifier(pretrained, "features.n_mels=20")
    source = pretrained["task"]
    with pytest.raises(ConfigError, match=r"model\.init_from: checkpoint not found"):
        load_encoder(source, tmp_path / "missing.ckpt")
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match=r"junk\.ckpt: not a usable audioseq checkpoint"):
        load_encoder(source, junk)


# --- through the real entry points ----------------------------------------------------------


def test_forecast_cli_run_then_eval_of_its_checkpoint(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    audioseq(
        "train",
        "task=forecast",
        "debug=fast",
        "trainer.max_epochs=2",
        "data.batch_size=16",
        "data.val_size=32",
        "data.test_size=32",
        *SMALL,
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("val/loss", "val/baseline_loss", "val/loss_ratio", "val/loss_best"):
        assert key in metrics, (key, metrics)
    for key in ("test/loss", "test/baseline_loss", "test/loss_ratio"):
        assert key in metrics, (key, metrics)
    assert not any("acc" in key for key in metrics), metrics
    assert metrics["epochs"] == 2
    best = run_dir / "checkpoints" / "best.ckpt"
    checkpoint = torch.load(best, map_location="cpu", weights_only=False)
    # The checkpoint that follows val/loss (the other one writes last.ckpt periodically).
    (state,) = (v for k, v in checkpoint["callbacks"].items() if "'monitor': 'val/loss'" in k)
    assert float(state["best_model_score"]) == pytest.approx(metrics["val/loss_best"])

    out = tmp_path / "eval"
    result = audioseq(
        "eval",
        f"ckpt_path={best}",
        f"hydra.run.dir={out}",
        cwd=tmp_path,
    )
    evaluated = json.loads((out / "metrics.json").read_text())
    for key in ("test/loss", "test/baseline_loss", "test/loss_ratio"):
        assert evaluated[key] == pytest.approx(metrics[key], rel=1e-5), key
    assert '"test/loss_ratio"' in result.stdout


def test_forecast_trains_on_an_unlabelled_manifest(tmp_path: Path) -> None:
    """A manifest without labels: fine for task=forecast, a clear error for task=classify."""
    rng = np.random.default_rng(0)
    lines = []
    for i in range(6):
        sf.write(
            tmp_path / f"u{i}.wav", (0.1 * rng.standard_normal(8000)).astype(np.float32), 16000
        )
        lines.append(json.dumps({"audio_filepath": f"u{i}.wav"}))
    (tmp_path / "u.jsonl").write_text("\n".join(lines) + "\n")
    common = [
        "debug=fast",
        "data=manifest",
        f"data.train_manifest={tmp_path / 'u.jsonl'}",
        f"data.val_manifest={tmp_path / 'u.jsonl'}",
        "features.normalize=utterance",
    ]
    audioseq("train", *common, "task=forecast", f"hydra.run.dir={tmp_path / 'f'}", cwd=tmp_path)
    assert "val/loss" in json.loads((tmp_path / "f" / "metrics.json").read_text())
    bad = audioseq("train", *common, f"hydra.run.dir={tmp_path / 'c'}", cwd=tmp_path, returncode=2)
    assert "needs labelled data" in bad.stderr
