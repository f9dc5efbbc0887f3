"""The hang watchdog: a stalled run dumps every rank's stacks, says where it waits, exits 124."""

import os
import re
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import lightning.pytorch as pl
import pytest
import torch
from processes import train

from audioseq import heartbeat
from audioseq.callbacks.watchdog import HANG_EXIT_STATUS, HangWatchdog
from audioseq.errors import ConfigError


def fake_trainer(tmp_path: Path, world_size: int = 1) -> SimpleNamespace:
    return SimpleNamespace(
        world_size=world_size,
        global_rank=0,
        local_rank=0,
        default_root_dir=str(tmp_path),
        current_epoch=0,
        sanity_checking=False,
    )


def quiet_watchdog(timeout_s: float, exits: list[int], fired: threading.Event) -> HangWatchdog:
    """A watchdog on single-process runs whose exit records the status instead of exiting."""
    dog = HangWatchdog(timeout_s=timeout_s, multi_process_only=False)
    dog._exit = lambda status: (exits.append(status), fired.set())
    return dog


class Stuck(pl.Callback):
    """A hook that waits (for the watchdog to fire) where a rank would wait in a collective."""

    def on_train_epoch_end(self, trainer, pl_module, until: threading.Event) -> None:
        until.wait(timeout=20)


@pytest.mark.parametrize("timeout_s", [0, -5])
def test_timeout_must_be_positive(timeout_s: float) -> None:
    with pytest.raises(
        ConfigError, match=r"^callbacks\.watchdog\.timeout_s=-?\d.*must be a number > 0"
    ):
        HangWatchdog(timeout_s=timeout_s)


def test_single_process_runs_are_not_watched_by_default(tmp_path: Path) -> None:
    dog = HangWatchdog(timeout_s=0.1)
    dog.setup(fake_trainer(tmp_path), None, "fit")
    assert dog._thread is None
    dog.setup(fake_trainer(tmp_path, world_size=2), None, "fit")
    assert dog._thread is not None and dog._thread.daemon
    dog.teardown(fake_trainer(tmp_path, world_size=2), None, "fit")
    assert dog._thread is None


def test_hooks_label_the_progress(tmp_path: Path) -> None:
    dog, trainer = HangWatchdog(), fake_trainer(tmp_path)
    trainer.current_epoch = 3
    dog.on_train_batch_end(trainer, None, {}, {}, 12)
    assert heartbeat.last()[1] == "end of train batch 12 of epoch 3"
    trainer.sanity_checking = True
    dog.on_validation_batch_start(trainer, None, {}, 1)
    assert heartbeat.last()[1] == "sanity check: start of validation batch 1 of epoch 3"


def test_a_beating_heartbeat_never_fires_and_teardown_stops_the_thread(tmp_path: Path) -> None:
    exits: list[int] = []
    dog = quiet_watchdog(0.3, exits, threading.Event())
    dog.setup(fake_trainer(tmp_path), None, "fit")
    thread = dog._thread
    for _ in range(20):  # 1 s of beats, 0.05 s apart
        heartbeat.beat("working")
        time.sleep(0.05)
    dog.teardown(fake_trainer(tmp_path), None, "fit")
    assert not thread.is_alive() and exits == []
    assert not (tmp_path / "hang").exists()


def test_a_stall_after_rearming_dumps_stacks_and_names_the_waiting_hook(
    tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    exits: list[int] = []
    fired = threading.Event()
    dog = quiet_watchdog(0.5, exits, fired)
    dog.setup(fake_trainer(tmp_path), None, "fit")  # a first stage that ends normally
    dog.teardown(fake_trainer(tmp_path), None, "fit")
    dog.setup(fake_trainer(tmp_path), None, "test")
    started = time.monotonic()
    Stuck().on_train_epoch_end(None, None, until=fired)
    assert fired.is_set() and exits == [HANG_EXIT_STATUS]
    assert time.monotonic() - started < 3
    dump = tmp_path / "hang" / "rank0.txt"
    line = capfd.readouterr().err.strip().splitlines()[-1]
    assert re.fullmatch(
        r'audioseq: hang: rank 0/1 made no progress for 0\.[5-9] s after "setup of test"; '
        r"waiting in Condition\.wait \(threading\.py:\d+\) "
        r"called from Stuck\.on_train_epoch_end \(test_watchdog\.py:\d+\); "
        rf"stacks in {re.escape(str(dump))}",
        line,
    ), line
    text = dump.read_text()
    assert text.startswith(line.rpartition("; stacks in")[0])
    assert f"thread 0x{threading.get_ident():016x}" in text
    assert text.count("most recent call first") >= 2  # every thread: this one, the watchdog
    assert "in on_train_epoch_end" in text and "in _fire" in text


def test_a_real_trainer_arms_per_stage_and_beats_per_batch(tmp_path: Path) -> None:
    """fit, then test: armed only inside each stage; batch hooks renew the heartbeat."""

    class Tiny(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)

        def training_step(self, batch, batch_idx):
            return self.layer(batch[0]).mean()

        def test_step(self, batch, batch_idx):
            return self.layer(batch[0]).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    seen: list[tuple[str, bool]] = []

    class Spy(pl.Callback):
        """What the heartbeat says, and whether the watchdog is armed, after each batch."""

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            seen.append((heartbeat.last()[1], dog._thread.is_alive()))

        def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, *_) -> None:
            seen.append((heartbeat.last()[1], dog._thread.is_alive()))

    exits: list[int] = []
    dog = quiet_watchdog(30, exits, threading.Event())
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(8, 4)), 4)
    trainer = pl.Trainer(
        max_epochs=1,
        accelerator="cpu",
        callbacks=[dog, Spy()],  # with Lightning's defaults: progress bar, logger, checkpoints
        default_root_dir=tmp_path,
    )
    trainer.fit(Tiny(), data)
    assert dog._thread is None
    trainer.test(trainer.lightning_module, data, verbose=False)
    assert dog._thread is None and exits == []
    assert seen == [
        ("end of train batch 0 of epoch 0", True),
        ("end of train batch 1 of epoch 0", True),
        ("end of test batch 0", True),
        ("end of test batch 1", True),
    ]


MISMATCH = '''
import lightning.pytorch as pl
import torch
import torch.distributed as dist


class Mismatch(pl.Callback):
    """Rank 1 alone all-reduces at the end of the first epoch: a collective rank 0 skips."""

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.global_rank == 1:
            dist.all_reduce(torch.ones(1))
'''


def test_a_mismatched_collective_in_ddp_is_caught_on_every_rank(tmp_path: Path) -> None:
    """The user's path: the real CLI, default callbacks (progress bar on), 2 gloo ranks."""
    (tmp_path / "mismatch.py").write_text(MISMATCH)
    run_dir = tmp_path / "run"
    path = [str(tmp_path), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, path))}
    started = time.monotonic()
    result = train(
        "trainer=ddp_cpu",
        "data.train_size=64",
        "data.val_size=32",
        "data.test_size=32",
        "data.batch_size=16",
        "model.encoder.hidden_size=16",
        "model.encoder.num_layers=1",
        "trainer.max_epochs=1",
        f"hydra.run.dir={run_dir}",
        "callbacks.watchdog.timeout_s=5",
        "+callbacks.mismatch._target_=mismatch.Mismatch",
        cwd=tmp_path,
        env=env,
        timeout=120,
        returncode=HANG_EXIT_STATUS,
    )
    elapsed = time.monotonic() - started
    lines = {
        rank: [line for line in result.stderr.splitlines() if f"hang: rank {rank}/2 " in line]
        for rank in (0, 1)
    }
    assert len(lines[0]) == 1 and len(lines[1]) == 1, result.stderr[-3000:]
    assert re.search(
        r'made no progress for \d\.\d s after "end of train epoch 0"; '
        r"waiting in all_reduce \(torch/distributed/distributed_c10d\.py:\d+\) "
        r"called from Mismatch\.on_train_epoch_end \(mismatch\.py:\d+\); "
        r"stacks in run/hang/rank1\.txt$",
        lines[1][0],
    ), lines[1][0]
    # Rank 0 went on and waits in its next collective, which rank 1 never joins.
    assert re.search(r"waiting in \w+ \(torch/distributed/distributed_c10d\.py:\d+\) ", lines[0][0])
    assert lines[0][0].endswith("stacks in run/hang/rank0.txt"), lines[0][0]
    for rank in (0, 1):
        stacks = (run_dir / "hang" / f"rank{rank}.txt").read_text()
        assert "most recent call first" in stacks and "distributed_c10d.py" in stacks
    assert elapsed < 90
