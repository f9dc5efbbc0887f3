"""Class-per-folder corpora: ``root/<label>/**/*.wav|flac|ogg``, split by optional path lists.

The class folders, the split lists and the header check are also the base of the Speech
Commands source, whose layout is this one plus its own lists and label mapping.
"""

import os
from dataclasses import dataclass, replace
from pathlib import Path

import soundfile as sf

from audioseq.data.audio_files import class_files
from audioseq.data.entries import Entry, check_files, check_labels
from audioseq.data.skipping import SkipPolicy
from audioseq.data.sources.clip_dataset import ClipDataset
from audioseq.data.sources.file_list import split_dataset
from audioseq.data.spec import LoaderSpec
from audioseq.errors import ConfigError, DataError


def is_class(name: str) -> bool:
    """Whether a sub-folder of the root is a class: hidden and ``_`` folders are not
    (``.git``; Speech Commands' ``_background_noise_`` and ``_extra``)."""
    return not name.startswith((".", "_"))


def class_folders(root: Path) -> dict[str, list[Path]]:
    """``{label: audio files}`` for each sub-folder of ``root`` that is not hidden and holds
    audio (a folder without audio is not a class: a stray ``docs/`` stays out)."""
    if not root.is_dir():
        raise DataError(f"{root}: data.root folder not found", "missing")
    classes = class_files(root, is_class)
    if not classes:
        raise DataError(f"{root}: no class folders with audio (expected {root}/<label>/*.wav)")
    return classes


def read_path_list(list_file: Path, root: Path) -> dict[str, str]:
    """``{path: "list_file:line"}`` for each non-blank line; paths are relative to ``root``."""
    if not list_file.is_file():
        raise DataError(f"{list_file}: split list not found", "missing")
    try:
        lines = list_file.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as e:
        raise DataError(f"{list_file}: not UTF-8 text ({e.reason})") from None
    return {
        os.path.normpath(root / line.strip()): f"{list_file}:{number}"
        for number, line in enumerate(lines, start=1)
        if line.strip()
    }


def split_entries(
    classes: dict[str, list[Path]], root: Path, lists: dict[str, Path | None]
) -> dict[str, list[Entry]]:
    """Entries per split: clips named in a split's list go there, all others to train.

    A listed path that is no clip of a class folder is kept (labelled by its first folder
    under ``root``) so that the file and label checks report it by ``list:line``.
    """
    listed: dict[str, tuple[str, str]] = {}
    for split, list_file in lists.items():
        if list_file is None:
            continue
        for path, where in read_path_list(list_file, root).items():
            if path in listed:
                raise DataError(f"{where}: {path} is also listed at {listed[path][1]}")
            listed[path] = (split, where)
    splits: dict[str, list[Entry]] = {"train": []}
    splits.update({split: [] for split, list_file in lists.items() if list_file is not None})
    for label, files in classes.items():
        for file in files:
            split, where = listed.pop(os.path.normpath(file), ("train", str(file)))
            splits[split].append(Entry(file, label, None, 0.0, where))
    for path, (split, where) in listed.items():
        parts = Path(os.path.relpath(path, root)).parts
        label = parts[0] if len(parts) > 1 and parts[0] != ".." else None
        splits[split].append(Entry(Path(path), label, None, 0.0, where))
    return splits


def check_headers(entries: list[Entry], policy: SkipPolicy) -> list[Entry]:
    """Entries with their duration read from the file header (fast: no decoding); an
    unreadable header (``corrupt``) or a clip without samples (``empty``) is bad data."""
    kept = []
    for e in entries:
        try:
            with sf.SoundFile(str(e.path)) as f:
                frames, rate = f.frames, f.samplerate
        except (sf.LibsndfileError, RuntimeError, ValueError) as err:
            reason = getattr(err, "error_string", None) or str(err)
            error = DataError(f"{e.path}: cannot read audio header ({reason})", "corrupt")
            policy(error, e.where, str(e.path))
            continue
        if frames == 0:
            policy(
                DataError(f"{e.path}: no audio samples (empty clip)", "empty"), e.where, str(e.path)
            )
            continue
        kept.append(replace(e, duration=frames / rate))
    return kept


def checked(entries: list[Entry], labels: list[str], policy: SkipPolicy) -> list[Entry]:
    """The file, label and header checks in that order (headers only of wanted clips)."""
    return check_headers(check_labels(check_files(entries, policy), labels, policy), policy)


def list_path(value: str | None, root: Path) -> Path | None:
    """A split list as given, or under ``root`` when a relative path is not found as given."""
    if not value:
        return None
    path = Path(value)
    if not path.is_file() and not path.is_absolute() and (root / path).is_file():
        return root / path
    return path


@dataclass
class FolderSource:
    """One sub-folder per class; ``val_list``/``test_list`` pick the val/test clips.

    Labels are the sorted class folder names unless ``labels`` gives them (then that is
    the class order, and clips of other folders are unknown labels).
    """

    root: str | None = None
    val_list: str | None = None
    test_list: str | None = None
    labels: list[str] | None = None
    on_error: str = "raise"

    def __post_init__(self) -> None:
        if not self.root:
            raise ConfigError("data.root is required for data=folder")
        root = Path(self.root)
        policy = SkipPolicy(self.on_error)
        self.skipped = policy.counts  # samples dropped before training, by reason
        classes = class_folders(root)
        lists = {"val": list_path(self.val_list, root), "test": list_path(self.test_list, root)}
        splits = split_entries(classes, root, lists)
        self.labels = [str(label) for label in (self.labels or classes)]
        self._entries = {
            split: checked(entries, self.labels, policy) for split, entries in splits.items()
        }

    def dataset(self, split: str, spec: LoaderSpec) -> ClipDataset | None:
        return split_dataset(self._entries, split, self.labels, spec)
