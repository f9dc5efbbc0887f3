"""Pooling frame outputs [B, F, H] into one vector per clip, ignoring padded frames."""

import torch
from torch import nn

from audioseq.errors import ConfigError
from audioseq.models.masking import frame_mask

MODES = ("last", "mean", "max", "attention")


class Pooling(nn.Module):
    """``last``: the last valid frame (for a bidirectional encoder: the forward half at the
    last valid frame and the backward half at frame 0, each having seen the whole clip);
    ``mean``/``max``: over valid frames only; ``attention``: a weighted mean over valid
    frames whose weights are a softmax of a learned linear score of each frame (the model
    learns which frames hold the word; needs ``size``, the outputs' width)."""

    def __init__(self, mode: str = "last", bidirectional: bool = False, size: int = 0) -> None:
        super().__init__()
        if mode not in MODES:
            raise ConfigError(f"model.pooling must be one of {MODES}, got {mode!r}")
        self.mode, self.bidirectional = mode, bidirectional
        self.score = nn.Linear(size, 1) if mode == "attention" else None

    def forward(self, outputs: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
        lengths = frame_lengths.to(outputs.device)
        if self.mode == "last":
            rows = torch.arange(outputs.shape[0], device=outputs.device)
            last = outputs[rows, lengths - 1]
            if not self.bidirectional:
                return last
            half = outputs.shape[-1] // 2
            return torch.cat([last[:, :half], outputs[:, 0, half:]], dim=-1)
        mask = frame_mask(lengths, outputs.shape[1]).unsqueeze(-1)
        if self.mode == "mean":
            return (outputs * mask).sum(1) / lengths.clamp(min=1).unsqueeze(1).to(outputs.dtype)
        if self.score is not None:
            weights = self.score(outputs).masked_fill(~mask, float("-inf")).softmax(1)
            return (weights * outputs).sum(1)
        return outputs.masked_fill(~mask, float("-inf")).amax(1)
