"""Frame labels for long recordings: a class (or background) every 10 ms, from events.

Events (``start``/``end`` in seconds and a label) are what people annotate and what the
synthetic dialling corpus knows; the model needs a class at every frame. The data side
turns events into labels on a fixed grid of ``LABEL_HOP`` samples (step j covers samples
``[j * LABEL_HOP, (j + 1) * LABEL_HOP)`` and takes the class at its centre), whatever the
frontend; the task then picks, for each feature frame, the step under that frame's centre.
Class 0 is always ``BACKGROUND``; -1 marks padding.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from audioseq import SAMPLE_RATE
from audioseq.errors import DataError

#: The label grid: 160 samples = 10 ms at 16 kHz, the hop of the log-mel and MFCC features.
LABEL_HOP = 160
#: Class 0 of every frame-labelled corpus: no event at this frame.
BACKGROUND = "_background_"
#: Frame label of padding (ignored by the loss and the metrics).
PAD = -1


@dataclass(frozen=True)
class Event:
    """An annotated event: ``start`` and ``end`` in seconds, and its label."""

    start: float
    end: float
    label: str


def label_steps(num_samples: int) -> int:
    """Label steps covering ``num_samples`` samples (the last one may be partial)."""
    return -(-num_samples // LABEL_HOP)


def frame_labels(
    spans: Sequence[tuple[int, int, int]], num_samples: int, out: np.ndarray | None = None
) -> np.ndarray:
    """int64 labels on the ``LABEL_HOP`` grid for ``num_samples`` samples: each
    ``(start sample, end sample, class)`` span marks the steps whose centre lies inside it;
    the rest is background (0). ``out`` (at least that long) is filled in place."""
    steps = label_steps(num_samples)
    labels = np.zeros(steps, np.int64) if out is None else out[:steps]
    labels[:] = 0
    for start, end, index in spans:
        # centre of step j: j * hop + hop / 2, inside [start, end)
        first = max(0, math.ceil((start - LABEL_HOP / 2) / LABEL_HOP))
        last = min(steps, math.ceil((end - LABEL_HOP / 2) / LABEL_HOP))
        labels[first:last] = index
    return labels


def event_spans(events: Sequence[Event], label_index: dict[str, int]) -> list[tuple[int, int, int]]:
    """Events as ``(start sample, end sample, class index)`` spans at 16 kHz."""
    return [
        (round(e.start * SAMPLE_RATE), round(e.end * SAMPLE_RATE), label_index[e.label])
        for e in events
    ]


def _seconds(value: Any) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, int | float)
        and math.isfinite(value)
        and value >= 0
    )


def parse_events(value: Any, where: str) -> tuple[Event, ...]:
    """A manifest line's ``events`` field checked: a list of ``{"start", "end", "label"}``
    with 0 <= start < end; anything else is a DataError naming ``where`` (file:line)."""
    if not isinstance(value, list):
        raise DataError(f"{where}: 'events' must be a list of {{start, end, label}} objects")
    events = []
    for number, item in enumerate(value):
        what = f"{where}: events[{number}]"
        if not isinstance(item, dict) or not {"start", "end", "label"} <= set(item):
            raise DataError(f"{what}: expected an object with 'start', 'end' and 'label'")
        start, end, label = item["start"], item["end"], item["label"]
        if not (_seconds(start) and _seconds(end)):
            raise DataError(f"{what}: 'start' and 'end' must be seconds >= 0, got {start}, {end}")
        if not start < end:
            raise DataError(f"{what}: 'start' ({start}) must be before 'end' ({end})")
        if not isinstance(label, str | int) or isinstance(label, bool) or str(label) == "":
            raise DataError(f"{what}: 'label' must be a non-empty string, got {label!r}")
        if str(label) == BACKGROUND:
            raise DataError(f"{what}: {BACKGROUND!r} is the implicit background class")
        events.append(Event(float(start), float(end), str(label)))
    return tuple(events)
