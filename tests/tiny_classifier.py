"""A real but tiny trained classifier, trained once per test session and shared by the
predict and eval-report tests (a few batches: its accuracy does not matter to them)."""

from pathlib import Path

import pytest
from in_process import audioseq

#: Clips in the test split of the run (eval reports must count exactly these).
TEST_CLIPS = 48

TINY = [
    "debug=fast",  # 3 training batches, 1 epoch, no workers
    "data.train_size=64",
    "data.val_size=32",
    f"data.test_size={TEST_CLIPS}",
    "data.batch_size=16",
    "model.encoder.hidden_size=8",
    "model.encoder.num_layers=1",
    "features.stats_batches=1",
    "test=false",
]

_RUNS: dict[Path, Path] = {}


def tiny_classifier_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run directory (``checkpoints/best.ckpt``...) of one training via scripts/train.py."""
    session = tmp_path_factory.getbasetemp()
    if session not in _RUNS:
        work = tmp_path_factory.mktemp("tiny_classifier")
        audioseq("train", *TINY, f"hydra.run.dir={work / 'run'}", cwd=work)
        _RUNS[session] = work / "run"
    return _RUNS[session]
