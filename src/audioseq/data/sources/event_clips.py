"""Manifest recordings annotated with ``events``: their frame labels, for ``task=detect``.

A manifest line may carry ``"events": [{"start": s, "end": s, "label": l}, ...]`` instead
of a ``label``: a long recording and what happens in it. The classes are the background
(class 0) and the event labels of the train manifest; each recording gets the class of
every 10 ms step (:mod:`audioseq.data.frame_labels`) from its events.
"""

from collections.abc import Mapping, Sequence

import torch

from audioseq.data.entries import Entry
from audioseq.data.example import Example
from audioseq.data.frame_labels import BACKGROUND, Event, event_spans, frame_labels
from audioseq.data.skipping import Skipped
from audioseq.data.sources.clip_dataset import ClipDataset
from audioseq.data.spec import LoaderSpec
from audioseq.errors import ConfigError, DataError


def event_labels(entries: Mapping[str, list[Entry]], labels: list[str] | None) -> list[str]:
    """The classes: background, then ``labels`` (or the train manifest's sorted event
    labels). Every line must have ``events`` and only known labels (a DataError naming
    the line otherwise)."""
    train = entries["train"]
    known = labels or sorted({e.label for entry in train for e in entry.events or ()})
    known = [label for label in known if label != BACKGROUND]
    for split_entries in entries.values():
        for entry in split_entries:
            if entry.events is None:
                raise DataError(
                    f"{entry.where}: no 'events' (a manifest's lines either all carry events, "
                    "for task=detect, or none do)"
                )
            for event in entry.events:
                if event.label not in known:
                    raise DataError(
                        f"{entry.where}: unknown event label {event.label!r} (labels: {known})"
                    )
    return [BACKGROUND, *known]


def check_event_spec(spec: LoaderSpec, source: str) -> None:
    """Refuse what would move a recording's audio against its event times: crops, and
    augmentation that shifts or stretches it (``source`` names the data in the message)."""
    if spec.clip_seconds is not None:
        raise ConfigError(
            f"data.clip_seconds must be null for {source} with events: a crop would cut "
            "recordings loose from their event times"
        )
    augment = spec.augment
    if augment is not None and (getattr(augment, "shift", 0) or getattr(augment, "speed", ())):
        raise ConfigError(
            "data.augment.time_shift_seconds and data.augment.speed move audio against its "
            "event times: set data.augment.time_shift_seconds=0 'data.augment.speed=[]' for "
            f"{source} with events"
        )


def event_frame_labels(
    events: Sequence[Event], label_index: dict[str, int], num_samples: int
) -> torch.Tensor:
    """A recording's class at every 10 ms step, from its (checked) events."""
    return torch.from_numpy(frame_labels(event_spans(events, label_index), num_samples))


class EventClipDataset(ClipDataset):
    """Whole recordings with their frame labels. Cropping and augmentation that moves
    audio in time (shift, speed) would move it against its events, so they are refused."""

    def __init__(self, entries: list[Entry], label_index: dict[str, int], spec: LoaderSpec):
        check_event_spec(spec, "manifests")
        super().__init__(entries, label_index, spec)

    def __getitem__(self, index: int) -> Example | Skipped:
        example = super().__getitem__(index)
        if isinstance(example, Skipped):
            return example
        events = self.entries[index].events or ()
        example.frame_labels = event_frame_labels(events, self.label_index, len(example.audio))
        return example
