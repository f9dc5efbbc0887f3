"""Real 2-process DDP (gloo on CPU) as users run it: the README's distributed commands as
written, the default callbacks and the rich progress bar on (writing to a pipe, as under CI
or nohup), every source, 0 and 2 workers, skips on one rank only, early stopping, the
forecast task and -m sweeps. Each command runs in its own process group with a timeout
that fails with every process's stack (tests/processes.py)."""

import json
import os
import re
import shlex
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from processes import ROOT, run, train
from shard_corpus import make_shards
from tensorboard_events import scalars, tags
from torch.utils.data import DistributedSampler

from audioseq.callbacks.rank_seed import rank_seed
from audioseq.cli.multirun_ddp import job_argv

SEED = 1234  # conf/train.yaml
#: Small sizes appended to every command; nothing is switched off.
SMALL = [
    "data.batch_size=8",
    "model.encoder.hidden_size=16",
    "model.encoder.num_layers=1",
    "trainer.max_epochs=1",
    "features.stats_batches=2",
]
SYNTHETIC_SMALL = ["data.train_size=64", "data.val_size=32", "data.test_size=32"]


def readme_ddp_commands() -> list[str]:
    """Every ``audioseq-train`` command of the README's bash blocks that runs DDP."""
    text = (ROOT / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            command = line.split(" #")[0].strip()
            if command.startswith("audioseq-train") and "trainer=ddp" in command:
                commands.append(" ".join(command.split()))
    return list(dict.fromkeys(commands))


def run_dirs(logs: Path) -> list[Path]:
    """Every folder holding a run's .hydra or metrics.json under ``logs``."""
    found = {p.parent for p in logs.rglob(".hydra")} | {
        p.parent for p in logs.rglob("metrics.json")
    }
    return sorted(found)


def check_run(run_dir: Path, epochs: int = 1) -> dict:
    """A finished DDP run: one .hydra, metrics, checkpoints, rank 1's own log, no hang."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs"] == epochs, metrics
    assert (run_dir / ".hydra" / "config.yaml").is_file()
    assert (run_dir / "checkpoints" / "best.ckpt").is_file()
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()
    assert (run_dir / "train_ddp_process_1.log").is_file()
    assert not (run_dir / "hang").exists()
    return metrics


def test_the_readme_shows_distributed_commands() -> None:
    commands = readme_ddp_commands()
    assert "audioseq-train trainer=ddp_cpu" in commands
    assert any(c.startswith("audioseq-train -m") for c in commands)
    assert any("data=shards" in c for c in commands)


@pytest.mark.parametrize("command", readme_ddp_commands())
def test_readme_ddp_command_runs_as_written(command: str, tmp_path: Path) -> None:
    """The README's command, small sizes appended, in a folder holding the data it names."""
    args = shlex.split(command)[1:]
    if any(a in ("trainer=ddp", "trainer=gpu") for a in args) and not torch.cuda.is_available():
        pytest.skip("needs GPUs")
    if "data=shards" in args:
        make_shards(tmp_path / "data", 48, per_shard=12, name="train")
        make_shards(tmp_path / "data", 16, per_shard=8, name="val")
    small = SMALL + ([] if any(a.startswith("data=") for a in args) else SYNTHETIC_SMALL)
    console_script = Path(sys.executable).with_name("audioseq-train")
    result = run([console_script, *args, *small], cwd=tmp_path, timeout=240)
    assert "Traceback" not in result.stderr
    logs = tmp_path / "logs" / "train"
    dirs = run_dirs(logs)
    if "-m" in args:
        sweeps = list((logs / "multiruns").iterdir())
        assert len(sweeps) == 1 and not (logs / "runs").exists()
        assert dirs == [sweeps[0] / "0", sweeps[0] / "1"]
    else:
        assert len(dirs) == 1 and dirs[0].parent == logs / "runs"
    for run_dir in dirs:
        check_run(run_dir)
    if "data.num_workers" not in command:  # the default, auto: said by one rank per run
        said = (result.stdout + result.stderr).count("data.num_workers=auto:")
        assert said == len(dirs), result.stdout + result.stderr


def write_tone_corpus(root: Path, split: str, count: int, corrupt: set[int] = frozenset()) -> Path:
    """``count`` real 0.5 s WAV clips of two classes and their manifest; the clips at the
    positions in ``corrupt`` are files that do not decode."""
    lines = []
    for i in range(count):
        path = root / split / f"{i:03d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        label = ("low", "high")[i % 2]
        if i in corrupt:
            path.write_bytes(b"RIFF this is not audio")
        else:
            t = np.arange(8000) / 16000
            wave = 0.3 * np.sin(2 * np.pi * (300 if label == "low" else 1200) * t)
            sf.write(str(path), wave.astype(np.float32), 16000, subtype="PCM_16")
        lines.append(json.dumps({"audio_filepath": path.name, "duration": 0.5, "label": label}))
    manifest = root / split / "manifest.jsonl"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def test_ddp_manifest_two_workers_skips_on_one_rank_and_gradient_flow(tmp_path: Path) -> None:
    """Rank 0's whole first batch and one more clip are corrupt, rank 1 has none: rank 0
    trains on an all-skipped batch while rank 1 trains on a full one, and both finish."""
    batch = 4
    rank0 = list(DistributedSampler(range(32), 2, 0, shuffle=True, seed=SEED))  # epoch 0
    corrupt = set(rank0[:batch]) | {rank0[batch + 1]}
    splits = {
        "train": write_tone_corpus(tmp_path, "train", 32, corrupt),
        "val": write_tone_corpus(tmp_path, "val", 8),
        "test": write_tone_corpus(tmp_path, "test", 8),
    }
    run_dir = tmp_path / "run"
    train(
        "data=manifest",
        *(f"data.{split}_manifest={path}" for split, path in splits.items()),
        "trainer=ddp_cpu",
        "data.on_error=skip",
        "data.num_workers=2",
        "callbacks=gradient_flow",
        *SMALL,
        f"data.batch_size={batch}",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
        timeout=240,
    )
    check_run(run_dir)
    points = scalars(run_dir)
    assert points["data/skipped"] == [(points["data/skipped"][0][0], 5.0)]
    assert points["data/skipped/corrupt"][0][1] == 5.0
    assert "gradients/dL_dh" in tags(run_dir, "images")


PROBE = '''
import json, os
import lightning.pytorch as pl
import torch

class RngProbe(pl.Callback):
    """Records each rank's first global-RNG draws after set-up and at its first step."""
    def setup(self, trainer, pl_module, stage):
        self.draws = {"setup": torch.rand(4).tolist()}
    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == 0 and trainer.current_epoch == 0:
            self.draws["first_step"] = torch.rand(4).tolist()
            path = os.path.join(trainer.default_root_dir, f"rng_rank{trainer.global_rank}.json")
            with open(path, "w") as f:
                json.dump(self.draws, f)
'''


def test_ddp_zero_workers_early_stopping_and_per_rank_randomness(tmp_path: Path) -> None:
    """Early stopping stops every rank at the same epoch (2 of 4: no improvement of 1.0
    is possible); each rank's RNG is seeded from (seed, rank): draws differ between ranks
    and are the ones that seed gives."""
    (tmp_path / "rng_probe.py").write_text(PROBE)
    run_dir = tmp_path / "run"
    train(
        "trainer=ddp_cpu",
        "data.num_workers=0",
        "callbacks=early_stopping",
        "callbacks.early_stopping.patience=0",
        "callbacks.early_stopping.min_delta=1.0",
        "+callbacks.rng_probe._target_=rng_probe.RngProbe",
        *SMALL,
        *SYNTHETIC_SMALL,
        "trainer.max_epochs=4",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
        timeout=240,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
    )
    check_run(run_dir, epochs=2)
    draws = [json.loads((run_dir / f"rng_rank{r}.json").read_text()) for r in (0, 1)]
    for rank, drawn in enumerate(draws):
        expected = torch.rand(4, generator=torch.Generator().manual_seed(rank_seed(SEED, rank)))
        assert drawn["setup"] == pytest.approx(expected.tolist())
    assert draws[0]["first_step"] != draws[1]["first_step"]


def test_ddp_forecast(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    train(
        "task=forecast",
        "trainer=ddp_cpu",
        *SMALL,
        *SYNTHETIC_SMALL,
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
        timeout=240,
    )
    metrics = check_run(run_dir)
    assert {"val/loss_ratio", "val/loss_best", "test/loss"} <= set(metrics)


def test_job_argv_keeps_flags_and_drops_the_sweep() -> None:
    argv = ["train.py", "-m", "--config-name", "train", "model=rnn,gru", "seed=1"]
    assert job_argv(argv, ["model=gru", "seed=1"]) == [
        "train.py",
        "--config-name",
        "train",
        "model=gru",
        "seed=1",
    ]
