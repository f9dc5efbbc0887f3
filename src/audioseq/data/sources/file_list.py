"""The dataset every file-list source (manifest, folder, Speech Commands) gives a split."""

from audioseq.data.entries import Entry
from audioseq.data.sources.clip_dataset import ClipDataset
from audioseq.data.sources.event_clips import EventClipDataset
from audioseq.data.spec import LoaderSpec


def split_dataset(
    entries: dict[str, list[Entry]], split: str, labels: list[str], spec: LoaderSpec
) -> ClipDataset | None:
    """``split``'s clips, labelled by their index in ``labels`` (None: the source has no
    such split); recordings with ``events`` (manifests only) get their frame labels."""
    clips = entries.get(split)
    if clips is None:
        return None
    index = {name: i for i, name in enumerate(labels)}
    if clips and clips[0].events is not None:
        return EventClipDataset(clips, index, spec)
    return ClipDataset(clips, index, spec)
