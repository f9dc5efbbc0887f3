"""Turning a manifest or a class-per-folder tree into tar shards plus ``index.json``.

Shards hold ``samples_per_shard`` samples each (the last may hold fewer), so the
DataModule's epoch plan splits evenly. Input order is shuffled by default (from
``seed``): shards of one class each would leave the loader's shuffle buffer little to mix.
Each shard is written under a temporary name and renamed when complete, and the index
last, so an interrupted run never leaves a shard that looks whole.
"""

import io
import itertools
import json
import os
import re
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import webdataset as wds
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from audioseq import SAMPLE_RATE
from audioseq.data.audio import read_audio
from audioseq.data.audio_files import class_files
from audioseq.data.entries import Entry, read_manifest
from audioseq.data.shards.index import FORMAT, INDEX_NAME, sample_labels
from audioseq.data.shards.storage import AUDIO_MEMBERS, key_and_extension
from audioseq.data.shards.tar_members import BLOCK, member_ranges, plain_header
from audioseq.data.skipping import SkipPolicy
from audioseq.errors import ConfigError, DataError

NOT_CLASSES = ("_background_noise_",)


def folder_entries(root: Path) -> list[Entry]:
    """``root/<label>/**/*.wav|flac|ogg``, found as ``data=folder`` finds them, with two
    differences make_shards has always had: only hidden folders and ``_background_noise_``
    are not classes (``data=folder`` leaves out every ``_`` folder), and what is not a
    regular file (a dangling link) is passed over rather than reported missing."""
    classes = class_files(root, lambda name: not name.startswith(".") and name not in NOT_CLASSES)
    entries = [
        Entry(path, label, None, 0.0, str(path))
        for label, files in classes.items()
        for path in files
        if path.is_file()
    ]
    if not entries:
        raise ConfigError(f"{root}: no audio files in class folders (root/<label>/*.wav)")
    return entries


def input_entries(source: str | Path) -> list[Entry]:
    """A ``.jsonl`` manifest or a class-per-folder tree, as entries."""
    source = Path(source)
    if source.is_dir():
        return folder_entries(source)
    if source.suffix == ".jsonl" or source.is_file():
        return read_manifest(source)
    raise ConfigError(f"{source}: not found (expected a .jsonl manifest or a folder)")


def encode(audio: torch.Tensor, flac: bool) -> bytes:
    """16-bit PCM WAV or FLAC bytes of a [T] float waveform at 16 kHz."""
    buffer = io.BytesIO()
    samples = np.clip(audio.numpy(), -1.0, 1.0)
    sf.write(buffer, samples, SAMPLE_RATE, format="FLAC" if flac else "WAV", subtype="PCM_16")
    return buffer.getvalue()


def sample_key(number: int, path: Path) -> str:
    """Unique in its shard and free of dots (webdataset splits a member name at the
    first dot): the running number, then the source file's stem for a reader."""
    return f"{number:07d}_{re.sub(r'[^A-Za-z0-9_-]+', '_', path.stem)}"


@dataclass
class _Shard:
    path: Path
    writer: wds.TarWriter
    count: int = 0
    seconds: float = 0.0
    labels: Counter = field(default_factory=Counter)
    offsets: list[int] = field(default_factory=lambda: [0])
    keys: list[str] = field(default_factory=list)
    sample_labels: list[str | None] = field(default_factory=list)  # None: a recording's events
    durations: list[float] = field(default_factory=list)

    def add(self, key: str, audio: torch.Tensor, entry: Entry, flac: bool) -> None:
        seconds = audio.shape[0] / SAMPLE_RATE
        meta: dict = {"duration": round(seconds, 6), "source": str(entry.path)}
        if entry.events is None:
            meta["label"] = entry.label
        else:  # a long recording for task=detect: its events, as the manifest gave them
            meta["events"] = [asdict(event) for event in entry.events]
        self.writer.write(
            {
                "__key__": key,
                "flac" if flac else "wav": encode(audio, flac),
                "json": json.dumps(meta).encode("utf-8"),
            }
        )
        self.count, self.seconds = self.count + 1, self.seconds + seconds
        self.labels.update(sample_labels(meta))
        self.offsets.append(self.writer.tarstream.offset)  # where the next sample starts
        self.keys.append(key)
        self.sample_labels.append(meta.get("label"))
        self.durations.append(meta["duration"])

    def close(self) -> dict:
        self.writer.close()
        record = {
            "url": self.path.with_suffix("").name,  # without ".partial"
            "count": self.count,
            "seconds": round(self.seconds, 6),
            "labels": dict(sorted(self.labels.items())),
            "offsets": self.offsets,
        }
        table = self._samples()
        if table is not None:
            record["samples"] = table
        os.replace(self.path, self.path.with_suffix(""))
        return record

    def _samples(self) -> dict | None:
        """Each sample's key, label, duration and audio contents' byte range, read back from
        the written shard, so the loader reads only a sample's audio (``index.SampleTable``).
        None for recordings with events, or an audio member whose own header does not
        hold its whole name (a pax header before it)."""
        if None in self.sample_labels:
            return None
        audio = []
        with self.path.open("rb") as file:
            for begin, end in itertools.pairwise(self.offsets):
                span = os.pread(file.fileno(), end - begin, begin)
                found = [
                    (name, start, size)
                    for name, start, size in member_ranges(span)
                    if (key_and_extension(name)[1] or "").lower() in AUDIO_MEMBERS
                ]
                name, start, size = found[0]
                if plain_header(span[start - BLOCK : start]) != (name, size):
                    return None
                audio.append([begin + start, size])
        return {
            "keys": self.keys,
            "audio": audio,
            "labels": self.sample_labels,
            "durations": self.durations,
        }


def index_text(index: dict) -> str:
    """``index.json``'s text: one line per key, and per shard (its offsets, one number per
    sample, would otherwise take a line each)."""
    lines = [
        f" {json.dumps(key)}: "
        + (
            "[\n" + ",\n".join(f"  {json.dumps(shard)}" for shard in value) + "\n ]"
            if key == "shards"
            else json.dumps(value)
        )
        for key, value in index.items()
    ]
    return "{\n" + ",\n".join(lines) + "\n}\n"


def write_shards(
    entries: list[Entry],
    out_dir: str | Path,
    samples_per_shard: int,
    *,
    flac: bool = False,
    shuffle: bool = True,
    seed: int = 0,
    on_error: str = "raise",
    progress: bool = True,
) -> dict:
    """Write the shards and ``index.json`` into ``out_dir``; returns the index."""
    if samples_per_shard < 1:
        raise ConfigError(f"--samples-per-shard must be >= 1, got {samples_per_shard}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    prefix = out_dir.resolve().name or "shard"
    if shuffle:
        entries = [entries[i] for i in np.random.default_rng(seed).permutation(len(entries))]
    policy, written, shards = SkipPolicy(on_error), 0, []
    current: _Shard | None = None
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not progress,
    )
    try:
        with bar:
            for entry in bar.track(entries, description=f"shards -> {out_dir}"):
                try:
                    if entry.label is None and entry.events is None:
                        raise DataError("no 'label' and no 'events'", "no_label")
                    audio = read_audio(entry.path, entry.offset, entry.duration)
                except DataError as e:
                    policy(e, entry.where, str(entry.path))
                    continue
                if current is None:
                    path = out_dir / f"{prefix}-{len(shards):06d}.tar.partial"
                    # A whole-second mtime keeps tarfile from adding a pax header to
                    # every member, which would double the headers a reader parses.
                    current = _Shard(path, wds.TarWriter(str(path), mtime=int(time.time())))
                current.add(sample_key(written, entry.path), audio, entry, flac)
                written += 1
                if current.count == samples_per_shard:
                    shards.append(current.close())
                    current = None
        if current is not None:
            shards.append(current.close())
    except BaseException:
        if current is not None:  # never leave a half-written shard behind
            current.writer.close()
            current.path.unlink(missing_ok=True)
        raise
    index = {
        "format": FORMAT,
        "sample_rate": SAMPLE_RATE,
        "audio": "flac" if flac else "wav",
        "count": written,
        "seconds": round(sum(s["seconds"] for s in shards), 6),
        "labels": sorted({label for s in shards for label in s["labels"]}),
        "skipped": dict(policy.counts),
        "shards": shards,
    }
    partial = out_dir / f"{INDEX_NAME}.partial"
    partial.write_text(index_text(index), encoding="utf-8")
    os.replace(partial, out_dir / INDEX_NAME)
    return index
