"""AudioClassifier: clip classification with any frontend and any recurrent encoder."""

from typing import Any

import lightning.pytorch as pl
import torch
from hydra.utils import instantiate
from torch import nn
from torchmetrics import MaxMetric, MeanMetric
from torchmetrics.classification import MulticlassAccuracy, MulticlassF1Score

from audioseq.data.collate import Batch
from audioseq.models.frontends import Frontend
from audioseq.models.heads import LinearHead
from audioseq.models.pooling import Pooling
from audioseq.tasks.checkpoint import TASK_KEY, task_path
from audioseq.tasks.feature_stats import estimate_global_stats


class AudioClassifier(pl.LightningModule):
    """frontend -> encoder -> masked pooling -> linear head, trained with cross-entropy.

    Built from plain config dictionaries (``features``, ``model``) so that a checkpoint
    carries everything needed to rebuild it: ``AudioClassifier.load_from_checkpoint(path)``.
    """

    def __init__(
        self,
        features: dict[str, Any],
        model: dict[str, Any],
        labels: list[str],
        optimizer: dict[str, Any],
        scheduler: dict[str, Any] | None = None,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.labels = list(labels)
        num_classes = len(self.labels)
        self.frontend: Frontend = instantiate(features)
        self.encoder = instantiate(model["encoder"], input_size=self.frontend.num_features)
        self.pooling = Pooling(model.get("pooling", "last"), self.encoder.bidirectional)
        self.head = LinearHead(self.encoder.output_size, num_classes, model.get("head_dropout", 0))
        self.loss_fn = nn.CrossEntropyLoss(label_smoothing=label_smoothing)
        self.train_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_acc = MulticlassAccuracy(num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes, average="micro")
        self.val_f1 = MulticlassF1Score(num_classes, average="macro")
        self.test_f1 = MulticlassF1Score(num_classes, average="macro")
        self.val_loss, self.test_loss = MeanMetric(), MeanMetric()
        self.val_acc_best = MaxMetric()

    def forward(self, audio: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits [B, C] for a padded batch of waveforms [B, T] with valid ``lengths``."""
        features, frame_lengths = self.frontend(audio, lengths)
        outputs, _ = self.encoder(features, frame_lengths)
        return self.head(self.pooling(outputs, frame_lengths))

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[TASK_KEY] = task_path(self)

    def on_fit_start(self) -> None:
        if not bool(self.frontend.norm.ready):
            estimate_global_stats(self.frontend, self.trainer)

    def _step(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self(batch["audio"], batch["lengths"])
        return self.loss_fn(logits.float(), batch["label"]), logits.argmax(-1)

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        loss, preds = self._step(batch)
        self.train_acc(preds, batch["label"])
        size = len(batch["label"])
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=size)
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, batch_size=size)
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> dict[str, torch.Tensor]:
        loss, preds = self._step(batch)
        self.val_loss(loss, weight=len(batch["label"]))
        self.val_acc(preds, batch["label"])
        self.val_f1(preds, batch["label"])
        self.log("val/loss", self.val_loss, prog_bar=True)
        self.log("val/acc", self.val_acc, prog_bar=True)
        self.log("val/f1_macro", self.val_f1)
        return {"preds": preds}

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        self.val_acc_best(self.val_acc.compute())
        self.log("val/acc_best", self.val_acc_best.compute(), sync_dist=True)

    def test_step(self, batch: Batch, batch_idx: int) -> dict[str, torch.Tensor]:
        loss, preds = self._step(batch)
        self.test_loss(loss, weight=len(batch["label"]))
        self.test_acc(preds, batch["label"])
        self.test_f1(preds, batch["label"])
        self.log("test/loss", self.test_loss)
        self.log("test/acc", self.test_acc)
        self.log("test/f1_macro", self.test_f1)
        return {"preds": preds}

    def configure_optimizers(self) -> Any:
        optimizer = instantiate(self.hparams.optimizer)(params=self.parameters())
        if not self.hparams.scheduler:
            return optimizer
        total = self.trainer.estimated_stepping_batches
        scheduler = instantiate(self.hparams.scheduler)(optimizer, total_steps=total)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
