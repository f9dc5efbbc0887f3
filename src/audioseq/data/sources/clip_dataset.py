"""Map-style clips from a list of entries: decoded, checked, augmented and cropped on demand."""

import math

import torch
from torch.utils.data import Dataset

from audioseq import SAMPLE_RATE
from audioseq.data.audio import read_audio
from audioseq.data.cache import AudioCache
from audioseq.data.entries import Entry, within_duration
from audioseq.data.example import Example
from audioseq.data.skipping import Skipped, SkipPolicy
from audioseq.data.sources.clip_pipeline import ClipPipeline
from audioseq.data.spec import LoaderSpec
from audioseq.errors import DataError


class ClipDataset(Dataset):
    """Each item is an Example, or a Skipped marker when ``on_error=skip`` drops it.

    A training clip's augmentation and crop draw from its own generator, seeded from
    (seed, epoch, index); the epoch lives in shared memory so persistent workers see
    ``set_epoch``.
    """

    def __init__(self, entries: list[Entry], label_index: dict[str, int], spec: LoaderSpec):
        self.entries = within_duration(entries, spec.min_seconds, spec.max_seconds)
        self.label_index, self.spec = label_index, spec
        self.pipeline = ClipPipeline(spec)
        self.policy = SkipPolicy(spec.on_error)
        self.cache: AudioCache | None = None
        self.cache_wanted = spec.cache is not None and spec.cache.take(self.entries)
        self._epoch = torch.zeros(1, dtype=torch.int64).share_memory_()

    def set_epoch(self, epoch: int) -> None:
        self._epoch[0] = epoch

    def fill_cache(self) -> None:
        """Decode every clip into memory (``data.cache``), once. The DataModule calls it in
        the main process when the split's loader is first made, before workers fork and
        share it, and only for splits that are used (eval needs no train audio)."""
        if self.cache_wanted and self.cache is None:
            name = f"{self.spec.split} audio"
            self.cache = AudioCache(self.entries, self.load, name, self.spec.show_progress)

    def __len__(self) -> int:
        return len(self.entries)

    def batch_width(self) -> int | None:
        """The widest batch's samples, where the set-up knows it: the crop, else the
        longest declared duration, slowed down as far as augmentation may (plus 10 ms:
        durations are rounded); None if a clip declares none."""
        if self.pipeline.clip_samples is not None:
            return self.pipeline.clip_samples
        durations = [e.duration for e in self.entries]
        if not durations or None in durations:
            return None
        longest = max(durations) * getattr(self.spec.augment, "max_stretch", 1.0)
        return math.ceil(longest * SAMPLE_RATE) + SAMPLE_RATE // 100

    def durations(self) -> list[float | None]:
        """Declared durations (seconds), for duration bucketing."""
        return [e.duration for e in self.entries]

    def load(self, entry: Entry) -> torch.Tensor:
        """A clip decoded and checked: what the cache keeps."""
        audio = read_audio(entry.path, entry.offset, entry.duration)
        return self.pipeline.checked(audio, str(entry.path))

    def __getitem__(self, index: int) -> Example | Skipped:
        entry = self.entries[index]
        try:
            audio = self.load(entry) if self.cache is None else self.cache.get(index)
        except DataError as e:
            return self.policy(e, entry.where, str(entry.path))
        audio = self.pipeline.shaped(audio, int(self._epoch[0]), index)
        label = None if entry.label is None else self.label_index[entry.label]
        return Example(str(entry.path), audio, label)
