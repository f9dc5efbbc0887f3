"""Estimating global feature statistics from training batches before the first step."""

import lightning.pytorch as pl
import torch

from audioseq.errors import ConfigError
from audioseq.heartbeat import beat
from audioseq.models.chunks import pieces
from audioseq.models.frontends import Frontend

#: Frames computed at once: long recordings are read in pieces, so the spectrogram of a
#: 10-minute batch never sits in memory whole.
STATS_CHUNK_FRAMES = 1000


@torch.no_grad()
def estimate_global_stats(frontend: Frontend, trainer: pl.Trainer) -> None:
    """Mean and std of the frontend's features over ``stats_batches`` training batches.

    Each rank reads its own batches; the sums are all-reduced so every rank (and the
    checkpoint) ends up with the same statistics. Uses a fresh train loader from the
    DataModule so the fit loop's own iterator is left alone. Batches whose samples were all
    skipped (``data.on_error=skip``) add nothing, and a rank left with no frames at all
    still takes part in the all-reduce with zeros: the error for "no frames anywhere" is
    raised after it, on every rank alike, so no rank is left waiting. Long recordings
    are read ``STATS_CHUNK_FRAMES`` frames at a time (the same frames, less memory).
    """
    datamodule = trainer.datamodule
    if datamodule is None:
        raise ConfigError("features.normalize=global needs a DataModule to estimate statistics")
    device = next(iter(frontend.buffers())).device
    for index, batch in enumerate(datamodule.train_dataloader()):
        if index >= frontend.stats_batches:
            break
        if not len(batch["lengths"]):
            continue
        audio, lengths = batch["audio"].to(device), batch["lengths"].to(device)
        for _, _, piece, piece_lengths in pieces(frontend, audio, lengths, STATS_CHUNK_FRAMES):
            frontend.norm.accumulate(*frontend.raw(piece, piece_lengths))
        beat(f"feature statistics: batch {index}")
    sums = frontend.norm.pending_sums
    if sums is None:
        sums = torch.zeros(3, frontend.num_features, dtype=torch.float64, device=device)
    sums = trainer.strategy.reduce(sums, reduce_op="sum")
    beat("feature statistics all-reduced")
    if not bool(sums[0].sum()):
        raise ConfigError(
            "features.normalize=global: the first features.stats_batches training batches "
            "held no frames (every sample skipped or shorter than a frame)"
        )
    frontend.norm.finish(sums)
