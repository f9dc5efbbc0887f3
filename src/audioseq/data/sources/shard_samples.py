"""One sample of a tar shard (``KEY.wav`` or ``.flac`` plus ``KEY.json``) as an Example.

The JSON sidecar gives the label (or, for task=detect, the recording's ``events``) and the
duration that ``data.min_seconds``/``max_seconds`` filter on before anything is decoded;
the audio member then goes through the clip pipeline file-list clips go through. Bad
data is a DataError naming shard and member, which ``on_error`` re-raises or counts.
"""

import json

from audioseq.data.audio import decode_audio
from audioseq.data.entries import within
from audioseq.data.example import Example
from audioseq.data.frame_labels import BACKGROUND, Event, parse_events
from audioseq.data.shards.storage import AUDIO_MEMBERS
from audioseq.data.skipping import Skipped, SkipPolicy
from audioseq.data.sources.clip_pipeline import ClipPipeline
from audioseq.data.sources.event_clips import check_event_spec, event_frame_labels
from audioseq.data.spec import LoaderSpec
from audioseq.errors import DataError

#: What a slot holds once read: a clip, a dropped sample (counted), or a clip outside
#: ``min_seconds``/``max_seconds`` (None: left out, not counted).
Item = Example | Skipped | None


class ShardSamples:
    """A split's samples made into Examples, under its ``on_error`` policy (one per split,
    so a shard's problems are warned about once, whether a sample was lost or bad)."""

    def __init__(self, label_index: dict[str, int], spec: LoaderSpec) -> None:
        self.label_index, self.spec = label_index, spec
        self.pipeline = ClipPipeline(spec)
        self.policy = SkipPolicy(spec.on_error)
        # Classes that start with the background: long recordings with events (task=detect).
        self.events = next(iter(label_index), None) == BACKGROUND
        if self.events:
            check_event_spec(spec, "shards")

    def item(self, sample: dict | Skipped, epoch: int) -> Item:
        """The slot's Example (None: outside the duration range), or its Skipped marker."""
        if isinstance(sample, Skipped):
            return sample
        url, key = sample["__url__"], sample["__key__"]
        try:
            return self._example(sample, url, key, epoch)
        except DataError as e:
            return self.policy(e, f"{url}:{key}", file=url)

    def _example(self, sample: dict, url: str, key: str, epoch: int) -> Example | None:
        meta = sample.get("__meta__") or sidecar(sample, url, key)  # from the index, or read
        events = self._events(meta, f"{url}:{key}.json") if self.events else None
        label = meta.get("label")
        if events is None and label is None:
            raise DataError(f"{url}:{key}.json: no 'label'", "no_label")
        if events is None and str(label) not in self.label_index:
            raise DataError(
                f"{url}:{key}.json: unknown label {str(label)!r} "
                f"(labels: {sorted(self.label_index)})",
                "unknown_label",
            )
        duration = meta.get("duration")
        spec = self.spec
        if isinstance(duration, int | float) and not within(
            duration, spec.min_seconds, spec.max_seconds
        ):
            return None
        suffix = next((s for s in AUDIO_MEMBERS if s in sample), None)
        if suffix is None:
            raise DataError(f"{url}:{key}: no .wav or .flac member", "corrupt")
        where = f"{url}:{key}.{suffix}"
        audio = self.pipeline.checked(decode_audio(sample[suffix], where), where)
        audio = self.pipeline.shaped(audio, epoch, *sample["__clip__"])
        name = f"{url.rsplit('/', 1)[-1]}/{key}"
        if events is not None:
            return Example(
                name, audio, frame_labels=event_frame_labels(events, self.label_index, len(audio))
            )
        return Example(name, audio, self.label_index[str(label)])

    def _events(self, meta: dict, where: str) -> tuple[Event, ...]:
        """A long recording's events (task=detect), every label one of the classes."""
        if "events" not in meta:
            raise DataError(f"{where}: no 'events' (these shards' classes are events)", "no_label")
        events = parse_events(meta["events"], where)
        for event in events:
            if event.label not in self.label_index:
                raise DataError(
                    f"{where}: unknown event label {event.label!r} "
                    f"(labels: {list(self.label_index)})",
                    "unknown_label",
                )
        return events


def sidecar(sample: dict, url: str, key: str) -> dict:
    """A sample's ``KEY.json`` as a dict (label, duration, ...); DataError when unusable."""
    if "json" not in sample:
        raise DataError(f"{url}:{key}: no .json sidecar (no label)", "no_label")
    try:
        # Decoded here (a view, from a shard read by byte range): json.loads would first
        # guess the encoding of bytes.
        meta = json.loads(str(sample["json"], "utf-8"))
    except ValueError as e:
        raise DataError(f"{url}:{key}.json: malformed JSON ({e})", "corrupt") from None
    if not isinstance(meta, dict):
        raise DataError(f"{url}:{key}.json: expected a JSON object", "corrupt")
    return meta
