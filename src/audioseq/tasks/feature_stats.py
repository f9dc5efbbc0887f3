"""Estimating global feature statistics from training batches before the first step."""

import lightning.pytorch as pl
import torch

from audioseq.errors import ConfigError
from audioseq.models.frontends import Frontend


@torch.no_grad()
def estimate_global_stats(frontend: Frontend, trainer: pl.Trainer) -> None:
    """Mean and std of the frontend's features over ``stats_batches`` training batches.

    Each rank reads its own batches; the sums are all-reduced so every rank (and the
    checkpoint) ends up with the same statistics. Uses a fresh train loader from the
    DataModule so the fit loop's own iterator is left alone.
    """
    datamodule = trainer.datamodule
    if datamodule is None:
        raise ConfigError("features.normalize=global needs a DataModule to estimate statistics")
    device = next(iter(frontend.buffers())).device
    for index, batch in enumerate(datamodule.train_dataloader()):
        if index >= frontend.stats_batches:
            break
        features, frame_lengths = frontend.raw(
            batch["audio"].to(device), batch["lengths"].to(device)
        )
        frontend.norm.accumulate(features, frame_lengths)
    sums = frontend.norm.pending_sums
    if sums is None:
        raise ConfigError("features.normalize=global: the training data yielded no batches")
    frontend.norm.finish(trainer.strategy.reduce(sums, reduce_op="sum"))
