"""AudioClassifier: clip classification with any frontend and any recurrent encoder."""

from typing import Any

import torch
from torch import nn
from torchmetrics import MaxMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from audioseq.data.batching import Batch
from audioseq.errors import ConfigError
from audioseq.models.heads import LinearHead
from audioseq.models.pooling import Pooling
from audioseq.tasks.base import AudioTask
from audioseq.tasks.metrics import WeightedMean


class AudioClassifier(AudioTask):
    """frontend -> encoder -> masked pooling -> linear head, trained with cross-entropy.

    Built from plain config dictionaries (``features``, ``model``) so that a checkpoint
    carries everything needed to rebuild it: ``AudioClassifier.load_from_checkpoint(path)``.
    """

    epoch_metrics = ("train_loss", "train_acc")
    run_metrics = ("val_acc_best",)

    def __init__(
        self,
        features: dict[str, Any],
        model: dict[str, Any],
        labels: list[str],
        optimizer: dict[str, Any],
        scheduler: dict[str, Any] | None = None,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__(features, model)
        self.save_hyperparameters()
        self.labels = list(labels)
        num_classes = len(self.labels)
        if num_classes < 2:
            raise ConfigError(
                f"task=classify needs labelled data with at least 2 classes, got {self.labels}"
            )
        self.pooling = Pooling(
            model.get("pooling", "last"), self.encoder.bidirectional, self.encoder.output_size
        )
        self.head = LinearHead(self.encoder.output_size, num_classes, model.get("head_dropout", 0))
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.train_loss = WeightedMean()
        # validate_args=False: argmax predictions and checked labels need no checks, whose
        # reads of device values would make every training step wait for a GPU.
        self.train_acc = MulticlassAccuracy(num_classes, average="micro", validate_args=False)
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_f1 = MulticlassF1Score(num_classes, average="macro")
        self.test_f1 = MulticlassF1Score(num_classes, average="macro")
        self.val_loss, self.test_loss = WeightedMean(), WeightedMean()
        self.val_acc_best = MaxMetric()

    def forward(self, audio: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits [B, C] for a padded batch of waveforms [B, T] with valid ``lengths``."""
        features, frame_lengths = self.frontend(audio, lengths)
        outputs, _ = self.encoder(features, frame_lengths)
        return self.head(self.pooling(outputs, frame_lengths))

    def _step(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self(batch["audio"], batch["lengths"])
        return self.loss_fn(logits.float(), batch["label"]), logits.argmax(-1)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        size = len(batch["label"])
        if size:
            loss, preds = self._step(batch)
            self.train_acc.update(preds, batch["label"])  # logged per epoch only: no batch value
            self.train_loss(loss.detach(), weight=size)
        else:
            loss = self._empty_loss()
        # Logged on every batch (even an all-skipped one, which shows the previous step's
        # loss): every DDP rank then syncs the same metrics in the same order at the
        # epoch's end. Metric objects, so that checkpoints carry the epoch's running state.
        self.log("train/loss", self.train_loss, on_step=True, on_epoch=True, prog_bar=True)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True)
        return loss

    def _evaluate(self, batch: Batch, stage: str) -> dict[str, torch.Tensor]:
        """Update and log ``stage``'s metrics. The metric objects are logged on every
        batch, also one whose samples were all skipped, so that every DDP rank takes part
        in their sync at the epoch's end."""
        loss_metric, acc, f1 = (getattr(self, f"{stage}_{m}") for m in ("loss", "acc", "f1"))
        preds = batch["label"].new_empty(0)
        if len(batch["label"]):
            loss, preds = self._step(batch)
            loss_metric(loss, weight=len(batch["label"]))
            acc(preds, batch["label"])
            f1(preds, batch["label"])
        self.log(f"{stage}/loss", loss_metric, prog_bar=stage == "val")
        self.log(f"{stage}/acc", acc, prog_bar=stage == "val")
        self.log(f"{stage}/f1_macro", f1)
        return {"preds": preds}

    def validation_step(self, batch: Batch, batch_idx: int) -> dict[str, torch.Tensor]:
        return self._evaluate(batch, "val")

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        self.val_acc_best(self.val_acc.compute())
        self.log("val/acc_best", self.val_acc_best.compute(), sync_dist=True)

    def test_step(self, batch: Batch, batch_idx: int) -> dict[str, torch.Tensor]:
        return self._evaluate(batch, "test")
