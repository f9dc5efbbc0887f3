"""audioseq-eval's per-class report: precision, recall, F1 and the confusion matrix.

The matrix is accumulated by the same callback that draws it in TensorBoard during
training, so it is synced over DDP ranks by torchmetrics; every number of the report is
derived from it, which keeps the CSV files consistent with each other.
"""

import csv
from dataclasses import astuple, dataclass, fields
from pathlib import Path

import lightning.pytorch as pl
import torch
from rich.table import Table

from audioseq.callbacks.confusion import ConfusionMatrixLogger, confusion_figure


class ConfusionCollector(ConfusionMatrixLogger):
    """Keeps the evaluated split's confusion matrix (rows: true class) in ``matrix``
    instead of logging an image; ``matrix`` stays None for tasks without classes."""

    def __init__(self) -> None:
        super().__init__()
        self.matrix: torch.Tensor | None = None

    def _log(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if self._matrix is None or trainer.sanity_checking:
            return
        self.matrix = self._matrix.compute().cpu()  # all ranks take part in the sync
        self._matrix = None


@dataclass(frozen=True)
class ClassScores:
    """One class's row of the report: ``support`` true clips, ``predicted`` clips given
    this label."""

    label: str
    precision: float
    recall: float
    f1: float
    support: int
    predicted: int


def per_class(matrix: torch.Tensor, labels: list[str]) -> list[ClassScores]:
    """Scores from a confusion matrix; a class never predicted (or never present) scores 0,
    as torchmetrics does."""
    # Not torchmetrics' Multiclass{Precision,Recall,F1Score}(average=None): they take
    # predictions, not a matrix (it would have to be expanded back into label pairs), and
    # they divide in float32, which changes per_class.csv (measured, torchmetrics 1.9: 4671
    # of 6096 values differ over 300 random matrices, by up to 3e-8, e.g. 0.45588235294117646
    # -> 0.45588234066963196). Their zero-division rule (0) is the same as here.
    counts = matrix.to(torch.float64)
    hits = counts.diagonal()
    precision = hits / counts.sum(dim=0).clamp(min=1)
    recall = hits / counts.sum(dim=1).clamp(min=1)
    f1 = 2 * precision * recall / (precision + recall).clamp(min=1e-12)
    columns = zip(labels, precision, recall, f1, matrix.sum(dim=1), matrix.sum(dim=0), strict=True)
    return [
        ClassScores(label, float(p), float(r), float(f), int(s), int(n))
        for label, p, r, f, s, n in columns
    ]


def write_report(
    run_dir: str | Path, matrix: torch.Tensor, labels: list[str], title: str
) -> list[Path]:
    """``per_class.csv``, ``confusion_matrix.csv`` (rows: true, columns: predicted) and
    ``confusion_matrix.png`` in ``run_dir``; returns their paths."""
    run_dir = Path(run_dir)
    scores_path = run_dir / "per_class.csv"
    with scores_path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([field.name for field in fields(ClassScores)])
        writer.writerows(astuple(s) for s in per_class(matrix, labels))
    matrix_path = run_dir / "confusion_matrix.csv"
    with matrix_path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["true\\predicted", *labels])
        writer.writerows([label, *row] for label, row in zip(labels, matrix.tolist(), strict=True))
    image_path = run_dir / "confusion_matrix.png"
    confusion_figure(matrix, labels, title).savefig(image_path, dpi=100)
    return [scores_path, matrix_path, image_path]


def scores_table(scores: list[ClassScores], stage: str) -> Table:
    """The per-class scores as a rich table. Its last row is their macro average over the
    classes that occur as truth or prediction (torchmetrics' rule, so that it equals
    ``f1_macro``) and the total counts."""
    names = ("precision", "recall", "f1", "support", "predicted")
    table = Table("class", *names, title=f"{stage}: per class")
    for s in scores:
        table.add_row(s.label, *(_cell(getattr(s, name)) for name in names))
    seen = [s for s in scores if s.support or s.predicted] or scores
    mean = [sum(getattr(s, name) for s in seen) / max(len(seen), 1) for name in names[:3]]
    total = [sum(getattr(s, name) for s in scores) for name in names[3:]]
    table.add_section()
    table.add_row("macro avg", *(_cell(v) for v in (*mean, *total)))
    return table


def _cell(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:.4f}"
