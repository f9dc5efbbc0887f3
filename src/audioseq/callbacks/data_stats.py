"""What the data did this epoch: skipped samples by reason and the share of padding."""

from typing import Any

import lightning.pytorch as pl
import torch

from audioseq.data.skipping import REASONS
from audioseq.heartbeat import beat


class DataStatsLogger(pl.Callback):
    """Logs per training epoch, over all ranks:

    - ``data/skipped`` and ``data/skipped/<reason>`` (with ``data.on_error=skip``):
      samples dropped; those dropped while checking lists at set-up count in epoch 0;
    - ``data/padding_share``: the fraction of the audio tensor that was zero-padding.

    Counts are kept on each rank and summed in one all-reduce at the epoch's end, a
    collective every rank reaches whatever its batches held (even all-skipped ones).
    Checkpoints carry the epoch's counts so far, so that a run resumed in its middle
    logs the whole epoch's (a single process's exactly; in DDP only rank 0's are saved,
    and the other ranks start the resumed epoch from zero).
    """

    def __init__(self) -> None:
        self._counts = torch.zeros(len(REASONS) + 2, dtype=torch.float64)  # reasons, pad, total
        self._setup_skips: dict[str, int] = {}

    def state_dict(self) -> dict[str, Any]:
        return {"counts": self._counts.clone(), "setup_skips": dict(self._setup_skips)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._counts.copy_(state_dict["counts"])
        self._setup_skips = dict(state_dict["setup_skips"])

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not trainer.is_global_zero:  # rank 0's counts came with a checkpoint, if any
            self._counts.zero_()
        elif trainer.global_step == 0:  # every rank checked the same lists: count them once
            self._setup_skips = dict(getattr(trainer.datamodule, "skipped_at_setup", {}) or {})

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._counts.zero_()
        for reason, count in self._setup_skips.items():
            self._counts[REASONS.index(reason)] += count
        self._setup_skips = {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        for reason, count in batch.get("skipped", {}).items():
            self._counts[REASONS.index(reason)] += int(count)
        audio, lengths = batch["audio"], batch["lengths"]
        self._counts[-2] += audio.numel() - int(lengths.sum())
        self._counts[-1] += audio.numel()

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        device = pl_module.device if pl_module.device.type != "mps" else "cpu"
        counts = trainer.strategy.reduce(self._counts.to(device), reduce_op="sum").cpu()
        beat("data statistics all-reduced")
        log = dict(on_step=False, on_epoch=True, sync_dist=False, rank_zero_only=True)
        if counts[-1] > 0:
            pl_module.log("data/padding_share", float(counts[-2] / counts[-1]), **log)
        hparams = getattr(trainer.datamodule, "hparams", {})
        if hparams.get("on_error") == "skip":
            pl_module.log("data/skipped", float(counts[: len(REASONS)].sum()), **log)
            for index, reason in enumerate(REASONS):
                pl_module.log(f"data/skipped/{reason}", float(counts[index]), **log)
