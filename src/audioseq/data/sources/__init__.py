"""Where clips come from: one module per ``data.source`` (synthetic, manifest, folder,
speech_commands, shards), each a dataclass built from its ``data.*`` options that turns a
split into a dataset of :class:`~audioseq.data.example.Example` s or of whole batches."""

from typing import Protocol

from torch.utils.data import Dataset

from audioseq.data.spec import LoaderSpec


class Source(Protocol):
    """What the DataModule asks of a source. ``labels`` are the class names in index order;
    ``dataset`` returns None for a split the source does not have. A source that drops bad
    samples while reading its lists also has ``skipped`` (a Counter by reason)."""

    labels: list[str] | None

    def dataset(self, split: str, spec: LoaderSpec) -> Dataset | None: ...
