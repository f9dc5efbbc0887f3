"""What to predict on: audio files, folders of them and manifests, as one list of clips."""

from collections.abc import Iterable
from pathlib import Path

from audioseq.data.audio_files import AUDIO_SUFFIXES, audio_files
from audioseq.data.entries import Entry, read_manifest
from audioseq.errors import DataError

MANIFEST_SUFFIXES = (".jsonl",)


def list_inputs(inputs: Iterable[str | Path]) -> list[Entry]:
    """One entry per clip, in the order given: a folder contributes its audio files
    (recursively, sorted), a ``.jsonl`` manifest its lines (with their offset and duration),
    anything else is taken for an audio file. Labels are kept but not used.

    A missing input or a folder without audio is a DataError naming it, raised before any
    audio is decoded, so that a typo does not cost a long run.
    """
    entries: list[Entry] = []
    for given in inputs:
        path = Path(given)
        if path.is_dir():
            files = audio_files(path)
            if not files:
                suffixes = ", ".join(AUDIO_SUFFIXES)
                raise DataError(f"{path}: no audio files ({suffixes}) in this folder", "missing")
            entries += [Entry(f, None, None, 0.0, str(f)) for f in files]
        elif not path.exists():
            raise DataError(f"{path}: input not found", "missing")
        elif path.suffix.lower() in MANIFEST_SUFFIXES:
            entries += read_manifest(path)
        else:
            entries.append(Entry(path, None, None, 0.0, str(path)))
    return entries
