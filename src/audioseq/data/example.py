"""The record every source yields: one clip, ready for cropping and batching."""

from dataclasses import dataclass

import torch


@dataclass
class Example:
    """A 16 kHz mono float32 waveform with its key (where it came from) and class index;
    a long recording for frame-level tasks has ``frame_labels`` instead (int64, one class
    per 10 ms step: :mod:`audioseq.data.frame_labels`)."""

    key: str
    audio: torch.Tensor
    label: int | None = None
    frame_labels: torch.Tensor | None = None
