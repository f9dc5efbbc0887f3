"""Building Lightning pieces (callbacks, loggers, trainer) from the Hydra config."""

from collections.abc import Sequence
from typing import Any

import lightning.pytorch as pl
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ProgressBar
from omegaconf import DictConfig, OmegaConf

from audioseq.callbacks.rank_seed import RankSeed
from audioseq.callbacks.sync import EpochSync
from audioseq.checkpoint_io import AtomicCheckpointIO


def instantiate_group(group: DictConfig | None) -> list[Any]:
    """Instantiate each entry with a ``_target_`` (entries set to null are switched off)."""
    if not group:
        return []
    return [instantiate(node) for node in group.values() if node and "_target_" in node]


def build_trainer(
    cfg: DictConfig, extra_callbacks: Sequence[pl.Callback] = (), manual_optimization: bool = False
) -> pl.Trainer:
    """The Trainer with its callbacks (``EpochSync`` first, ``RankSeed``, then the config's,
    then ``extra_callbacks``), loggers and the atomic checkpoint writer (before any
    ``trainer.plugins``); ``trainer.enable_progress_bar=false`` also drops the progress-bar
    callback instead of failing on it. For a task that optimises by hand
    (``manual_optimization``, e.g. truncated BPTT), which clips and accumulates gradients
    itself, the trainer runs without clipping and accumulation: Lightning refuses them."""
    callbacks = [
        EpochSync(),
        RankSeed(cfg.get("seed", 0)),
        *instantiate_group(cfg.get("callbacks")),
        *extra_callbacks,
    ]
    if not cfg.trainer.get("enable_progress_bar", True):
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    loggers = instantiate_group(cfg.get("logger"))
    plugins = [AtomicCheckpointIO(), *instantiate(cfg.trainer.get("plugins") or [])]
    manual = (
        {"gradient_clip_val": None, "accumulate_grad_batches": 1} if manual_optimization else {}
    )
    return instantiate(
        cfg.trainer, callbacks=callbacks, logger=loggers or False, plugins=plugins, **manual
    )


def flat_params(cfg: DictConfig, groups: tuple[str, ...]) -> dict[str, Any]:
    """``{"model.encoder.hidden_size": 128, ...}`` for the hparams table (scalars only)."""
    flat: dict[str, Any] = {}

    def walk(prefix: str, node: Any) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                walk(f"{prefix}.{key}" if prefix else str(key), value)
        else:
            flat[prefix] = node if isinstance(node, bool | int | float | str) else str(node)

    container = OmegaConf.to_container(cfg, resolve=True)
    for group in groups:
        if group in container:
            walk(group, container[group])
    return flat
