"""Every clip of a data source, described: where it is, its label and speaker, length,
sample rate, channels and encoding, and why training could not use it.

Each source is listed by its loader's own code (manifest parsing, the folder scan and
split lists, shard indexes, the synthetic generator), but without the loader's filters:
a clip the loader would drop (missing, corrupt, a label outside the train set) is what
the report is for. The header is read with soundfile (no decoding); with ``decode`` every
clip also goes through the loader's decoder and checks, so a clip is unusable for exactly
the reasons, and under the same ``on_error`` categories, that training would give.
"""

import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import soundfile as sf
import torch

from audioseq import SAMPLE_RATE
from audioseq.data.audio import decode_audio, read_audio
from audioseq.data.datamodule import build_source
from audioseq.data.entries import Entry, read_manifest
from audioseq.data.shards.storage import AUDIO_MEMBERS
from audioseq.data.sources.folder import class_folders, list_path, split_entries
from audioseq.data.sources.shard_samples import sidecar
from audioseq.data.sources.shards import ShardBatches
from audioseq.data.sources.speech_commands import open_corpus, word_entries
from audioseq.data.sources.synthetic import SyntheticBatches
from audioseq.data.spec import LoaderSpec
from audioseq.errors import DataError

SPLITS = ("train", "val", "test")
#: Samples the synthetic generator renders at a time (256 one-second clips, 4 minutes of
#: a long recording).
RENDERED_SAMPLES = 1 << 22
_HEADER_ERRORS = (sf.LibsndfileError, RuntimeError, ValueError, OSError)


@dataclass(frozen=True, slots=True)
class Clip:
    """One clip as found. ``reason`` (an ``on_error`` category) and ``message`` say why
    training could not use it; ``seconds`` is its length at the loader's offset and
    duration (None when even the header is unreadable)."""

    split: str
    where: str
    label: str | None
    speaker: str | None = None
    seconds: float | None = None
    sample_rate: int | None = None
    channels: int | None = None
    encoding: str | None = None
    reason: str | None = None
    message: str | None = None


@dataclass(frozen=True)
class SplitReader:
    """One split: how many clips it should hold (for the progress bar) and their reader."""

    split: str
    total: int
    clips: Callable[[], Iterator[Clip]]


def _examined(
    clip: Clip,
    header: Callable[[], Any],
    check: Callable[[], torch.Tensor],
    decode: bool,
    offset: float = 0.0,
    duration: float | None = None,
) -> Clip:
    """``clip`` with what ``header()`` (soundfile's info) says, and the problem that the
    loader's ``check()`` raises: always run when the header is unreadable or empty, so
    that the loader itself names the problem, and for every clip with ``decode``."""
    try:
        info = header()
    except _HEADER_ERRORS:
        info = None
    if info is not None:
        available = max(0.0, info.frames / info.samplerate - offset)
        clip = replace(
            clip,
            seconds=available if duration is None else min(duration, available),
            sample_rate=info.samplerate,
            channels=info.channels,
            encoding=f"{info.format} {info.subtype}",
        )
    if decode or info is None or info.frames == 0:
        try:
            audio = check()
        except DataError as e:
            return replace(clip, reason=e.reason, message=str(e))
        if info is None:  # soundfile failed where the loader's own WAV reader did not
            clip = replace(clip, seconds=audio.shape[0] / SAMPLE_RATE)
    return clip


def file_clip(entry: Entry, split: str, decode: bool) -> Clip:
    """A clip of a file-list source (manifest, folder, Speech Commands)."""
    path = str(entry.path)
    return _examined(
        Clip(split, entry.where, entry.label, entry.speaker),
        lambda: sf.info(path),
        lambda: read_audio(path, entry.offset, entry.duration),
        decode,
        entry.offset,
        entry.duration,
    )


def _member_clip(sample: dict, split: str, decode: bool) -> Clip:
    """A clip of a tar shard: its sidecar's label and speaker, its audio member's header."""
    url, key = sample["__url__"], sample["__key__"]
    clip = Clip(split, f"{url}:{key}", None)
    try:
        meta = sidecar(sample, url, key)
    except DataError as e:
        return replace(clip, reason=e.reason, message=str(e))
    speaker = meta.get("speaker")
    clip = replace(
        clip,
        label=None if meta.get("label") is None else str(meta["label"]),
        speaker=None if speaker is None else str(speaker),
    )
    suffix = next((s for s in AUDIO_MEMBERS if s in sample), None)
    if suffix is None:
        return replace(clip, reason="corrupt", message=f"{url}:{key}: no .wav or .flac member")
    data = sample[suffix]
    return _examined(
        clip,
        lambda: sf.info(io.BytesIO(data)),
        lambda: decode_audio(data, f"{url}:{key}.{suffix}"),
        decode,
    )


def _shard_clips(dataset: ShardBatches, split: str, decode: bool) -> Iterator[Clip]:
    """Every sample of every shard, in order. A local shard whose sample offsets are known
    is read by byte range, so a bad sample is one unusable clip; a streamed shard that
    cannot be read (or the part of it after a cut) is one unusable clip named by it."""
    for url, offsets in zip(dataset.urls, dataset.offsets, strict=True):
        for _, sample in dataset.reader.samples(url, offsets=offsets):
            if isinstance(sample, DataError):
                yield Clip(split, url, None, reason=sample.reason, message=str(sample))
            else:
                yield _member_clip(sample, split, decode)


def _synthetic_clips(dataset: SyntheticBatches, labels: list[str], split: str) -> Iterator[Clip]:
    """The generated clips, rendered as training renders them (a batch at a time).
    Frame-labelled recordings (``data.corpus=dialling``) have no clip label."""
    step = max(1, RENDERED_SAMPLES // dataset.clip_samples)
    for start in range(0, dataset.size, step):
        batch = dataset.batch(list(range(start, min(start + step, dataset.size))))
        rows = zip(batch["key"], batch["label"].tolist(), batch["lengths"].tolist(), strict=True)
        for key, label, length in rows:
            name = labels[label] if label >= 0 else None
            yield Clip(split, key, name, None, length / SAMPLE_RATE, SAMPLE_RATE, 1, "generated")


def speech_commands_speaker(path: Path) -> str | None:
    """The speaker of a Speech Commands clip: ``<speaker>_nohash_<n>.wav``."""
    speaker, found, _ = path.name.partition("_nohash_")
    return speaker if found else None


def _manifest_entries(data: dict[str, Any]) -> dict[str, list[Entry]]:
    return {
        split: read_manifest(data[f"{split}_manifest"])
        for split in SPLITS
        if data.get(f"{split}_manifest")
    }


def _folder_entries(data: dict[str, Any]) -> dict[str, list[Entry]]:
    root = Path(data["root"])
    lists = {split: list_path(data.get(f"{split}_list"), root) for split in ("val", "test")}
    return split_entries(class_folders(root), root, lists)


def _speech_commands_entries(data: dict[str, Any]) -> dict[str, list[Entry]]:
    """The words as they are on disk, before a label set maps them (``_unknown_``,
    ``_silence_``); speakers from the file names."""
    root = open_corpus(Path(data["root"]), bool(data.get("download")))
    return {
        split: [replace(e, speaker=speech_commands_speaker(e.path)) for e in entries]
        for split, entries in word_entries(root).items()
    }


#: Sources that are lists of files, and how to list them unfiltered.
FILE_LISTS: dict[str, Callable[[dict[str, Any]], dict[str, list[Entry]]]] = {
    "manifest": _manifest_entries,
    "folder": _folder_entries,
    "speech_commands": _speech_commands_entries,
}


def _file_clips(entries: list[Entry], split: str, decode: bool) -> Iterator[Clip]:
    return (file_clip(e, split, decode) for e in entries)


def split_readers(data: dict[str, Any], decode: bool) -> list[SplitReader]:
    """A reader per split of the source that ``data`` (the resolved ``data`` config)
    describes; listing errors (a malformed manifest, no such folder) raise here."""
    listing = FILE_LISTS.get(data["source"])
    if listing is not None:
        return [
            SplitReader(split, len(entries), partial(_file_clips, entries, split, decode))
            for split, entries in listing(data).items()
        ]
    source = build_source(data["source"], data)  # synthetic, shards; unknown names raise
    spec = LoaderSpec(batch_size=1, clip_seconds=None, train=False)  # batches: not used
    readers = []
    for split in SPLITS:
        dataset = source.dataset(split, spec)
        if isinstance(dataset, ShardBatches):
            clips = partial(_shard_clips, dataset, split, decode)
            readers.append(SplitReader(split, dataset.total, clips))
        elif isinstance(dataset, SyntheticBatches):
            clips = partial(_synthetic_clips, dataset, source.labels, split)
            readers.append(SplitReader(split, dataset.size, clips))
    return readers
