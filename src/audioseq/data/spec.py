"""What a source needs to know about the loader it feeds."""

from dataclasses import dataclass


@dataclass(frozen=True)
class LoaderSpec:
    """Per-split loading settings, fixed once the DDP rank is known (DataModule.setup)."""

    batch_size: int
    clip_seconds: float | None
    train: bool
    rank: int = 0
    world_size: int = 1
    on_error: str = "raise"
