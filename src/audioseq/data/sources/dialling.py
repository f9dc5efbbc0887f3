"""Long synthetic recordings of someone dialling: key-press sequences, pauses, noise.

The built-in corpus for frame-level detection (``data.corpus=dialling``): a recording of
``clip_seconds`` (default 60 s) holds numbers dialled one after another, each 3-10 DTMF
presses of 60-250 ms, 50-300 ms apart, at one level per number, with 0.5-4 s pauses
between numbers in which a single telephone-band tone (not a key) sometimes sounds.
White noise at one SNR covers the whole recording. The frame labels say which key sounds
at every 10 ms step (class 0, background, elsewhere), so a detector has to find each
press, tell the key and ignore the tones. The tones and the noise come from the DTMF
generator of :mod:`audioseq.data.sources.dtmf`; like its clips, a recording is a function of its
random stream alone.
"""

from collections.abc import Sequence

import numpy as np

from audioseq.data.frame_labels import BACKGROUND, frame_labels, label_steps
from audioseq.data.sources import dtmf

#: Class names of the dialling corpus: background, then the twelve keys.
LABELS = (BACKGROUND, *dtmf.KEYS)
DEFAULT_SECONDS = 60.0


def _render(
    out: np.ndarray,
    labels: np.ndarray,
    rng: np.random.Generator,
    sample_rate: int,
    jitter: float = 0.015,
    snr_db_range: tuple[float, float] = (5.0, 30.0),
    tone_prob: float = 0.4,
) -> None:
    """One recording into ``out`` and its frame labels into ``labels`` (in place)."""
    size = out.shape[0]
    second = float(sample_rate)
    parts: list[tuple[int, np.ndarray]] = []
    spans: list[tuple[int, int, int]] = []
    position = int(rng.uniform(0.2, 2.0) * second)
    while position < size:
        gain = rng.uniform(0.05, 0.4)
        for _ in range(int(rng.integers(3, 11))):
            key = int(rng.integers(len(dtmf.KEYS)))
            low, high = dtmf.TONES[dtmf.KEYS[key]]
            err_low, err_high, seconds, *phases = dtmf._uniforms(
                rng, (-jitter, jitter), (-jitter, jitter), (0.06, 0.25), dtmf._TURN, dtmf._TURN
            )
            n = int(seconds * second)
            if position + n > size:
                break
            freqs = (low * (1 + err_low), high * (1 + err_high))
            parts.append((position, dtmf._tone(freqs, phases, n, sample_rate, gain)))
            spans.append((position, position + n, key + 1))
            position += n + int(rng.uniform(0.05, 0.3) * second)
        pause = int(rng.uniform(0.5, 4.0) * second)
        if rng.random() < tone_prob:  # a tone somewhere in the pause: background
            seconds, freq, level, phase, where = dtmf._uniforms(
                rng, (0.05, 0.5), (300.0, 3400.0), (0.1, 0.5), dtmf._TURN, dtmf._UNIT
            )
            n = int(seconds * second)
            start = position + int(where * max(0, pause - n))
            if start + n <= size:
                parts.append((start, dtmf._tone((freq,), (phase,), n, sample_rate, gain * level)))
        position += pause
    snr_db = rng.uniform(*snr_db_range)
    dtmf._mix(out, rng, 0.2**2 / 10 ** (snr_db / 10), parts)
    frame_labels(spans, size, out=labels)


def dialling_recording(
    rng: np.random.Generator, num_samples: int, sample_rate: int
) -> tuple[np.ndarray, np.ndarray]:
    """A recording of ``num_samples`` float32 samples and its int64 frame labels."""
    audio = np.empty(num_samples, dtype=np.float32)
    labels = np.empty(label_steps(num_samples), dtype=np.int64)
    _render(audio, labels, rng, sample_rate)
    return audio, labels


def dialling_batch(
    out: np.ndarray, rngs: Sequence[np.random.Generator], sample_rate: int
) -> np.ndarray:
    """``dialling_recording`` of each stream written into a row of ``out`` (float32
    [recordings, samples]); their frame labels as the rows of one array."""
    labels = np.empty((len(rngs), label_steps(out.shape[1])), dtype=np.int64)
    for row, label_row, rng in zip(out, labels, rngs, strict=True):
        _render(row, label_row, rng, sample_rate)
    return labels
