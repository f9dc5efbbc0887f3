"""File-list sources (manifest, folder, Speech Commands) as lists of Entry: one clip each,
checked and filtered before training starts."""

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from audioseq.data.frame_labels import Event
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


def within_duration(
    entries: Iterable[Entry], min_seconds: float | None, max_seconds: float | None
) -> list[Entry]:
    """``data.min_seconds`` / ``data.max_seconds`` applied to the declared durations
    (clips without one are kept; their decoded length is checked against min_seconds)."""
    return [
        e
        for e in entries
        if e.duration is None
        or (
            (min_seconds is None or e.duration >= min_seconds)
            and (max_seconds is None or e.duration <= max_seconds)
        )
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
