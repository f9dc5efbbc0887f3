"""AudioClassifier (built from plain config dicts) and the warm-up + cosine schedule."""

import math

import lightning.pytorch as pl
import pytest
import torch
from torch.utils.data import DataLoader

from audioseq.data.batching import collate
from audioseq.data.example import Example
from audioseq.errors import ConfigError
from audioseq.models.masking import frame_mask
from audioseq.tasks.classification import AudioClassifier
from audioseq.tasks.schedules import warmup_cosine

CELLS = ("rnn", "lstm", "gru")
FEATURES = {
    "logmel": {"_target_": "audioseq.models.frontends.LogMel", "n_mels": 12},
    "mfcc": {"_target_": "audioseq.models.frontends.MFCC", "n_mels": 16, "n_mfcc": 8},
    "frames": {"_target_": "audioseq.models.frontends.Frames", "frame_samples": 80},
}
LABELS = ["low", "high"]
LR = 3e-3


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: one intra-op thread is faster, and immune to a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_classifier(
    cell: str = "gru",
    frontend: str = "logmel",
    normalize: str = "utterance",
    scheduler: dict | None = None,
    lr: float = LR,
    bidirectional: bool = False,
    pooling: str = "last",
    stats_batches: int = 20,
) -> AudioClassifier:
    torch.manual_seed(0)
    return AudioClassifier(
        features={**FEATURES[frontend], "normalize": normalize, "stats_batches": stats_batches},
        model={
            "encoder": {
                "_target_": "audioseq.models.encoders.RecurrentEncoder",
                "cell": cell,
                "hidden_size": 8,
                "num_layers": 1,
                "bidirectional": bidirectional,
            },
            "pooling": pooling,
            "head_dropout": 0.1,
        },
        labels=LABELS,
        optimizer={"_target_": "torch.optim.AdamW", "_partial_": True, "lr": lr},
        scheduler=scheduler,
    )


def tone(freq: float, samples: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(samples) / 16_000
    return 0.5 * torch.sin(2 * math.pi * freq * t) + 0.05 * torch.randn(samples, generator=gen)


def examples(count: int = 4) -> list[Example]:
    """Alternating low (300 Hz) and high (3 kHz) tones of different lengths."""
    lengths = [1600, 1100, 900, 1400, 500, 1300]
    return [
        Example(f"clip{i}", tone(300 if i % 2 == 0 else 3000, lengths[i % 6], seed=i), i % 2)
        for i in range(count)
    ]


def loss_on(model: AudioClassifier, batch) -> float:
    model.eval()
    with torch.no_grad():
        logits = model(batch["audio"], batch["lengths"])
    model.train()
    return torch.nn.functional.cross_entropy(logits, batch["label"]).item()


@pytest.mark.parametrize("frontend", list(FEATURES))
@pytest.mark.parametrize("cell", CELLS)
def test_each_model_and_frontend_learns_a_fixed_batch(cell, frontend):
    model = make_classifier(cell, frontend, lr=2e-2)
    batch = collate(examples())
    optimizer = model.configure_optimizers()
    before = loss_on(model, batch)
    model.train()
    for _ in range(12):
        optimizer.zero_grad()
        loss = model.loss_fn(model(batch["audio"], batch["lengths"]), batch["label"])
        loss.backward()
        optimizer.step()
    after = loss_on(model, batch)
    assert after < 0.5 * before, (before, after)


@pytest.mark.parametrize("frontend", list(FEATURES))
def test_global_normalisation_estimated_by_hand_then_learns(frontend):
    model = make_classifier("lstm", frontend, normalize="global", lr=2e-2)
    batch = collate(examples())
    with pytest.raises(RuntimeError):
        model(batch["audio"], batch["lengths"])
    model.frontend.norm.accumulate(*model.frontend.raw(batch["audio"], batch["lengths"]))
    model.frontend.norm.finish()
    optimizer = model.configure_optimizers()
    before = loss_on(model, batch)
    for _ in range(12):
        optimizer.zero_grad()
        model.loss_fn(model(batch["audio"], batch["lengths"]), batch["label"]).backward()
        optimizer.step()
    assert loss_on(model, batch) < 0.5 * before


@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
def test_forward_gives_one_row_of_logits_per_clip(bidirectional, pooling):
    model = make_classifier(bidirectional=bidirectional, pooling=pooling).eval()
    batch = collate(examples(3))
    logits = model(batch["audio"], batch["lengths"])
    assert logits.shape == (3, len(LABELS))
    assert logits.dtype == torch.float32
    assert model.head[-1].in_features == 8 * (2 if bidirectional else 1)
    assert model.labels == LABELS


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
def test_training_step_returns_the_cross_entropy_of_the_batch():
    model = make_classifier().eval()  # no dropout; self.log without a trainer is a no-op
    batch = collate(examples())
    loss = model.training_step(batch, 0)
    expected = torch.nn.functional.cross_entropy(
        model(batch["audio"], batch["lengths"]), batch["label"]
    )
    torch.testing.assert_close(loss, expected)


def test_bad_encoder_cell_is_a_config_error():
    """Hydra wraps it in an InstantiationException; the CLI reports the cause."""
    with pytest.raises(Exception) as info:
        make_classifier(cell="transformer")
    error = info.value if isinstance(info.value, ConfigError) else info.value.__cause__
    assert isinstance(error, ConfigError)
    assert "cell" in str(error)


def test_configure_optimizers_without_scheduler_returns_the_optimizer():
    model = make_classifier()
    optimizer = model.configure_optimizers()
    assert isinstance(optimizer, torch.optim.AdamW)
    assert optimizer.param_groups[0]["lr"] == LR
    in_groups = {id(p) for group in optimizer.param_groups for p in group["params"]}
    assert in_groups == {id(p) for p in model.parameters()}


SCHEDULER = {
    "_target_": "audioseq.tasks.schedules.warmup_cosine",
    "_partial_": True,
    "warmup_steps": 5,
    "min_lr_ratio": 0.1,
}


def cpu_trainer(tmp_path, **options) -> pl.Trainer:
    return pl.Trainer(
        accelerator="cpu",
        devices=1,
        default_root_dir=tmp_path,  # Lightning's defaults otherwise: bar, logger, checkpoints
        **options,
    )


def test_configure_optimizers_with_scheduler_steps_it_every_step(tmp_path):
    model = make_classifier(scheduler=SCHEDULER)
    model.trainer = cpu_trainer(tmp_path, max_steps=40, max_epochs=-1)
    config = model.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    assert config["lr_scheduler"]["interval"] == "step"
    assert isinstance(optimizer, torch.optim.AdamW)
    assert scheduler.optimizer is optimizer
    assert optimizer.param_groups[0]["lr"] == pytest.approx(LR / 5)  # warm-up step 0 of 5
    for _ in range(40):
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(LR * 0.1)  # total_steps = 40


class TinyData(pl.LightningDataModule):
    def __init__(self) -> None:
        super().__init__()
        self.items = examples(6)

    def loader(self) -> DataLoader:
        return DataLoader(self.items, batch_size=2, shuffle=False, collate_fn=collate)

    def train_dataloader(self) -> DataLoader:
        return self.loader()

    def val_dataloader(self) -> DataLoader:
        return self.loader()

    def test_dataloader(self) -> DataLoader:
        return self.loader()


def test_fit_estimates_global_stats_steps_the_scheduler_and_round_trips(tmp_path):
    model = make_classifier("gru", "mfcc", normalize="global", scheduler=SCHEDULER, stats_batches=2)
    data = TinyData()
    trainer = cpu_trainer(tmp_path, max_epochs=2, num_sanity_val_steps=0)
    trainer.fit(model, datamodule=data)

    # global statistics: the valid frames of the first ``stats_batches`` training batches
    norm = model.frontend.norm
    assert bool(norm.ready)
    valid = []
    for batch in list(data.train_dataloader())[:2]:
        features, frame_lengths = model.frontend.raw(batch["audio"], batch["lengths"])
        valid.append(features[frame_mask(frame_lengths, features.shape[1])])
    valid = torch.cat(valid)
    torch.testing.assert_close(norm.mean, valid.mean(0), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(norm.std, valid.std(0, unbiased=False), atol=1e-4, rtol=1e-4)

    # 3 batches x 2 epochs = 6 optimiser steps = total_steps: the lr ends at min_lr_ratio
    assert trainer.global_step == 6
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(LR * 0.1)
    for key in ("train/loss", "val/loss", "val/acc", "val/acc_best", "val/f1_macro"):
        assert key in trainer.callback_metrics, key

    results = trainer.test(model, datamodule=data, verbose=False)[0]
    assert {"test/loss", "test/acc", "test/f1_macro"} <= set(results)

    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    loaded = AudioClassifier.load_from_checkpoint(path, map_location="cpu").eval()
    assert bool(loaded.frontend.norm.ready)
    batch = collate(examples(3))
    with torch.no_grad():
        torch.testing.assert_close(
            loaded(batch["audio"], batch["lengths"]), model.eval()(batch["audio"], batch["lengths"])
        )


@pytest.mark.filterwarnings("ignore:You defined a `validation_step` but have no `val_dataloader`")
def test_fit_with_global_norm_and_no_datamodule_is_a_config_error(tmp_path):
    model = make_classifier(normalize="global")
    trainer = cpu_trainer(tmp_path, max_steps=1)
    loader = DataLoader(examples(2), batch_size=2, collate_fn=collate)
    with pytest.raises(ConfigError, match="DataModule"):
        trainer.fit(model, train_dataloaders=loader)


@pytest.mark.parametrize("frontend", list(FEATURES))
@pytest.mark.parametrize("bidirectional", [False, True])
def test_hparams_round_trip_rebuilds_the_same_model(frontend, bidirectional):
    model = make_classifier("lstm", frontend, scheduler=SCHEDULER, bidirectional=bidirectional)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01)  # not the freshly initialised weights
    rebuilt = AudioClassifier(**model.hparams)
    assert repr(rebuilt) == repr(model)
    assert {k: v.shape for k, v in rebuilt.state_dict().items()} == {
        k: v.shape for k, v in model.state_dict().items()
    }
    rebuilt.load_state_dict(model.state_dict())  # strict
    batch = collate(examples(3))
    with torch.no_grad():
        assert torch.equal(
            rebuilt.eval()(batch["audio"], batch["lengths"]),
            model.eval()(batch["audio"], batch["lengths"]),
        )


# --- warmup_cosine --------------------------------------------------------------------------


def lrs(total_steps: int, steps: int | None = None, **options) -> list[float]:
    """The lr used at each optimiser step 0..steps (base lr 1)."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    scheduler = warmup_cosine(optimizer, total_steps=total_steps, **options)
    seen = []
    for _ in range((total_steps if steps is None else steps) + 1):
        seen.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return seen


def test_warmup_rises_linearly_to_the_base_lr():
    seen = lrs(100, warmup_steps=10, min_lr_ratio=0.1)
    assert seen[:10] == pytest.approx([(i + 1) / 10 for i in range(10)])
    assert seen[10] == pytest.approx(1.0)
    assert max(seen) == pytest.approx(1.0)


def test_cosine_decays_monotonically_to_min_lr_ratio():
    seen = lrs(100, steps=120, warmup_steps=10, min_lr_ratio=0.1)
    decay = seen[10:101]
    assert decay == sorted(decay, reverse=True)
    assert seen[55] == pytest.approx(0.1 + 0.9 * 0.5)  # halfway through the decay
    assert seen[100] == pytest.approx(0.1)
    assert seen[100:] == pytest.approx([0.1] * 21)  # and stays there


def test_warmup_is_capped_at_a_fifth_of_training():
    seen = lrs(50, warmup_steps=100, min_lr_ratio=0.05)
    assert seen[:10] == pytest.approx([(i + 1) / 10 for i in range(10)])
    assert seen[10] == pytest.approx(1.0)
    assert seen[50] == pytest.approx(0.05)


def test_very_short_runs_skip_the_warmup():
    seen = lrs(3, warmup_steps=100, min_lr_ratio=0.2)
    assert seen[0] == pytest.approx(1.0)
    assert seen[3] == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("total_steps", "warmup_steps"), [(3, 100), (50, 100), (200, 10), (200, 0)]
)
def test_a_restored_schedule_continues_bit_for_bit(total_steps, warmup_steps):
    """Resuming from a checkpoint (optimiser and scheduler state_dicts into freshly built ones,
    as Lightning does) must not change a single lr, in warm-up or decay, so that resumed runs
    match uninterrupted ones."""
    options = {"warmup_steps": warmup_steps, "min_lr_ratio": 0.05}
    expected = lrs(total_steps, steps=total_steps + 5, **options)
    for stop in (1, total_steps // 5, total_steps // 2, total_steps):
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        scheduler = warmup_cosine(optimizer, total_steps=total_steps, **options)
        for _ in range(stop):
            optimizer.step()
            scheduler.step()
        states = optimizer.state_dict(), scheduler.state_dict()
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        scheduler = warmup_cosine(optimizer, total_steps=total_steps, **options)
        optimizer.load_state_dict(states[0])
        scheduler.load_state_dict(states[1])
        seen = []
        for _ in range(stop, total_steps + 6):
            seen.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        assert seen == expected[stop:]
