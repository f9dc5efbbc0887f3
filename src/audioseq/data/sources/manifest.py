"""JSON Lines manifests: one clip a line, checked up front so errors name the line."""

import json
import math
from dataclasses import dataclass
from pathlib import Path

from audioseq.data.entries import Entry, check_files, check_labels
from audioseq.data.frame_labels import parse_events
from audioseq.data.skipping import SkipPolicy
from audioseq.data.sources.clip_dataset import ClipDataset
from audioseq.data.sources.event_clips import EventClipDataset, event_labels
from audioseq.data.spec import LoaderSpec
from audioseq.errors import ConfigError, DataError


def _number(record: dict, key: str, where: str, default: float | None) -> float | None:
    value = record.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise DataError(f"{where}: '{key}' must be a number, got {value!r}")
    if value < 0:
        raise DataError(f"{where}: '{key}' must be >= 0, got {value}")
    return float(value)


def read_manifest(manifest: str | Path) -> list[Entry]:
    """Parse and check a manifest: every line valid JSON with an existing audio file."""
    manifest = Path(manifest)
    if not manifest.is_file():
        raise DataError(f"{manifest}: manifest not found")
    entries = []
    with manifest.open("rb") as f:  # decoded line by line, so a bad byte names its line
        for number, raw in enumerate(f, start=1):
            where = f"{manifest}:{number}"
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(f"{where}: not UTF-8 text ({e.reason})") from None
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(f"{where}: malformed JSON ({e.msg})") from None
            if not isinstance(record, dict) or "audio_filepath" not in record:
                raise DataError(f"{where}: expected an object with 'audio_filepath'")
            path = Path(str(record["audio_filepath"]))
            path = path if path.is_absolute() else manifest.parent / path
            label, speaker = record.get("label"), record.get("speaker")
            events = record.get("events")
            entries.append(
                Entry(
                    path=path,
                    label=None if label is None else str(label),
                    duration=_number(record, "duration", where, None),
                    offset=_number(record, "offset", where, 0.0) or 0.0,
                    where=where,
                    speaker=None if speaker is None else str(speaker),
                    events=None if events is None else parse_events(events, where),
                )
            )
    if not entries:
        raise DataError(f"{manifest}: manifest is empty")
    return entries


@dataclass
class ManifestSource:
    """Train/val/test manifests; labels are the sorted train labels unless given. Lines
    with ``events`` (long recordings for task=detect) get frame labels instead: the
    classes are then the background and the event labels
    (:mod:`audioseq.data.sources.event_clips`)."""

    train_manifest: str | None = None
    val_manifest: str | None = None
    test_manifest: str | None = None
    labels: list[str] | None = None
    seed: int = 0

    on_error: str = "raise"

    def __post_init__(self) -> None:
        if not self.train_manifest:
            raise ConfigError("data.train_manifest is required for data=manifest")
        policy = SkipPolicy(self.on_error)
        self.skipped = policy.counts  # samples dropped before training, by reason
        manifests = {
            "train": self.train_manifest,
            "val": self.val_manifest,
            "test": self.test_manifest,
        }
        entries = {
            split: check_files(read_manifest(path), policy)
            for split, path in manifests.items()
            if path
        }
        if any(e.events is not None for split in entries.values() for e in split):
            self.labels, self._entries = event_labels(entries, self.labels), entries
            return
        if self.labels is None:
            self.labels = sorted({e.label for e in entries["train"] if e.label is not None})
        self.labels = [str(label) for label in self.labels]
        if not self.labels:  # unlabelled audio (e.g. for task=forecast): nothing to check
            self._entries = entries
            return
        self._entries = {
            split: check_labels(split_entries, self.labels, policy)
            for split, split_entries in entries.items()
        }

    def dataset(self, split: str, spec: LoaderSpec) -> ClipDataset | None:
        entries = self._entries.get(split)
        if entries is None:
            return None
        index = {n: i for i, n in enumerate(self.labels)}
        if entries and entries[0].events is not None:
            return EventClipDataset(entries, index, spec)
        return ClipDataset(entries, index, spec)
