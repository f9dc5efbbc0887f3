"""Decoding audio files to 16 kHz mono float32 (soundfile decodes, torchaudio resamples)."""

from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio

from audioseq import SAMPLE_RATE
from audioseq.errors import DataError


@lru_cache(maxsize=32)
def _resample_kernel(orig_freq: int, new_freq: int) -> torchaudio.transforms.Resample:
    """One resampler per rate pair, built once per process (its sinc kernel is the cost)."""
    return torchaudio.transforms.Resample(orig_freq, new_freq)


def to_mono_16k(audio: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """[T] or [T, C] float audio at any rate -> [T] float32 at 16 kHz (channels averaged)."""
    if audio.ndim == 2:
        audio = audio.mean(dim=1)
    audio = audio.to(torch.float32)
    if sample_rate != SAMPLE_RATE:
        audio = _resample_kernel(int(sample_rate), SAMPLE_RATE)(audio)
    return audio.contiguous()


def read_audio(
    path: str | Path, offset: float = 0.0, duration: float | None = None
) -> torch.Tensor:
    """Decode a WAV/FLAC/OGG file (any rate, any channel count) to 16 kHz mono float32.

    ``offset`` and ``duration`` are in seconds; only that part of the file is decoded.
    Raises DataError naming the file and the reason when it cannot be read.
    """
    try:
        with sf.SoundFile(str(path)) as f:
            rate = f.samplerate
            start = round(offset * rate)
            if start:
                f.seek(min(start, f.frames))
            frames = -1 if duration is None else round(duration * rate)
            data = f.read(frames=frames, dtype="float32", always_2d=True)
    except FileNotFoundError:
        raise DataError(f"{path}: audio file not found") from None
    except (sf.LibsndfileError, RuntimeError, ValueError) as e:
        if not Path(path).exists():  # libsndfile reports a missing file as "System error"
            raise DataError(f"{path}: audio file not found") from None
        raise DataError(f"{path}: cannot decode audio ({e})") from None
    if data.shape[0] == 0:
        raise DataError(f"{path}: no audio samples (empty clip)")
    if not np.isfinite(data).all():
        raise DataError(f"{path}: audio contains NaN or Inf samples")
    return to_mono_16k(torch.from_numpy(data), rate)
