"""Waveform augmentation: each transform does what it says and nothing else, off by default,
training only, reproducible, and its config errors are ConfigErrors."""

import json
import math
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from audioseq import SAMPLE_RATE
from audioseq.cli.config_dir import config_dir
from audioseq.data.audio import read_audio
from audioseq.data.augment import WaveformAugment
from audioseq.data.datamodule import AudioDataModule
from audioseq.errors import ConfigError


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Short clips: one intra-op thread is faster, and immune to a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def sine(freq: float, samples: int, amplitude: float = 0.5) -> torch.Tensor:
    t = torch.arange(samples, dtype=torch.float64) / SAMPLE_RATE
    return (amplitude * torch.sin(2 * math.pi * freq * t)).float()


def white(samples: int, seed: int) -> torch.Tensor:
    return 0.1 * torch.randn(samples, generator=torch.Generator().manual_seed(seed))


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def power_db(x: torch.Tensor) -> float:
    return 10 * math.log10(float(x.double().pow(2).mean()))


def peak_hz(x: torch.Tensor) -> float:
    spectrum = torch.fft.rfft(x.double() * torch.hann_window(len(x), dtype=torch.float64))
    return float(spectrum.abs().argmax()) * SAMPLE_RATE / len(x)


@pytest.fixture
def noise_dir(tmp_path, write_wav):
    """``noise_dir(seconds)``: a folder holding one white-noise file of that length."""

    def make(seconds: float, name: str = "noise") -> Path:
        folder = tmp_path / f"{name}_{seconds}"
        noise = white(round(seconds * SAMPLE_RATE), seed=7).numpy()
        write_wav(folder / "noise.wav", noise, SAMPLE_RATE, "FLOAT")
        return folder

    return make


# ---- off by default ------------------------------------------------------------------------


def test_defaults_are_the_identity():
    audio = white(4000, seed=1)
    augment = WaveformAugment()
    assert not augment.enabled
    assert torch.equal(augment(audio, gen()), audio)


def test_shipped_config_shifts_and_scales_only():
    """Real recordings get the mild default: a shift of up to 0.1 s and +-6 dB of gain."""
    loader = OmegaConf.load(Path(config_dir()) / "data" / "_loader.yaml")
    augment = WaveformAugment(**loader.augment)
    assert augment.enabled
    assert (augment.shift, augment.gain_db) == (1600, 6.0)
    assert not augment.speed and augment.noise_prob == 0


# ---- each transform ------------------------------------------------------------------------


def test_gain_only_scales_within_the_range():
    audio = white(1600, seed=2)
    augment = WaveformAugment(gain_db=6.0)
    gains = []
    for seed in range(200):
        out = augment(audio, gen(seed))
        assert out.shape == audio.shape and out.dtype == torch.float32
        gain = float(out.norm() / audio.norm())
        torch.testing.assert_close(out, audio * gain)  # a pure scale, nothing else
        gains.append(20 * math.log10(gain))
    assert -6.0 - 1e-4 <= min(gains) < -5.0
    assert 5.0 < max(gains) <= 6.0 + 1e-4


def test_time_shift_zero_fills_within_the_range():
    audio = torch.arange(1, 1601, dtype=torch.float32)  # no zero anywhere
    augment = WaveformAugment(time_shift_seconds=0.01)  # 160 samples
    offsets = []
    for seed in range(200):
        out = augment(audio, gen(seed))
        assert out.shape == audio.shape
        zeros = int((out == 0).sum())
        if zeros and out[0] == 0:  # delayed: silence first, then the clip's start
            offset = zeros
            assert torch.equal(out[offset:], audio[:-offset])
        elif zeros:  # advanced: the clip's start is cut, silence at the end
            offset = -zeros
            assert torch.equal(out[:offset], audio[-offset:])
        else:
            offset = 0
            assert torch.equal(out, audio)
        assert torch.equal(out[out == 0], torch.zeros(zeros))
        offsets.append(offset)
    assert max(abs(o) for o in offsets) <= 160
    assert min(offsets) < -120 and max(offsets) > 120


@pytest.mark.parametrize("factor", [0.8, 1.25])
def test_speed_scales_length_and_frequency_by_the_factor(factor):
    audio = sine(500.0, SAMPLE_RATE, amplitude=0.5)
    out = WaveformAugment(speed=[factor])(audio, gen())
    assert abs(out.shape[0] - SAMPLE_RATE / factor) <= 1
    assert out.dtype == torch.float32
    assert peak_hz(out) == pytest.approx(500.0 * factor, abs=2.0)
    # the level stays: away from the edges the sine's RMS is still 0.5 / sqrt(2)
    middle = out[1000:-1000]
    assert float(middle.pow(2).mean().sqrt()) == pytest.approx(0.5 / math.sqrt(2), rel=0.02)


def test_speed_draws_every_factor_and_one_is_unchanged():
    audio = white(1600, seed=3)
    augment = WaveformAugment(speed=[0.9, 1.0, 1.1])
    outputs = [augment(audio, gen(seed)) for seed in range(30)]
    assert {len(o) for o in outputs} == {1778, 1600, 1455}
    assert all(torch.equal(o, audio) for o in outputs if len(o) == 1600)


def mixture_snr(clean: torch.Tensor, mixed: torch.Tensor) -> float:
    return power_db(clean) - power_db(mixed - clean)


@pytest.mark.parametrize("noise_seconds", [0.3, 1.0, 3.0])
def test_noise_is_mixed_at_the_drawn_snr(noise_dir, noise_seconds):
    clean = sine(440.0, SAMPLE_RATE, amplitude=0.3)
    fixed = WaveformAugment(noise_dir=noise_dir(noise_seconds), noise_prob=1.0, noise_snr_db=[5, 5])
    for seed in range(3):
        mixed = fixed(clean, gen(seed))
        assert mixed.shape == clean.shape and mixed.dtype == torch.float32
        assert mixture_snr(clean, mixed) == pytest.approx(5.0, abs=0.5)
    drawn = WaveformAugment(
        noise_dir=noise_dir(noise_seconds), noise_prob=1.0, noise_snr_db=[0, 20]
    )
    snrs = [mixture_snr(clean, drawn(clean, gen(seed))) for seed in range(30)]
    assert -0.5 <= min(snrs) < 4.0 and 16.0 < max(snrs) <= 20.5


def test_short_noise_is_looped_over_the_whole_clip(noise_dir):
    clean = sine(440.0, SAMPLE_RATE)
    augment = WaveformAugment(noise_dir=noise_dir(0.3), noise_prob=1.0, noise_snr_db=[10, 10])
    noise = augment(clean, gen(4)) - clean
    period = round(0.3 * SAMPLE_RATE)
    # periodic with the file's length (looped), and no silent stretch anywhere
    torch.testing.assert_close(noise[period:], noise[:-period], atol=1e-6, rtol=0)
    assert float(noise.reshape(-1, 400).pow(2).mean(1).min()) > 0


def test_long_noise_contributes_one_random_stretch_of_the_file(noise_dir):
    folder = noise_dir(3.0)
    file_noise = read_audio(folder / "noise.wav").double()
    clean = sine(440.0, 8000)
    augment = WaveformAugment(noise_dir=folder, noise_prob=1.0, noise_snr_db=[10, 10])
    starts = set()
    for seed in range(4):
        noise = (augment(clean, gen(seed)) - clean).double()
        size = len(file_noise) + len(noise)  # linear cross-correlation via FFT
        corr = torch.fft.irfft(
            torch.fft.rfft(file_noise, size) * torch.fft.rfft(noise.flip(0), size), size
        )
        start = int(corr[len(noise) - 1 : len(file_noise)].argmax())
        stretch = file_noise[start : start + len(noise)]
        scale = float(noise.norm() / stretch.norm())
        torch.testing.assert_close(noise, scale * stretch, atol=1e-6, rtol=0)
        starts.add(start)
    assert len(starts) == 4


def test_noise_prob_is_the_share_of_noisy_clips(noise_dir):
    clean = sine(440.0, 400)
    augment = WaveformAugment(noise_dir=noise_dir(0.3), noise_prob=0.3)
    noisy = sum(not torch.equal(augment(clean, gen(seed)), clean) for seed in range(300))
    assert 60 <= noisy <= 120


def test_silent_clip_or_silent_noise_gives_no_nan(tmp_path, write_wav, noise_dir):
    silent_dir = tmp_path / "silent"
    write_wav(silent_dir / "zeros.wav", torch.zeros(4000).numpy(), SAMPLE_RATE, "FLOAT")
    clean = sine(440.0, 1600)
    out = WaveformAugment(noise_dir=silent_dir, noise_prob=1.0)(clean, gen())
    torch.testing.assert_close(out, clean)
    out = WaveformAugment(noise_dir=noise_dir(0.3), noise_prob=1.0)(torch.zeros(1600), gen())
    assert torch.isfinite(out).all() and float(out.abs().max()) < 1e-3


def test_noise_files_are_read_once_per_process(noise_dir):
    folder = noise_dir(0.5, name="once")
    augment = WaveformAugment(noise_dir=folder, noise_prob=1.0)
    clean = sine(440.0, 1600)
    first = augment(clean, gen(0))
    (folder / "noise.wav").unlink()  # a second read would now fail
    for seed in range(5):
        assert not torch.equal(augment(clean, gen(seed)), clean)
    torch.testing.assert_close(augment(clean, gen(0)), first)


def test_same_seed_same_output_and_the_global_rng_works_too(noise_dir):
    augment = WaveformAugment(
        time_shift_seconds=0.01,
        gain_db=6,
        noise_dir=noise_dir(0.3),
        noise_prob=0.5,
        speed=[0.9, 1.1],
    )
    audio = white(1600, seed=5)
    first = [augment(audio, gen(seed)) for seed in range(5)]
    again = [augment(audio, gen(seed)) for seed in range(5)]
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0], first[1])
    torch.manual_seed(11)
    one = augment(audio)
    torch.manual_seed(11)
    assert torch.equal(augment(audio), one)


# ---- config errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"time_shift_seconds": -0.1}, "time_shift_seconds=-0.1: must be a number >= 0"),
        ({"gain_db": -3}, "gain_db=-3: must be a number >= 0"),
        ({"gain_db": "loud"}, "gain_db=loud: must be a number >= 0"),
        ({"noise_prob": 1.5}, r"noise_prob=1.5: must be a number in \[0, 1\]"),
        ({"noise_prob": 0.5}, "noise_prob > 0 needs data.augment.noise_dir"),
        ({"noise_dir": "/no/such/folder"}, "noise_dir: folder not found"),
        ({"noise_snr_db": [20, 0]}, r"noise_snr_db must be \[low, high\]"),
        ({"noise_snr_db": 10}, r"noise_snr_db must be \[low, high\]"),
        ({"speed": 1.1}, "speed must be a list of factors > 0"),
        ({"speed": [1.0, 0]}, "speed must be a list of factors > 0"),
        ({"gain": 3}, r"data.augment: unknown option\(s\) \['gain'\]"),
    ],
)
def test_bad_settings_are_config_errors(options, match):
    with pytest.raises(ConfigError, match=match):
        WaveformAugment(**options)


def test_noise_dir_without_audio_is_a_config_error(tmp_path):
    (tmp_path / "README.md").write_text("not audio")
    with pytest.raises(ConfigError, match=r"no \.wav/\.flac/\.ogg files in"):
        WaveformAugment(noise_dir=str(tmp_path), noise_prob=0.5)


def test_undecodable_noise_file_is_a_config_error_naming_it(tmp_path):
    (tmp_path / "broken.wav").write_bytes(b"RIFF not really a wav file")
    augment = WaveformAugment(noise_dir=str(tmp_path), noise_prob=1.0)
    with pytest.raises(ConfigError, match=r"noise_dir: .*broken\.wav: cannot decode"):
        augment(sine(440.0, 1600), gen())


def test_datamodule_reports_bad_augment_settings_as_config_errors():
    with pytest.raises(ConfigError, match=r"data\.augment\.gain_db"):
        AudioDataModule(source="synthetic", augment={"gain_db": -1})


# ---- training only -------------------------------------------------------------------------


@pytest.fixture
def corpus(tmp_path, write_wav):
    """Four 0.5 s tones and a manifest per split (the same clips in each)."""
    records = []
    for i, freq in enumerate((300, 500, 700, 900)):
        write_wav(tmp_path / f"{i}.wav", sine(freq, 8000).numpy(), SAMPLE_RATE, "FLOAT")
        records.append({"audio_filepath": f"{i}.wav", "label": f"c{i % 2}"})
    lines = "".join(json.dumps(r) + "\n" for r in records)
    manifests = {}
    for split in ("train", "val", "test"):
        manifests[f"{split}_manifest"] = str(tmp_path / f"{split}.jsonl")
        Path(manifests[f"{split}_manifest"]).write_text(lines)
    return manifests


def loader_audio(loader) -> dict[str, torch.Tensor]:
    """Each clip's valid samples by key."""
    return {
        key: audio[:length]
        for batch in loader
        for key, audio, length in zip(batch["key"], batch["audio"], batch["lengths"], strict=True)
    }


def datamodule(corpus: dict, augment: dict | None) -> AudioDataModule:
    return AudioDataModule(
        source="manifest", batch_size=2, num_workers=0, clip_seconds=None, augment=augment, **corpus
    )


def test_only_the_train_loader_is_augmented(corpus, noise_dir):
    augment = dict(
        time_shift_seconds=0.02,
        gain_db=6,
        noise_dir=str(noise_dir(0.3)),
        noise_prob=1.0,
        speed=[0.9, 1.1],
    )
    dm = datamodule(corpus, augment)
    torch.manual_seed(0)
    train = loader_audio(dm.train_dataloader())
    assert len(train) == 4
    for key, audio in train.items():
        original = read_audio(key)
        assert len(audio) != len(original) or not torch.equal(audio, original)
    for loader in (dm.val_dataloader(), dm.test_dataloader()):
        clips = loader_audio(loader)
        assert len(clips) == 4
        for key, audio in clips.items():
            assert torch.equal(audio, read_audio(key))


def test_train_loader_with_the_shipped_settings_shifts_and_scales(corpus):
    settings = OmegaConf.load(Path(config_dir()) / "data" / "_loader.yaml").augment
    dm = datamodule(corpus, OmegaConf.to_container(settings))
    changed = 0
    for key, audio in loader_audio(dm.train_dataloader()).items():
        original = read_audio(key)
        assert audio.shape == original.shape  # a shift keeps the length
        assert audio.abs().max() <= original.abs().max() * 10 ** (6 / 20) * (1 + 1e-5)
        changed += not torch.equal(audio, original)
    assert changed
