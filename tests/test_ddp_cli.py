"""Real 2-process DDP (gloo on CPU) through Hydra: single runs and -m sweeps."""

import json
import subprocess
import sys
from pathlib import Path

from audioseq.cli.multirun_ddp import job_argv

ROOT = Path(__file__).resolve().parents[1]

TINY = [
    "trainer=ddp_cpu",
    "data.train_size=256",
    "data.val_size=64",
    "data.test_size=64",
    "data.batch_size=16",
    "data.num_workers=0",
    "data.persistent_workers=false",
    "model.encoder.hidden_size=16",
    "model.encoder.num_layers=1",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "features.stats_batches=2",
    "callbacks.model_summary=null",
]


def train(*overrides: str, cwd: Path) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "scripts" / "train.py"), *overrides]
    result = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-4000:]
    return result


def test_ddp_run_writes_one_run_directory(tmp_path: Path) -> None:
    run_dir = tmp_path / "logs" / "run"
    train(*TINY, f"hydra.run.dir={run_dir}", cwd=tmp_path)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert {"val/acc", "test/acc", "epochs"} <= set(metrics)
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()
    # Rank 1 ran in the same directory: its own log file, no second .hydra or metrics.
    assert (run_dir / "train_ddp_process_1.log").is_file()
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == ["run"]


def test_ddp_inside_multirun_runs_each_job_once(tmp_path: Path) -> None:
    """Each job's rank 1 runs that job alone, in the job's folder: one multirun folder in all.

    (Without the fix, rank 1 re-ran the whole sweep into a timestamped folder of its own.)
    """
    logs = tmp_path / "logs"
    train("-m", *TINY, "model=rnn,gru", f"paths.log_dir={logs}", cwd=tmp_path)
    sweeps = list((logs / "train" / "multiruns").iterdir())
    assert len(sweeps) == 1, sweeps
    assert not (logs / "train" / "runs").exists()
    sweep = sweeps[0]
    jobs = sorted(p.name for p in sweep.iterdir() if p.is_dir())
    assert jobs == ["0", "1"]
    for job, cell in (("0", "rnn"), ("1", "gru")):
        config = (sweep / job / ".hydra" / "config.yaml").read_text()
        assert f"cell: {cell}" in config
        assert "test/acc" in json.loads((sweep / job / "metrics.json").read_text())
        assert (sweep / job / "train_ddp_process_1.log").is_file()


def test_job_argv_keeps_flags_and_drops_the_sweep() -> None:
    argv = ["train.py", "-m", "--config-name", "train", "model=rnn,gru", "seed=1"]
    assert job_argv(argv, ["model=gru", "seed=1"]) == [
        "train.py",
        "--config-name",
        "train",
        "model=gru",
        "seed=1",
    ]
