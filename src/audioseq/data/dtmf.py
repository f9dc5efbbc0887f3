"""Procedural DTMF keypad clips: the built-in 12-class tasks that need no files.

A key press is the sum of one row and one column sine tone (ITU-T Q.23). A ``dtmf`` clip
hides one press with a random onset, duration, gain and a ±1.5 % frequency error in
background noise at a random SNR, sometimes with a quieter distractor tone. A ``memory``
clip starts with the press and then keeps talking: ``delay`` seconds of quieter key
presses and single tones that say nothing about the label, so a model that answers at the
last frame must have carried the first key across the whole delay.
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


#: The memory task's key slot: the labelled press lies inside the first 100 ms.
KEY_SECONDS = 0.1


def memory_samples(delay_seconds: float, sample_rate: int) -> int:
    """Length of a memory clip: the key's slot plus the delay."""
    return round(KEY_SECONDS * sample_rate) + round(delay_seconds * sample_rate)


def memory_clip(
    rng: np.random.Generator,
    key: int,
    delay_seconds: float,
    sample_rate: int,
    *,
    jitter: float = 0.015,
    snr_db_range: tuple[float, float] = (10.0, 30.0),
    distractor_db_range: tuple[float, float] = (6.0, 18.0),
    tone_prob: float = 0.3,
) -> np.ndarray:
    """The key ``KEYS[key]`` in the first ``KEY_SECONDS``, then ``delay_seconds`` of distractors.

    The distractors are presses of any key (drawn independently of the label, so they hold
    no clue to it) or, with ``tone_prob``, single tones in the telephone band; each is
    ``distractor_db_range`` dB quieter than the key, 40-120 ms long, 10-60 ms apart. White
    noise at an SNR (relative to the key) from ``snr_db_range`` covers the whole clip.
    """
    slot = round(KEY_SECONDS * sample_rate)
    clip = np.zeros(memory_samples(delay_seconds, sample_rate))
    gain = rng.uniform(0.1, 0.4)
    low, high = TONES[KEYS[key]]
    freqs = tuple(f * (1 + rng.uniform(-jitter, jitter)) for f in (low, high))
    n = int(rng.uniform(0.6, 1.0) * slot)
    _place(clip[:slot], rng, gain * _tone(rng, freqs, n, sample_rate))
    position = slot + int(rng.uniform(0.01, 0.06) * sample_rate)
    while position < clip.shape[0]:
        n = min(clip.shape[0] - position, int(rng.uniform(0.04, 0.12) * sample_rate))
        if rng.random() < tone_prob:
            freqs = (rng.uniform(300.0, 3400.0),)
        else:
            low, high = TONES[KEYS[int(rng.integers(len(KEYS)))]]
            freqs = tuple(f * (1 + rng.uniform(-jitter, jitter)) for f in (low, high))
        level = gain * 10 ** (-rng.uniform(*distractor_db_range) / 20)
        clip[position : position + n] += level * _tone(rng, freqs, n, sample_rate)
        position += n + int(rng.uniform(0.01, 0.06) * sample_rate)
    snr_db = rng.uniform(*snr_db_range)
    clip += rng.normal(0.0, np.sqrt(gain**2 / 10 ** (snr_db / 10)), clip.shape[0])
    return clip.astype(np.float32)
