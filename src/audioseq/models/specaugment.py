"""SpecAugment (Park et al., 2019) frequency and time masks, on the device, training only.

Masks are drawn independently for every clip of the batch and set features to 0, which
after normalisation is the feature mean. Frequency masks are torchaudio's
``FrequencyMasking(iid_masks=True)``. Time masks follow the same sampling rule (width
uniform in [0, time_width), start uniform over the positions where the mask fits) but
within each clip's valid frames: torchaudio's ``TimeMasking`` draws positions over the
padded length, so in a padded batch a short clip's masks would mostly fall in its padding
and the augmentation's strength would depend on the other clips of the batch.
"""

from collections.abc import Mapping
from typing import Any

import torch
import torchaudio
from torch import nn

from audioseq.config_schema import check_all
from audioseq.errors import ConfigError
from audioseq.models.masking import frame_mask

OPTIONS = ("freq_masks", "freq_width", "time_masks", "time_width")


class SpecAugment(nn.Module):
    """``(features [B, F, D], frame_lengths [B]) -> features``; the identity in eval mode.

    ``freq_masks`` bands of fewer than ``freq_width`` features and ``time_masks`` stretches
    of fewer than ``time_width`` frames (and fewer than the clip's frames) per clip. Padded
    frames are never changed. No parameters or buffers: checkpoints are the same with it on
    or off.
    """

    def __init__(
        self,
        num_features: int,
        freq_masks: int = 0,
        freq_width: int = 0,
        time_masks: int = 0,
        time_width: int = 0,
    ) -> None:
        super().__init__()
        check_all(
            "features.specaugment",
            freq_masks=freq_masks,
            freq_width=freq_width,
            time_masks=time_masks,
            time_width=time_width,
        )
        if freq_masks and not 1 <= freq_width <= num_features:
            raise ConfigError(
                f"features.specaugment.freq_width must be in [1, {num_features}] (the number of "
                f"features) when freq_masks > 0, got {freq_width}"
            )
        if time_masks and time_width < 1:
            raise ConfigError("features.specaugment.time_width must be >= 1 when time_masks > 0")
        self.freq_masks, self.freq_width = freq_masks, freq_width
        self.time_masks, self.time_width = time_masks, time_width
        self.freq = torchaudio.transforms.FrequencyMasking(max(freq_width, 1), iid_masks=True)

    @property
    def enabled(self) -> bool:
        return bool(self.freq_masks or self.time_masks)

    def extra_repr(self) -> str:
        return ", ".join(f"{name}={getattr(self, name)}" for name in OPTIONS)

    def time_mask(self, frame_lengths: torch.Tensor, max_frames: int) -> torch.Tensor:
        """[B, max_frames] bool: True on the frames that ``time_masks`` masks cover, all of
        them inside each clip's ``frame_lengths``."""
        device = frame_lengths.device
        lengths = frame_lengths.to(torch.float32).clamp(min=1)[:, None]
        positions = torch.arange(max_frames, device=device)
        masked = torch.zeros(len(frame_lengths), max_frames, dtype=torch.bool, device=device)
        for _ in range(self.time_masks):
            width = (torch.rand_like(lengths) * lengths.clamp(max=self.time_width)).floor()
            start = (torch.rand_like(lengths) * (lengths - width + 1)).floor()
            masked |= (positions >= start) & (positions < start + width)
        return masked

    def forward(self, features: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
        if not self.training or not self.enabled:
            return features
        out = features
        if self.freq_masks:
            spec = out.transpose(1, 2)  # torchaudio's (..., freq, time)
            for _ in range(self.freq_masks):
                spec = self.freq(spec)
            out = spec.transpose(1, 2)
        if self.time_masks:
            time = self.time_mask(frame_lengths.to(features.device), features.shape[1])
            out = out.masked_fill(time.unsqueeze(-1), 0.0)
        valid = frame_mask(frame_lengths.to(features.device), features.shape[1]).unsqueeze(-1)
        return torch.where(valid, out, features)  # padded frames as they came


def build_specaugment(options: Mapping[str, Any] | None, num_features: int) -> SpecAugment | None:
    """The ``features.specaugment`` dict as a module, or None when it masks nothing."""
    if not options:
        return None
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ConfigError(
            f"features.specaugment: unknown option(s) {unknown} (known: {list(OPTIONS)})"
        )
    module = SpecAugment(num_features, **options)
    return module if module.enabled else None
