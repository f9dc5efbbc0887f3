"""Finding the TensorBoard writer and turning matplotlib figures into images for it."""

import lightning.pytorch as pl
from lightning.pytorch.loggers import TensorBoardLogger
from torch.utils.tensorboard import SummaryWriter


def tensorboard_writer(trainer: pl.Trainer) -> SummaryWriter | None:
    """The SummaryWriter of the trainer's TensorBoard logger, on rank 0; else None."""
    if not trainer.is_global_zero:
        return None
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):
            return logger.experiment
    return None
