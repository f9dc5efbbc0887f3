"""Predictor: a classifier checkpoint applied to whole clips and to windows of long ones.

No Trainer: decoding runs in DataLoader workers, the model in eval mode under
``torch.inference_mode`` on the chosen device, batches are padded by the project's one
``collate`` (padding never reaches an output, so a clip's prediction does not depend on
what it was batched with).
"""

from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from audioseq import SAMPLE_RATE
from audioseq.config_schema import check
from audioseq.data.audio import read_audio
from audioseq.data.batching import as_is, collate
from audioseq.data.entries import Entry
from audioseq.data.example import Example
from audioseq.data.skipping import SkipPolicy
from audioseq.errors import ConfigError, DataError
from audioseq.tasks.checkpoint import load_checkpoint, task_path
from audioseq.tasks.classification import AudioClassifier


@dataclass(frozen=True)
class Prediction:
    """Top-k labels of one clip (``window`` None) or of one window of it; ``start`` and
    ``end`` are seconds from the start of the file."""

    path: str
    window: int | None
    start: float
    end: float
    labels: list[str]
    probs: list[float]


def resolve_device(name: str) -> torch.device:
    """``auto``: the GPU when there is one, else the CPU; ``cpu``, ``cuda``, ``cuda:1``..."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"device: expected auto, cpu or cuda[:N], got {name!r}") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={name}: no CUDA GPU is available (use device=auto or cpu)")
    return device


def window_spans(num_samples: int, window: int, hop: int) -> list[tuple[int, int]]:
    """``[start, end)`` sample spans of ``window`` samples every ``hop`` samples, until one
    reaches the end of the clip (the last may be shorter); a clip no longer than one
    window is one span."""
    if window < 1 or hop < 1:
        raise ConfigError(f"window and hop must be at least one sample, got {window}, {hop}")
    spans, start = [], 0
    while True:
        end = min(start + window, num_samples)
        spans.append((start, end))
        if end >= num_samples or start + hop >= num_samples:
            return spans
        start += hop


class Predictor:
    """An AudioClassifier in eval mode on ``device``, mapping waveforms to probabilities."""

    def __init__(self, model: AudioClassifier, device: torch.device) -> None:
        self.model = model.eval().to(device)
        self.device = device
        self.labels: list[str] = list(model.labels)

    @classmethod
    def from_checkpoint(cls, path: str | Path, device: str = "auto") -> "Predictor":
        """Everything comes from the checkpoint: weights, frontend, labels, sample rate."""
        model, _ = load_checkpoint(path)
        if getattr(model, "frame_level", False):
            raise ConfigError(
                f"ckpt_path: {path}: a task=detect checkpoint finds events in recordings, not "
                "a label per clip: audioseq-stream ckpt_path=... input=FILE prints a "
                "recording's events, audioseq-eval ckpt_path=... scores them on annotated data"
            )
        if not isinstance(model, AudioClassifier):
            raise ConfigError(
                f"ckpt_path: {path}: predict needs a classifier checkpoint "
                f"(this one holds a {task_path(model)})"
            )
        rate = model.hparams["features"].get("sample_rate", SAMPLE_RATE)
        if rate != SAMPLE_RATE:
            raise ConfigError(
                f"ckpt_path: {path}: model expects {rate} Hz, inputs are {SAMPLE_RATE}"
            )
        return cls(model, resolve_device(device))

    @torch.inference_mode()
    def probabilities(self, clips: list[torch.Tensor]) -> torch.Tensor:
        """Class probabilities [B, C] (on the CPU) of 16 kHz mono waveforms of any lengths."""
        batch = collate([Example(str(i), clip) for i, clip in enumerate(clips)])
        audio = batch["audio"].to(self.device, non_blocking=True)
        logits = self.model(audio, batch["lengths"].to(self.device))
        return logits.float().softmax(dim=-1).cpu()


class _Decoded(Dataset):
    """Decodes one entry per item in a worker; a DataError travels back as (message,
    reason), because the main process decides whether to raise or skip."""

    def __init__(self, entries: list[Entry]) -> None:
        self.entries = entries

    def __len__(self) -> int:
        return len(self.entries)

    def __getitem__(self, index: int) -> tuple[int, torch.Tensor | None, tuple[str, str] | None]:
        entry = self.entries[index]
        try:
            return index, read_audio(entry.path, entry.offset, entry.duration), None
        except DataError as e:
            return index, None, (str(e), e.reason)


@dataclass
class _Pending:
    """A decoded clip whose rows are not all computed yet."""

    entry: Entry
    rows: list[Prediction | None]
    spans: list[tuple[int | None, int, int]]
    left: int = field(init=False)

    def __post_init__(self) -> None:
        self.left = len(self.spans)


def predict_entries(
    predictor: Predictor,
    entries: list[Entry],
    policy: SkipPolicy,
    *,
    batch_size: int = 32,
    top_k: int = 3,
    window_seconds: float | None = None,
    hop_seconds: float | None = None,
    num_workers: int = 0,
    on_clip_done: Callable[[], None] | None = None,
) -> Iterator[Prediction]:
    """Predictions in input order: per clip its whole-clip row, then, for clips longer
    than ``window_seconds`` (when set), one row per window, ``hop_seconds`` apart (default:
    the window length).

    Unreadable clips go to ``policy`` (raise, or skip and count); ``on_clip_done`` is
    called once per clip, predicted or skipped (a progress bar's advance).
    """
    check("batch_size", batch_size, "predict")  # audioseq-predict's rules
    check("top_k", top_k, "predict")
    window = hop = None
    if window_seconds is not None:
        hop_seconds = window_seconds if hop_seconds is None else hop_seconds
        window, hop = round(window_seconds * SAMPLE_RATE), round(hop_seconds * SAMPLE_RATE)
        if window < 1 or hop < 1:
            raise ConfigError(
                f"window_seconds and hop_seconds must be > 0, got {window_seconds}, {hop_seconds}"
            )
    k = min(top_k, len(predictor.labels))
    loader = DataLoader(
        _Decoded(entries), batch_size=None, num_workers=num_workers, collate_fn=as_is
    )
    queue: deque[tuple[_Pending, int, torch.Tensor]] = deque()  # segments for the model
    waiting: deque[_Pending] = deque()  # clips in input order, rows not all computed

    def run(count: int) -> Iterator[Prediction]:
        segments = [queue.popleft() for _ in range(count)]
        probs = predictor.probabilities([audio for _, _, audio in segments])
        top = probs.topk(k, dim=-1)
        for (clip, slot, _), values, indices in zip(segments, top.values, top.indices, strict=True):
            window_index, start, end = clip.spans[slot]
            clip.rows[slot] = Prediction(
                path=str(clip.entry.path),
                window=window_index,
                start=round(clip.entry.offset + start / SAMPLE_RATE, 6),
                end=round(clip.entry.offset + end / SAMPLE_RATE, 6),
                labels=[predictor.labels[i] for i in indices.tolist()],
                probs=[round(p, 6) for p in values.tolist()],
            )
            clip.left -= 1
        while waiting and not waiting[0].left:
            yield from waiting.popleft().rows  # type: ignore[misc]
            if on_clip_done:
                on_clip_done()

    for index, audio, error in loader:
        entry = entries[index]
        if error is not None:
            policy(DataError(*error), entry.where, str(entry.path))
            if on_clip_done:
                on_clip_done()
            continue
        spans: list[tuple[int | None, int, int]] = [(None, 0, audio.shape[0])]
        if window is not None and hop is not None and audio.shape[0] > window:
            spans += [
                (i, s, e) for i, (s, e) in enumerate(window_spans(audio.shape[0], window, hop))
            ]
        clip = _Pending(entry, [None] * len(spans), spans)
        waiting.append(clip)
        queue.extend((clip, slot, audio[start:end]) for slot, (_, start, end) in enumerate(spans))
        while len(queue) >= batch_size:
            yield from run(batch_size)
    while queue:
        yield from run(min(batch_size, len(queue)))
