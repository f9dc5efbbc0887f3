"""Helpers for the shard tests: real audio files, shards made by make_shards' writer, and
hand-made shards holding bad members."""

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import soundfile as sf
import webdataset as wds

from audioseq.data.shards.writer import input_entries, write_shards

LABELS = ("down", "go", "up")


def tone(index: int, seconds: float = 0.25, rate: int = 16000) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * (200 + 37 * index) * t)).astype(np.float32)


def write_corpus(root: Path, n: int, *, flac_every: int = 0, seconds=0.25) -> Path:
    """``n`` real clips (WAV, every ``flac_every``-th FLAC) and a manifest over them."""
    lines = []
    for i in range(n):
        suffix = ".flac" if flac_every and i % flac_every == 0 else ".wav"
        length = seconds(i) if callable(seconds) else seconds
        path = root / "clips" / f"clip{i:03d}{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(str(path), tone(i, length), 16000, subtype="PCM_16")
        label = LABELS[i % len(LABELS)]
        lines.append(json.dumps({"audio_filepath": str(path), "duration": length, "label": label}))
    manifest = root / "clips.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def make_shards(root: Path, n: int, per_shard: int, name: str = "train", **kw) -> Path:
    """Shards of ``n`` clips, ``per_shard`` each (the last may hold fewer), via the writer
    that scripts/make_shards.py uses."""
    seconds = kw.pop("seconds", 0.25)
    manifest = write_corpus(root / f"{name}_src", n, seconds=seconds)
    out = root / name
    write_shards(input_entries(manifest), out, per_shard, progress=False, **kw)
    return out


def shard_keys(folder: Path) -> list[str]:
    """Every sample of a shard folder as the loader names it: ``shard.tar/key``."""
    index = json.loads((folder / "index.json").read_text())
    keys = []
    for shard in index["shards"]:
        with tarfile.open(folder / shard["url"]) as tar:
            stems = dict.fromkeys(m.name.split(".")[0] for m in tar.getmembers())
        keys += [f"{shard['url']}/{stem}" for stem in stems]
    return keys


def wav_bytes(audio: np.ndarray, subtype: str = "PCM_16", fmt: str = "WAV") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, audio, 16000, format=fmt, subtype=subtype)
    return buffer.getvalue()


def write_tar(folder: Path, name: str, samples: list[dict], offsets: bool = False) -> dict:
    """A shard of hand-made samples (``{"__key__": ..., "wav": bytes, "json": dict}``)
    beside an index.json that lists it (with each sample's byte offset, as make_shards
    writes them, when ``offsets``); returns its index entry."""
    folder.mkdir(parents=True, exist_ok=True)
    starts = [0]
    with wds.TarWriter(str(folder / name)) as writer:
        for sample in samples:
            writer.write(
                {k: json.dumps(v).encode() if k == "json" else v for k, v in sample.items()}
            )
            starts.append(writer.tarstream.offset)
    entry = {"url": name, "count": len(samples)} | ({"offsets": starts} if offsets else {})
    index_path = folder / "index.json"
    index = json.loads(index_path.read_text()) if index_path.exists() else {"shards": []}
    index["shards"] = [s for s in index["shards"] if s["url"] != name] + [entry]
    index["labels"] = list(LABELS)
    index_path.write_text(json.dumps(index))
    return entry


def good_sample(i: int, seconds: float = 0.25) -> dict:
    return {
        "__key__": f"s{i:04d}",
        "wav": wav_bytes(tone(i, seconds)),
        "json": {"label": LABELS[i % 3], "duration": seconds},
    }
