"""Waveform augmentation for training, run in the DataLoader workers.

Every transform is off at its default, so ``WaveformAugment()`` returns its input. The
order is speed -> shift -> gain -> noise: speed first because it changes the length,
noise last so that its SNR is measured against the signal the model will hear.

Randomness comes from ``generator`` when one is passed, else from the process's torch
RNG. The datasets pass each clip its own (:func:`clip_generator`, from the seed, the
epoch and the clip), so a clip's augmentation depends neither on the worker that makes it
nor on what that worker made before: the same with any number of workers, and the same
after a resume in the middle of an epoch as in an uninterrupted run.
"""

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch

from audioseq import SAMPLE_RATE
from audioseq.config_schema import check_all
from audioseq.data.audio import read_audio, resampler
from audioseq.data.audio_files import AUDIO_SUFFIXES
from audioseq.data.seeding import hashed_seed
from audioseq.errors import ConfigError, DataError

OPTIONS = ("time_shift_seconds", "gain_db", "noise_dir", "noise_prob", "noise_snr_db", "speed")
#: Floor for signal and noise power: a silent clip or a silent stretch of noise must not
#: turn the mixture into NaN (torchaudio's ``add_noise`` divides by the noise energy).
_MIN_POWER = 1e-10


def _noise_files(folder: str) -> list[Path]:
    """Every audio file under ``folder``, hidden ones too (unlike ``audio_files``: a noise
    folder has always been read whole)."""
    files = sorted(p for p in Path(folder).rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES)
    if not files:
        raise ConfigError(
            f"data.augment.noise_dir: no {'/'.join(AUDIO_SUFFIXES)} files in {folder}"
        )
    return files


@lru_cache(maxsize=4)
def _noise_bank(folder: str) -> tuple[torch.Tensor, ...]:
    """Every noise file of ``folder`` (recursively), decoded once per process: each
    worker pays the decoding once, not once per clip."""
    bank = []
    for path in _noise_files(folder):
        try:
            bank.append(read_audio(path))
        except DataError as e:
            raise ConfigError(f"data.augment.noise_dir: {e}") from None
    return tuple(bank)


def _numbers(value: Any) -> bool:
    """A list (or tuple, or OmegaConf ListConfig) of real numbers."""
    return (
        isinstance(value, Sequence)
        and not isinstance(value, str)
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value)
    )


def _show(value: Any) -> str:
    return (
        repr(list(value))
        if isinstance(value, Sequence) and not isinstance(value, str)
        else repr(value)
    )


def clip_generator(*key: int) -> torch.Generator:
    """A torch generator seeded from ``key`` (seed, epoch, clip position)."""
    return torch.Generator().manual_seed(hashed_seed(*key))


def _uniform(low: float, high: float, generator: torch.Generator | None) -> float:
    return low + (high - low) * float(torch.rand((), generator=generator))


def _randint(low: int, high: int, generator: torch.Generator | None) -> int:
    """An integer in [low, high] (both included)."""
    return int(torch.randint(low, high + 1, (), generator=generator))


def shift(audio: torch.Tensor, offset: int) -> torch.Tensor:
    """Delay (``offset`` > 0) or advance the clip by ``offset`` samples, zero-filling the
    gap and keeping the length, as TensorFlow's speech_commands ``time_shift_ms`` does.
    A circular shift would wrap a word's end onto its start: no microphone hears that."""
    if offset == 0:
        return audio
    out = torch.zeros_like(audio)
    if abs(offset) < audio.shape[0]:
        if offset > 0:
            out[offset:] = audio[:-offset]
        else:
            out[:offset] = audio[-offset:]
    return out


def mix_at_snr(audio: torch.Tensor, noise: torch.Tensor, snr_db: float) -> torch.Tensor:
    """``audio + k * noise`` with ``k`` chosen so that the mean power of ``audio`` over that
    of ``k * noise`` is ``snr_db`` (whole-clip powers, as torchaudio's ``add_noise``)."""
    signal_power = audio.pow(2).mean().clamp(min=_MIN_POWER)
    noise_power = noise.pow(2).mean().clamp(min=_MIN_POWER)
    scale = torch.sqrt(signal_power / (noise_power * 10 ** (snr_db / 10)))
    return audio + scale * noise


class WaveformAugment:
    """``(audio [T], generator) -> audio``: speed, time shift, gain, background noise.

    - ``speed``: factors to draw from (uniformly); ``f`` plays the clip ``f`` times as fast
      by resampling (length / f, every frequency * f, as Kaldi's sox ``speed``).
    - ``time_shift_seconds``: a zero-filled shift uniform in [-s, +s].
    - ``gain_db``: a gain uniform in [-g, +g] dB.
    - ``noise_prob``: the chance that a random stretch of a random file from ``noise_dir``
      is mixed in at an SNR uniform in ``noise_snr_db`` (noise shorter than the clip is
      looped).

    ``seed`` is accepted so the DataModule can pass its seed; the randomness itself comes
    from the worker's RNG, which Lightning seeds from it.
    """

    def __init__(
        self,
        time_shift_seconds: float = 0.0,
        gain_db: float = 0.0,
        noise_dir: str | None = None,
        noise_prob: float = 0.0,
        noise_snr_db: Sequence[float] = (0.0, 20.0),
        speed: Sequence[float] = (),
        seed: int = 0,
        **unknown: Any,
    ) -> None:
        if unknown:
            raise ConfigError(
                f"data.augment: unknown option(s) {sorted(unknown)} (known: {list(OPTIONS)})"
            )
        check_all(
            "data.augment",
            time_shift_seconds=time_shift_seconds,
            gain_db=gain_db,
            noise_prob=noise_prob,
        )
        if noise_prob > 0 and not noise_dir:
            raise ConfigError("data.augment.noise_prob > 0 needs data.augment.noise_dir")
        if noise_dir:
            if not Path(noise_dir).is_dir():
                raise ConfigError(f"data.augment.noise_dir: folder not found: {noise_dir}")
            _noise_files(str(noise_dir))  # no audio in it: say so now, not in a worker
        if (
            not (_numbers(noise_snr_db) and len(noise_snr_db) == 2)
            or noise_snr_db[0] > noise_snr_db[1]
        ):
            raise ConfigError(
                f"data.augment.noise_snr_db must be [low, high] in dB, got {_show(noise_snr_db)}"
            )
        if not _numbers(speed) or any(s <= 0 for s in speed):
            raise ConfigError(
                "data.augment.speed must be a list of factors > 0 such as [0.9, 1.0, 1.1], "
                f"got {_show(speed)}"
            )
        self.shift = round(time_shift_seconds * SAMPLE_RATE)
        self.gain_db, self.noise_prob = float(gain_db), float(noise_prob)
        self.noise_dir = str(Path(noise_dir).resolve()) if noise_dir else None
        self.snr_db = (float(noise_snr_db[0]), float(noise_snr_db[1]))
        self.speed = [float(s) for s in speed]
        self.seed = seed

    @property
    def enabled(self) -> bool:
        return bool(self.shift or self.gain_db or self.noise_prob or self.speed)

    @property
    def max_stretch(self) -> float:
        """How many times longer augmentation can make a clip (a speed below 1)."""
        return max([1.0] + [1 / s for s in self.speed])

    def __call__(
        self, audio: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        if self.speed:
            factor = self.speed[_randint(0, len(self.speed) - 1, generator)]
            audio = self.change_speed(audio, factor)
        if self.shift:
            audio = shift(audio, _randint(-self.shift, self.shift, generator))
        if self.gain_db:
            audio = audio * 10 ** (_uniform(-self.gain_db, self.gain_db, generator) / 20)
        if self.noise_prob and float(torch.rand((), generator=generator)) < self.noise_prob:
            audio = self.add_noise(audio, generator)
        return audio

    @staticmethod
    def change_speed(audio: torch.Tensor, factor: float) -> torch.Tensor:
        """Play ``factor`` times as fast: treat the clip as recorded at ``16 kHz * factor``
        and resample it to 16 kHz (``factor`` > 1: fewer samples, higher pitch)."""
        orig_freq = round(SAMPLE_RATE * factor)
        if orig_freq == SAMPLE_RATE:
            return audio
        return resampler(orig_freq)(audio)

    def add_noise(self, audio: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Mix in a random stretch of a random noise file at a random SNR."""
        bank = _noise_bank(str(self.noise_dir))
        noise = bank[_randint(0, len(bank) - 1, generator)]
        length = audio.shape[0]
        if noise.shape[0] < length:  # loop short noise, from a random phase
            noise = noise.repeat(length // noise.shape[0] + 2)
        start = _randint(0, noise.shape[0] - length, generator)
        snr_db = _uniform(*self.snr_db, generator)
        return mix_at_snr(audio, noise[start : start + length], snr_db)
