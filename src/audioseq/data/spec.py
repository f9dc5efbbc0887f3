"""What a source needs to know about the loader it feeds."""

from collections.abc import Callable
from dataclasses import dataclass

import torch


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
