"""Running the project's commands as subprocesses that can never hang a test run.

Every command starts in a process group of its own (DDP ranks, DataLoader workers and
torchrun agents are its members). When it outlives its timeout, each member's Python
stack is dumped with py-spy (when installed), the whole group is killed and the test fails
with the stacks and the output's tail: a diagnosis, not a silent wait.
"""

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TRAIN = str(ROOT / "scripts" / "train.py")


def _group_pids(pgid: int) -> list[int]:
    """The live processes of process group ``pgid`` (from /proc)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.getpgid(int(entry.name)) == pgid:
                    pids.append(int(entry.name))
            except (ProcessLookupError, PermissionError):
                continue
    return sorted(pids)


def _stacks(pgid: int) -> str:
    """py-spy dumps of every process in the group, or a note saying why there are none."""
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(spy).exists():
        return "(py-spy not installed: no stacks)"
    dumps = []
    for pid in _group_pids(pgid):
        result = subprocess.run(
            [spy, "dump", "--pid", str(pid)], capture_output=True, text=True, timeout=30
        )
        dumps.append(result.stdout or result.stderr)
    return "\n".join(dumps)


def run(
    cmd: Sequence[str],
    *,
    cwd: str | Path,
    timeout: float = 300,
    env: dict[str, str] | None = None,
    returncode: int | None = 0,
    stdin: Path | None = None,
) -> subprocess.CompletedProcess:
    """Run ``cmd`` in its own process group, reading the file ``stdin`` when given; fail the
    test on a hang (with stacks) or, when ``returncode`` is given, on any other exit status
    (with the output's tail)."""
    with open(stdin, "rb") if stdin else contextlib.nullcontext(subprocess.DEVNULL) as source:
        process = subprocess.Popen(
            [str(c) for c in cmd],
            cwd=cwd,
            env=env,
            stdin=source,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stacks = _stacks(process.pid)
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        pytest.fail(
            f"hung: {' '.join(map(str, cmd))} still running after {timeout:.0f} s\n"
            f"--- stacks ---\n{stacks}\n--- stderr (tail) ---\n{stderr[-3000:]}"
        )
    finally:  # ranks or workers the command left behind die with it
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    result = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    if returncode is not None and result.returncode != returncode:
        pytest.fail(
            f"exit status {result.returncode} (expected {returncode}): "
            f"{' '.join(map(str, cmd))}\n--- stderr (tail) ---\n{stderr[-4000:]}"
        )
    return result


def script(
    name: str, *args: str, cwd: str | Path, timeout: float = 300, **kwargs
) -> subprocess.CompletedProcess:
    """``python scripts/NAME.py ARGS`` (the console script ``audioseq-NAME``) via :func:`run`."""
    cmd = [sys.executable, str(ROOT / "scripts" / f"{name}.py"), *args]
    return run(cmd, cwd=cwd, timeout=timeout, **kwargs)


def train(
    *overrides: str, cwd: str | Path, timeout: float = 300, **kwargs
) -> subprocess.CompletedProcess:
    """``python scripts/train.py OVERRIDES`` (the README's command) via :func:`run`."""
    return script("train", *overrides, cwd=cwd, timeout=timeout, **kwargs)


def _kill_groups(processes: Sequence[subprocess.Popen]) -> None:
    for process in processes:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)


def run_together(
    cmds: Sequence[Sequence[str]],
    *,
    cwd: str | Path,
    timeout: float = 300,
    env: dict[str, str] | None = None,
) -> list[subprocess.CompletedProcess]:
    """Run ``cmds`` at the same time (the nodes of one job), each in its own process group;
    all must exit with status 0. Output goes to files, so that a full pipe cannot stall one
    command while another waits for it. When one fails, or any outlives ``timeout``, the
    test fails at once with the stacks of those still running (where they wait), every
    command's exit status and the tail of its stderr."""
    with tempfile.TemporaryDirectory() as folder:
        paths = [(Path(folder, f"{i}.out"), Path(folder, f"{i}.err")) for i in range(len(cmds))]
        processes = []
        for cmd, (out, err) in zip(cmds, paths, strict=True):
            fds = [os.open(path, os.O_WRONLY | os.O_CREAT) for path in (out, err)]
            processes.append(
                subprocess.Popen(
                    [str(c) for c in cmd],
                    cwd=cwd,
                    env=env,
                    stdout=fds[0],
                    stderr=fds[1],
                    start_new_session=True,
                )
            )
            for fd in fds:
                os.close(fd)
        deadline, problem, stacks = time.monotonic() + timeout, "", ""
        try:
            while any(p.poll() is None for p in processes):
                if any(p.returncode not in (None, 0) for p in processes):
                    problem = "a command failed while the others ran"
                elif time.monotonic() > deadline:
                    problem = f"hung: still running after {timeout:.0f} s"
                if problem:
                    stacks = "\n".join(_stacks(p.pid) for p in processes if p.poll() is None)
                    break
                time.sleep(0.2)
        finally:  # ranks, workers and agents the commands left behind die with them
            _kill_groups(processes)
            for process in processes:
                process.wait()
        results = [
            subprocess.CompletedProcess(
                process.args, process.returncode, out.read_text(), err.read_text()
            )
            for process, (out, err) in zip(processes, paths, strict=True)
        ]
    if problem or any(r.returncode != 0 for r in results):
        report = "\n".join(
            f"--- exit status {r.returncode}: {' '.join(r.args)}\n{r.stderr[-3000:]}"
            for r in results
        )
        pytest.fail(f"{problem or 'a command failed'}\n--- stacks ---\n{stacks}\n{report}")
    return results
