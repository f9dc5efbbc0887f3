"""The plain-WAV fast path (audioseq.data.wav) gives exactly soundfile's samples and
errors, and leaves every other file to soundfile."""

import io
import struct

import numpy as np
import pytest
import soundfile as sf
import torch

from audioseq.data import wav
from audioseq.data.audio import _read_checked, decode_audio, read_audio
from audioseq.errors import DataError

CASES = [  # (rate, channels, subtype)
    (16000, 1, "PCM_16"),
    (16000, 2, "PCM_16"),
    (44100, 1, "PCM_16"),
    (16000, 1, "FLOAT"),
    (48000, 2, "FLOAT"),
    (8000, 3, "PCM_16"),
]


def wav_bytes(rate: int, channels: int, subtype: str, seconds: float = 0.7, **kwargs) -> bytes:
    rng = np.random.default_rng(rate + channels)
    audio = (0.3 * rng.standard_normal((round(seconds * rate), channels))).astype(np.float32)
    buffer = io.BytesIO()
    sf.write(buffer, audio, rate, subtype=subtype, format="WAV", **kwargs)
    return buffer.getvalue()


@pytest.mark.parametrize(("rate", "channels", "subtype"), CASES)
@pytest.mark.parametrize(("offset", "duration"), [(0.0, None), (0.1, 0.3), (0.5, 5.0)])
def test_files_and_bytes_decode_as_soundfile_does(
    tmp_path, rate, channels, subtype, offset, duration
):
    data = wav_bytes(rate, channels, subtype)
    assert wav.parse_header(data) is not None  # the fast path is taken
    path = tmp_path / "clip.wav"
    path.write_bytes(data)
    expected = _read_checked(str(path), str(path), offset, duration)
    torch.testing.assert_close(read_audio(path, offset, duration), expected, rtol=0, atol=0)
    if offset == 0.0 and duration is None:
        got = decode_audio(data, "shard.tar:clip.wav")
        torch.testing.assert_close(got, expected, rtol=0, atol=0)


def test_chunks_before_the_samples_are_skipped(tmp_path):
    """A LIST chunk (odd-sized, so padded) between "fmt " and "data"."""
    data = wav_bytes(16000, 1, "PCM_16")
    fmt_end = 12 + 8 + 16
    extra = b"LIST" + struct.pack("<I", 5) + b"INFOx" + b"\0"
    edited = data[:fmt_end] + extra + data[fmt_end:]
    edited = edited[:4] + struct.pack("<I", len(edited) - 8) + edited[8:]
    path = tmp_path / "list.wav"
    path.write_bytes(edited)
    assert wav.parse_header(edited).data_offset == len(data[:fmt_end] + extra) + 8
    expected = _read_checked(str(path), str(path))
    torch.testing.assert_close(read_audio(path), expected, rtol=0, atol=0)


@pytest.mark.parametrize("subtype", ["PCM_24", "PCM_32", "DOUBLE", "PCM_U8"])
def test_other_sample_formats_go_to_soundfile(tmp_path, subtype):
    data = wav_bytes(16000, 1, subtype)
    assert wav.parse_header(data) is None
    path = tmp_path / "clip.wav"
    path.write_bytes(data)
    torch.testing.assert_close(read_audio(path), _read_checked(str(path), str(path)))


def test_a_cut_file_is_truncated_on_both_paths(tmp_path):
    data = wav_bytes(16000, 1, "PCM_16")
    cut = data[: len(data) // 2]
    path = tmp_path / "cut.wav"
    path.write_bytes(cut)
    missing = len(data) - len(cut)
    with pytest.raises(DataError, match=rf"cut\.wav: truncated audio \({missing} bytes") as fast:
        read_audio(path)
    with pytest.raises(DataError, match=rf"truncated audio \({missing} bytes") as slow:
        _read_checked(str(path), str(path))
    assert fast.value.reason == slow.value.reason == "truncated"
    with pytest.raises(DataError, match=r"m\.wav: truncated"):
        decode_audio(cut, "s.tar:m.wav")


@pytest.mark.parametrize("size", [0, 0xFFFFFFFF])
def test_streaming_placeholder_sizes_read_to_the_end(tmp_path, size):
    data = wav_bytes(16000, 1, "PCM_16")
    layout = wav.parse_header(data)
    edited = bytearray(data)
    edited[layout.data_offset - 4 : layout.data_offset] = struct.pack("<I", size)
    path = tmp_path / "stream.wav"
    path.write_bytes(bytes(edited))
    assert read_audio(path).shape[0] == round(0.7 * 16000)


def test_empty_and_nonfinite_clips_are_the_same_errors(tmp_path):
    empty = tmp_path / "empty.wav"
    sf.write(empty, np.zeros(0, np.float32), 16000, subtype="PCM_16")
    with pytest.raises(DataError, match=r"empty\.wav: no audio samples") as raised:
        read_audio(empty)
    assert raised.value.reason == "empty"
    bad = np.zeros(100, np.float32)
    bad[7] = np.inf
    nan = tmp_path / "inf.wav"
    sf.write(nan, bad, 16000, subtype="FLOAT")
    with pytest.raises(DataError, match=r"inf\.wav: audio contains NaN or Inf") as raised:
        read_audio(nan)
    assert raised.value.reason == "nonfinite"
