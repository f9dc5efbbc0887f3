"""Adding up a source's clips as they are read, and what the sums say is wrong.

Only counts, per-clip durations and the problem clips are kept, so a corpus of millions
of clips costs a float per clip. Unusable clips count apart: the label, speaker and
duration figures are about the clips training would get.
"""

from collections import Counter, defaultdict
from dataclasses import dataclass

from audioseq import SAMPLE_RATE
from audioseq.inspection.clips import Clip

#: How the report and the summary name a clip without a label.
NO_LABEL = "(none)"


@dataclass
class Amount:
    clips: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class Imbalance:
    """A split's largest and smallest classes and the ratio of their clip counts."""

    split: str
    largest: str
    most: int
    smallest: str
    fewest: int

    @property
    def ratio(self) -> float:
        return self.most / self.fewest


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def names(items: list[str], shown: int = 10) -> str:
    """``a, b, c`` or ``a, ..., j and 5 more``: a line stays a line."""
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more


class Tally:
    """Counts per split, label and speaker; durations; formats; and the problem clips.

    ``frame_samples``: a clip shorter than one frame of the frontend has no features;
    ``min_seconds``/``max_seconds``: the loaders' ``data.min_seconds``/``max_seconds``.
    """

    def __init__(
        self, frame_samples: int, min_seconds: float | None, max_seconds: float | None
    ) -> None:
        self.frame_samples = frame_samples
        self.min_seconds, self.max_seconds = min_seconds, max_seconds
        self.splits: list[str] = []
        self.by_label: defaultdict[tuple[str, str], Amount] = defaultdict(Amount)
        self.by_speaker: defaultdict[tuple[str, str], Amount] = defaultdict(Amount)
        self.durations: defaultdict[str, list[float]] = defaultdict(list)
        self.rates: Counter[int] = Counter()
        self.channels: Counter[int] = Counter()
        self.encodings: Counter[str] = Counter()
        self.unusable: list[Clip] = []
        #: Usable clips the frontend or the length limits would not take, with why.
        self.off_length: list[tuple[Clip, str]] = []

    def add(self, clip: Clip) -> None:
        if clip.split not in self.splits:
            self.splits.append(clip.split)
        if clip.sample_rate is not None:  # the header was read: its format was found
            self.rates[clip.sample_rate] += 1
            self.channels[clip.channels] += 1
            self.encodings[clip.encoding] += 1
        if clip.reason is not None:
            self.unusable.append(clip)
            return
        seconds = clip.seconds
        keys = ((self.by_label, clip.label or NO_LABEL), (self.by_speaker, clip.speaker))
        for table, key in keys:
            if key is not None:
                amount = table[clip.split, key]
                amount.clips, amount.seconds = amount.clips + 1, amount.seconds + seconds
        self.durations[clip.split].append(seconds)
        why = self._off_length(seconds)
        if why:
            self.off_length.append((clip, why))

    def _off_length(self, seconds: float) -> str | None:
        if round(seconds * SAMPLE_RATE) < self.frame_samples:
            return f"shorter than a frame ({self.frame_samples} samples at 16 kHz)"
        if self.max_seconds is not None and seconds > self.max_seconds:
            return f"longer than data.max_seconds={self.max_seconds:g}"
        if self.min_seconds is not None and seconds < self.min_seconds:
            return f"shorter than data.min_seconds={self.min_seconds:g}"
        return None

    def labels(self, split: str | None = None, with_none: bool = False) -> list[str]:
        """Labels with usable clips (in ``split``, or anywhere), sorted; ``with_none``:
        and NO_LABEL last when some clips have none."""
        found = {lab for s, lab in self.by_label if split is None or s == split}
        labels = sorted(found - {NO_LABEL})
        return [*labels, NO_LABEL] if with_none and NO_LABEL in found else labels

    def speakers(self, split: str | None = None) -> list[str]:
        return sorted({spk for s, spk in self.by_speaker if split is None or s == split})

    def total(self, split: str) -> Amount:
        amounts = [a for (s, _), a in self.by_label.items() if s == split]
        return Amount(sum(a.clips for a in amounts), sum(a.seconds for a in amounts))

    def unusable_in(self, split: str) -> int:
        return sum(clip.split == split for clip in self.unusable)

    def missing_from_train(self) -> dict[str, list[str]]:
        """Labels of each other split that no usable training clip has (a model trained
        on this data cannot predict them; the loaders drop them as ``unknown_label``)."""
        if "train" not in self.splits:
            return {}
        known = set(self.labels("train"))
        missing = {s: [lab for lab in self.labels(s) if lab not in known] for s in self.splits}
        return {split: labels for split, labels in missing.items() if labels}

    def shared_speakers(self) -> dict[str, list[str]]:
        """Speakers with clips in more than one split: their voices leak into evaluation."""
        splits: defaultdict[str, list[str]] = defaultdict(list)
        for split, speaker in self.by_speaker:
            splits[speaker].append(split)
        return {spk: sorted(s, key=self.splits.index) for spk, s in splits.items() if len(s) > 1}

    def imbalance(self, split: str) -> Imbalance | None:
        counts = {lab: self.by_label[split, lab].clips for lab in self.labels(split)}
        if len(counts) < 2:
            return None
        ordered = sorted(counts, key=counts.get)  # two different labels, also on a tie
        smallest, largest = ordered[0], ordered[-1]
        return Imbalance(split, largest, counts[largest], smallest, counts[smallest])

    def problems(self, imbalance_ratio: float) -> list[str]:
        """One line per kind of problem found, most serious first (empty: none)."""
        lines = []
        if self.unusable:
            reasons = Counter(clip.reason for clip in self.unusable).most_common()
            splits = Counter(clip.split for clip in self.unusable).items()
            lines.append(
                f"{plural(len(self.unusable), 'unusable clip')}: "
                f"{', '.join(f'{reason} {n}' for reason, n in reasons)} "
                f"({', '.join(f'{split} {n}' for split, n in splits)})"
            )
        for split, labels in self.missing_from_train().items():
            clips = sum(self.by_label[split, lab].clips for lab in labels)
            lines.append(
                f"{split} labels missing from train: {names(list(map(repr, labels)))} "
                f"({plural(clips, 'clip')})"
            )
        shared = self.shared_speakers()
        if shared:
            lines.append(
                f"{plural(len(shared), 'speaker')} in more than one split: "
                + names([f"{spk!r} ({', '.join(s)})" for spk, s in shared.items()])
            )
        unlabelled = sum(a.clips for (_, lab), a in self.by_label.items() if lab == NO_LABEL)
        if unlabelled and self.labels():
            lines.append(f"{plural(unlabelled, 'clip')} without a label")
        for why, count in Counter(why for _, why in self.off_length).items():
            lines.append(f"{plural(count, 'clip')} {why}")
        for split in self.splits:
            found = self.imbalance(split)
            if found is not None and found.ratio >= imbalance_ratio:
                lines.append(
                    f"class imbalance in {split}: {found.largest!r} has {found.most} clips, "
                    f"{found.smallest!r} {found.fewest} ({found.ratio:.1f}x)"
                )
        resampled = sum(n for rate, n in self.rates.items() if rate != SAMPLE_RATE)
        if resampled:
            lines.append(f"{plural(resampled, 'clip')} not at 16 kHz (resampled at every read)")
        averaged = sum(n for channels, n in self.channels.items() if channels != 1)
        if averaged:
            lines.append(f"{plural(averaged, 'clip')} not mono (channels averaged)")
        return lines
