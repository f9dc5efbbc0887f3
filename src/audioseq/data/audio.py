"""Decoding audio files to 16 kHz mono float32 (soundfile decodes, torchaudio resamples)."""

import io
import os
import re
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import torch
import torchaudio

from audioseq import SAMPLE_RATE
from audioseq.data import wav
from audioseq.errors import DataError

#: torchaudio's "kaiser_best" sinc resampler: flat to 0.95 x the output's Nyquist frequency
#: (7.6 kHz at 16 kHz) with a stop band > 100 dB down. torchaudio's default (6 zero
#: crossings, rolloff 0.99) dims and aliases the top kilohertz, which moved the top
#: mel bands of a 44.1 or 48 kHz copy of a clip by up to 0.18 standard deviations against
#: the 16 kHz original (docs/RESULTS.md, "The recording chain").
HIGH_QUALITY = dict(
    lowpass_filter_width=64,
    rolloff=0.9475937167399596,
    resampling_method="sinc_interp_kaiser",
    beta=14.769656459379492,
)


@lru_cache(maxsize=32)
def resampler(orig_freq: int, new_freq: int = SAMPLE_RATE) -> torchaudio.transforms.Resample:
    """The project's resampler for one rate pair, built once per process (its sinc kernel
    is the cost): decoding, speed perturbation and streaming all use it."""
    return torchaudio.transforms.Resample(orig_freq, new_freq, **HIGH_QUALITY)


def to_mono_16k(audio: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """[T] or [T, C] float audio at any rate -> [T] float32 at 16 kHz (channels averaged)."""
    if audio.ndim == 2:  # one channel: a view, not a reduction (the common case, and faster)
        audio = audio[:, 0] if audio.shape[1] == 1 else audio.mean(dim=1)
    audio = audio.to(torch.float32)
    if sample_rate != SAMPLE_RATE:
        audio = resampler(int(sample_rate))(audio)
    return audio.contiguous()


#: Sample formats that decode to finite numbers by construction (no NaN/Inf check needed).
_INTEGER_SUBTYPES = frozenset(
    {
        "PCM_S8",
        "PCM_U8",
        "PCM_16",
        "PCM_24",
        "PCM_32",
        "ALAC_16",
        "ALAC_20",
        "ALAC_24",
        "ALAC_32",
        "ULAW",
        "ALAW",
    }
)

_DATA_CHUNK = re.compile(r"^data\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)


def _declared_but_missing(log: str) -> int:
    """Bytes a WAV header declares that the file does not hold (libsndfile's log says
    ``data : 32000 (should be 15978)`` and quietly reads what is there). Streaming
    writers' placeholder sizes (0, 0xFFFFFFFF) are not a cut."""
    match = _DATA_CHUNK.search(log)
    if not match:
        return 0
    declared, actual = int(match[1]), int(match[2])
    if declared == 0 or declared >= 0xFFFFFF00:
        return 0
    return max(0, declared - actual)


def _read_checked(
    source: str | BinaryIO, name: str, offset: float = 0.0, duration: float | None = None
) -> torch.Tensor:
    """Decode ``source`` (a path or an open binary file) and apply every check; errors
    name ``name``. Raises ``sf.LibsndfileError``/``RuntimeError``/``ValueError`` when
    libsndfile cannot open it, so each caller can say why (missing file, corrupt bytes)."""
    with sf.SoundFile(source) as f:
        rate, available = f.samplerate, f.frames
        cut = _declared_but_missing(f.extra_info)
        can_be_nonfinite = f.subtype not in _INTEGER_SUBTYPES
        start = min(round(offset * rate), available)
        if start:
            f.seek(start)
        wanted = available - start if duration is None else round(duration * rate)
        data = f.read(frames=wanted, dtype="float32", always_2d=f.channels > 1)
    if data.shape[0] == 0:
        raise DataError(f"{name}: no audio samples (empty clip)", "empty")
    if cut:
        raise DataError(f"{name}: truncated audio ({cut} bytes of audio data missing)", "truncated")
    # Fewer samples than the header promises (a duration past the end just reads less).
    expected = min(wanted, available - start)
    if expected - data.shape[0] > max(0.01 * rate, 0.05 * expected):
        raise DataError(
            f"{name}: truncated audio ({data.shape[0] / rate:.3f} s of {expected / rate:.3f} s)",
            "truncated",
        )
    # Any NaN/Inf makes the sum non-finite, and float32 values cannot overflow a float64
    # sum: one pass, no temporary mask array (integer PCM cannot hold either).
    if can_be_nonfinite and not np.isfinite(data.sum(dtype=np.float64)):
        raise DataError(f"{name}: audio contains NaN or Inf samples", "nonfinite")
    return to_mono_16k(torch.from_numpy(data), rate)


_DECODE_ERRORS = (sf.LibsndfileError, RuntimeError, ValueError, OSError)


def _plain_wav(
    layout: wav.WavLayout,
    available: int,
    read_at: Callable[[int, int], bytes | memoryview],
    name: str,
    offset: float = 0.0,
    duration: float | None = None,
) -> torch.Tensor:
    """The part ``offset``/``duration`` of a plain WAV whose samples ``read_at(position,
    size)`` returns, at 16 kHz mono; ``available``: bytes of samples after the header."""
    start, count = wav.frame_range(layout, available, name, offset, duration)
    raw = read_at(layout.data_offset + start * layout.frame_bytes, count * layout.frame_bytes)
    return to_mono_16k(torch.from_numpy(wav.to_float(layout, raw, count, name)), layout.rate)


def _read_plain_wav(path: str, offset: float, duration: float | None) -> torch.Tensor | None:
    """``read_audio`` for a plain PCM-16 / float-32 WAV file without libsndfile (reading
    only the wanted part), or None for every other file (audioseq.data.wav says why)."""
    if not path.lower().endswith(".wav"):
        return None
    with open(path, "rb") as f:
        layout = wav.parse_header(f.read(wav.HEAD_BYTES))
        if layout is None:
            return None

        def read_at(position: int, size: int) -> bytes:
            f.seek(position)
            return f.read(size)

        available = os.fstat(f.fileno()).st_size - layout.data_offset
        return _plain_wav(layout, available, read_at, path, offset, duration)


def read_audio(
    path: str | Path, offset: float = 0.0, duration: float | None = None
) -> torch.Tensor:
    """Decode a WAV/FLAC/OGG file (any rate, any channel count) to 16 kHz mono float32.

    ``offset`` and ``duration`` are in seconds; only that part of the file is decoded.
    Raises DataError naming the file, the reason and its category (missing, empty,
    corrupt, truncated, nonfinite) when the audio cannot be used.
    """
    try:
        fast = _read_plain_wav(str(path), offset, duration)
        if fast is not None:
            return fast
        return _read_checked(str(path), str(path), offset, duration)
    except _DECODE_ERRORS as e:
        if not Path(path).exists():  # libsndfile reports a missing file as "System error"
            raise DataError(f"{path}: audio file not found", "missing") from None
        raise DataError(f"{path}: cannot decode audio ({e})", "corrupt") from None


def decode_audio(source: bytes | bytearray | memoryview | BinaryIO, name: str) -> torch.Tensor:
    """Decode in-memory audio (e.g. a tar shard member) like ``read_audio`` decodes a file:
    same checks, same categories; ``name`` (``shard.tar:key.wav``) leads every message."""
    if isinstance(source, bytes | bytearray | memoryview):
        if not len(source):
            raise DataError(f"{name}: no audio samples (empty member)", "empty")
        layout = wav.parse_header(source[: wav.HEAD_BYTES])
        if layout is not None:
            view = memoryview(source)
            return _plain_wav(
                layout, len(source) - layout.data_offset, lambda at, n: view[at : at + n], name
            )
        source = io.BytesIO(source)
    try:
        return _read_checked(source, name)
    except _DECODE_ERRORS as e:
        raise DataError(f"{name}: cannot decode audio ({e})", "corrupt") from None
