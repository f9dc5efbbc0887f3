"""audioseq-eval's per-class report: CSV files consistent with each other and with the metrics."""

import csv
import json
import subprocess
from pathlib import Path

import matplotlib.image
import pytest
import torch
from in_process import audioseq
from tiny_classifier import TEST_CLIPS, tiny_classifier_run
from torchmetrics.classification import (
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassPrecision,
    MulticlassRecall,
)

from audioseq.cli.eval_report import per_class


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory) -> tuple[Path, subprocess.CompletedProcess]:
    """An eval run of the shared tiny checkpoint from ckpt_path alone: (run dir, process)."""
    checkpoint = tiny_classifier_run(tmp_path_factory) / "checkpoints" / "best.ckpt"
    work = tmp_path_factory.mktemp("eval")
    result = audioseq(
        "eval",
        f"ckpt_path={checkpoint}",
        f"hydra.run.dir={work / 'run'}",
        cwd=work,
    )
    return work / "run", result


def read_csv(path: Path) -> list[list[str]]:
    with path.open(newline="") as f:
        return list(csv.reader(f))


def test_per_class_scores_follow_from_the_confusion_matrix(evaluated) -> None:
    run_dir, _ = evaluated
    header, *rows = read_csv(run_dir / "confusion_matrix.csv")
    labels = header[1:]
    assert [row[0] for row in rows] == labels
    matrix = [[int(v) for v in row[1:]] for row in rows]
    scores_header, *scores = read_csv(run_dir / "per_class.csv")
    assert scores_header == ["label", "precision", "recall", "f1", "support", "predicted"]
    assert [s[0] for s in scores] == labels
    for i, (_, precision, recall, f1, support, predicted) in enumerate(scores):
        hits, true = matrix[i][i], sum(matrix[i])
        given = sum(row[i] for row in matrix)
        assert (int(support), int(predicted)) == (true, given)
        assert float(precision) == pytest.approx(hits / given if given else 0.0)
        assert float(recall) == pytest.approx(hits / true if true else 0.0)
        p, r = float(precision), float(recall)
        assert float(f1) == pytest.approx(2 * p * r / (p + r) if p + r else 0.0)


def test_totals_match_the_test_split_and_the_metrics(evaluated) -> None:
    run_dir, result = evaluated
    _, *rows = read_csv(run_dir / "confusion_matrix.csv")
    matrix = [[int(v) for v in row[1:]] for row in rows]
    total = sum(map(sum, matrix))
    assert total == TEST_CLIPS
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert sum(matrix[i][i] for i in range(len(matrix))) / total == pytest.approx(
        metrics["test/acc"], abs=1e-6
    )
    assert "test: per class" in result.stdout and "macro avg" in result.stdout
    assert "per-class report written to" in result.stdout


def test_confusion_matrix_png_is_a_valid_image(evaluated) -> None:
    run_dir, _ = evaluated
    path = run_dir / "confusion_matrix.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    image = matplotlib.image.imread(path)
    assert image.ndim == 3 and min(image.shape[:2]) >= 300
    assert image.std() > 0  # not a blank canvas


def test_per_class_agrees_with_torchmetrics() -> None:
    """The same numbers as torchmetrics' per-class scores, also for a class that is never
    predicted and one that never occurs."""
    generator = torch.Generator().manual_seed(0)
    target = torch.randint(0, 4, (200,), generator=generator)  # class 4 never occurs
    preds = torch.where(torch.rand(200, generator=generator) < 0.6, target, (target + 1) % 5)
    preds[preds == 2] = 3  # class 2 never predicted
    matrix = MulticlassConfusionMatrix(5)(preds, target)
    scores = per_class(matrix, list("abcde"))
    for name, metric in (
        ("precision", MulticlassPrecision),
        ("recall", MulticlassRecall),
        ("f1", MulticlassF1Score),
    ):
        expected = metric(5, average=None)(preds, target)
        assert [getattr(s, name) for s in scores] == pytest.approx(expected.tolist(), abs=1e-6)
    assert [s.support for s in scores] == torch.bincount(target, minlength=5).tolist()
    assert [s.predicted for s in scores] == torch.bincount(preds, minlength=5).tolist()


def test_per_class_scores_are_exact_double_precision_ratios() -> None:
    """per_class.csv holds the exact ratios of the counts (torchmetrics' float32 ones would
    differ in the eighth digit), and 0 where a ratio is undefined."""
    matrix = torch.tensor([[5, 1, 1], [2, 0, 1], [0, 0, 0]])  # b never predicted, c never true
    scores = per_class(matrix, list("abc"))
    assert [s.precision for s in scores] == [5 / 7, 0.0, 0.0]
    assert [s.recall for s in scores] == [5 / 7, 0.0, 0.0]
    assert [s.f1 for s in scores] == [2 * (5 / 7) * (5 / 7) / (10 / 7), 0.0, 0.0]
