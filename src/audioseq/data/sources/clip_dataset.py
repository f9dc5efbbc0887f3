"""Map-style clips from a list of entries: decoded, checked, augmented and cropped on demand."""

from collections.abc import Callable

import torch
from torch.utils.data import Dataset

from audioseq import SAMPLE_RATE
from audioseq.data.audio import read_audio
from audioseq.data.augment import clip_generator
from audioseq.data.batching import crop
from audioseq.data.cache import AudioCache
from audioseq.data.entries import Entry, within_duration
from audioseq.data.example import Example
from audioseq.data.skipping import Skipped, SkipPolicy
from audioseq.data.spec import LoaderSpec
from audioseq.errors import DataError

Augment = Callable[[torch.Tensor, torch.Generator | None], torch.Tensor]


def seconds_to_samples(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * SAMPLE_RATE)


class ClipDataset(Dataset):
    """Each item is an Example, or a Skipped marker when ``on_error=skip`` drops it.

    A training clip's augmentation and crop draw from its own generator, seeded from
    (seed, epoch, index); the epoch lives in shared memory so persistent workers see
    ``set_epoch``.
    """

    def __init__(self, entries: list[Entry], label_index: dict[str, int], spec: LoaderSpec):
        self.entries = within_duration(entries, spec.min_seconds, spec.max_seconds)
        self.label_index, self.spec = label_index, spec
        self.clip_samples = seconds_to_samples(spec.clip_seconds)
        self.min_samples = seconds_to_samples(spec.min_seconds)
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

    def durations(self) -> list[float | None]:
        """Declared durations (seconds), for duration bucketing."""
        return [e.duration for e in self.entries]

    def load(self, entry: Entry) -> torch.Tensor:
        audio = read_audio(entry.path, entry.offset, entry.duration)
        if self.min_samples is not None and audio.shape[0] < self.min_samples:
            seconds = audio.shape[0] / SAMPLE_RATE
            raise DataError(
                f"{entry.path}: {seconds:.3f} s is shorter than data.min_seconds", "too_short"
            )
        return audio

    def __getitem__(self, index: int) -> Example | Skipped:
        entry = self.entries[index]
        try:
            audio = self.load(entry) if self.cache is None else self.cache.get(index)
        except DataError as e:
            return self.policy(e, entry.where, str(entry.path))
        train = self.spec.train
        generator = clip_generator(self.spec.seed, int(self._epoch[0]), index) if train else None
        if train and self.spec.augment is not None:
            audio = self.spec.augment(audio, generator)
        if self.clip_samples is not None:
            audio = crop(audio, self.clip_samples, random=train, generator=generator)
        label = None if entry.label is None else self.label_index[entry.label]
        return Example(str(entry.path), audio, label)
