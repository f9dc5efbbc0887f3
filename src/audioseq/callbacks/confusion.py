"""The confusion matrix in TensorBoard at the end of every validation (and test): an image
that stays readable from 2 to ~100 classes, and the most confused pairs as a text table,
because at tens of classes the numbers no longer fit in the cells."""

import re
from dataclasses import dataclass

import lightning.pytorch as pl
import torch
from matplotlib.figure import Figure
from torchmetrics.classification import MulticlassConfusionMatrix

from audioseq.callbacks.tensorboard import tensorboard_writer

CELL_INCHES = 0.4  # preferred cell size; cells shrink once the figure reaches MAX_INCHES
MARGIN_INCHES = 2.0  # tick labels, axis labels and title
MIN_INCHES, MAX_INCHES = 4.0, 14.0  # 400 to 1400 px at matplotlib's default 100 dpi
MIN_FONT, MAX_FONT = 5.0, 10.0  # tick labels, in points
ANNOTATE_MIN_CELL_PT = 24.0  # counts only in cells that fit a 4-digit number


def confusion_figure(matrix: torch.Tensor, labels: list[str], title: str) -> Figure:
    """Row-normalised confusion matrix (rows: true class). The figure grows with the class
    count up to ``MAX_INCHES``, then cells shrink; tick labels shrink with the cells (not
    below ``MIN_FONT``) and counts are written in the cells only while they fit."""
    counts = matrix.cpu().numpy()
    rates = counts / counts.sum(axis=1, keepdims=True).clip(min=1)
    n = len(labels)
    cell = min(CELL_INCHES, (MAX_INCHES - MARGIN_INCHES) / n)
    size = min(max(MIN_INCHES, MARGIN_INCHES + cell * n), MAX_INCHES)
    cell_pt = 72 * cell
    font = min(max(0.5 * cell_pt, MIN_FONT), MAX_FONT)
    counts_font = min(0.3 * cell_pt, 8.0)
    fig = Figure(figsize=(size, size))  # no pyplot: no global backend or figure state
    ax = fig.subplots()
    ax.imshow(rates, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(n), labels, rotation=90, fontsize=font)
    ax.set_yticks(range(n), labels, fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if cell_pt >= ANNOTATE_MIN_CELL_PT:
        for row, col in zip(*counts.nonzero(), strict=True):
            colour = "white" if rates[row, col] > 0.5 else "black"
            count = int(counts[row, col])
            ax.text(col, row, count, ha="center", va="center", fontsize=counts_font, color=colour)
    fig.tight_layout()
    return fig


@dataclass(frozen=True)
class ConfusedPair:
    """``count`` clips of class ``true`` predicted as ``predicted``: ``share`` of all
    clips of ``true``."""

    true: str
    predicted: str
    count: int
    share: float


def most_confused(matrix: torch.Tensor, labels: list[str], top: int = 10) -> list[ConfusedPair]:
    """The ``top`` largest off-diagonal counts of a confusion matrix (rows: true class),
    largest first; ties: larger share first, then row-major order."""
    counts = matrix.detach().cpu().to(torch.int64, copy=True)
    support = counts.sum(dim=1).clamp(min=1)
    pairs = [
        ConfusedPair(labels[t], labels[p], int(counts[t, p]), int(counts[t, p]) / int(support[t]))
        for t, p in counts.fill_diagonal_(0).nonzero().tolist()
    ]
    return sorted(pairs, key=lambda pair: (-pair.count, -pair.share))[:top]


def confused_markdown(pairs: list[ConfusedPair]) -> str:
    """``pairs`` as a Markdown table, which TensorBoard's text tab renders as a table."""
    if not pairs:
        return "No confusions: every clip got its true class."
    rows = [
        f"| {_escape(p.true)} | {_escape(p.predicted)} | {p.count} | {p.share:.1%} |" for p in pairs
    ]
    return "\n".join(["| true | predicted | clips | share of true |", "|---|---|--:|--:|", *rows])


def _escape(label: str) -> str:
    """A label as literal Markdown text: ``*``, ``_``, ``|``... would otherwise format."""
    return re.sub(r"([\\`*_\[\]|])", r"\\\1", label)


class ConfusionMatrixLogger(pl.Callback):
    """Accumulates predictions of each validation/test epoch (synced over ranks) and logs
    the matrix as an image under ``<stage>/confusion_matrix`` and its most confused pairs
    as text under ``<stage>/most_confused`` (stage: ``val`` or ``test``)."""

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
            labels, step = pl_module.labels, trainer.global_step
            fig = confusion_figure(matrix, labels, f"{stage}, epoch {trainer.current_epoch}")
            writer.add_figure(f"{stage}/confusion_matrix", fig, global_step=step)
            pairs = most_confused(matrix, labels)
            writer.add_text(f"{stage}/most_confused", confused_markdown(pairs), step)
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
