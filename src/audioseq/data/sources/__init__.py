"""Where clips come from: one module per ``data.source`` (synthetic, manifest, folder,
speech_commands, shards), each a dataclass built from its ``data.*`` options that turns a
split into a dataset of :class:`~audioseq.data.example.Example` s or of whole batches.
What they share sits beside them: ``clip_pipeline`` (every decoded clip's check, augmentation
and crop), ``clip_dataset`` and ``file_list`` (the file-list sources' dataset),
``event_clips``, ``shard_samples``; ``dtmf`` and ``dialling`` make the synthetic audio."""

from typing import Protocol

from torch.utils.data import Dataset

from audioseq.data.spec import LoaderSpec


class Source(Protocol):
    """What the DataModule asks of a source. ``labels`` are the class names in index order;
    ``dataset`` returns None for a split the source does not have. A source that drops bad
    samples while reading its lists also has ``skipped`` (a Counter by reason)."""

    labels: list[str] | None

    def dataset(self, split: str, spec: LoaderSpec) -> Dataset | None: ...
