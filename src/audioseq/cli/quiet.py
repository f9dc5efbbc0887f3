"""Dropping noise that tells our users nothing: Lightning's advertising tips and warnings
that do not apply here."""

import logging
import warnings


class _DropTips(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("💡 Tip")


_DROP_TIPS = _DropTips()


def quiet_lightning() -> None:
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).addFilter(_DROP_TIPS)
    # Our IterableDatasets shard over ranks and workers themselves, so their length is exact.
    warnings.filterwarnings("ignore", message="Your `IterableDataset` has `__len__` defined")
    # train/loss is logged unsynced on purpose: its step value would otherwise cost an
    # all-reduce every step; the epoch value is rank 0's mean (docs/DISTRIBUTED.md).
    warnings.filterwarnings("ignore", message=r"It is recommended to use `self.log\('train/loss'")
