"""FrameDetector: a class (or background) at every frame of long recordings, trained with
truncated back-propagation through time.

frontend -> causal encoder -> linear head at every frame, frame cross-entropy against the
labels of frame-labelled data (``data.corpus=dialling``, or manifests with ``events``).
Only causal models are accepted (a unidirectional encoder, no pooling, no per-recording
normalisation), so the model that is trained is the one ``audioseq-stream`` runs.

Lightning 2 has no truncated BPTT, so training uses manual optimisation: each batch of B
recordings is cut into chunks of ``tbptt_frames`` frames (:mod:`audioseq.models.chunks`:
the frontend's overlap and the encoder state carried, the state detached between chunks),
with one optimiser step per chunk, or per ``accumulate`` chunks. Memory then depends on
the chunk, not on the recording. ``tbptt_frames=null`` is full BPTT: one chunk per batch.
The learning-rate schedule advances once per batch. Validation and test run the same
chunks without gradients, and score events with the rule ``audioseq-stream`` uses.
"""

from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import torch
import torch.nn.functional as F
from lightning.pytorch.strategies import ParallelStrategy
from torchmetrics import MaxMetric, SumMetric
from torchmetrics.classification import MulticlassAccuracy

from audioseq import SAMPLE_RATE
from audioseq.callbacks.tensorboard import tensorboard_writer
from audioseq.config_schema import check
from audioseq.data.batching import Batch
from audioseq.data.frame_labels import BACKGROUND, LABEL_HOP, PAD
from audioseq.errors import ConfigError
from audioseq.models.chunks import Chunk, chunk_count, run_chunks
from audioseq.models.heads import LinearHead
from audioseq.tasks.base import AudioTask
from audioseq.tasks.detection_figure import posteriors_figure
from audioseq.tasks.event_scoring import f_scores, match, onsets
from audioseq.tasks.events import Event, EventDetector
from audioseq.tasks.metrics import WeightedMean

#: The labels-vs-posteriors image shows at most this many frames of the first recording.
FIGURE_FRAMES = 3000


class FrameDetector(AudioTask):
    """Per-frame classification with a background class (``labels[0]``)."""

    uses_labels = False  # learns from batch["frame_labels"]; there is no clip label
    frame_level = True  # its head's output at every frame is the answer (it streams as is)
    epoch_metrics = ("train_acc",)  # carried by checkpoints for exact resume
    run_metrics = ("val_event_f1_best",)

    def __init__(
        self,
        features: dict[str, Any],
        model: dict[str, Any],
        labels: list[str],
        optimizer: dict[str, Any],
        scheduler: dict[str, Any] | None = None,
        tbptt_frames: int | None = None,
        accumulate: int = 1,
        gradient_clip_val: float | None = None,
        gradient_clip_algorithm: str = "norm",
        label_smoothing: float = 0.0,
        onset_tolerance_ms: float = 100.0,
        smooth_ms: float = 50.0,
        threshold: float = 0.5,
        refractory_ms: float = 100.0,
    ) -> None:
        super().__init__(features, model)
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.labels = list(labels)
        if len(self.labels) < 2 or self.labels[0] != BACKGROUND:
            raise ConfigError(
                "task=detect needs frame-labelled data (data.corpus=dialling, or manifests whose "
                f"lines carry 'events'); these labels have no {BACKGROUND} class: {self.labels}"
            )
        if getattr(self.encoder, "bidirectional", False):
            raise ConfigError(
                "task=detect needs a causal encoder: a bidirectional one reads the future and "
                "cannot stream (set model.encoder.bidirectional=false)"
            )
        if model.get("pooling") is not None:
            raise ConfigError(
                f"task=detect classifies every frame, so model.pooling={model['pooling']} "
                "would pool them away (leave it null, as task=detect sets it)"
            )
        if self.frontend.norm.mode == "utterance":
            raise ConfigError(
                "task=detect needs causal features: features.normalize=utterance uses the "
                "whole recording's statistics (set features.normalize=global)"
            )
        check("task.tbptt_frames", tbptt_frames)  # the config schema's rules
        check("trainer.accumulate_grad_batches", accumulate)
        self.tbptt_frames, self.accumulate = tbptt_frames, accumulate
        self.head = LinearHead(
            self.encoder.output_size, len(self.labels), model.get("head_dropout", 0)
        )
        classes = len(self.labels)
        for stage in ("train", "val", "test"):  # no argument checks in the training steps
            accuracy = MulticlassAccuracy(
                classes, average="micro", ignore_index=PAD, validate_args=stage != "train"
            )
            setattr(self, f"{stage}_acc", accuracy)
        for stage in ("val", "test"):
            setattr(self, f"{stage}_loss", WeightedMean())
            for count in ("hits", "false_alarms", "misses"):
                setattr(self, f"{stage}_{count}", SumMetric())
        self.val_event_f1_best = MaxMetric()
        self._pending = 0  # chunks back-propagated since the last optimiser step
        self._figure: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, audio: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Frame logits [B, F, C] of whole recordings in one pass (padded frames: garbage)."""
        features, frame_lengths = self.frontend(audio, lengths)
        outputs, _ = self.encoder(features, frame_lengths)
        return self.head(outputs)

    def chunks(self, audio: torch.Tensor, lengths: torch.Tensor):
        """The batch's frame logits, ``tbptt_frames`` frames at a time (state carried)."""
        return run_chunks(self.frontend, self.encoder, self.head, audio, lengths, self.tbptt_frames)

    def targets(self, frame_labels: torch.Tensor, chunk: Chunk) -> torch.Tensor:
        """The class of each of the chunk's frames [rows, width]: the label step under the
        frame's centre; -1 past a recording's end."""
        width = chunk.outputs.shape[1]
        frames = chunk.start + torch.arange(width, device=frame_labels.device)
        hop, win = self.frontend.hop_length, self.frontend.win_length
        steps = (frames * hop + win // 2) // LABEL_HOP
        labels = frame_labels[chunk.rows.to(frame_labels.device)]
        picked = labels[:, steps.clamp(max=labels.shape[1] - 1)]
        valid = (steps < labels.shape[1]) & (
            torch.arange(width, device=labels.device) < chunk.frames.to(labels.device)[:, None]
        )
        return torch.where(valid, picked, PAD)

    def _loss(self, chunk: Chunk, targets: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Summed frame cross-entropy over the chunk's labelled frames, and their count."""
        total = F.cross_entropy(
            chunk.outputs.flatten(0, 1).float(),
            targets.flatten(),
            ignore_index=PAD,
            reduction="sum",
            label_smoothing=self.hparams.label_smoothing,
        )
        return total, int((targets != PAD).sum())

    def _chunks_to_run(self, batch: Batch) -> int:
        """This batch's chunk count; under DDP the largest of any rank, so that every rank
        runs as many backward passes (and gradient all-reduces) as the others."""
        count = chunk_count(self.frontend, batch["lengths"], self.tbptt_frames)
        if self.trainer.world_size > 1:
            count_t = torch.tensor(count, device=self.device)
            count = int(self.trainer.strategy.reduce(count_t, reduce_op="max"))
        return count

    def _backward(self, loss: torch.Tensor, last_of_batch: bool) -> None:
        """Back-propagate one chunk; step the optimiser every ``accumulate`` chunks (and at
        the epoch's last chunk), clipping the gradients as ``trainer.gradient_clip_*`` say.
        Under DDP only the backward pass of a chunk that steps all-reduces the gradients
        (every rank decides alike: the counts are the same on all of them); the ones
        before it accumulate locally, as DDP's ``no_sync`` is meant for."""
        self._pending += 1
        steps = self._pending == self.accumulate or (last_of_batch and self.trainer.is_last_batch)
        strategy = self.trainer.strategy
        local = not steps and isinstance(strategy, ParallelStrategy)
        with strategy.block_backward_sync() if local else nullcontext():
            self.manual_backward(loss / self.accumulate)
        if not steps:
            return
        optimizer = self.optimizers()
        if self.hparams.gradient_clip_val:
            self.clip_gradients(
                optimizer,
                gradient_clip_val=self.hparams.gradient_clip_val,
                gradient_clip_algorithm=self.hparams.gradient_clip_algorithm,
            )
        optimizer.step()
        optimizer.zero_grad()
        self._pending = 0

    def training_step(self, batch: Batch, batch_idx: int) -> None:
        count = self._chunks_to_run(batch)
        chunks = (
            self.chunks(batch["audio"], batch["lengths"]) if len(batch["lengths"]) else iter(())
        )
        total, frames = 0.0, 0
        for index in range(count):
            chunk = next(chunks, None)
            if chunk is None:  # this rank's recordings have ended: a zero step with the rest
                self._backward(self._empty_loss(), index == count - 1)
                continue
            targets = self.targets(batch["frame_labels"], chunk)
            loss, labelled = self._loss(chunk, targets)
            self._backward(loss / max(labelled, 1), index == count - 1)
            self.train_acc.update(chunk.outputs.detach().argmax(-1), targets)  # epoch only
            total, frames = total + float(loss.detach()), frames + labelled
        scheduler = self.lr_schedulers()
        if scheduler is not None:
            scheduler.step()
        if frames:
            size = len(batch["lengths"])
            loss = torch.tensor(total / frames)
            self.log(
                "train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=size
            )
        self.log("train/frame_acc", self.train_acc, on_step=False, on_epoch=True)

    def _detectors(self, size: int) -> list[EventDetector]:
        hop, win = self.frontend.hop_length, self.frontend.win_length
        return [
            EventDetector(
                self.labels,
                frame_step=hop / SAMPLE_RATE,
                first_frame_end=win / SAMPLE_RATE,
                smooth_ms=self.hparams.smooth_ms,
                threshold=self.hparams.threshold,
                refractory_ms=self.hparams.refractory_ms,
                ignore=[BACKGROUND],
            )
            for _ in range(size)
        ]

    def events(
        self,
        audio: torch.Tensor,
        lengths: torch.Tensor,
        on_chunk: Callable[[Chunk], None] | None = None,
    ) -> list[list[Event]]:
        """The events of each recording, found on its frame posteriors by the rule
        ``audioseq-stream`` applies (background never fires); ``on_chunk`` sees every
        chunk's outputs on the way (the metrics use the same pass)."""
        size = len(lengths)
        detectors, events = self._detectors(size), [[] for _ in range(size)]
        for chunk in self.chunks(audio, lengths) if size else ():
            if on_chunk is not None:
                on_chunk(chunk)
            probs = chunk.outputs.float().softmax(-1).cpu()
            for j, row in enumerate(chunk.rows.nonzero().flatten().tolist()):
                events[row] += detectors[row].update(probs[j, : int(chunk.frames[j])])[1]
        return events

    def _evaluate(self, batch: Batch, batch_idx: int, stage: str) -> None:
        """Chunked like training (memory bounded by the chunk): frame loss and accuracy,
        events per recording matched against the annotated onsets. The metric objects are
        logged on every batch so that every DDP rank takes part in their sync."""
        loss_metric, acc = getattr(self, f"{stage}_loss"), getattr(self, f"{stage}_acc")
        shown: list[torch.Tensor] = []

        def score(chunk: Chunk) -> None:
            targets = self.targets(batch["frame_labels"], chunk)
            loss, labelled = self._loss(chunk, targets)
            if labelled:
                loss_metric(loss / labelled, weight=labelled)
            acc(chunk.outputs.argmax(-1), targets)
            if stage == "val" and batch_idx == 0 and chunk.rows[0] and chunk.start < FIGURE_FRAMES:
                probs = chunk.outputs[0].float().softmax(-1).cpu()
                shown.append(torch.cat([targets[0, :, None].float().cpu(), probs], dim=1))

        events = self.events(batch["audio"], batch["lengths"], score)
        if shown:
            rows = torch.cat(shown)[:FIGURE_FRAMES]
            self._figure = (rows[:, 0].long(), rows[:, 1:])
        tolerance = self.hparams.onset_tolerance_ms / 1000
        for row, found in enumerate(events):
            counts = match(found, onsets(batch["frame_labels"][row]), tolerance)
            for name in ("hits", "false_alarms", "misses"):
                getattr(self, f"{stage}_{name}")(getattr(counts, name))
        self.log(f"{stage}/loss", loss_metric, prog_bar=stage == "val")
        self.log(f"{stage}/frame_acc", acc, prog_bar=stage == "val")

    def _log_events(self, stage: str) -> torch.Tensor:
        """``stage/event_precision``, ``_recall`` and ``_f1`` from the counts of all ranks
        (the same on every rank: ``sync_dist`` only keeps Lightning from warning that an
        epoch value logged under DDP may differ between ranks)."""
        counts = [
            float(getattr(self, f"{stage}_{n}").compute())
            for n in ("hits", "false_alarms", "misses")
        ]
        scores = f_scores(*counts)
        for name, value in zip(("precision", "recall", "f1"), scores, strict=True):
            shown = name == "f1" and stage == "val"
            self.log(f"{stage}/event_{name}", value, prog_bar=shown, sync_dist=True)
        for name in ("hits", "false_alarms", "misses"):
            getattr(self, f"{stage}_{name}").reset()
        return torch.tensor(scores[2])

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "val")

    def on_validation_epoch_end(self) -> None:
        f1 = self._log_events("val")
        if self.trainer.sanity_checking:
            return
        self.val_event_f1_best(f1)
        self.log("val/event_f1_best", self.val_event_f1_best.compute(), sync_dist=True)
        writer = tensorboard_writer(self.trainer)
        if writer is not None and self._figure is not None:
            step = self.frontend.hop_length / SAMPLE_RATE
            fig = posteriors_figure(*self._figure, self.labels, step)
            writer.add_figure("val/posteriors", fig, global_step=self.global_step)
        self._figure = None

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, batch_idx, "test")

    def on_test_epoch_end(self) -> None:
        self._log_events("test")
