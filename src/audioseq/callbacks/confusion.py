"""A confusion-matrix image in TensorBoard at the end of every validation (and test)."""

import lightning.pytorch as pl
import torch
from matplotlib.figure import Figure
from torchmetrics.classification import MulticlassConfusionMatrix

from audioseq.callbacks.tensorboard import tensorboard_writer


def confusion_figure(matrix: torch.Tensor, labels: list[str], title: str) -> Figure:
    """Row-normalised confusion matrix (rows: true class) with counts in the cells."""
    counts = matrix.cpu().numpy()
    rates = counts / counts.sum(axis=1, keepdims=True).clip(min=1)
    size = max(4.0, 0.45 * len(labels) + 2)
    fig = Figure(figsize=(size, size))  # no pyplot: no global backend or figure state
    ax = fig.subplots()
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(labels)), labels, rotation=90)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if len(labels) <= 40:
        for row, col in zip(*counts.nonzero(), strict=True):
            colour = "white" if rates[row, col] > 0.5 else "black"
            ax.text(
                col, row, int(counts[row, col]), ha="center", va="center", fontsize=7, color=colour
            )
    fig.tight_layout()
    return fig


class ConfusionMatrixLogger(pl.Callback):
    """Accumulates predictions of each validation/test epoch (synced over ranks) and logs
    the matrix as an image under ``val/confusion_matrix`` / ``test/confusion_matrix``."""

    def __init__(self) -> None:
        self._matrix: MulticlassConfusionMatrix | None = None

    def _reset(self, pl_module: pl.LightningModule) -> None:
        if not getattr(pl_module, "uses_labels", True):  # e.g. task=forecast: no classes
            self._matrix = None
            return
        self._matrix = MulticlassConfusionMatrix(len(pl_module.labels)).to(pl_module.device)

    def _update(self, outputs, batch) -> None:
        if self._matrix is not None and outputs is not None:
            self._matrix.update(outputs["preds"], batch["label"])

    def _log(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._matrix is None or trainer.sanity_checking:
            return
        matrix = self._matrix.compute()  # all ranks take part in the sync
        writer = tensorboard_writer(trainer)
        if writer is not None:
            fig = confusion_figure(
                matrix, pl_module.labels, f"{stage}, epoch {trainer.current_epoch}"
            )
            writer.add_figure(f"{stage}/confusion_matrix", fig, global_step=trainer.global_step)
        self._matrix = None

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._reset(pl_module)

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ):
        self._update(outputs, batch)

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        self._log(trainer, pl_module, "val")

    def on_test_epoch_start(self, trainer, pl_module) -> None:
        self._reset(pl_module)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        self._update(outputs, batch)

    def on_test_epoch_end(self, trainer, pl_module) -> None:
        self._log(trainer, pl_module, "test")
