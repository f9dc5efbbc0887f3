"""``data.cache``: decode every clip of a file-list split once, keep it in memory.

Without it, the loader workers decode (and resample) every clip every epoch on the same
cores that train, which made a 1 s-clip corpus train at 0.59x the pace of a plain loop
over pre-decoded clips (docs/PERFORMANCE.md). With it, a clip is decoded once at setup
into one flat float32 tensor; augmentation and cropping still happen per epoch, on a view
of it, so training sees exactly the samples it would have decoded.

The tensor is one storage with no Python object per clip, so forked loader workers
share its pages copy-on-write without ever touching (copying) them. Each DDP rank holds
its own copy: ``auto`` divides the budget by the ranks of a node.
"""

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from audioseq import SAMPLE_RATE
from audioseq.data.entries import Entry
from audioseq.data.workers import usable_cores
from audioseq.errors import DataError

BYTES_PER_SAMPLE = 4  # float32, after resampling to 16 kHz
#: A compressed file with no declared duration decodes to at most about this many times
#: its size (16-bit PCM at 16 kHz: 2x; FLAC at about half of that: 4x).
BYTES_PER_FILE_BYTE = 4


def physical_memory() -> int:
    """Bytes of RAM on this machine."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


@dataclass
class CacheBudget:
    """How many bytes ``cache=auto`` may still fill, shared by the splits of a DataModule:
    ``fraction`` of RAM divided among the ``local_ranks`` processes of a node."""

    mode: str = "none"
    fraction: float = 0.25
    local_ranks: int = 1
    remaining: int = field(init=False)

    def __post_init__(self) -> None:
        self.remaining = int(physical_memory() * self.fraction) // max(1, self.local_ranks)

    def take(self, entries: Sequence[Entry]) -> bool:
        """Whether to cache these entries (and if so, count their bytes as used)."""
        if self.mode == "none":
            return False
        if self.mode == "memory":
            return True
        needed = sum(estimated_bytes(e) for e in entries)
        if needed > self.remaining:
            return False
        self.remaining -= needed
        return True


def estimated_bytes(entry: Entry) -> int:
    """Decoded size of a clip: from its declared duration, else from its file's size."""
    if entry.duration is not None:
        return int(entry.duration * SAMPLE_RATE) * BYTES_PER_SAMPLE
    try:
        return entry.path.stat().st_size * BYTES_PER_FILE_BYTE
    except OSError:
        return 0


class AudioCache:
    """Every clip of a split, decoded: ``get(i)`` is a view of clip ``i`` or raises the
    DataError its decoding raised (so ``on_error`` treats it as it would have)."""

    def __init__(
        self,
        entries: Sequence[Entry],
        load: Callable[[Entry], torch.Tensor],
        name: str = "audio",
        show_progress: bool = True,
        threads: int | None = None,
    ) -> None:
        clips: list[torch.Tensor | DataError] = [DataError("not decoded", "corrupt")] * len(entries)

        def decode(index: int) -> None:
            try:
                clips[index] = load(entries[index])
            except DataError as e:
                clips[index] = e

        threads = threads or min(8, usable_cores())
        # libsndfile and the resampler release the GIL, so threads decode in parallel.
        with ThreadPoolExecutor(threads) as pool:
            done = pool.map(decode, range(len(entries)))
            for _ in tqdm(
                done,
                total=len(entries),
                desc=f"caching {name}",
                unit="clip",
                disable=not show_progress,
                leave=False,
            ):
                pass
        # (message, reason): a fresh DataError per access, not one whose traceback grows.
        self.errors = {
            i: (str(c), c.reason) for i, c in enumerate(clips) if isinstance(c, DataError)
        }
        lengths = [0 if isinstance(c, DataError) else c.shape[0] for c in clips]
        self.lengths = torch.tensor(lengths, dtype=torch.int64)
        self.starts = torch.cumsum(self.lengths, 0) - self.lengths
        audio = [c for c in clips if not isinstance(c, DataError)]
        self.audio = torch.cat(audio) if audio else torch.zeros(0)

    @property
    def nbytes(self) -> int:
        return self.audio.numel() * self.audio.element_size()

    def get(self, index: int) -> torch.Tensor:
        error = self.errors.get(index)
        if error is not None:
            raise DataError(*error)
        start = int(self.starts[index])
        return self.audio[start : start + int(self.lengths[index])]
