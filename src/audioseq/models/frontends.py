"""Frontends: waveform [B, T] + lengths -> features [B, F, D] + frame lengths, causally.

Frames are cut without centre padding, so frame k depends only on samples up to its end
and every frontend can later run chunk by chunk. Features are computed in float32 even
under mixed precision (log-mel and MFCC lose too much in 16-bit). In training mode an
optional SpecAugment masks the normalised features; ``raw`` (global statistics) never
sees it.
"""

from collections.abc import Mapping
from typing import Any

import torch
import torchaudio
from torch import nn

from audioseq import SAMPLE_RATE
from audioseq.errors import ConfigError
from audioseq.models.normalization import FeatureNorm
from audioseq.models.specaugment import SpecAugment, build_specaugment


class Frontend(nn.Module):
    """Shared behaviour: frame arithmetic, float32 computation, normalisation and
    SpecAugment (``specaugment``: ``{freq_masks, freq_width, time_masks, time_width}``,
    None or zero masks = off)."""

    num_features: int
    win_length: int
    hop_length: int
    specaugment: SpecAugment | None

    def __init__(
        self, normalize: str, stats_batches: int, specaugment: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__()
        self.stats_batches = stats_batches
        self._normalize = normalize
        self._specaugment = specaugment

    def _init_norm(self) -> None:
        """Build what needs ``num_features``: normalisation and SpecAugment."""
        self.norm = FeatureNorm(self.num_features, self._normalize)
        self.specaugment = build_specaugment(self._specaugment, self.num_features)

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        """Number of complete frames in ``lengths`` samples (at least one per clip)."""
        return ((lengths - self.win_length).clamp(min=0) // self.hop_length + 1).to(torch.int64)

    def compute(self, audio: torch.Tensor) -> torch.Tensor:
        """Unnormalised features [B, F, D] of a padded batch [B, T] with T >= win_length."""
        raise NotImplementedError

    def raw(self, audio: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Features before normalisation, and frame lengths."""
        if audio.shape[1] < self.win_length:
            audio = nn.functional.pad(audio, (0, self.win_length - audio.shape[1]))
        with torch.autocast(audio.device.type, enabled=False):
            features = self.compute(audio.float())
        return features, self.frame_lengths(lengths)

    def forward(
        self, audio: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        features, frame_lengths = self.raw(audio, lengths)
        features = self.norm(features, frame_lengths)
        if self.specaugment is not None and self.training:
            features = self.specaugment(features, frame_lengths)
        return features, frame_lengths


class LogMel(Frontend):
    """Log mel-band energies (torchaudio MelSpectrogram, power 2, natural log)."""

    def __init__(
        self,
        sample_rate: int = SAMPLE_RATE,
        win_length: int = 400,
        hop_length: int = 160,
        n_mels: int = 40,
        normalize: str = "global",
        stats_batches: int = 20,
        specaugment: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(normalize, stats_batches, specaugment)
        self.win_length, self.hop_length, self.num_features = win_length, hop_length, n_mels
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate,
            n_fft=win_length,
            win_length=win_length,
            hop_length=hop_length,
            n_mels=n_mels,
            center=False,
        )
        self._init_norm()

    def compute(self, audio: torch.Tensor) -> torch.Tensor:
        return torch.log(self.mel(audio) + 1e-6).transpose(1, 2)


class MFCC(Frontend):
    """Mel-frequency cepstral coefficients: the DCT of LogMel's log mel energies, per frame."""

    def __init__(
        self,
        sample_rate: int = SAMPLE_RATE,
        win_length: int = 400,
        hop_length: int = 160,
        n_mels: int = 40,
        n_mfcc: int = 20,
        normalize: str = "global",
        stats_batches: int = 20,
        specaugment: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(normalize, stats_batches, specaugment)
        if not 1 <= n_mfcc <= n_mels:
            raise ConfigError(f"features.n_mfcc must be in [1, n_mels={n_mels}], got {n_mfcc}")
        self.win_length, self.hop_length, self.num_features = win_length, hop_length, n_mfcc
        self.mfcc = torchaudio.transforms.MFCC(
            sample_rate=sample_rate,
            n_mfcc=n_mfcc,
            # Natural log of the mel energies, as LogMel. The default dB scale clamps at
            # 80 dB below the loudest value of the whole batch, which made a clip's features
            # depend on the other clips, the padding and future samples.
            log_mels=True,
            melkwargs=dict(
                n_fft=win_length,
                win_length=win_length,
                hop_length=hop_length,
                n_mels=n_mels,
                center=False,
            ),
        )
        self._init_norm()

    def compute(self, audio: torch.Tensor) -> torch.Tensor:
        return self.mfcc(audio).transpose(1, 2)


class Frames(Frontend):
    """The raw waveform cut into non-overlapping frames of ``frame_samples``.

    SpecAugment's "frequency" masks zero sample positions within every frame here.
    """

    def __init__(
        self,
        frame_samples: int = 160,
        normalize: str = "utterance",
        stats_batches: int = 20,
        specaugment: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(normalize, stats_batches, specaugment)
        self.win_length = self.hop_length = self.num_features = frame_samples
        self._init_norm()

    def compute(self, audio: torch.Tensor) -> torch.Tensor:
        frames = audio.shape[1] // self.win_length
        return audio[:, : frames * self.win_length].reshape(audio.shape[0], frames, -1)
