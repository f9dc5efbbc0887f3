"""A fast path for the commonest audio of training corpora: plain 16-bit PCM and 32-bit
float WAV.

libsndfile decodes every format, but opening a file through it costs about 40 µs, and a
tar-shard member decoded from memory goes through its virtual-I/O callbacks in a dozen
small reads: together more than the decoding itself for a 1 s clip
(docs/PERFORMANCE.md). Such a WAV is a small header and then the samples, which numpy
reads directly. Anything else (other sample formats, WAVE_FORMAT_EXTENSIBLE, a header
this parser does not find in the first bytes) returns None and goes to soundfile; both
paths give the same samples and the same errors (tests/test_audio_io.py).
"""

import struct
from dataclasses import dataclass

import numpy as np

from audioseq.errors import DataError

#: Bytes read first from a file: the RIFF header, "fmt " and any small chunks before "data".
HEAD_BYTES = 4096
_FORMATS = {(1, 16): np.dtype("<i2"), (3, 32): np.dtype("<f4")}  # (format tag, bits)
_INT16_SCALE = np.float32(1 / 32768)  # libsndfile's float view of 16-bit PCM


@dataclass(frozen=True)
class WavLayout:
    """Where the samples are: ``data_offset`` bytes in, ``declared`` bytes long (as the
    header says; a cut file holds fewer)."""

    rate: int
    channels: int
    dtype: np.dtype
    data_offset: int
    declared: int

    @property
    def frame_bytes(self) -> int:
        return self.channels * self.dtype.itemsize


def parse_header(head: bytes | memoryview) -> WavLayout | None:
    """The layout of a plain PCM-16 or float-32 WAV from its first bytes, else None."""
    if len(head) < 12 or head[0:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    position, layout = 12, None
    while position + 8 <= len(head):
        chunk, size = (
            head[position : position + 4],
            int.from_bytes(head[position + 4 : position + 8], "little"),
        )
        body = position + 8
        if chunk == b"fmt ":
            if size < 16 or body + 16 > len(head):
                return None
            tag, channels, rate, _, block, bits = struct.unpack_from("<HHIIHH", head, body)
            dtype = _FORMATS.get((tag, bits))
            if dtype is None or channels < 1 or rate < 1 or block != channels * dtype.itemsize:
                return None
            layout = (rate, channels, dtype)
        elif chunk == b"data":
            return None if layout is None else WavLayout(*layout, body, size)
        position = body + size + (size & 1)
    return None


def frame_range(
    layout: WavLayout, available: int, name: str, offset: float = 0.0, duration: float | None = None
) -> tuple[int, int]:
    """(first frame, frame count) of the part ``offset``/``duration`` (seconds), given that
    the file holds ``available`` bytes after the header; raises for a cut file or an empty
    part, as the soundfile path does."""
    declared = layout.declared
    # Streaming writers leave 0 or 0xFFFFFFFF as the size: the samples run to the end.
    if declared == 0 or declared >= 0xFFFFFF00:
        declared = available
    if declared > available:
        missing = declared - available
        raise DataError(
            f"{name}: truncated audio ({missing} bytes of audio data missing)", "truncated"
        )
    frames = declared // layout.frame_bytes
    start = min(round(offset * layout.rate), frames)
    count = frames - start
    if duration is not None:
        count = min(round(duration * layout.rate), count)
    if count <= 0:
        raise DataError(f"{name}: no audio samples (empty clip)", "empty")
    return start, count


def to_float(layout: WavLayout, raw: bytes | memoryview, count: int, name: str) -> np.ndarray:
    """[T] (mono) or [T, C] float32 samples of ``count`` frames in ``raw``."""
    audio = np.frombuffer(raw, layout.dtype, count * layout.channels)
    if layout.dtype.kind == "i":
        audio = audio.astype(np.float32)  # new and writable; then scaled in place, which
        audio *= _INT16_SCALE  # is half the time of one multiply that converts as well
    else:
        # One pass; float32 values cannot overflow a float64 sum.
        if not np.isfinite(audio.sum(dtype=np.float64)):
            raise DataError(f"{name}: audio contains NaN or Inf samples", "nonfinite")
        audio = audio.astype(np.float32)  # writable, native byte order
    return audio if layout.channels == 1 else audio.reshape(count, layout.channels)
