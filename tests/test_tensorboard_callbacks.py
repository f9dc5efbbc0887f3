"""TensorBoard at real class counts: a confusion figure that scales with the classes, the
most confused pairs as text, and misclassified clips picked across classes."""

import re
from pathlib import Path
from types import SimpleNamespace

import torch
from in_process import train
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard_events import read_events, tags
from tiny_models import make_classifier

from audioseq.callbacks.confusion import (
    ConfusedPair,
    confused_markdown,
    confusion_figure,
    most_confused,
)
from audioseq.callbacks.samples import AudioSampleLogger, Mistake, choose_mistakes

MISCLASSIFIED = re.compile(r"misclassified/(\d+)_true_(.+)_pred_(.+)_p(\d\.\d\d)/audio")


def test_most_confused_pairs_of_a_known_matrix() -> None:
    matrix = torch.tensor([[5, 3, 0], [1, 6, 1], [0, 4, 2]])
    pairs = most_confused(matrix, ["a", "b", "c"], top=3)
    assert pairs == [
        ConfusedPair("c", "b", 4, 4 / 6),
        ConfusedPair("a", "b", 3, 3 / 8),
        ConfusedPair("b", "a", 1, 1 / 8),  # ties with b -> c: row-major order
    ]
    assert matrix.diagonal().tolist() == [5, 6, 2]  # the caller's matrix is left alone
    assert most_confused(torch.eye(3, dtype=torch.int64), ["a", "b", "c"]) == []


def test_most_confused_as_markdown() -> None:
    table = confused_markdown([ConfusedPair("*", "a|b", 4, 0.25)]).splitlines()
    assert table[0] == "| true | predicted | clips | share of true |"
    assert table[2] == r"| \* | a\|b | 4 | 25.0% |"  # labels are text, not Markdown
    assert "every clip" in confused_markdown([])


def _figure(classes: int):
    matrix = torch.full((classes, classes), 3) + torch.diag(torch.full((classes,), 50))
    return confusion_figure(matrix, [f"class_{i}" for i in range(classes)], "val")


def test_confusion_figure_scales_with_the_class_count() -> None:
    small, large, huge = _figure(3), _figure(40), _figure(100)
    sizes = [fig.get_size_inches()[0] for fig in (small, large, huge)]
    assert sizes[0] < sizes[1] <= sizes[2] <= 14  # 1400 px at 100 dpi: TensorBoard shows it
    for fig in (small, large, huge):
        ax = fig.axes[0]
        fonts = {t.get_fontsize() for t in ax.get_xticklabels() + ax.get_yticklabels()}
        assert all(5 <= font <= 10 for font in fonts), fonts
    assert len(small.axes[0].texts) == 9  # every count written in its cell
    assert len(large.axes[0].texts) == 0  # 1 600 cells: the counts go to the text table


def _mistakes(true: int, confidences: list[float]) -> list[Mistake]:
    return [Mistake(true, (true + 1) % 12, c, torch.zeros(0)) for c in confidences]


def test_misclassified_clips_span_classes_most_confident_first() -> None:
    # In validation order, sorted by class: class 0's many mistakes come first.
    mistakes = (
        _mistakes(0, [0.9, 0.95, 0.99, 0.97, 0.98])
        + _mistakes(1, [0.4, 0.6])
        + _mistakes(2, [0.8])
        + _mistakes(3, [0.3])
        + _mistakes(4, [0.5, 0.2])
    )
    chosen = choose_mistakes(mistakes, 4)
    assert [(m.true, m.confidence) for m in chosen] == [(0, 0.99), (2, 0.8), (1, 0.6), (4, 0.5)]
    # Fewer classes than clips: round after round, each class's next best.
    chosen = choose_mistakes(_mistakes(0, [0.9, 0.7, 0.5]) + _mistakes(1, [0.8, 0.3]), 5)
    assert [m.confidence for m in chosen] == [0.9, 0.8, 0.7, 0.3, 0.5]
    assert choose_mistakes([], 4) == []


def test_the_scan_runs_in_eval_mode_and_restores_each_module_mode(tmp_path: Path) -> None:
    model = make_classifier()  # 3 classes, untrained and seeded: most of the 8 clips are wrong
    model.train()
    model.head.eval()  # a module kept in eval mode by choice stays so
    seen = []
    model.register_forward_pre_hook(lambda module, args: seen.append(module.training))
    batch = {
        "audio": torch.randn(8, 4000, generator=torch.Generator().manual_seed(1)),
        "lengths": torch.full((8,), 4000),
        "label": torch.arange(8) % 3,
    }
    logger = TensorBoardLogger(tmp_path, name="", version="")
    # Only the hook's inputs, not a fit: the end-to-end test below runs the real Trainer.
    trainer = SimpleNamespace(
        is_global_zero=True, loggers=[logger], val_dataloaders=[batch], global_step=3
    )
    AudioSampleLogger(num_clips=2).on_train_end(trainer, model)
    logger.experiment.flush()
    assert seen and not any(seen)
    assert model.training and not model.head.training and model.encoder.training
    assert len([t for t in tags(tmp_path, "audio") if t.startswith("misclassified/")]) == 2


def test_a_weak_12_class_run_logs_confusions_and_mistakes_of_many_classes(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "run"
    # Four training steps of an 8-unit LSTM leave the model near chance (1/12): most of the
    # 96 validation clips (about 8 per class) are wrong, in far more than 4 classes, and the
    # choice takes one clip per class before any class's second, so the 4 clips come from 4
    # classes whatever the exact weights. The fixed seed makes the run repeatable anyway.
    train(
        "trainer.max_epochs=1",
        "data.train_size=64",
        "data.val_size=96",
        "data.test_size=32",
        "data.batch_size=16",
        "data.num_workers=0",  # two busy CPU cores: worker start-up would dominate the run
        "model.encoder.hidden_size=8",
        "model.encoder.num_layers=1",
        "features.stats_batches=2",
        "seed=1234",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
        timeout=120,
    )
    texts = {"val/most_confused/text_summary", "test/most_confused/text_summary"}
    assert texts <= tags(run_dir, "tensors"), sorted(tags(run_dir, "tensors"))
    table = _text(run_dir, "val/most_confused/text_summary")
    assert table.startswith("| true | predicted | clips | share of true |"), table
    assert len(table.splitlines()) == 2 + 10  # header, alignment, the top 10 pairs
    clips = [MISCLASSIFIED.fullmatch(t) for t in tags(run_dir, "audio")]
    clips = sorted((m for m in clips if m), key=lambda m: int(m[1]))
    assert len(clips) == 4, sorted(tags(run_dir, "audio"))
    assert len({m[2] for m in clips}) == 4  # four true classes, not the first one four times
    confidences = [float(m[4]) for m in clips]
    assert confidences == sorted(confidences, reverse=True)
    assert all(0.08 <= c <= 1 for c in confidences)  # a max over 12 classes: >= 1/12


def _text(run_dir: Path, tag: str) -> str:
    """The last text logged under ``tag``."""
    events = [
        e for acc in read_events(run_dir) if tag in acc.Tags()["tensors"] for e in acc.Tensors(tag)
    ]
    return events[-1].tensor_proto.string_val[0].decode()
