"""JSON Lines manifests: one clip a line, checked up front so errors name the line."""

from dataclasses import dataclass

from audioseq.data.entries import check_files, check_labels, read_manifest
from audioseq.data.skipping import SkipPolicy
from audioseq.data.sources.clip_dataset import ClipDataset
from audioseq.data.sources.event_clips import event_labels
from audioseq.data.sources.file_list import split_dataset
from audioseq.data.spec import LoaderSpec
from audioseq.errors import ConfigError


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
        return split_dataset(self._entries, split, self.labels, spec)
