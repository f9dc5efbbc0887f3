"""Rebuilding a task and its data settings from a checkpoint file alone."""

from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
from hydra.utils import get_class

from audioseq.config_schema import upgrade_data_settings
from audioseq.errors import ConfigError

TASK_KEY = "audioseq_task"
DEFAULT_TASK = "audioseq.tasks.classification.AudioClassifier"


def task_path(module: pl.LightningModule) -> str:
    """The import path stored in checkpoints so that any task can be rebuilt."""
    return f"{type(module).__module__}.{type(module).__qualname__}"


def read_checkpoint(path: str | Path, option: str = "ckpt_path") -> dict[str, Any]:
    """The checkpoint dict on the CPU; a missing or unreadable file is a ConfigError that
    names the ``option`` it came from."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{option}: checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:  # a truncated file, not a torch file, ...
        raise ConfigError(f"{option}: {path}: not a usable audioseq checkpoint ({e})") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise ConfigError(f"{option}: {path}: not a usable audioseq checkpoint (no state_dict)")
    return checkpoint


def load_checkpoint(path: str | Path) -> tuple[pl.LightningModule, dict[str, Any]]:
    """The task with its trained weights (in eval mode) and the saved DataModule settings
    (under today's key names: a checkpoint saved before a rename rebuilds the same data)."""
    checkpoint = read_checkpoint(path)
    try:
        cls = get_class(checkpoint.get(TASK_KEY, DEFAULT_TASK))
        model = cls(**checkpoint["hyper_parameters"])
        model.load_state_dict(checkpoint["state_dict"])
    except ConfigError:
        raise
    except Exception as e:  # a truncated file, another program's checkpoint, ...
        raise ConfigError(f"{path}: not a usable audioseq checkpoint ({e})") from None
    return model.eval(), upgrade_data_settings(checkpoint.get("datamodule_hyper_parameters", {}))
