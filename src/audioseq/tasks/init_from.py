"""``model.init_from=CKPT``: start a task from another audioseq checkpoint's encoder.

The usual use: pre-train with ``task=forecast`` on unlabelled audio, then fine-tune a
classifier from it on a few labelled clips. The encoder's weights and the frontend's
normalisation statistics are copied (the encoder learnt on those normalised features);
the head is new. ``model.freeze_encoder=true`` keeps the encoder fixed (a linear probe).
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from hydra.utils import to_absolute_path

from audioseq import SAMPLE_RATE
from audioseq.errors import ConfigError
from audioseq.tasks.base import AudioTask
from audioseq.tasks.checkpoint import read_checkpoint

#: What is copied: the encoder and the feature statistics it was trained on.
COPIED = ("encoder.", "frontend.norm.")
#: Feature settings that may differ: they do not change what a feature means.
FREE_FEATURE_KEYS = frozenset({"specaugment", "stats_batches"})
#: What a missing feature setting means. features.sample_rate left the configs (audio is
#: always 16 kHz); checkpoints written before it did still say sample_rate=16000.
FEATURE_DEFAULTS = {"sample_rate": SAMPLE_RATE}


def _shape(tensor: torch.Tensor) -> list[int]:
    return list(tensor.shape)


def _check_features(saved: Mapping[str, Any], here: Mapping[str, Any], path: Path) -> None:
    """The same frontend on both sides, else the copied encoder reads other features."""
    saved, here = {**FEATURE_DEFAULTS, **saved}, {**FEATURE_DEFAULTS, **here}
    differ = sorted(
        key
        for key in (set(saved) | set(here)) - FREE_FEATURE_KEYS
        if saved.get(key) != here.get(key)
    )
    if differ:
        there = {k: saved.get(k) for k in differ}
        ours = {k: here.get(k) for k in differ}
        raise ConfigError(
            f"model.init_from: {path} was trained with features {there}, this run has {ours}; "
            "use the same features settings"
        )


def load_encoder(task: AudioTask, path: str | Path, freeze: bool = False) -> None:
    """Copy the encoder and normalisation statistics of the checkpoint at ``path`` into
    ``task`` after checking that every name and shape matches; ``freeze`` stops the
    encoder's training (no gradients, left out of the optimiser)."""
    path = Path(path)
    checkpoint = read_checkpoint(path, option="model.init_from")
    hparams = checkpoint.get("hyper_parameters", {})
    if "features" in hparams and "features" in task.hparams:
        _check_features(hparams["features"], task.hparams["features"], path)
    saved = {k: v for k, v in checkpoint["state_dict"].items() if k.startswith(COPIED)}
    wanted = {k: v for k, v in task.state_dict().items() if k.startswith(COPIED)}
    saved_encoder = hparams.get("model", {}).get("encoder", "?")
    for key, value in wanted.items():
        if key not in saved:
            raise ConfigError(
                f"model.init_from: {path} has no {key} (its encoder: {saved_encoder}); "
                "use the same model.encoder settings"
            )
        if saved[key].shape != value.shape:
            raise ConfigError(
                f"model.init_from: {key} is {_shape(saved[key])} in {path} but "
                f"{_shape(value)} here (its encoder: {saved_encoder}); "
                "use the same model.encoder settings"
            )
    extra = sorted(set(saved) - set(wanted))
    if extra:
        raise ConfigError(
            f"model.init_from: {path} has {extra[0]}, which this run's encoder lacks "
            f"(its encoder: {saved_encoder}); use the same model.encoder settings"
        )
    with torch.no_grad():
        for key, value in task.state_dict(keep_vars=True).items():
            if key in wanted:
                value.copy_(saved[key])
    if freeze:
        task.encoder.requires_grad_(False)


def apply_init_from(task: AudioTask, model: Mapping[str, Any]) -> None:
    """What ``model.init_from`` and ``model.freeze_encoder`` ask for. Freezing without
    ``init_from`` is allowed: a fixed random encoder is a fair baseline to compare with."""
    path = model.get("init_from")
    freeze = bool(model.get("freeze_encoder", False))
    if path:
        load_encoder(task, to_absolute_path(str(path)), freeze=freeze)
    elif freeze:
        task.encoder.requires_grad_(False)
