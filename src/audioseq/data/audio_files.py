"""Finding audio on disk: the file suffixes every reader takes, and class-per-folder trees.

One scan for ``data=folder``, Speech Commands, ``make_shards`` and prediction inputs, so a
file counts as audio (or as hidden) by the same rule everywhere.
"""

import os
from collections.abc import Callable
from pathlib import Path

#: What soundfile decodes for us; matched case-insensitively.
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


def audio_files(folder: Path) -> list[Path]:
    """Audio files under ``folder``, recursively, sorted, skipping anything hidden behind a
    dot (symbolic links to folders are not followed)."""
    found = []
    for here, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [
            Path(here, f)
            for f in files
            if not f.startswith(".") and f.lower().endswith(AUDIO_SUFFIXES)
        ]
    return sorted(found)


def class_files(root: Path, is_class: Callable[[str], bool]) -> dict[str, list[Path]]:
    """``{label: audio files}`` for each sub-folder of ``root``, in name order, whose name
    ``is_class`` accepts and that holds audio (a folder without audio is not a class).
    Which folder names are classes is the caller's: the commands differ (see theirs)."""
    classes = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and is_class(p.name)):
        files = audio_files(folder)
        if files:
            classes[folder.name] = files
    return classes
