"""Different random draws on every DDP rank, from (seed, rank): still reproducible.

``seed_everything(seed)`` gives every rank the same RNG state, which is right for building
the model (the same initial weights everywhere) but wrong for training: every rank would
draw the same dropout masks, SpecAugment masks and main-process waveform augmentation,
so N ranks would augment N different batches in lock-step with one set of draws. Once
the ranks exist (``setup``, after the process group starts and before any batch), each
rank reseeds Python's, NumPy's and torch's global RNGs from ``(seed, global_rank)``.
DataLoader workers are seeded by Lightning from ``(seed, worker, global rank)``
(``seed_everything(workers=True)``), so every rank and worker has its own stream.

A single-process run keeps its seed untouched: its results do not change.
"""

import random

import lightning.pytorch as pl
import numpy as np
import torch


def rank_seed(seed: int, rank: int) -> int:
    """A 63-bit seed for ``rank`` derived from the run's ``seed`` (the same everywhere)."""
    return int(np.random.SeedSequence([seed, rank]).generate_state(2, np.uint64)[0] >> 1)


class RankSeed(pl.Callback):
    """Reseeds the global RNGs of each rank from ``(seed, global_rank)`` in multi-process runs."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if trainer.world_size == 1:
            return
        value = rank_seed(self.seed, trainer.global_rank)
        random.seed(value)
        np.random.seed(value % 2**32)
        torch.manual_seed(value)
