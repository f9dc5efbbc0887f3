"""Config keys renamed or removed since runs were first saved: the command line names the
new key, and checkpoints and run folders saved with the old ones still load as they were.

- ``data.task`` (the synthetic corpus) is ``data.corpus``: ``task=`` is the config group.
- ``data=shards`` took its sort buffer from ``data.num_buckets``; it is
  ``data.sort_buffer_batches`` (``num_buckets`` stays the file-list sources' quantiles).
- ``features.sample_rate`` (only 16000 was allowed) left the configs.
"""

from pathlib import Path

import pytest
import torch
from hydra.utils import get_class
from in_process import attempt
from omegaconf import OmegaConf
from tiny_models import FRONTENDS, make_classifier, save_checkpoint

from audioseq.cli.config_dir import config_dir
from audioseq.config_schema import renamed_override, upgrade_data_settings, upgrade_overrides
from audioseq.data.datamodule import SOURCES, AudioDataModule
from audioseq.data.sources import dtmf
from audioseq.errors import ConfigError
from audioseq.tasks.checkpoint import load_checkpoint
from audioseq.tasks.init_from import load_encoder

#: A synthetic ``memory`` run's DataModule settings as checkpoints saved them before.
OLD_SYNTHETIC = {
    "source": "synthetic", "clip_seconds": None, "batch_size": 4, "num_workers": 0,
    "persistent_workers": True, "pin_memory": "auto", "seed": 7, "on_error": "raise",
    "min_seconds": None, "max_seconds": None, "bucketing": False, "num_buckets": 10,
    "augment": None, "cache": "auto", "cache_budget": 0.25, "train_size": 8, "val_size": 4,
    "test_size": 4, "task": "memory", "delay_seconds": 0.2,
}  # fmt: skip


def test_a_checkpoint_saved_with_data_task_rebuilds_the_same_corpus(tmp_path: Path) -> None:
    model = make_classifier()
    path = save_checkpoint(model, tmp_path / "old.ckpt")
    checkpoint = torch.load(path, weights_only=False)
    checkpoint["datamodule_hyper_parameters"] = dict(OLD_SYNTHETIC)
    torch.save(checkpoint, path)
    _, saved = load_checkpoint(path)
    assert saved["corpus"] == "memory" and "task" not in saved
    datamodule = AudioDataModule(**saved)
    assert datamodule.labels == list(dtmf.KEYS)
    batch = next(iter(datamodule.val_dataloader()))  # memory clips: key + 0.2 s, not 1 s
    assert batch["audio"].shape == (4, dtmf.memory_samples(0.2, 16000))


def test_saved_shard_settings_keep_their_sort_buffer() -> None:
    old = {"source": "shards", "bucketing": True, "num_buckets": 12, "train_shards": "s"}
    assert upgrade_data_settings(old)["sort_buffer_batches"] == 12
    assert upgrade_data_settings({**old, "sort_buffer_batches": 3})["sort_buffer_batches"] == 3
    files = {"source": "manifest", "num_buckets": 12, "train_manifest": "t.jsonl"}
    assert upgrade_data_settings(files) == files
    assert upgrade_data_settings({}) == {}


def test_eval_can_override_every_sources_options_by_their_new_names() -> None:
    """data=from_checkpoint (audioseq-eval) lists every option of every source."""
    listed = set(OmegaConf.load(Path(config_dir()) / "data" / "from_checkpoint.yaml"))
    assert {"corpus", "sort_buffer_batches"} <= listed and "task" not in listed
    for name, path in SOURCES.items():
        assert set(get_class(path).__dataclass_fields__) <= listed, name


def test_a_saved_runs_overrides_use_the_new_names() -> None:
    assert upgrade_overrides(["data.task=memory", "model=gru"]) == [
        "data.corpus=memory",
        "model=gru",
    ]
    assert upgrade_overrides(["+data.task=memory"]) == ["+data.corpus=memory"]
    shards = ["data=shards", "data.train_shards=s", "data.num_buckets=12"]
    assert upgrade_overrides(shards) == [*shards, "data.sort_buffer_batches=12"]
    assert upgrade_overrides(["data.num_buckets=12"]) == ["data.num_buckets=12"]


def test_the_old_key_on_the_command_line_names_the_new_one(tmp_path: Path) -> None:
    assert renamed_override(["model=gru", "data.corpus=memory"]) is None
    for command in ("train", "eval"):
        done = attempt(command, "ckpt_path=x.ckpt", "data.task=memory", cwd=tmp_path)
        assert done.returncode == 2, done.stderr[-2000:]
        assert done.stderr.strip().splitlines() == [
            "error: data.task is now called data.corpus: use data.corpus=memory"
        ]


def test_checkpoints_that_saved_features_sample_rate_still_load_and_init(tmp_path) -> None:
    old = make_classifier()
    old.hparams["features"] = {**FRONTENDS["logmel"], "sample_rate": 16000, "normalize": "global"}
    path = save_checkpoint(old, tmp_path / "old.ckpt")
    loaded, _ = load_checkpoint(path)
    assert loaded.hparams["features"]["sample_rate"] == 16000
    load_encoder(make_classifier(), path)  # today's features, without the key: the same
    other = make_classifier()
    other.hparams["features"] = {**other.hparams["features"], "sample_rate": 8000}
    with pytest.raises(ConfigError, match="sample_rate"):
        load_encoder(other, path)
