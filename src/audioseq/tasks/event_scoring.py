"""Event-level scoring: detected events against the annotated onsets, with a tolerance.

Frame accuracy rewards getting the long background right; what a user of a detector
counts is presses found and false alarms. A detected event (from
:class:`audioseq.tasks.events.EventDetector`, the same rule ``audioseq-stream`` uses)
is a hit when an annotated event of the same class starts within ``tolerance`` seconds of
its time; each annotated event can be hit once. Unmatched detections are false alarms,
unmatched annotations misses.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from audioseq import SAMPLE_RATE
from audioseq.data.frame_labels import LABEL_HOP
from audioseq.tasks.events import Event


@dataclass(frozen=True)
class Onset:
    """An annotated event's start in seconds and its class index."""

    time: float
    index: int


@dataclass(frozen=True)
class EventCounts:
    hits: int
    false_alarms: int
    misses: int


def onsets(frame_labels: torch.Tensor) -> list[Onset]:
    """Where each run of a non-background class starts in a recording's label steps
    (class 0 is background, -1 padding)."""
    labels = frame_labels[frame_labels >= 0].cpu()
    previous = torch.cat([labels.new_zeros(1), labels[:-1]])
    starts = ((labels > 0) & (labels != previous)).nonzero().flatten().tolist()
    return [Onset(step * LABEL_HOP / SAMPLE_RATE, int(labels[step])) for step in starts]


def match(events: Sequence[Event], reference: Sequence[Onset], tolerance: float) -> EventCounts:
    """Greedy one-to-one matching in time order: each event takes the earliest unmatched
    onset of its class within ``tolerance`` seconds."""
    taken = [False] * len(reference)
    hits = 0
    for event in sorted(events, key=lambda e: e.time):
        for k, onset in enumerate(reference):
            close = abs(event.time - onset.time) <= tolerance + 1e-9
            if not taken[k] and onset.index == event.index and close:
                taken[k], hits = True, hits + 1
                break
    return EventCounts(hits, len(events) - hits, len(reference) - hits)


def f_scores(hits: float, false_alarms: float, misses: float) -> tuple[float, float, float]:
    """Precision, recall and F1 (each 0 when undefined).

    From the counts of :func:`match`, not torchmetrics: it has no event matching with an
    onset tolerance, and its precision/recall/F1 take per-item predictions, not counts.
    """
    precision = hits / (hits + false_alarms) if hits + false_alarms else 0.0
    recall = hits / (hits + misses) if hits + misses else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1
