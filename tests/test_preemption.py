"""Preemption: a real SIGTERM or SIGUSR1 sent to a training process saves last.ckpt at the
next step and exits with 75; ``resume=RUN_DIR`` then finishes the run in the same folder
and TensorBoard run. And what ``resume=`` refuses."""

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from processes import TRAIN, _stacks, train
from tensorboard_events import scalars

from audioseq.callbacks.preemption import EXIT_PREEMPTED
from audioseq.checkpoint_io import AtomicCheckpointIO
from audioseq.cli.resume import ResumeError, resume_args

SMALL = [
    "data.train_size=1536",
    "data.val_size=128",
    "data.test_size=128",
    "model.encoder.hidden_size=16",
    "trainer.max_epochs=40",  # far more than the test waits for: the signal ends it
]


def start(run_dir: Path, *extra: str, base: tuple[str, ...] = tuple(SMALL)) -> subprocess.Popen:
    """The training command (``base`` and ``extra`` settings) in a process group of its
    own; its output goes to files beside the run (a pipe nobody reads until the end fills
    up with the progress bar and stalls the run on a slow machine)."""
    run_dir.parent.mkdir(parents=True, exist_ok=True)
    with open(output(run_dir, "stdout"), "w") as out, open(output(run_dir, "stderr"), "w") as err:
        return subprocess.Popen(
            [sys.executable, TRAIN, *base, *extra, f"hydra.run.dir={run_dir}"],
            cwd=run_dir.parent,
            stdout=out,
            stderr=err,
            text=True,
            start_new_session=True,
        )


def output(run_dir: Path, stream: str) -> Path:
    return run_dir.parent / f"{run_dir.name}.{stream}.txt"


def signal_after_first_epoch(
    process: subprocess.Popen, run_dir: Path, signum: int, whole_job: bool = False
) -> str:
    """Wait until epoch 0 has written its checkpoint, send ``signum`` (to every process of
    the job, loader workers too, with ``whole_job``); the stderr of the process, which
    must exit with 75 (a hang fails with every process's stacks)."""
    stderr = signalled(process, run_dir, signum, whole_job)
    assert process.returncode == EXIT_PREEMPTED, stderr[-3000:]
    return stderr


def signalled(
    process: subprocess.Popen,
    run_dir: Path,
    signum: int,
    whole_job: bool = False,
    ready: str = "checkpoints/last.ckpt",
) -> str:
    """``signum`` sent once the run folder holds ``ready`` (a glob; by default epoch 0's
    checkpoint); the process's stderr once it has exited."""
    deadline = time.monotonic() + 240
    while not any(run_dir.glob(ready)):
        if process.poll() is not None:
            pytest.fail(
                f"training ended before writing {ready}:\n"
                f"{output(run_dir, 'stderr').read_text()[-3000:]}"
            )
        if time.monotonic() > deadline:
            stacks = _stacks(process.pid)
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail(
                f"no {ready} after 240 s; stacks:\n{stacks}\n"
                f"--- stderr (tail) ---\n{output(run_dir, 'stderr').read_text()[-3000:]}"
            )
        time.sleep(0.2)
    if whole_job:
        os.killpg(process.pid, signum)
    else:
        process.send_signal(signum)
    try:
        process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        stacks = _stacks(process.pid)
        process.kill()
        pytest.fail(f"still running 120 s after the signal; stacks:\n{stacks}")
    return output(run_dir, "stderr").read_text()


def test_a_crash_in_native_code_prints_where_every_thread_was(tmp_path):
    """A segfault (here a real SIGSEGV sent to the process) leaves the Python stacks on
    stderr, so a rank that dies in torch or gloo says where."""
    run_dir = tmp_path / "run"
    process = start(run_dir)
    # The TensorBoard file appears as fitting starts: the command's code is running.
    stderr = signalled(process, run_dir, signal.SIGSEGV, ready="events.out.tfevents.*")
    assert process.returncode == -signal.SIGSEGV
    assert "Fatal Python error: Segmentation fault" in stderr, stderr[-3000:]
    assert "Current thread" in stderr and "lightning" in stderr, stderr[-3000:]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGUSR1])
def test_a_signal_saves_last_ckpt_and_resume_finishes_the_run(tmp_path, signum):
    run_dir = tmp_path / "run"
    stderr = signal_after_first_epoch(start(run_dir), run_dir, signum)
    line = stderr.strip().splitlines()[-1]
    assert "stopped by a signal at step" in line and f"resume={run_dir}" in line, line
    assert not list(run_dir.glob("checkpoints/*.partial"))
    assert not (run_dir / "metrics.json").exists()  # the run has not finished

    train(f"resume={run_dir}", "trainer.max_epochs=3", cwd=tmp_path)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs"] == 3 and metrics["val/acc"] > 0
    steps = [step for step, _ in scalars(run_dir)["train/loss_step"]]
    assert steps == sorted(set(steps)), "TensorBoard has duplicate or out-of-order steps"
    events = list(run_dir.rglob("events.out.tfevents.*"))
    assert {e.parent for e in events} == {run_dir}  # one TensorBoard run, not a second folder


def test_a_signal_to_the_whole_job_reaches_workers_and_still_exits_75(tmp_path):
    """SLURM and a shell's ``kill %1`` signal every process of a job: the loader workers
    ignore it (they used to die of it, and the run then failed or aborted in glibc)."""
    run_dir = tmp_path / "run"
    job = start(run_dir, "data.num_workers=2")  # workers whatever the machine's cores
    stderr = signal_after_first_epoch(job, run_dir, signal.SIGTERM, whole_job=True)
    assert "stopped by a signal at step" in stderr
    assert "killed by signal" not in stderr


def test_ddp_ranks_stop_together_and_save_once(tmp_path):
    run_dir = tmp_path / "run"
    process = start(run_dir, "trainer=ddp_cpu")
    stderr = signal_after_first_epoch(process, run_dir, signal.SIGTERM)
    assert "stopped by a signal" in stderr
    assert (run_dir / "checkpoints" / "last.ckpt").is_file()


@pytest.mark.slow
def test_a_suspended_and_continued_job_finishes_as_if_never_stopped(tmp_path):
    """Ctrl-Z and fg, or a scheduler's suspend: every process of the job (loader workers
    too) is stopped and continued, again and again. With torch's SIGCHLD handler in the
    training process this aborted with glibc heap corruption or NaN gradients in most
    runs; the run must finish with exactly the metrics of one never stopped."""
    # The default model: with a 16-unit one the stops never met the crash.
    quick = ("data.train_size=1024", "data.val_size=128", "data.test_size=128",
             "trainer.max_epochs=2", "data.num_workers=2")  # fmt: skip
    train(*quick, f"hydra.run.dir={tmp_path / 'plain'}", cwd=tmp_path)
    run_dir = tmp_path / "suspended"
    process = start(run_dir, base=quick)
    deadline, stops = time.monotonic() + 300, 0
    while process.poll() is None:
        if time.monotonic() > deadline:
            stacks = _stacks(process.pid)
            os.killpg(process.pid, signal.SIGKILL)
            pytest.fail(f"still running after 300 s of stops; stacks:\n{stacks}")
        with contextlib.suppress(ProcessLookupError):  # it may end between two signals
            os.killpg(process.pid, signal.SIGSTOP)
            time.sleep(0.3)  # pacing the suspensions, not measuring anything
            os.killpg(process.pid, signal.SIGCONT)
            stops += 1
        time.sleep(0.4)
    stderr = output(run_dir, "stderr").read_text()
    assert process.returncode == 0, stderr[-3000:]
    assert stops >= 5, stops  # the job really was suspended while it trained
    metrics = [json.loads((d / "metrics.json").read_text()) for d in (tmp_path / "plain", run_dir)]
    for m in metrics:
        m.pop("train_seconds")
    assert metrics[0] == metrics[1]


def test_resume_refuses_what_would_change_the_run(tmp_path):
    with pytest.raises(ResumeError, match="not an audioseq run"):
        resume_args([f"resume={tmp_path}"])
    (tmp_path / ".hydra").mkdir()
    (tmp_path / ".hydra" / "overrides.yaml").write_text("- model=gru\n")
    with pytest.raises(ResumeError, match=r"no checkpoints/last\.ckpt"):
        resume_args([f"resume={tmp_path}"])
    (tmp_path / "checkpoints").mkdir()
    torch.save({"global_step": 12}, tmp_path / "checkpoints" / "last.ckpt")
    with pytest.raises(ResumeError, match=r"\['model.encoder.hidden_size=8'\] would change"):
        resume_args([f"resume={tmp_path}", "model.encoder.hidden_size=8"])
    with pytest.raises(ResumeError, match="-m"):
        resume_args(["-m", f"resume={tmp_path}"])
    args = resume_args([f"resume={tmp_path}", "trainer.max_epochs=9"])
    assert args == [
        "model=gru",
        "trainer.max_epochs=9",
        f"hydra.run.dir={tmp_path.resolve()}",
        f"ckpt_path={tmp_path.resolve() / 'checkpoints' / 'last.ckpt'}",
        "+logger.tensorboard.purge_step=12",
    ]
    assert resume_args(["model=lstm"]) == ["model=lstm"]  # no resume=: unchanged


def test_periodic_last_checkpoint_in_the_middle_of_an_epoch(tmp_path):
    """12 steps, last.ckpt every 5 and not at the epoch's end: it holds step 10."""
    run_dir = tmp_path / "run"
    train(
        "data.train_size=768",  # 12 batches of 64
        "data.val_size=64",
        "data.test_size=64",
        "model.encoder.hidden_size=8",
        "trainer.max_epochs=1",
        # Only so that the file shows who wrote it: the epoch-end copy (step 12) would
        # overwrite the periodic one. A user keeps both; the SIGTERM test runs them so.
        "callbacks.model_checkpoint.save_last=false",
        "callbacks.periodic_last.every_n_train_steps=5",
        "callbacks.periodic_last.train_time_interval=null",  # Lightning: steps or time
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    checkpoint = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["global_step"] == 10


class Unpicklable:
    def __reduce__(self):
        raise RuntimeError("cannot be saved")


def test_a_failed_save_leaves_the_previous_checkpoint_whole(tmp_path):
    io = AtomicCheckpointIO()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"global_step": 1}, path)
    with pytest.raises(RuntimeError, match="cannot be saved"):
        io.save_checkpoint({"global_step": 2, "bad": Unpicklable()}, path)
    assert torch.load(path, weights_only=False) == {"global_step": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]
