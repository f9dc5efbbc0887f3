"""Which shards a split reads, and how many samples each holds.

The counts fix every epoch's length before a byte of audio is read (see ``shard_plan``),
so they come from ``index.json`` (written by ``scripts/make_shards.py``). A split is given
as a folder or URL holding ``index.json``, the index file itself, a brace pattern
(``data/train-{000000..000009}.tar``) or a list of these. Shards a pattern names that no
``index.json`` beside them lists are scanned once at set-up when they are local; remote
ones need the index (scanning would download the whole corpus).
"""

import json
import os
import warnings
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from webdataset.shardlists import expand_urls

from audioseq.data.frame_labels import BACKGROUND
from audioseq.data.shards.storage import (
    AUDIO_MEMBERS,
    ShardReader,
    ShardScan,
    join,
    local_path,
    parent,
    read_bytes,
    scheme,
)
from audioseq.data.shards.tar_members import BLOCK, TarError, plain_header
from audioseq.errors import ConfigError, DataError

INDEX_NAME = "index.json"
FORMAT = "audioseq-shards/1"
SHARD_SUFFIXES = (".tar", ".tar.gz", ".tgz")


def sample_labels(meta: dict) -> Counter:
    """What a sample counts towards its shard's labels: its ``label``; a long recording
    with ``events`` (task=detect) counts the background once and each event's label, so
    an index of such recordings lists the background among its classes."""
    events = meta.get("events")
    if isinstance(events, list):
        named = [str(e["label"]) for e in events if isinstance(e, dict) and "label" in e]
        return Counter([BACKGROUND, *named])
    return Counter() if meta.get("label") is None else Counter([str(meta["label"])])


@dataclass
class SampleTable:
    """What the loader needs of each sample of a shard, from the index (make_shards writes
    it for labelled clips): its key (checked against the audio member's header, so a
    shard rewritten after its index fails instead of taking another sample's label), where
    its audio contents lie (``audio``: ``[count, 2]`` start and size in bytes), its label
    (``codes`` into ``names``) and duration. With it a local shard's sample is one read of
    its audio and that member's own header, with no other tar parsing and no JSON sidecar.
    Numpy arrays, shared by forked workers as ``offsets`` are (no per-sample objects)."""

    keys: np.ndarray
    audio: np.ndarray
    names: list[str]
    codes: np.ndarray
    durations: np.ndarray

    @classmethod
    def build(
        cls, keys: list[str], audio: list[list[int]], labels: list[str], durations: list[float]
    ) -> "SampleTable":
        """The table of checked per-sample lists (``audio``: ``[start, size]`` pairs)."""
        names = sorted(set(labels))
        position = {name: i for i, name in enumerate(names)}
        return cls(
            np.asarray(keys, dtype=np.bytes_),
            np.asarray(audio, dtype=np.int64).reshape(len(keys), 2),
            names,
            np.fromiter((position[label] for label in labels), dtype=np.int32, count=len(keys)),
            np.asarray(durations, dtype=np.float32),
        )

    def meta(self, i: int) -> dict:
        """Sample ``i``'s label and duration, as its JSON sidecar gives them."""
        return {"label": self.names[self.codes[i]], "duration": float(self.durations[i])}


@dataclass
class ShardInfo:
    """One shard: where it is, its sample count, total seconds and samples per label, and
    (from indexes make_shards writes) where each sample starts: ``count + 1`` byte offsets,
    the last the end of the last sample, so a local shard's samples are each read in one
    piece. A numpy array: a million samples' offsets take 8 MB, shared by forked workers
    without being copied (Python ints would be 36 MB, touched by every reference count)."""

    url: str
    count: int
    seconds: float | None = None
    labels: dict[str, int] = field(default_factory=dict)
    offsets: np.ndarray | None = None
    samples: SampleTable | None = None


def _offsets(record: dict, count: int, where: str) -> np.ndarray | None:
    """The shard's sample offsets, checked: ``count + 1`` integers from 0, increasing."""
    offsets = record.get("offsets")
    if offsets is None:
        return None
    problem = (
        f"{where}: shard {record['url']!r}: 'offsets' must be {count + 1} increasing byte offsets"
    )
    if (
        not isinstance(offsets, list)
        or len(offsets) != count + 1
        or not all(type(o) is int for o in offsets)
    ):
        raise DataError(problem)
    array = np.asarray(offsets, dtype=np.int64)
    if array[0] < 0 or (count and not (np.diff(array) > 0).all()):
        raise DataError(problem)
    return array


def _sample_table(record: dict, count: int, where: str) -> SampleTable | None:
    """The shard's per-sample table, checked: ``count`` ASCII keys, audio ranges (start
    >= 512: a member header precedes it; size >= 0), label strings and durations."""
    table = record.get("samples")
    if table is None:
        return None
    problem = (
        f"{where}: shard {record['url']!r}: 'samples' must hold {count} 'keys' (ASCII), "
        "'audio' [start, size] pairs, 'labels' strings and 'durations' numbers"
    )
    if not isinstance(table, dict):
        raise DataError(problem)
    keys, audio, labels, durations = (
        table.get(k) for k in ("keys", "audio", "labels", "durations")
    )
    if not (
        all(isinstance(v, list) and len(v) == count for v in (keys, audio, labels, durations))
        and all(isinstance(key, str) and key.isascii() for key in keys)
        and all(
            isinstance(p, list) and len(p) == 2 and all(type(x) is int for x in p) for p in audio
        )
        and all(isinstance(label, str) for label in labels)
        and all(isinstance(d, int | float) and not isinstance(d, bool) for d in durations)
    ):
        raise DataError(problem)
    if count and (min(p[0] for p in audio) < BLOCK or min(p[1] for p in audio) < 0):
        raise DataError(problem)
    return SampleTable.build(keys, audio, labels, durations)


def _entry(record: object, folder: str, where: str) -> ShardInfo:
    if not isinstance(record, dict) or not isinstance(record.get("url"), str):
        raise DataError(f"{where}: each shard needs a 'url' string")
    count = record.get("count")
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise DataError(f"{where}: shard {record['url']!r} needs a 'count' >= 0")
    labels = record.get("labels") or {}
    return ShardInfo(
        url=join(folder, record["url"]),
        count=count,
        seconds=record.get("seconds"),
        labels={str(k): int(v) for k, v in labels.items()} if isinstance(labels, dict) else {},
        offsets=_offsets(record, count, where),
        samples=_sample_table(record, count, where),
    )


def read_index(url: str, reader: ShardReader) -> tuple[list[ShardInfo], list[str]]:
    """The shards an ``index.json`` lists (URLs resolved against its folder) and its labels."""
    try:
        index = json.loads(read_bytes(url, reader.timeout, reader.retries))
    except ValueError as e:  # JSONDecodeError, UnicodeDecodeError
        raise DataError(f"{url}: malformed JSON ({e})") from None
    if not isinstance(index, dict) or not isinstance(index.get("shards"), list):
        raise DataError(f"{url}: expected an object with a 'shards' list")
    folder = parent(url)
    shards = [_entry(record, folder, url) for record in index["shards"]]
    labels = [str(label) for label in index.get("labels") or []]
    if not labels:
        labels = sorted({label for s in shards for label in s.labels})
    return shards, labels


def scan_shard(url: str, reader: ShardReader) -> ShardInfo:
    """Count a shard's samples (and their labels and durations), and find where each
    begins, by reading it once."""
    count, seconds, labels = 0, 0.0, Counter()
    rows: list[tuple | None] = []  # each sample's table row, None where it cannot have one
    scan = ShardScan(url, reader)
    for sample in scan:
        count += 1
        try:
            meta = json.loads(sample.get("json", b"{}"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            meta = None
        if isinstance(meta, dict):
            labels.update(sample_labels(meta))
            if isinstance(meta.get("duration"), int | float):
                seconds += float(meta["duration"])
        rows.append(_table_row(sample, meta))
    if scan.error is not None:
        warnings.warn(f"{scan.error} (counting the {count} samples before it)", stacklevel=2)
    return ShardInfo(url, count, seconds, dict(labels), scan.offsets, _scanned_table(rows, scan))


def _table_row(sample: dict, meta: object) -> tuple | None:
    """``(key, audio extension, audio size, label, duration)`` of a labelled clip with one
    audio member and a numeric duration; None otherwise (its sidecar must then be read)."""
    audio = [s for s in AUDIO_MEMBERS if s in sample]
    if not isinstance(meta, dict) or "events" in meta or len(audio) != 1:
        return None
    label, duration = meta.get("label"), meta.get("duration")
    if label is None or not isinstance(duration, int | float) or isinstance(duration, bool):
        return None
    key, size = sample["__key__"], len(sample[audio[0]])
    return (key, audio[0], size, str(label), float(duration)) if key.isascii() else None


def _scanned_table(rows: list[tuple | None], scan: ShardScan) -> SampleTable | None:
    """The sample table of a scanned shard, if every sample has a row and its audio
    member's own header (the 512 bytes before its contents) holds its whole name and
    size, as the loader checks it (a long name lives in a pax header instead); else None."""
    if scan.offsets is None or not rows or None in rows or min(scan.audio) < BLOCK:
        return None
    with local_path(scan.url).open("rb") as file:
        for (key, extension, size, _, _), start in zip(rows, scan.audio, strict=True):
            try:
                own = plain_header(os.pread(file.fileno(), BLOCK, start - BLOCK))
            except TarError:
                return None
            if own != (f"{key}.{extension}", size):
                return None
    keys, _, sizes, labels, durations = zip(*rows, strict=True)
    audio = [[start, size] for start, size in zip(scan.audio, sizes, strict=True)]
    return SampleTable.build(list(keys), audio, list(labels), list(durations))


def _is_pattern(item: str) -> bool:
    return "{" in item or item.endswith(SHARD_SUFFIXES)


def _index_beside(urls: list[str], reader: ShardReader) -> dict[str, ShardInfo]:
    """Entries of the ``index.json`` in the first shard's folder, by resolved URL."""
    index = join(parent(urls[0]), INDEX_NAME)
    if not scheme(index) and not local_path(index).is_file():
        return {}
    try:
        shards, _ = read_index(index, reader)
    except DataError as e:
        if e.reason == "missing":
            return {}
        raise
    return {_same(s.url): s for s in shards}


def _same(url: str) -> str:
    """One spelling per local file, so a pattern's paths match the index's."""
    return url if scheme(url) else str(local_path(url).resolve())


def _from_pattern(pattern: str, reader: ShardReader) -> list[ShardInfo]:
    urls = expand_urls(pattern)
    known = _index_beside(urls, reader)
    shards = []
    for url in urls:
        if _same(url) in known:
            shards.append(ShardInfo(**{**vars(known[_same(url)]), "url": url}))
        elif scheme(url):
            raise ConfigError(
                f"{url}: no {INDEX_NAME} beside this remote shard lists it "
                "(scripts/make_shards.py writes one; remote shards are not scanned)"
            )
        elif not local_path(url).is_file():
            raise ConfigError(f"{url}: shard not found")
        else:
            shards.append(scan_shard(url, reader))
    return shards


def _from_folder(folder: str, reader: ShardReader) -> tuple[list[ShardInfo], list[str]]:
    index = folder if folder.endswith(".json") else join(folder, INDEX_NAME)
    if not scheme(index) and not local_path(index).is_file():
        path = local_path(folder)
        if not path.is_dir():
            raise ConfigError(f"{folder}: neither a shard folder nor a shard pattern")
        tars = sorted(str(p) for p in path.iterdir() if p.name.endswith(SHARD_SUFFIXES))
        if not tars:
            raise ConfigError(f"{folder}: no {INDEX_NAME} and no .tar shards")
        return [scan_shard(url, reader) for url in tars], []
    return read_index(index, reader)


def resolve_shards(
    spec: str | Iterable[str], reader: ShardReader
) -> tuple[list[ShardInfo], list[str]]:
    """Every shard of a split, in the order given, with its sample count; and the split's
    labels (the indexes' ``labels`` and every label a shard counts, sorted)."""
    items = [spec] if isinstance(spec, str | Path) else list(spec)
    shards: list[ShardInfo] = []
    labels: set[str] = set()
    for item in map(str, items):
        if _is_pattern(item):
            shards += _from_pattern(item, reader)
        else:
            found, listed = _from_folder(item, reader)
            shards += found
            labels.update(listed)
    if not shards:
        raise ConfigError(f"{spec}: no shards")
    labels.update(label for s in shards for label in s.labels)
    return shards, sorted(labels)
