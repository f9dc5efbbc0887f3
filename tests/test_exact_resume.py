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


# ---- killed and resumed training runs ---------------------------------------------------------

BATCHES_PER_EPOCH = 6  # 96 clips in batches of 16
RUN = [
    "data.batch_size=16",
    "model.encoder.hidden_size=8",
    "trainer.accelerator=cpu",
    "trainer.deterministic=true",
    "trainer.max_epochs=3",
    "trainer.log_every_n_steps=2",
    # last.ckpt every 8 steps as well: steps 8 and 16 are inside epochs 1 and 2.
    "callbacks.periodic_last.every_n_train_steps=8",
    "callbacks.periodic_last.train_time_interval=null",
]


def killed_mid_epoch(run_dir: Path, overrides: list[str], timeout: float = 240) -> int:
    """Start a training run, SIGKILL its process once checkpoints/last.ckpt holds a step
    inside an epoch; the step of the last.ckpt it leaves behind."""
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
                    f"training ended (status {process.returncode}) before a mid-epoch "
                    f"last.ckpt:\n{Path(log.name).read_text()[-3000:]}"
                )
            if time.monotonic() > deadline:
                pytest.fail(
                    f"no mid-epoch last.ckpt after {timeout:.0f} s:\n{_stacks(process.pid)}"
                )
            stamp = checkpoint.stat().st_mtime_ns if checkpoint.exists() else None
            if stamp != seen:
                seen = stamp
                if step_of(checkpoint) % BATCHES_PER_EPOCH:
                    process.kill()  # the training process itself, as a node failure would
                    process.wait()
                    break
            time.sleep(0.02)
    finally:
        log.close()
        with contextlib.suppress(ProcessLookupError):  # loader workers that outlived it
            os.killpg(process.pid, signal.SIGKILL)
    step = step_of(checkpoint)
    assert step % BATCHES_PER_EPOCH, f"the run was killed after an epoch's end (step {step})"
    assert not (run_dir / "metrics.json").exists()
    return step


def step_of(checkpoint: Path) -> int:
    return torch.load(checkpoint, map_location="cpu", weights_only=True)["global_step"]


def same_metrics(resumed: dict, uninterrupted: dict) -> list[str]:
    """The keys whose values differ (beyond float tolerance), ignoring timings."""
    keys = (set(resumed) | set(uninterrupted)) - {"train_seconds"}
    return sorted(
        k
        for k in keys
        if not (
            k in resumed
            and k in uninterrupted
            and math.isclose(resumed[k], uninterrupted[k], rel_tol=1e-5, abs_tol=1e-7)
        )
    )


@pytest.mark.parametrize("source", ["synthetic", "manifest", "shards"])
def test_a_run_killed_mid_epoch_resumes_exactly(corpora, tmp_path, source):
    overrides = [*RUN, *corpora[source]]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    train(*overrides, f"hydra.run.dir={whole}", cwd=tmp_path)
    killed_mid_epoch(killed, overrides)
    train(f"resume={killed}", cwd=tmp_path)

    expected = json.loads((whole / "metrics.json").read_text())
    got = json.loads((killed / "metrics.json").read_text())
    differ = same_metrics(got, expected)
    assert not differ, {k: (got.get(k), expected.get(k)) for k in differ}
    assert got["steps"] == expected["steps"] == 3 * BATCHES_PER_EPOCH
