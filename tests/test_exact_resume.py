"""Exact resume: a run killed with SIGKILL in the middle of an epoch (after a mid-epoch
last.ckpt) and continued with ``resume=RUN_DIR`` ends with the metrics and the number of
optimizer steps of an uninterrupted run, for the synthetic, manifest and shards sources;
and, without training, a training loader restored from its ``state_dict`` yields exactly
the rest of its epoch."""

import contextlib
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from processes import TRAIN, _stacks, train
from shard_corpus import make_shards, write_corpus

from audioseq.data.datamodule import AudioDataModule
from audioseq.data.partition import resumed_workers

AUGMENT = {"time_shift_seconds": 0.05, "gain_db": 6.0}  # the file sources' default kind


def seconds(i: int) -> float:
    """Clip lengths that differ, so batches are padded and crops and shifts matter."""
    return 0.2 + 0.01 * (i % 7)


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> dict[str, list[str]]:
    """Per source, the data overrides of a small corpus of 96 training clips."""
    root = tmp_path_factory.mktemp("corpora")
    train = write_corpus(root / "manifest_train", 96, seconds=seconds)
    val = write_corpus(root / "manifest_val", 24, seconds=seconds)
    return {
        "synthetic": ["data.train_size=96", "data.val_size=24", "data.test_size=24"],
        "manifest": ["data=manifest", f"data.train_manifest={train}", f"data.val_manifest={val}"],
        "shards": [
            "data=shards",
            f"data.train_shards={make_shards(root, 96, 20, seconds=seconds)}",
            f"data.val_shards={make_shards(root, 24, 12, name='val', seconds=seconds)}",
            "data.shuffle_buffer=40",
        ],
    }


# ---- the loader's position ------------------------------------------------------------------


def test_resumed_workers_follow_the_loaders_turns():
    assert resumed_workers([3, 3], 0) == ([0, 0], 0)
    assert resumed_workers([3, 3], 3) == ([2, 1], 1)
    assert resumed_workers([1, 3], 3) == ([1, 2], 0)  # worker 0 ran out after one
    assert resumed_workers([0, 2, 2], 3) == ([0, 2, 1], 2)
    assert resumed_workers([5], 2) == ([2], 0)
    assert resumed_workers([2, 2], 9) == ([2, 2], 0)


def datamodule(overrides: list[str], workers: int) -> AudioDataModule:
    """The DataModule those overrides describe, built directly (no Hydra, no trainer)."""
    options = dict(o.split("=", 1) for o in overrides if not o.startswith("data="))
    options = {k.removeprefix("data."): v for k, v in options.items()}
    for key in ("train_size", "val_size", "test_size", "shuffle_buffer"):
        if key in options:
            options[key] = int(options[key])
    source = next((o[5:] for o in overrides if o.startswith("data=")), "synthetic")
    return AudioDataModule(
        source=source, batch_size=16, num_workers=workers, augment=AUGMENT, seed=5, **options
    )


def fingerprint(batch: dict) -> tuple:
    return tuple(batch["key"]), batch["audio"].double().sum().item(), batch["audio"].shape


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("source", ["synthetic", "manifest", "shards"])
def test_a_restored_loader_yields_the_rest_of_its_epoch(corpora, source, workers):
    """Epoch 1 stopped after 3 batches: a new loader given the old one's state yields the
    epoch's other batches, the same clips with the same augmentation as the reference."""
    reference = datamodule(corpora[source], workers).train_dataloader()
    epochs = [[fingerprint(b) for b in reference] for _ in range(2)]
    assert len(epochs[1]) == len(reference) == 6 and epochs[0] != epochs[1]

    stopped = datamodule(corpora[source], workers).train_dataloader()
    for _ in stopped:  # epoch 0
        pass
    batches = iter(stopped)
    first = [fingerprint(next(batches)) for _ in range(3)]
    state = stopped.state_dict()
    assert state == {"epoch": 1, "batches": 3, "workers": workers}

    resumed = datamodule(corpora[source], workers).train_dataloader()
    resumed.load_state_dict(state)
    assert first + [fingerprint(b) for b in resumed] == epochs[1]
    assert resumed.state_dict() == {"epoch": 1, "batches": 6, "workers": workers}


@pytest.mark.parametrize("position", [{"batches": 6}, {"batches": 4, "epoch_batches": 4}])
def test_a_finished_epochs_position_starts_the_next_epoch(corpora, position):
    """An epoch over (all its batches, or limit_train_batches' worth): the next one."""
    reference = datamodule(corpora["synthetic"], 0).train_dataloader()
    epochs = [[fingerprint(b) for b in reference] for _ in range(3)]
    resumed = datamodule(corpora["synthetic"], 0).train_dataloader()
    resumed.load_state_dict({"epoch": 1, "workers": 0, **position})
    assert [fingerprint(b) for b in resumed] == epochs[2]


# ---- killed and resumed training runs ---------------------------------------------------------

BATCHES_PER_EPOCH = 6  # 96 clips in batches of 16
RUN = [
    "data.batch_size=16",
    "model.encoder.hidden_size=8",
    "trainer.accelerator=cpu",
    "trainer.deterministic=true",
    "trainer.max_epochs=3",
    "trainer.log_every_n_steps=2",
    "callbacks.periodic_last.train_time_interval=null",
    "data.num_workers=2",  # workers fetch ahead: the saved position must not count those
]


def killed_at(run_dir: Path, overrides: list[str], step: int, timeout: float = 240) -> None:
    """Start a training run and SIGKILL its process as soon as checkpoints/last.ckpt holds
    ``step`` (the test fails, saying why, if it never does)."""
    run_dir.mkdir(parents=True)
    log = (run_dir.parent / f"{run_dir.name}.log").open("w")
    process = subprocess.Popen(
        [sys.executable, TRAIN, *overrides, f"hydra.run.dir={run_dir}"],
        cwd=run_dir.parent,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    checkpoint = run_dir / "checkpoints" / "last.ckpt"
    deadline, seen = time.monotonic() + timeout, None
    try:
        while True:
            if process.poll() is not None:
                pytest.fail(
                    f"training ended (status {process.returncode}) before last.ckpt held step "
                    f"{step}:\n{Path(log.name).read_text()[-3000:]}"
                )
            if time.monotonic() > deadline:
                pytest.fail(
                    f"last.ckpt held no step {step} after {timeout:.0f} s:\n{_stacks(process.pid)}"
                )
            stamp = checkpoint.stat().st_mtime_ns if checkpoint.exists() else None
            if stamp != seen:
                seen = stamp
                if step_of(checkpoint) == step:
                    process.kill()  # the training process itself, as a node failure would
                    process.wait()
                    break
            time.sleep(0.02)
    finally:
        log.close()
        with contextlib.suppress(ProcessLookupError):  # loader workers that outlived it
            os.killpg(process.pid, signal.SIGKILL)
    saved = step_of(checkpoint)
    assert saved == step, f"the run wrote last.ckpt at step {saved} before the kill landed"
    assert not (run_dir / "metrics.json").exists()


def step_of(checkpoint: Path) -> int:
    return torch.load(checkpoint, map_location="cpu", weights_only=True)["global_step"]


def differences(resumed: dict, uninterrupted: dict) -> dict[str, tuple]:
    """The metrics that differ beyond float tolerance (timings aside): (resumed, whole)."""
    keys = (set(resumed) | set(uninterrupted)) - {"train_seconds"}
    return {
        k: (resumed.get(k), uninterrupted.get(k))
        for k in sorted(keys)
        if not (
            k in resumed
            and k in uninterrupted
            and math.isclose(resumed[k], uninterrupted[k], rel_tol=1e-5, abs_tol=1e-7)
        )
    }


def assert_resumes_exactly(tmp_path: Path, overrides: list[str], kill_at: int) -> None:
    """An uninterrupted run, and one killed once last.ckpt holds step ``kill_at`` and
    resumed: the same metrics.json and the same number of optimizer steps."""
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    train(*overrides, f"hydra.run.dir={whole}", cwd=tmp_path)
    killed_at(killed, overrides, kill_at)
    train(f"resume={killed}", cwd=tmp_path)
    expected = json.loads((whole / "metrics.json").read_text())
    got = json.loads((killed / "metrics.json").read_text())
    assert not differences(got, expected), differences(got, expected)
    assert got["steps"] == expected["steps"] == 3 * BATCHES_PER_EPOCH


@pytest.mark.slow
@pytest.mark.parametrize("source", ["synthetic", "manifest", "shards"])
def test_a_run_killed_mid_epoch_resumes_exactly(corpora, tmp_path, source):
    """last.ckpt every 8 steps: killed after step 8, in the middle of epoch 1 (of 0-2)."""
    overrides = [*RUN, "callbacks.periodic_last.every_n_train_steps=8", *corpora[source]]
    assert_resumes_exactly(tmp_path, overrides, kill_at=8)


@pytest.mark.slow
def test_a_save_due_on_an_epochs_last_batch_waits_for_its_end(corpora, tmp_path):
    """Every 6 steps is every epoch's last batch: the saves wait for the epochs' ends
    (after validation), so a run killed after step 12's still validates epoch 1."""
    overrides = [*RUN, "callbacks.periodic_last.every_n_train_steps=6", *corpora["synthetic"]]
    assert_resumes_exactly(tmp_path, overrides, kill_at=12)
