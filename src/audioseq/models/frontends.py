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
from audioseq.config_schema import check
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
    """Log mel-band energies: torchaudio's MelSpectrogram (power 2), ``log(mel + log_floor)``.

    Two settings decide how much the features depend on the recording chain rather than
    on the sound (docs/RESULTS.md, "The recording chain"): ``f_max`` below the resamplers'
    transition band (the shipped config: 7600 Hz; torchaudio's default is the Nyquist
    frequency, where any resampling dims and aliases the top band), and ``log_floor``, the
    energy below which a band reads as silence (the shipped config: 1e-5; a lower floor
    turns the dither and quantisation noise of empty bands, e.g. above 4 kHz in
    8 kHz-origin audio, into features). The constructor's defaults are the settings of
    checkpoints written before these options existed, so those rebuild as they were.
    """

    def __init__(
        self,
        sample_rate: int = SAMPLE_RATE,
        win_length: int = 400,
        hop_length: int = 160,
        n_mels: int = 40,
        f_min: float = 0.0,
        f_max: float | None = None,
        log_floor: float = 1e-6,
        normalize: str = "global",
        stats_batches: int = 20,
        specaugment: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(normalize, stats_batches, specaugment)
        nyquist = sample_rate / 2
        if not 0 <= f_min < (f_max or nyquist) <= nyquist:
            raise ConfigError(
                f"features: need 0 <= f_min < f_max <= {nyquist:g} Hz, got f_min={f_min}, "
                f"f_max={f_max}"
            )
        check("features.log_floor", log_floor)  # the config schema's rule
        self.win_length, self.hop_length, self.num_features = win_length, hop_length, n_mels
        self.log_floor = float(log_floor)
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate,
            n_fft=win_length,
            win_length=win_length,
            hop_length=hop_length,
            f_min=f_min,
            f_max=f_max,
            n_mels=n_mels,
            center=False,
        )
        self._init_norm()

    def compute(self, audio: torch.Tensor) -> torch.Tensor:
        return torch.log(self.mel(audio) + self.log_floor).transpose(1, 2)


class MFCC(LogMel):
    """Mel-frequency cepstral coefficients: the orthonormal DCT of LogMel's features.

    (torchaudio's MFCC does the same with a fixed floor of 1e-6; its default dB scale
    clamps at 80 dB below the loudest value of the whole batch, which would make a clip's
    features depend on the other clips, the padding and future samples.)
    """

    def __init__(
        self,
        sample_rate: int = SAMPLE_RATE,
        win_length: int = 400,
        hop_length: int = 160,
        n_mels: int = 40,
        n_mfcc: int = 20,
        f_min: float = 0.0,
        f_max: float | None = None,
        log_floor: float = 1e-6,
        normalize: str = "global",
        stats_batches: int = 20,
        specaugment: Mapping[str, Any] | None = None,
    ) -> None:
        if not 1 <= n_mfcc <= n_mels:
            raise ConfigError(f"features.n_mfcc must be in [1, n_mels={n_mels}], got {n_mfcc}")
        self._n_mfcc = n_mfcc  # read by _init_norm, which LogMel's __init__ calls
        super().__init__(
            sample_rate, win_length, hop_length, n_mels, f_min, f_max, log_floor,
            normalize, stats_batches, specaugment,
        )  # fmt: skip
        self.register_buffer("dct_mat", torchaudio.functional.create_dct(n_mfcc, n_mels, "ortho"))
        self._register_load_state_dict_pre_hook(_rename_torchaudio_mfcc)

    def _init_norm(self) -> None:
        self.num_features = self._n_mfcc
        super()._init_norm()

    def compute(self, audio: torch.Tensor) -> torch.Tensor:
        return torch.matmul(super().compute(audio), self.dct_mat)


def _rename_torchaudio_mfcc(state: dict[str, torch.Tensor], prefix: str, *args: Any) -> None:
    """Checkpoints written when MFCC wrapped torchaudio's MFCC module keep loading."""
    for key in [k for k in state if k.startswith(f"{prefix}mfcc.")]:
        new = key.replace(f"{prefix}mfcc.MelSpectrogram.", f"{prefix}mel.")
        state[new.replace(f"{prefix}mfcc.", prefix)] = state.pop(key)


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
