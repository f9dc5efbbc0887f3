"""What a source needs to know about the loader it feeds."""

from collections.abc import Callable
from dataclasses import dataclass

import torch

from audioseq.data.cache import CacheBudget


@dataclass(frozen=True)
class LoaderSpec:
    """Per-split loading settings, fixed once the DDP rank is known (DataModule.setup)."""

    batch_size: int
    clip_seconds: float | None
    train: bool
    rank: int = 0
    world_size: int = 1
    on_error: str = "raise"
    min_seconds: float | None = None
    max_seconds: float | None = None
    #: Waveform augmentation for training, ``(audio, generator) -> audio``; None in eval.
    augment: Callable[[torch.Tensor, torch.Generator | None], torch.Tensor] | None = None
    seed: int = 0
    #: ``data.cache``: whether file-list sources decode their clips once, into memory.
    cache: CacheBudget | None = None
    #: ``train``, ``val`` or ``test`` (for messages).
    split: str = "train"
    #: Rank 0 shows progress bars (filling the cache); the others stay quiet.
    show_progress: bool = True
