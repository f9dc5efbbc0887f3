"""File-list sources (manifest, folder, Speech Commands) as lists of Entry: one clip each,
checked and filtered before training starts; ``read_manifest`` reads the JSON-lines
manifest format (also read by the shard writer, inspection, prediction and the recording
chain, so it lives here rather than in the manifest source)."""

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from audioseq.data.frame_labels import Event, parse_events
from audioseq.data.skipping import SkipPolicy
from audioseq.errors import DataError


@dataclass(frozen=True)
class Entry:
    """One clip; ``where`` (``manifest:line`` or the path) prefixes its error messages.
    ``speaker`` (a manifest's optional field) is for audioseq-inspect: training ignores it."""

    path: Path
    label: str | None
    duration: float | None
    offset: float
    where: str
    speaker: str | None = None
    #: A long recording's annotated events (manifest ``events``), for task=detect.
    events: tuple[Event, ...] | None = None


def within(duration: float, min_seconds: float | None, max_seconds: float | None) -> bool:
    """Whether a declared duration passes ``data.min_seconds`` / ``data.max_seconds``."""
    return (min_seconds is None or duration >= min_seconds) and (
        max_seconds is None or duration <= max_seconds
    )


def within_duration(
    entries: Iterable[Entry], min_seconds: float | None, max_seconds: float | None
) -> list[Entry]:
    """The entries whose declared duration is ``within`` the range (clips without one are
    kept; their decoded length is checked against min_seconds)."""
    return [
        e for e in entries if e.duration is None or within(e.duration, min_seconds, max_seconds)
    ]


def check_labels(entries: Iterable[Entry], labels: list[str], policy: SkipPolicy) -> list[Entry]:
    """Entries whose label is in ``labels``; others raise or are skipped (and counted)."""
    known, kept = set(labels), []
    for e in entries:
        if e.label is None:
            policy(DataError("no 'label'", "no_label"), e.where)
        elif e.label not in known:
            policy(
                DataError(f"unknown label {e.label!r} (labels: {labels})", "unknown_label"), e.where
            )
        else:
            kept.append(e)
    return kept


def check_files(entries: Iterable[Entry], policy: SkipPolicy) -> list[Entry]:
    """Entries whose audio file exists; others raise or are skipped (and counted)."""
    kept = []
    for e in entries:
        if e.path.is_file():
            kept.append(e)
        else:
            policy(DataError(f"audio file not found: {e.path}", "missing"), e.where, str(e.path))
    return kept


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
