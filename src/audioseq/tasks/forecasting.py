"""FrameForecaster: next-frame prediction (autoregressive predictive coding), no labels.

From the features up to frame t the encoder predicts frame t + ``shift`` with an L1 loss.
Nothing but audio is needed, so any source trains it (labels are ignored), and the trained
encoder can start a classifier (``model.init_from``). The loss is reported beside the
copy-the-last-frame baseline (predict frame t + shift = frame t): ``loss_ratio`` < 1 means
the model has learnt something about how the sound goes on.
"""

from typing import Any

import torch
from torch import nn
from torchmetrics import MinMetric

from audioseq.config_schema import check
from audioseq.data.batching import Batch
from audioseq.errors import ConfigError
from audioseq.models.masking import frame_mask
from audioseq.tasks.base import AudioTask
from audioseq.tasks.metrics import WeightedMean


def shifted_l1(
    predictions: torch.Tensor, features: torch.Tensor, frame_lengths: torch.Tensor, shift: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of ``|predictions[:, t] - features[:, t + shift]|`` over every feature of every
    valid t (t + shift below the clip's frame length), and the number of terms.

    Returning the sum and count, not the mean, lets batches of any padding be combined
    exactly: padded frames are neither inputs nor targets.
    """
    steps = features.shape[1] - shift
    if steps <= 0:
        zero = predictions.sum() * 0.0
        return zero, zero.detach()
    valid = frame_mask(frame_lengths - shift, steps).unsqueeze(-1)  # [B, steps, 1]
    error = (predictions[:, :steps].float() - features[:, shift:].float()).abs()
    total = torch.where(valid, error, 0.0).sum()
    count = valid.sum() * features.shape[-1]
    return total, count.to(total.dtype)


class FrameForecaster(AudioTask):
    """frontend -> causal encoder -> linear head predicting the frame ``shift`` steps ahead.

    The head predicts the change from the current frame (prediction = frame t + head(h_t))
    and starts at zero: an untrained model is the copy-last baseline, and training only has
    to learn how the sound moves on, which is what the encoder should capture (without it,
    short runs spend their steps relearning the identity and stay above the baseline).

    The same constructor as AudioClassifier (``labels`` is accepted and ignored; ``model``'s
    pooling and head settings do not apply), so ``task=forecast`` swaps it in. The targets
    are the normalised features without SpecAugment; only the encoder's input is masked.
    """

    uses_labels = False
    epoch_metrics = ("train_loss",)
    run_metrics = ("val_loss_best",)

    def __init__(
        self,
        features: dict[str, Any],
        model: dict[str, Any],
        labels: list[str] | None = None,
        optimizer: dict[str, Any] | None = None,
        scheduler: dict[str, Any] | None = None,
        shift: int = 3,
    ) -> None:
        super().__init__(features, model)
        self.save_hyperparameters()
        check("task.shift", shift)  # the config schema's rule
        if getattr(self.encoder, "bidirectional", False):
            raise ConfigError(
                "task=forecast needs a causal encoder: a bidirectional one sees the frames it "
                "should predict (set model.encoder.bidirectional=false)"
            )
        self.shift = shift
        self.labels = list(labels or [])
        self.head = nn.Linear(self.encoder.output_size, self.frontend.num_features)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)
        self.train_loss = WeightedMean()
        for stage in ("val", "test"):
            setattr(self, f"{stage}_loss", WeightedMean())
            setattr(self, f"{stage}_baseline", WeightedMean())
        self.val_loss_best = MinMetric()

    def features(
        self, audio: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Encoder inputs (SpecAugment in training), clean targets, and frame lengths."""
        raw, frame_lengths = self.frontend.raw(audio, lengths)
        targets = self.frontend.norm(raw, frame_lengths)
        inputs = targets
        if self.training and self.frontend.specaugment is not None:
            inputs = self.frontend.specaugment(targets, frame_lengths)
        return inputs, targets, frame_lengths

    def predict_frames(self, inputs: torch.Tensor, frame_lengths: torch.Tensor) -> torch.Tensor:
        """[B, F, D] predictions from encoder inputs: row t predicts frame t + shift."""
        outputs, _ = self.encoder(inputs, frame_lengths)
        return inputs + self.head(outputs)

    def forward(
        self, audio: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Predictions [B, F, D] (row t predicts frame t + shift) and frame lengths [B]."""
        inputs, _, frame_lengths = self.features(audio, lengths)
        return self.predict_frames(inputs, frame_lengths), frame_lengths

    def errors(self, batch: Batch) -> dict[str, torch.Tensor]:
        """Summed L1 errors of the model and of the copy-last baseline over the batch's
        valid (t, t + shift) pairs, and their count."""
        inputs, targets, frame_lengths = self.features(batch["audio"], batch["lengths"])
        predictions = self.predict_frames(inputs, frame_lengths)
        model, count = shifted_l1(predictions, targets, frame_lengths, self.shift)
        baseline, _ = shifted_l1(targets, targets, frame_lengths, self.shift)
        return {"model": model, "baseline": baseline.detach(), "count": count}

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        errors = self.errors(batch) if len(batch["lengths"]) else None
        if errors is None or not errors["count"]:  # all skipped, or clips too short
            loss = self._empty_loss()
        else:
            loss = errors["model"] / errors["count"]
            self.train_loss(loss.detach(), weight=len(batch["lengths"]))
        # A metric object (its running state goes into checkpoints), logged on every batch
        # so that every DDP rank syncs it at the epoch's end.
        self.log("train/loss", self.train_loss, on_step=True, on_epoch=True, prog_bar=True)
        return loss

    def _evaluate(self, batch: Batch, stage: str) -> None:
        """Update and log ``stage``'s means, weighted by the number of predicted values so
        that the epoch's value is exact whatever the batching. Logged on every batch (even
        an empty one) so every DDP rank takes part in the sync at the epoch's end."""
        loss, baseline = getattr(self, f"{stage}_loss"), getattr(self, f"{stage}_baseline")
        if len(batch["lengths"]):
            errors = self.errors(batch)
            if errors["count"]:
                loss(errors["model"] / errors["count"], weight=errors["count"])
                baseline(errors["baseline"] / errors["count"], weight=errors["count"])
        self.log(f"{stage}/loss", loss, prog_bar=stage == "val")
        self.log(f"{stage}/baseline_loss", baseline)

    def _log_ratio(self, stage: str) -> torch.Tensor:
        """``stage/loss_ratio`` = model / copy-last baseline (both synced over ranks)."""
        loss = getattr(self, f"{stage}_loss").compute()
        baseline = getattr(self, f"{stage}_baseline").compute()
        self.log(f"{stage}/loss_ratio", loss / baseline.clamp(min=1e-12), prog_bar=stage == "val")
        return loss

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def on_validation_epoch_end(self) -> None:
        if self.trainer.sanity_checking:
            return
        self.val_loss_best(self._log_ratio("val"))
        self.log("val/loss_best", self.val_loss_best.compute(), sync_dist=True)

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._log_ratio("test")
