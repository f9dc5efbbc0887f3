"""``last.ckpt`` every N training steps or M minutes, in the middle of epochs too."""

from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint


class PeriodicLast(ModelCheckpoint):
    """A ModelCheckpoint whose saves never fall between an epoch's last batch and its end.

    Lightning resumes from a checkpoint taken on an epoch's last batch (before validation)
    by starting the next epoch: that epoch's validation and end (its logged metrics, a
    possible new best checkpoint) never happen, so the resumed run is not the
    uninterrupted one. A step-based save due on the last batch therefore waits for the
    epoch's end, after validation; a time-based one for the next batch.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._deferred = False

    def on_train_batch_end(
        self,
        trainer: pl.Trainer,
        pl_module: pl.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
    ) -> None:
        if not trainer.fit_loop.epoch_loop.batch_progress.is_last_batch:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
            return
        every = self._every_n_train_steps
        self._deferred = every >= 1 and trainer.global_step % every == 0

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, pl_module)
        if self._deferred and not self._should_skip_saving_checkpoint(trainer):
            self._save_last_checkpoint(trainer, self._monitor_candidates(trainer))
        self._deferred = False
