"""Procedural DTMF keypad clips: the built-in 12-class tasks that need no files.

A key press is the sum of one row and one column sine tone (ITU-T Q.23). A ``dtmf`` clip
hides one press with a random onset, duration, gain and a ±1.5 % frequency error in
background noise at a random SNR, sometimes with a quieter distractor tone. A ``memory``
clip starts with the press and then keeps talking: ``delay`` seconds of quieter key
presses and single tones that say nothing about the label, so a model that answers at the
last frame must have carried the first key across the whole delay.

A clip is a function of its random stream alone. The per-clip generators (``dtmf_clip``,
``memory_clip``) and the batch generators (``dtmf_batch``, ``memory_batch``, which write
each clip straight into its row of a batch array) share one renderer, so a batch row
equals the clip made on its own, whatever else is in the batch, worker or rank. The
renderer works in float32. Its noise is what bounds a loader worker's pace, so a clip of
up to 8 s takes its noise from a fixed Gaussian noise corpus, the way noise augmentation
takes windows of recorded noise: the sum or the difference of two windows at random
offsets of two banks of 2**20 standard normal samples (``_bank_noise``). A clip's noise is
white Gaussian at the drawn power, exactly. Two clips whose windows overlap in a bank
share that stretch of noise, shifted: about 5 % of pairs of 1 s clips, none of it tied to
a label (tests/test_synthetic.py measures both). Longer recordings draw every sample
(``_drawn_noise``). A dtmf clip makes all its other draws in one call. These choices
changed every clip in issue 10 (the distributions are the same).
"""

import math
from collections.abc import Sequence
from functools import cache

import numpy as np

KEYS = ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "*", "#")
_ROWS = (697.0, 770.0, 852.0, 941.0)
_COLS = (1209.0, 1336.0, 1477.0)
_KEYPAD = ("123", "456", "789", "*0#")
TONES: dict[str, tuple[float, float]] = {
    key: (_ROWS[r], _COLS[c]) for r, row in enumerate(_KEYPAD) for c, key in enumerate(row)
}


@cache
def _edge(ramp: int) -> np.ndarray:
    """The rising half of a raised-cosine window, ``ramp`` samples (shared, read-only)."""
    edge = (0.5 - 0.5 * np.cos(np.linspace(0, np.pi, ramp))).astype(np.float32)
    edge.flags.writeable = False
    return edge


def _uniforms(rng: np.random.Generator, *ranges: tuple[float, float]) -> list[float]:
    """One uniform draw in each ``(low, high)`` range, all in a single call.

    A call costs about a microsecond, and a clip makes a dozen draws.
    """
    draws = rng.random(len(ranges)).tolist()
    return [low + (high - low) * u for (low, high), u in zip(ranges, draws, strict=True)]


_TURN = (0.0, 2 * np.pi)  # a random phase
_UNIT = (0.0, 1.0)  # a position or a chance
_SAMPLES = np.arange(1 << 16, dtype=np.float32)  # 0, 1, 2, ...: slicing beats a new arange


def _tone(
    freqs: Sequence[float], phases: Sequence[float], n: int, sample_rate: int, gain: float
) -> np.ndarray:
    """A sum of sines at ``gain`` with 5 ms raised-cosine edges (no clicks), in float32."""
    t = _SAMPLES[:n] if n <= _SAMPLES.shape[0] else np.arange(n, dtype=np.float32)
    wave = None
    for f, p in zip(freqs, phases, strict=True):
        phase = t * np.float32(2 * np.pi * f / sample_rate)
        phase += np.float32(p)
        np.sin(phase, out=phase)
        wave = phase if wave is None else np.add(wave, phase, out=wave)
    wave *= np.float32(gain)
    ramp = min(n // 2, int(0.005 * sample_rate))
    if ramp:
        wave[:ramp] *= _edge(ramp)
        wave[-ramp:] *= _edge(ramp)[::-1]
    return wave


def _placed(where: float, size: int, wave: np.ndarray) -> tuple[int, np.ndarray]:
    """``wave`` with its onset at ``where`` (in [0, 1)) of the span where it fits in
    ``size`` samples."""
    return int(where * (size - wave.shape[0] + 1)), wave


#: Samples per noise bank; clips up to an eighth of this take their noise from the banks.
BANK_SAMPLES = 1 << 20
_BANK_SEED = 20261130


@cache
def noise_banks() -> np.ndarray:
    """Two banks of ``BANK_SAMPLES`` standard normal float32 samples (8 MiB, read-only).

    The same on every machine and in every process (a fixed seed); a loader worker makes
    them once, in about 20 ms.
    """
    banks = np.random.default_rng(_BANK_SEED).standard_normal((2, BANK_SAMPLES), np.float32)
    banks.flags.writeable = False
    return banks


def _bank_noise(out: np.ndarray, rng: np.random.Generator, std: float) -> None:
    """N(0, ``std``**2) noise: ``(X[i:] + Y[j:]) / sqrt 2`` or ``(X[i:] - Y[j:]) / sqrt 2``
    for windows at random offsets of the two banks.

    Any window of an iid Gaussian bank is iid Gaussian, and so are the sum and the
    difference of two independent ones, so the clip's noise is exactly white Gaussian.
    An add and a scale: seven times cheaper than drawing the samples (docs/PERFORMANCE.md).
    """
    n = out.shape[0]
    first, second, sign = rng.random(3).tolist()
    banks, span = noise_banks(), BANK_SAMPLES - n + 1
    first, second = int(first * span), int(second * span)
    combine = np.add if sign < 0.5 else np.subtract
    combine(banks[0, first : first + n], banks[1, second : second + n], out=out)
    out *= np.float32(std / math.sqrt(2))


def _drawn_noise(out: np.ndarray, rng: np.random.Generator, std: float) -> None:
    """Fill ``out`` with N(0, ``std``**2) noise: Box-Muller on 32-bit words of ``rng``.

    About three times cheaper than ``rng.normal`` (float64) or float32
    ``rng.standard_normal``. Word ``i`` gives the radius and word ``half + i`` the angle
    of samples ``i`` and ``half + i``. A 32-bit word caps the noise at 6.66 standard
    deviations (Gaussian noise passes that once in 4e10 samples). The two words of a
    ``random_raw`` draw come in the machine's byte order (little-endian wherever torch
    runs).
    """
    n = out.shape[0]
    half = (n + 1) // 2
    words = rng.bit_generator.random_raw(half).view(np.uint32).astype(np.float32)
    radius, angle = words[:half], words[half:]
    radius += 1  # u = (word + 1) / 2**32 in (0, 1]
    np.log2(radius, out=radius)
    np.subtract(32, radius, out=radius)  # -log2(u)
    radius *= np.float32(2 * np.log(2) * std**2)
    np.sqrt(radius, out=radius)  # sqrt(-2 std**2 ln u)
    angle *= np.float32(2 * np.pi / 2**32)
    np.multiply(np.cos(angle), radius, out=out[:half])
    np.sin(angle, out=angle)
    np.multiply(angle[: n - half], radius[: n - half], out=out[half:])


def _noise(out: np.ndarray, rng: np.random.Generator, variance: float) -> None:
    """N(0, ``variance``) noise into ``out``: from the banks for a clip of up to an eighth
    of a bank (8 s at 16 kHz), drawn sample by sample for longer recordings, whose
    windows would otherwise cover most of a bank."""
    fill = _bank_noise if out.shape[0] <= BANK_SAMPLES // 8 else _drawn_noise
    fill(out, rng, math.sqrt(variance))


def _mix(
    out: np.ndarray,
    rng: np.random.Generator,
    variance: float,
    parts: list[tuple[int, np.ndarray]],
) -> None:
    """Noise into ``out`` (the stream's last draws), then the ``(onset, wave)`` parts."""
    _noise(out, rng, variance)
    for start, wave in parts:
        out[start : start + wave.shape[0]] += wave


def _render_dtmf(
    out: np.ndarray,
    rng: np.random.Generator,
    key: int,
    sample_rate: int,
    jitter: float = 0.015,
    duration_range: tuple[float, float] = (0.08, 0.4),
    snr_db_range: tuple[float, float] = (0.0, 30.0),
    distractor_prob: float = 0.3,
) -> None:
    """``dtmf_clip`` written into ``out``, so that a batch needs no copies."""
    num_samples = out.shape[0]
    low, high = TONES[KEYS[key]]
    draws = _uniforms(  # every draw of the clip in one call: 14 values
        rng,
        *((-jitter, jitter), (-jitter, jitter), duration_range, (0.05, 0.4), _TURN, _TURN),
        _UNIT,  # the press's onset
        _UNIT,  # whether there is a distractor
        *((0.05, 0.5), (300.0, 3400.0), (0.1, 0.5), _TURN, _UNIT),  # it, if there is
        snr_db_range,
    )
    err_low, err_high, seconds, gain, *phases, where = draws[:7]
    freqs = (low * (1 + err_low), high * (1 + err_high))
    n = min(num_samples, int(seconds * sample_rate))
    parts = [_placed(where, num_samples, _tone(freqs, phases, n, sample_rate, gain))]
    if draws[7] < distractor_prob:
        seconds, freq, level, phase, where = draws[8:13]
        n2 = min(num_samples, int(seconds * sample_rate))
        wave = _tone((freq,), (phase,), n2, sample_rate, gain * level)
        parts.append(_placed(where, num_samples, wave))
    tone_power = gain**2  # two unit sines: 2 * (gain^2 / 2)
    _mix(out, rng, tone_power / 10 ** (draws[13] / 10), parts)


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
    clip = np.empty(num_samples, dtype=np.float32)
    _render_dtmf(clip, rng, key, sample_rate, jitter, duration_range, snr_db_range, distractor_prob)
    return clip


def dtmf_batch(
    out: np.ndarray, rngs: Sequence[np.random.Generator], keys: Sequence[int], sample_rate: int
) -> None:
    """``dtmf_clip`` (default settings) of each (stream, key) written into a row of ``out``
    (float32 [clips, samples], e.g. a loader's batch buffer)."""
    for row, rng, key in zip(out, rngs, keys, strict=True):
        _render_dtmf(row, rng, key, sample_rate)


#: The memory task's key slot: the labelled press lies inside the first 100 ms.
KEY_SECONDS = 0.1


def memory_samples(delay_seconds: float, sample_rate: int) -> int:
    """Length of a memory clip: the key's slot plus the delay."""
    return round(KEY_SECONDS * sample_rate) + round(delay_seconds * sample_rate)


def _render_memory(
    out: np.ndarray,
    rng: np.random.Generator,
    key: int,
    sample_rate: int,
    jitter: float = 0.015,
    snr_db_range: tuple[float, float] = (10.0, 30.0),
    distractor_db_range: tuple[float, float] = (6.0, 18.0),
    tone_prob: float = 0.3,
) -> None:
    """``memory_clip`` written into ``out``; the clip's length is ``out``'s."""
    slot = round(KEY_SECONDS * sample_rate)
    size = out.shape[0]
    gain, err_low, err_high, seconds, *phases, where = _uniforms(
        rng, (0.1, 0.4), (-jitter, jitter), (-jitter, jitter), (0.6, 1.0), _TURN, _TURN, _UNIT
    )
    low, high = TONES[KEYS[key]]
    freqs = (low * (1 + err_low), high * (1 + err_high))
    parts = [_placed(where, slot, _tone(freqs, phases, int(seconds * slot), sample_rate, gain))]
    position = slot + int(rng.uniform(0.01, 0.06) * sample_rate)
    while position < size:
        n = min(size - position, int(rng.uniform(0.04, 0.12) * sample_rate))
        if rng.random() < tone_prob:
            freq, loss_db, phase = _uniforms(rng, (300.0, 3400.0), distractor_db_range, _TURN)
            freqs, phases = (freq,), (phase,)
        else:
            low, high = TONES[KEYS[int(rng.integers(len(KEYS)))]]
            err_low, err_high, loss_db, *phases = _uniforms(
                rng, (-jitter, jitter), (-jitter, jitter), distractor_db_range, _TURN, _TURN
            )
            freqs = (low * (1 + err_low), high * (1 + err_high))
        level = gain * 10 ** (-loss_db / 20)
        parts.append((position, _tone(freqs, phases, n, sample_rate, level)))
        position += n + int(rng.uniform(0.01, 0.06) * sample_rate)
    snr_db = rng.uniform(*snr_db_range)
    _mix(out, rng, gain**2 / 10 ** (snr_db / 10), parts)


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
    clip = np.empty(memory_samples(delay_seconds, sample_rate), dtype=np.float32)
    _render_memory(
        clip, rng, key, sample_rate, jitter, snr_db_range, distractor_db_range, tone_prob
    )
    return clip


def memory_batch(
    out: np.ndarray, rngs: Sequence[np.random.Generator], keys: Sequence[int], sample_rate: int
) -> None:
    """``memory_clip`` (default settings) of each (stream, key) written into a row of
    ``out`` (float32 [clips, ``memory_samples``])."""
    for row, rng, key in zip(out, rngs, keys, strict=True):
        _render_memory(row, rng, key, sample_rate)
