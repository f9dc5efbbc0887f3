"""The record every source yields: one clip, ready for cropping and batching."""

from dataclasses import dataclass

import torch


@dataclass
class Example:
    """A 16 kHz mono float32 waveform with its key (where it came from) and class index."""

    key: str
    audio: torch.Tensor
    label: int | None = None
