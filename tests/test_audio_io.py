"""read_audio: soundfile decoding, resampling to 16 kHz, mono, offset/duration, errors."""

import numpy as np
import pytest
import soundfile as sf
import torch

from audioseq import SAMPLE_RATE
from audioseq.data.audio import read_audio, to_mono_16k
from audioseq.errors import DataError


def peak_hz(audio: torch.Tensor, rate: int = SAMPLE_RATE) -> float:
    """Frequency of the strongest FFT bin (Hann window, so leakage cannot move the peak)."""
    x = audio.double().numpy()
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spectrum)) * rate / len(x)


@pytest.mark.parametrize(
    ("suffix", "subtype", "rate"),
    [
        ("wav", "PCM_16", 8000),
        ("wav", "PCM_16", 44100),
        ("wav", "PCM_16", 48000),
        ("wav", "FLOAT", 8000),
        ("wav", "FLOAT", 44100),
        ("wav", "FLOAT", 48000),
        ("flac", "PCM_24", 8000),
        ("flac", "PCM_24", 44100),
        ("flac", "PCM_24", 48000),
        ("flac", "PCM_16", 16000),
    ],
)
def test_decodes_and_resamples_to_16k_keeping_the_tone(
    tmp_path, write_wav, sine, suffix, subtype, rate
):
    seconds, freq = 0.5, 1000.0
    path = write_wav(tmp_path / f"tone.{suffix}", sine(freq, seconds, rate), rate, subtype)

    audio = read_audio(path)

    assert audio.dtype == torch.float32
    assert audio.ndim == 1
    assert abs(audio.shape[0] - seconds * SAMPLE_RATE) <= 1
    assert abs(peak_hz(audio) - freq) <= 2.0  # bin width is 2 Hz for 0.5 s
    # amplitude survives decoding (int scaling) and resampling (away from the edges)
    middle = audio[400:-400]
    assert float(middle.abs().max()) == pytest.approx(0.5, abs=0.03)
    assert torch.isfinite(audio).all()


def test_str_path_is_accepted(tmp_path, write_wav, sine):
    path = write_wav(tmp_path / "a.wav", sine(440, 0.1, SAMPLE_RATE), SAMPLE_RATE)
    assert read_audio(str(path)).shape == (1600,)


def test_float_wav_at_16k_is_returned_sample_exact(tmp_path, write_wav):
    data = np.linspace(-0.9, 0.9, 1234, dtype=np.float32)
    path = write_wav(tmp_path / "ramp.wav", data, SAMPLE_RATE, "FLOAT")
    np.testing.assert_array_equal(read_audio(path).numpy(), data)


def test_int16_is_scaled_to_unit_range(tmp_path, write_wav):
    data = np.array([0, 16384, -16384, 32767, -32768] * 20, dtype=np.int16)
    path = write_wav(tmp_path / "int16.wav", data, SAMPLE_RATE, "PCM_16")
    audio = read_audio(path)
    np.testing.assert_allclose(audio[:5].numpy(), [0, 0.5, -0.5, 32767 / 32768, -1.0])


def test_24bit_flac_keeps_24bit_precision(tmp_path, write_wav):
    data = np.array([0, 1, -1, 2**22, -(2**23)] * 10, dtype=np.int32) * 256  # 24-bit in int32
    path = write_wav(tmp_path / "deep.flac", data, SAMPLE_RATE, "PCM_24")
    audio = read_audio(path).numpy()
    np.testing.assert_allclose(audio[:5], [0, 2**-23, -(2**-23), 0.5, -1.0], rtol=0, atol=1e-9)


def test_stereo_is_averaged_to_mono(tmp_path, write_wav, sine):
    left = sine(500, 0.25, SAMPLE_RATE, amplitude=0.4)
    right = sine(1500, 0.25, SAMPLE_RATE, amplitude=0.2)
    path = write_wav(tmp_path / "st.wav", np.stack([left, right], axis=1), SAMPLE_RATE, "FLOAT")

    audio = read_audio(path)

    assert audio.ndim == 1
    np.testing.assert_allclose(audio.numpy(), (left + right) / 2, atol=1e-7)


@pytest.mark.parametrize("suffix", ["wav", "flac"])
def test_stereo_at_48k_is_mono_16k(tmp_path, write_wav, sine, suffix):
    stereo = sine(700, 0.5, 48000, channels=2)
    stereo[:, 1] *= 0.5  # channels differ: the mean has amplitude 0.375
    path = write_wav(tmp_path / f"st.{suffix}", stereo, 48000)

    audio = read_audio(path)

    assert audio.shape == (8000,)
    assert abs(peak_hz(audio) - 700) <= 2.0
    assert float(audio[400:-400].abs().max()) == pytest.approx(0.375, abs=0.02)


def test_six_channels_are_averaged(tmp_path, write_wav):
    data = np.tile(np.arange(6, dtype=np.float32) / 10, (800, 1))  # channel c holds c / 10
    path = write_wav(tmp_path / "six.wav", data, SAMPLE_RATE, "FLOAT")
    np.testing.assert_allclose(read_audio(path).numpy(), np.full(800, 0.25), atol=1e-7)


def test_offset_and_duration_read_exactly_that_part(tmp_path, write_wav):
    data = np.arange(16000, dtype=np.float32) / 16000
    path = write_wav(tmp_path / "ramp.wav", data, SAMPLE_RATE, "FLOAT")

    part = read_audio(path, offset=0.25, duration=0.1)
    np.testing.assert_array_equal(part.numpy(), data[4000:5600])

    tail = read_audio(path, offset=0.75)
    np.testing.assert_array_equal(tail.numpy(), data[12000:])

    head = read_audio(path, duration=0.5)
    np.testing.assert_array_equal(head.numpy(), data[:8000])

    # a duration past the end reads what is there
    np.testing.assert_array_equal(read_audio(path, offset=0.9, duration=5.0).numpy(), data[14400:])


def test_offset_and_duration_at_another_rate(tmp_path, write_wav, sine):
    rate = 48000
    first = sine(440, 0.5, rate)
    second = sine(2000, 0.5, rate)
    path = write_wav(tmp_path / "two.flac", np.concatenate([first, second]), rate, "PCM_24")

    audio = read_audio(path, offset=0.6, duration=0.25)

    assert abs(audio.shape[0] - 4000) <= 1
    assert abs(peak_hz(audio) - 2000) <= 4.0  # 4 Hz bins for 0.25 s
    assert abs(peak_hz(read_audio(path, duration=0.4)) - 440) <= 2.5


def test_to_mono_16k_accepts_channels_last_and_1d():
    stereo = torch.stack([torch.ones(800), -torch.ones(800)], dim=1)
    assert torch.equal(to_mono_16k(stereo, SAMPLE_RATE), torch.zeros(800))
    out = to_mono_16k(torch.zeros(8000, dtype=torch.float64), 8000)
    assert out.dtype == torch.float32
    assert out.shape == (16000,)


# ---- errors: a DataError whose message names the file ------------------------------------


def _error(path, **kwargs) -> str:
    with pytest.raises(DataError) as info:
        read_audio(path, **kwargs)
    message = str(info.value)
    assert str(path) in message
    assert "\n" not in message
    return message


def test_missing_file(tmp_path):
    message = _error(tmp_path / "nope.wav")
    assert "not found" in message


def test_missing_file_as_str(tmp_path):
    assert "not found" in _error(str(tmp_path / "nope.flac"))


def test_garbage_file(tmp_path):
    path = tmp_path / "garbage.wav"
    path.write_bytes(b"this is not audio at all " * 40)
    assert "cannot decode" in _error(path)


def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.flac"
    path.write_bytes(b"")
    _error(path)


def test_directory_instead_of_file(tmp_path):
    path = tmp_path / "dir.wav"
    path.mkdir()
    _error(path)


@pytest.mark.parametrize("subtype", ["PCM_16", "FLOAT"])
def test_zero_length_wav(tmp_path, write_wav, subtype):
    path = write_wav(tmp_path / "silent.wav", np.zeros(0, dtype=np.float32), 16000, subtype)
    assert sf.info(str(path)).frames == 0
    assert "empty" in _error(path)


def test_zero_length_flac(tmp_path, write_wav):
    # libsndfile writes a header-only FLAC that it cannot open again: still a DataError
    path = write_wav(tmp_path / "silent.flac", np.zeros(0, dtype=np.float32), 16000, "PCM_16")
    _error(path)


def test_offset_past_the_end_is_empty(tmp_path, write_wav, sine):
    path = write_wav(tmp_path / "short.wav", sine(440, 0.1, SAMPLE_RATE), SAMPLE_RATE)
    assert "empty" in _error(path, offset=1.0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples(tmp_path, write_wav, bad):
    data = np.zeros(1600, dtype=np.float32)
    data[100] = bad
    path = write_wav(tmp_path / "nan.wav", data, SAMPLE_RATE, "FLOAT")
    assert "NaN" in _error(path)


def test_non_finite_samples_found_after_resampling_input(tmp_path, write_wav):
    data = np.zeros(4410, dtype=np.float32)
    data[-1] = np.nan
    path = write_wav(tmp_path / "nan44.wav", data, 44100, "FLOAT")
    _error(path)
