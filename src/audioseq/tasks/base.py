"""AudioTask: what every audioseq task shares (frontend, encoder, optimiser, checkpoints)."""

from typing import Any

import lightning.pytorch as pl
import torch
from hydra.utils import instantiate

from audioseq.models.frontends import Frontend
from audioseq.tasks.checkpoint import TASK_KEY, task_path
from audioseq.tasks.feature_stats import estimate_global_stats


class AudioTask(pl.LightningModule):
    """A frontend and an encoder built from plain config dicts (``features``, ``model``).

    Subclasses add their head, loss and metrics and call ``save_hyperparameters()`` in
    their own ``__init__``, so a checkpoint carries everything needed to rebuild them.
    Keeping the frontend and encoder here means one task's encoder loads into another
    (``model.init_from``) under the same parameter names.
    """

    #: Whether the task learns from ``batch["label"]``. Label-dependent callbacks (confusion
    #: matrix, misclassified clips) and eval's label check apply only when it does.
    uses_labels: bool = True

    def __init__(self, features: dict[str, Any], model: dict[str, Any]) -> None:
        super().__init__()
        self.frontend: Frontend = instantiate(features)
        self.encoder = instantiate(model["encoder"], input_size=self.frontend.num_features)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[TASK_KEY] = task_path(self)

    def on_fit_start(self) -> None:
        if not bool(self.frontend.norm.ready):
            estimate_global_stats(self.frontend, self.trainer)

    def _empty_loss(self) -> torch.Tensor:
        """A zero loss that still reaches every trainable parameter: a batch whose samples
        were all skipped must not leave this rank out of DDP's gradient all-reduce."""
        return sum(p.sum() for p in self.parameters() if p.requires_grad) * 0.0

    def configure_optimizers(self) -> Any:
        """The optimiser over the trainable parameters (a frozen encoder is left out), and
        the schedule stepped every optimiser step."""
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = instantiate(self.hparams.optimizer)(params=params)
        if not self.hparams.scheduler:
            return optimizer
        total = self.trainer.estimated_stepping_batches
        scheduler = instantiate(self.hparams.scheduler)(optimizer, total_steps=total)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }
