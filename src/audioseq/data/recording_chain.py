"""Copies of a corpus as users' recordings arrive: other rates, channels, sample formats, codecs.

A model should not care whether a clip reaches it as the 16 kHz original or as a 44.1 kHz
stereo FLAC of it: decoded and resampled back, the two differ by an inaudible amount.
``write_chain`` writes such copies of every clip of a manifest (and a manifest beside
them), so the same checkpoint can be evaluated on each (``scripts/recording_chain.py``);
``band_limit`` makes 8 kHz-origin material (telephone-band audio stored at 16 kHz).
"""

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from audioseq import SAMPLE_RATE
from audioseq.data.audio import read_audio, resampler
from audioseq.data.entries import Entry, read_manifest


@dataclass(frozen=True)
class Chain:
    """One way a clip can arrive: sample rate, channels, container and sample format."""

    rate: int
    channels: int
    suffix: str  # .wav | .flac | .ogg
    subtype: str  # soundfile's: PCM_16, PCM_24, FLOAT, VORBIS


CHAINS: dict[str, Chain] = {
    "wav_16k": Chain(16000, 1, ".wav", "PCM_16"),
    "flac_44k1_stereo": Chain(44100, 2, ".flac", "PCM_16"),
    "wav_48k_float": Chain(48000, 1, ".wav", "FLOAT"),
    "wav_22k05_24bit": Chain(22050, 1, ".wav", "PCM_24"),
    "ogg_32k": Chain(32000, 1, ".ogg", "VORBIS"),
}


def band_limit(audio: torch.Tensor, origin_rate: int) -> torch.Tensor:
    """16 kHz audio as if recorded at ``origin_rate``: down to it and back up."""
    return resampler(origin_rate)(resampler(SAMPLE_RATE, origin_rate)(audio))


def encode(audio: torch.Tensor, path: Path, chain: Chain) -> Path:
    """Write 16 kHz mono ``audio`` [T] to ``path`` (suffix added) the way ``chain`` says."""
    wave = audio if chain.rate == SAMPLE_RATE else resampler(SAMPLE_RATE, chain.rate)(audio)
    data = wave.numpy().astype(np.float32)
    if chain.channels > 1:
        data = np.repeat(data[:, None], chain.channels, axis=1)
    if chain.subtype.startswith("PCM"):
        data = np.clip(data, -1.0, 1.0)  # resampling can overshoot full scale slightly
    path = path.with_suffix(chain.suffix)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), data, chain.rate, subtype=chain.subtype)
    return path


def write_chain(
    manifest: Path, out_dir: Path, chain: Chain, origin_rate: int | None = None
) -> Path:
    """Every clip of ``manifest`` re-encoded by ``chain`` (after ``band_limit`` to
    ``origin_rate`` when given) into ``out_dir``, and the manifest of the copies."""
    lines = []
    entries: list[Entry] = read_manifest(manifest)
    for index, entry in enumerate(entries):
        audio = read_audio(entry.path, entry.offset, entry.duration)
        if origin_rate is not None:
            audio = band_limit(audio, origin_rate)
        path = encode(audio, out_dir / f"{index:06d}_{Path(entry.path).stem}", chain)
        record = {"audio_filepath": path.name, "duration": audio.shape[0] / SAMPLE_RATE}
        lines.append(json.dumps(record | {"label": entry.label}))
    out = out_dir / "manifest.jsonl"
    out.write_text("\n".join(lines) + "\n")
    return out
