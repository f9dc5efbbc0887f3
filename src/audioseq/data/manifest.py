"""JSON Lines manifests: one clip a line, checked up front so errors name the line."""

import json
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

from torch.utils.data import Dataset

from audioseq import SAMPLE_RATE
from audioseq.data.audio_io import read_audio
from audioseq.data.clips import crop
from audioseq.data.example import Example
from audioseq.data.spec import LoaderSpec
from audioseq.errors import ConfigError, DataError


@dataclass(frozen=True)
class Entry:
    """One manifest line; ``where`` is ``manifest:line`` for error messages."""

    path: Path
    label: str | None
    duration: float | None
    offset: float
    where: str


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
            if not path.is_file():
                raise DataError(f"{where}: audio file not found: {path}")
            label = record.get("label")
            entries.append(
                Entry(
                    path=path,
                    label=None if label is None else str(label),
                    duration=_number(record, "duration", where, None),
                    offset=_number(record, "offset", where, 0.0) or 0.0,
                    where=where,
                )
            )
    if not entries:
        raise DataError(f"{manifest}: manifest is empty")
    return entries


class ManifestDataset(Dataset):
    """Map-style clips from manifest entries; decoded, cropped, labelled on demand."""

    def __init__(self, entries: list[Entry], label_index: dict[str, int], spec: LoaderSpec):
        self.entries, self.label_index, self.spec = entries, label_index, spec
        self.clip_samples = (
            None if spec.clip_seconds is None else round(spec.clip_seconds * SAMPLE_RATE)
        )
        self._warned: set[Path] = set()

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> Example | None:
        entry = self.entries[index]
        try:
            audio = read_audio(entry.path, entry.offset, entry.duration)
        except DataError as e:
            if self.spec.on_error == "raise":
                raise DataError(f"{entry.where}: {e}") from None
            if entry.path not in self._warned:
                self._warned.add(entry.path)
                warnings.warn(f"skipping {entry.where}: {e}", stacklevel=2)
            return None
        if self.clip_samples is not None:
            audio = crop(audio, self.clip_samples, random=self.spec.train)
        label = None if entry.label is None else self.label_index[entry.label]
        return Example(str(entry.path), audio, label)


@dataclass
class ManifestSource:
    """Train/val/test manifests; labels are the sorted train labels unless given."""

    train_manifest: str | None = None
    val_manifest: str | None = None
    test_manifest: str | None = None
    labels: list[str] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.train_manifest:
            raise ConfigError("data.train_manifest is required for data=manifest")
        self._entries = {
            split: read_manifest(path)
            for split, path in (
                ("train", self.train_manifest),
                ("val", self.val_manifest),
                ("test", self.test_manifest),
            )
            if path
        }
        if self.labels is None:
            found = {e.label for e in self._entries["train"] if e.label is not None}
            self.labels = sorted(found)
        self.labels = [str(label) for label in self.labels]
        known = set(self.labels)
        for entries in self._entries.values():
            for e in entries:
                if e.label is None:
                    raise DataError(f"{e.where}: no 'label'")
                if e.label not in known:
                    raise DataError(f"{e.where}: unknown label {e.label!r} (labels: {self.labels})")

    def dataset(self, split: str, spec: LoaderSpec) -> ManifestDataset | None:
        entries = self._entries.get(split)
        if entries is None:
            return None
        return ManifestDataset(entries, {n: i for i, n in enumerate(self.labels)}, spec)
