"""Turning per-frame posteriors into events: smoothing window, threshold, refractory period.

Raw frame posteriors flicker; a causal moving average over ``smooth_ms`` steadies them.
An event fires when the smoothed top class (not an ignored one) reaches ``threshold``
where it did not the frame before (a rising edge, so one sustained sound is one event),
unless an event fired less than ``refractory_ms`` earlier (such an edge is dropped).
"""

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from audioseq.errors import ConfigError


@dataclass(frozen=True)
class Event:
    """A detection: ``time`` in seconds (end of the frame that fired), class and score."""

    time: float
    label: str
    index: int
    probability: float


class EventDetector:
    """Stateful across calls: feed it the posteriors of each chunk's frames in order.

    ``frame_step`` is the time between frames (the hop) and ``first_frame_end`` the time
    at which frame 0 ends (the window), both in seconds.
    """

    def __init__(
        self,
        labels: Sequence[str],
        frame_step: float,
        first_frame_end: float,
        smooth_ms: float = 200.0,
        threshold: float = 0.8,
        refractory_ms: float = 500.0,
        ignore: Sequence[str] = (),
    ) -> None:
        unknown = sorted(set(ignore) - set(labels))
        if unknown:
            raise ConfigError(f"ignore_labels {unknown} are not among the labels {list(labels)}")
        self.labels = list(labels)
        self.frame_step, self.first_frame_end = frame_step, first_frame_end
        self.window = max(1, round(smooth_ms / 1000.0 / frame_step))
        self.threshold, self.refractory = threshold, refractory_ms / 1000.0
        self._ignored = torch.tensor([label in set(ignore) for label in self.labels])
        self._history = torch.zeros(0, len(self.labels), dtype=torch.float64)
        self._active: int | None = None  # the class above threshold at the previous frame
        self._last_event: float | None = None
        self.frames = 0

    def time_of(self, frame: int) -> float:
        return self.first_frame_end + frame * self.frame_step

    def smooth(self, probs: torch.Tensor) -> torch.Tensor:
        """Moving average of the last ``window`` frames at each of ``probs`` [F, C] (fewer
        at the start of the stream), continuing the frames seen in earlier calls."""
        frames = torch.cat([self._history, probs.detach().cpu().double()])
        sums = torch.cat([frames.new_zeros(1, frames.shape[1]), frames.cumsum(0)])
        ends = torch.arange(len(self._history), len(frames)) + 1
        starts = (ends - self.window).clamp(min=0)
        smoothed = (sums[ends] - sums[starts]) / (ends - starts).unsqueeze(1)
        self._history = frames[-(self.window - 1) :] if self.window > 1 else frames[:0]
        return smoothed.float()

    def update(self, probs: torch.Tensor) -> tuple[torch.Tensor, list[Event]]:
        """The smoothed posteriors of ``probs`` [F, C] and the events they fire."""
        smoothed = self.smooth(probs)
        scores = smoothed.masked_fill(self._ignored, -1.0)
        best, top = scores.max(dim=1)
        events = []
        for k in range(len(smoothed)):
            index, p = int(top[k]), float(best[k])
            frame, active = self.frames + k, p >= self.threshold
            time = self.time_of(frame)
            rising = active and index != self._active
            rested = self._last_event is None or time - self._last_event >= self.refractory - 1e-9
            if rising and rested:
                events.append(Event(time, self.labels[index], index, p))
                self._last_event = time
            self._active = index if active else None
        self.frames += len(smoothed)
        return smoothed, events
