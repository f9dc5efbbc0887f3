"""Long recordings annotated with events, as users bring them for task=detect: real WAV
files of dialled numbers (:mod:`audioseq.data.sources.dialling`) and a JSON Lines manifest whose
lines carry ``events`` (recordings of any length, chosen per test)."""

import json
from collections.abc import Sequence
from itertools import pairwise
from pathlib import Path

import numpy as np
import soundfile as sf

from audioseq.data.frame_labels import LABEL_HOP
from audioseq.data.sources.dialling import LABELS, dialling_recording

RATE = 16000


def label_events(labels: np.ndarray) -> list[dict]:
    """The events of frame labels: each run of one key's steps, in seconds (they give
    back exactly these labels: a step's centre lies inside its run)."""
    changes = np.flatnonzero(np.diff(labels, prepend=0, append=0))
    events = []
    for start, end in pairwise(changes):
        if labels[start]:
            events.append(
                {
                    "start": start * LABEL_HOP / RATE,
                    "end": end * LABEL_HOP / RATE,
                    "label": LABELS[labels[start]],
                }
            )
    return events


def write_dialling_manifest(folder: Path, seconds: Sequence[float], seed: int) -> Path:
    """One recording of each length in ``seconds`` under ``folder``, and its manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = []
    for i, length in enumerate(seconds):
        audio, labels = dialling_recording(
            np.random.default_rng([seed, i]), int(length * RATE), RATE
        )
        sf.write(str(folder / f"call{i:02d}.wav"), audio, RATE, subtype="FLOAT")
        record = {"audio_filepath": f"call{i:02d}.wav", "duration": float(length)}
        lines.append(json.dumps({**record, "events": label_events(labels)}))
    manifest = folder / "manifest.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest
