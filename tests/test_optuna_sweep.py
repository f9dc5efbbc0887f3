"""hparams_search=optuna: a real 3-trial study in SQLite, resumed by the same command, and
the comparison report that every -m sweep writes into its folder."""

from pathlib import Path

import optuna
import yaml
from in_process import train

TINY = [
    "data.train_size=128",
    "data.val_size=64",
    "data.test_size=64",
    "trainer.max_epochs=1",
    "hydra.sweeper.n_trials=3",
]


def test_three_trials_then_the_same_command_adds_three_more(tmp_path):
    logs = tmp_path / "logs"
    command = ["-m", "hparams_search=optuna", *TINY, f"paths.log_dir={logs}"]
    for expected in (3, 6):
        train(*command, cwd=tmp_path, timeout=600)
        study = optuna.load_study(
            study_name="train_search", storage=f"sqlite:///{logs}/train/optuna/train_search.db"
        )
        assert len(study.trials) == expected
        assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
        assert {"task.optimizer.lr", "model.encoder.cell"} <= set(study.best_params)
    sweeps = sorted((logs / "train" / "multiruns").iterdir())
    assert len(sweeps) == 2
    for sweep in sweeps:
        result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
        assert 0.0 <= result["best_value"] <= 1.0
        table = (sweep / "compare_runs.md").read_text()
        assert table.count("\n") >= 2 + 3  # header, rule, a row per trial
        assert (sweep / "compare_runs.png").stat().st_size > 0


def test_a_grid_sweep_writes_its_comparison(tmp_path: Path):
    logs = tmp_path / "logs"
    train("-m", "model=rnn,gru", *TINY[:-1], f"paths.log_dir={logs}", cwd=tmp_path, timeout=600)
    (sweep,) = (logs / "train" / "multiruns").iterdir()
    table = (sweep / "compare_runs.md").read_text()
    assert "rnn" in table and "gru" in table
