"""The synthetic memory task: the first key is the label, heard at the start, followed by
``delay_seconds`` of distractors; the clip length follows the delay; misuse is a one-line
configuration error. Also the long_memory experiment's equal parameter budgets."""

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import OmegaConf

from audioseq import SAMPLE_RATE
from audioseq.cli.config_dir import config_dir
from audioseq.cli.train import build_task
from audioseq.data.datamodule import AudioDataModule
from audioseq.data.sources import dtmf
from audioseq.data.sources.synthetic import SyntheticBatches, SyntheticSource
from audioseq.data.spec import LoaderSpec
from audioseq.errors import ConfigError, one_line

SLOT = round(dtmf.KEY_SECONDS * SAMPLE_RATE)
ROWS = sorted({r for r, _ in dtmf.TONES.values()})
COLS = sorted({c for _, c in dtmf.TONES.values()})


def memory(
    split: str = "train",
    size: int = 24,
    *,
    delay: float = 0.25,
    seed: int = 0,
    clip_seconds: float | None = None,
    batch_size: int = 4,
) -> SyntheticBatches:
    spec = LoaderSpec(batch_size=batch_size, clip_seconds=clip_seconds, train=split == "train")
    return SyntheticBatches(split, size, seed, spec, corpus="memory", delay_seconds=delay)


def strongest(clip: np.ndarray, low: float, high: float) -> float:
    """The frequency of the strongest FFT bin between ``low`` and ``high`` Hz."""
    spectrum = np.abs(np.fft.rfft(clip * np.hanning(len(clip)), n=8 * len(clip)))
    hz = np.fft.rfftfreq(8 * len(clip), 1 / SAMPLE_RATE)
    band = (hz >= low) & (hz <= high)
    return float(hz[band][np.argmax(spectrum[band])])


def key_heard(clip: np.ndarray) -> str:
    """The key whose row and column tones are nearest to the two strongest peaks."""
    row = strongest(clip, 650.0, 1000.0)
    col = strongest(clip, 1150.0, 1550.0)
    found = (min(ROWS, key=lambda f: abs(f - row)), min(COLS, key=lambda f: abs(f - col)))
    return next(key for key, tones in dtmf.TONES.items() if tones == found)


# ---- what a clip holds -------------------------------------------------------------------


def test_the_label_is_the_key_heard_in_the_first_slot():
    ds = memory("train", 60, delay=0.5)
    labels = []
    for index in range(60):
        example = ds.example(index)
        labels.append(example.label)
        assert key_heard(example.audio[:SLOT].numpy()) == dtmf.KEYS[example.label], index
    assert len(set(labels)) >= 10  # many classes, not one by accident


def test_the_delay_holds_quieter_distractor_presses_that_do_not_follow_the_label():
    rng = np.random.default_rng(5)
    heard_later = set()
    for trial in range(12):
        clip = dtmf.memory_clip(rng, key=3, delay_seconds=1.0, sample_rate=SAMPLE_RATE,
                                snr_db_range=(60.0, 60.0))  # fmt: skip
        key_rms = np.sqrt(np.mean(clip[:SLOT] ** 2))
        windows = clip[SLOT:].reshape(-1, SLOT)  # 100 ms windows of the delay
        window_rms = np.sqrt(np.mean(windows**2, axis=1))
        assert (window_rms > 1e-3 * key_rms).mean() > 0.8, trial  # hardly ever silent
        assert window_rms.max() < key_rms, trial  # quieter than the key
        heard_later.update(key_heard(w) for w in windows if np.sqrt(np.mean(w**2)) > 0)
    assert len(heard_later) >= 8  # the distractors are all sorts of keys, not the label


def test_delay_zero_is_the_key_alone():
    clip = dtmf.memory_clip(np.random.default_rng(0), 7, 0.0, SAMPLE_RATE)
    assert clip.shape == (SLOT,)
    assert key_heard(clip) == dtmf.KEYS[7]


# ---- determinism and lengths -------------------------------------------------------------


def test_examples_are_deterministic_from_seed_split_and_index():
    a, b = memory("val", seed=4), memory("val", seed=4)
    for index in (0, 3, 23):
        x, y = a.example(index), b.example(index)
        assert x.label == y.label
        assert torch.equal(x.audio, y.audio)
        assert x.audio.dtype == torch.float32
    others = [memory("test", seed=4).example(0), memory("val", seed=5).example(0)]
    others.append(a.example(1))
    for other in others:
        assert not torch.equal(other.audio, a.example(0).audio)


@pytest.mark.parametrize("delay", [0.0, 0.25, 1.0, 2.5])
def test_the_clip_length_follows_the_delay(delay):
    ds = memory("test", 5, delay=delay)
    expected = SLOT + round(delay * SAMPLE_RATE)
    assert dtmf.memory_samples(delay, SAMPLE_RATE) == expected
    assert ds.example(0).audio.shape == (expected,)
    (batch, _) = list(ds)
    assert batch["audio"].shape == (4, expected)
    assert batch["lengths"].tolist() == [expected] * 4


def test_a_longer_clip_seconds_only_pads():
    ds = memory("test", 3, delay=0.25, clip_seconds=0.5)
    (batch,) = list(ds)
    assert batch["audio"].shape == (3, 8000)
    assert batch["lengths"].tolist() == [SLOT + 4000] * 3
    assert batch["audio"][:, SLOT + 4000 :].abs().max() == 0


def test_a_shorter_clip_seconds_is_a_config_error():
    with pytest.raises(ConfigError, match=r"data.clip_seconds=0.5 would cut.*null"):
        memory("train", delay=1.0, clip_seconds=0.5)


def test_the_datamodule_gives_memory_batches_and_dtmf_stays_one_second():
    dm = AudioDataModule(corpus="memory", delay_seconds=0.3, clip_seconds=None, batch_size=4,
                         num_workers=0, train_size=8, val_size=4, test_size=4)  # fmt: skip
    batch = next(iter(dm.val_dataloader()))
    assert batch["audio"].shape == (4, SLOT + 4800)
    assert dm.labels == list(dtmf.KEYS)
    default = AudioDataModule(clip_seconds=None, num_workers=0, train_size=4, val_size=4)
    assert next(iter(default.val_dataloader()))["audio"].shape == (4, SAMPLE_RATE)


# ---- configuration -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "text"),
    [
        ({"corpus": "memroy"}, "data.corpus=memroy: must be one of"),
        (
            {"corpus": "memory", "delay_seconds": -0.5},
            "data.delay_seconds=-0.5: must be a number >= 0",
        ),
        ({"delay_seconds": "long"}, "data.delay_seconds"),
    ],
)
def test_bad_options_are_config_errors(options, text):
    with pytest.raises(ConfigError, match=text):
        SyntheticSource(**options)
    with pytest.raises(ConfigError, match=text):
        AudioDataModule(**options)


def compose_train(*overrides: str):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        return compose("train", overrides=list(overrides))


def test_the_shipped_configs_know_the_new_keys():
    cfg = compose_train()
    assert cfg.data.corpus == "dtmf"
    assert cfg.data.clip_seconds is None
    from_checkpoint = OmegaConf.load(Path(config_dir()) / "data" / "from_checkpoint.yaml")
    fields = set(SyntheticSource.__dataclass_fields__) - {"seed"}
    assert fields <= set(from_checkpoint), fields - set(from_checkpoint)


def test_a_cut_memory_clip_fails_before_training_with_one_line():
    """audioseq-train checks the validation split first: the error comes before any
    training, and is what the CLI prints after ``error:``."""
    dm = AudioDataModule(corpus="memory", delay_seconds=1.0, clip_seconds=0.5, num_workers=0)
    with pytest.raises(ConfigError) as info:
        dm.has_split("val")
    line = one_line(info.value)
    assert line.startswith("data.clip_seconds=0.5 would cut the memory clips")
    assert "data.clip_seconds=null" in line and "\n" not in line


# ---- the long_memory experiment ----------------------------------------------------------


def test_long_memory_sweeps_five_models_with_equal_parameter_budgets():
    cfg = compose_train("experiment=long_memory")
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        hydra_cfg = compose("train", overrides=["experiment=long_memory"], return_hydra_config=True)
    params = hydra_cfg.hydra.sweeper.params
    models = params["model"].split(",")
    assert models == ["markov", "ar", "rnn", "lstm", "gru"]
    assert len(params["data.delay_seconds"].split(",")) >= 3
    assert cfg.data.corpus == "memory" and cfg.model.pooling == "last"
    counts = {}
    for model in models:
        task = build_task(compose_train("experiment=long_memory", f"model={model}"), ["x"] * 12)
        counts[model] = sum(p.numel() for p in task.parameters())
    assert max(counts.values()) <= 1.1 * min(counts.values()), counts
    datamodule = instantiate(compose_train("experiment=long_memory", "data.delay_seconds=0.2").data)
    assert datamodule.source.corpus == "memory"
