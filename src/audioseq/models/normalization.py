"""Feature normalisation: per clip (utterance) or with stored training statistics (global)."""

import torch
from torch import nn

from audioseq.config_schema import check
from audioseq.models.masking import frame_mask

#: The smallest spread a feature is given in global normalisation, relative to the median.
MIN_STD_RATIO = 0.1


class FeatureNorm(nn.Module):
    """Normalises [B, F, D] features per feature dimension, looking only at valid frames.

    ``global`` uses a mean and standard deviation estimated once from training batches
    (``accumulate`` then ``finish``) and stored as buffers, so it travels in checkpoints and
    is causal: a frame's output depends on that frame alone, which streaming needs.
    ``utterance`` uses each clip's own statistics over its valid frames.
    """

    def __init__(self, num_features: int, mode: str = "utterance", eps: float = 1e-5) -> None:
        super().__init__()
        check("features.normalize", mode)  # the config schema's rule
        self.mode, self.eps = mode, eps
        self.register_buffer("mean", torch.zeros(num_features))
        self.register_buffer("std", torch.ones(num_features))
        self.register_buffer("ready", torch.tensor(mode != "global"))
        self._sums: torch.Tensor | None = None

    def accumulate(self, features: torch.Tensor, frame_lengths: torch.Tensor) -> None:
        """Add a batch's valid frames to the running count, sum and sum of squares."""
        valid = features[frame_mask(frame_lengths, features.shape[1])].double()
        sums = torch.stack(
            [valid.new_full(valid.shape[1:], valid.shape[0]), valid.sum(0), (valid**2).sum(0)]
        )
        self._sums = sums if self._sums is None else self._sums + sums

    def finish(self, sums: torch.Tensor | None = None) -> None:
        """Turn the accumulated sums (or ``sums``, e.g. all-reduced over ranks) into buffers."""
        count, total, squares = self._sums if sums is None else sums
        mean = total / count.clamp(min=1)
        std = (squares / count.clamp(min=1) - mean**2).clamp(min=0).sqrt()
        # A band that hardly varies in training (empty above 4 kHz in 8 kHz-origin audio,
        # sitting at the log floor) would turn any later change of its floor, such as
        # another file format's quantisation noise, into a huge normalised value: no
        # band's spread counts as less than a tenth of the median band's.
        floor = max(self.eps, MIN_STD_RATIO * float(std.median()))
        self.mean.copy_(mean.float())
        self.std.copy_(std.float().clamp(min=floor))
        self.ready.fill_(True)
        self._sums = None

    @property
    def pending_sums(self) -> torch.Tensor | None:
        return self._sums

    def forward(self, features: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
        mask = frame_mask(frame_lengths, features.shape[1]).unsqueeze(-1)
        if self.mode == "global":
            if not self.ready:
                raise RuntimeError("global feature statistics were never estimated")
            features = (features - self.mean) / self.std
        elif self.mode == "utterance":
            count = mask.sum(1, keepdim=True).clamp(min=1)
            mean = (features * mask).sum(1, keepdim=True) / count
            var = (((features - mean) * mask) ** 2).sum(1, keepdim=True) / count
            features = (features - mean) / (var.sqrt() + self.eps)
        return features * mask
