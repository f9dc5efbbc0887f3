"""Procedural DTMF keypad clips: the built-in 12-class task that needs no files.

A key press is the sum of one row and one column sine tone (ITU-T Q.23). Each clip hides
one press with a random onset, duration, gain and a ±1.5 % frequency error in background
noise at a random SNR, sometimes with a quieter distractor tone.
"""

import numpy as np

KEYS = ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "#")
_ROWS = (697.0, 770.0, 852.0, 941.0)
_COLS = (1209.0, 1336.0, 1477.0)
_KEYPAD = ("123", "456", "789", "*0#")
TONES: dict[str, tuple[float, float]] = {
    key: (_ROWS[r], _COLS[c]) for r, row in enumerate(_KEYPAD) for c, key in enumerate(row)
}


def _tone(
    rng: np.random.Generator, freqs: tuple[float, ...], n: int, sample_rate: int
) -> np.ndarray:
    """A sum of sines with random phases and 5 ms raised-cosine edges (no clicks)."""
    t = np.arange(n) / sample_rate
    wave = sum(np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) for f in freqs)
    ramp = min(n // 2, int(0.005 * sample_rate))
    if ramp:
        edge = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, ramp))
        wave[:ramp] *= edge
        wave[-ramp:] *= edge[::-1]
    return wave


def _place(clip: np.ndarray, rng: np.random.Generator, wave: np.ndarray) -> None:
    """Add ``wave`` into ``clip`` at a random onset where it fits."""
    start = int(rng.integers(0, clip.shape[0] - wave.shape[0] + 1))
    clip[start : start + wave.shape[0]] += wave


def dtmf_clip(
    rng: np.random.Generator,
    key: int,
    num_samples: int,
    sample_rate: int,
    *,
    jitter: float = 0.015,
    duration_range: tuple[float, float] = (0.08, 0.4),
    snr_db_range: tuple[float, float] = (0.0, 30.0),
    distractor_prob: float = 0.3,
) -> np.ndarray:
    """One clip of ``num_samples`` float32 samples holding the key ``KEYS[key]``."""
    clip = np.zeros(num_samples)
    low, high = TONES[KEYS[key]]
    freqs = tuple(f * (1 + rng.uniform(-jitter, jitter)) for f in (low, high))
    n = min(num_samples, int(rng.uniform(*duration_range) * sample_rate))
    gain = rng.uniform(0.05, 0.4)
    _place(clip, rng, gain * _tone(rng, freqs, n, sample_rate))
    if rng.random() < distractor_prob:
        n2 = min(num_samples, int(rng.uniform(0.05, 0.5) * sample_rate))
        freq = (rng.uniform(300.0, 3400.0),)
        _place(clip, rng, gain * rng.uniform(0.1, 0.5) * _tone(rng, freq, n2, sample_rate))
    tone_power = gain**2  # two unit sines: 2 * (gain^2 / 2)
    snr_db = rng.uniform(*snr_db_range)
    clip += rng.normal(0.0, np.sqrt(tone_power / 10 ** (snr_db / 10)), num_samples)
    return clip.astype(np.float32)
