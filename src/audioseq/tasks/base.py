"""AudioTask: what every audioseq task shares (frontend, encoder, optimiser, checkpoints)."""

from typing import Any

import lightning.pytorch as pl
import torch
from hydra.utils import instantiate

from audioseq.models.frontends import Frontend
from audioseq.tasks.checkpoint import TASK_KEY, task_path
from audioseq.tasks.feature_stats import estimate_global_stats
from audioseq.tasks.resume_state import (
    load_metric_state,
    metric_state,
    random_states,
    set_random_states,
)

#: Checkpoint key of what a resumed run needs besides Lightning's state (resume_state).
RESUME_KEY = "audioseq_resume"


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
    #: torchmetrics attributes that accumulate over a training epoch (emptied when one
    #: starts), and ones that span the run (a best-so-far). Checkpoints carry their states,
    #: so a run resumed in the middle of an epoch ends it with the metrics of the whole.
    epoch_metrics: tuple[str, ...] = ()
    run_metrics: tuple[str, ...] = ()

    def __init__(self, features: dict[str, Any], model: dict[str, Any]) -> None:
        super().__init__()
        self.frontend: Frontend = instantiate(features)
        self.encoder = instantiate(model["encoder"], input_size=self.frontend.num_features)
        self._random_states: dict[str, Any] | None = None  # to restore when training starts

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[TASK_KEY] = task_path(self)
        names = (*self.epoch_metrics, *self.run_metrics)
        checkpoint[RESUME_KEY] = {
            "metrics": {name: metric_state(getattr(self, name)) for name in names},
            "random": random_states(),
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get(RESUME_KEY)
        if saved is None:  # a checkpoint written before these were saved
            return
        for name, state in saved["metrics"].items():
            load_metric_state(getattr(self, name), state)
        self._random_states = saved["random"]

    def on_train_start(self) -> None:
        """A resumed run draws dropout and SpecAugment masks on from where the checkpoint
        left the random streams, as the uninterrupted run did. Single process only: a DDP
        checkpoint holds rank 0's streams, and each rank keeps those ``RankSeed`` gave it."""
        states, self._random_states = self._random_states, None
        if states is not None and self.trainer.world_size == 1:
            set_random_states(states)

    def on_train_epoch_start(self) -> None:
        # A checkpoint taken at an epoch's end carries that epoch's full state (Lightning
        # runs this hook only when an epoch starts, not when one is resumed).
        for name in self.epoch_metrics:
            getattr(self, name).reset()

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
