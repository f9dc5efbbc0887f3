"""The one point where a rank syncs its epoch metrics: the same on every rank.

The rule (docs/DISTRIBUTED.md): every collective runs on every rank, in the same order,
whatever a rank does otherwise. Lightning computes logged epoch metrics lazily: the first
reader of ``trainer.callback_metrics`` or ``trainer.progress_bar_metrics`` triggers the
all-gather of every torchmetrics object and ``sync_dist`` value. The rich progress bar
reads them in its ``on_train_epoch_end`` on rank 0 only (it is disabled elsewhere), so
without this callback rank 0 would sit in a metric's all-gather while rank 1 went on to
the next collective (a deadlock).

``EpochSync`` is the first callback of every trainer (``build_trainer`` puts it there).
At the start of every epoch-end hook it reads the metrics on every rank, in the order they
were logged, which is the same on every rank because every synced metric is logged on
every batch. Later readers (progress bar, TensorBoard callbacks, checkpointing) get the
cached values and start no collective.
"""

import lightning.pytorch as pl

from audioseq.heartbeat import beat


class EpochSync(pl.Callback):
    """Materialises the epoch's synced metrics on every rank before any other callback."""

    @staticmethod
    def _sync(trainer: pl.Trainer) -> None:
        if trainer.world_size > 1:
            _ = trainer.callback_metrics  # computes (and caches) every logged epoch metric
            beat("epoch metrics synced")

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._sync(trainer)

    def on_validation_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._sync(trainer)

    def on_test_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._sync(trainer)
