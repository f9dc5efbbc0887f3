"""Running a command's ``main()`` inside the test process.

A subprocess pays 5-8 s of importing torch and Lightning on this machine before it does
anything; most CLI tests only need the command's behaviour (its Hydra composition, Trainer,
files, printed lines and exit status), not its process. :func:`run_main` calls the same
``main`` the console script calls, with ``sys.argv`` set as the shell would, and returns
what :func:`processes.run` returns (a ``CompletedProcess`` with the exit status, stdout and
stderr). What a command changes in the process (working directory, environment, signal
handlers, logging, warning filters, torch's global switches, Hydra's singletons) is put
back afterwards, so one test's command cannot leak into the next. Tests whose point is a
process boundary (DDP ranks, signals, the console scripts themselves) keep
:func:`processes.run`.

A command that outlives its timeout is interrupted in the main thread (SIGALRM) and the
test fails with every thread's stack: a diagnosis, not a silent wait.
"""

import contextlib
import faulthandler
import gc
import importlib
import logging
import os
import signal
import subprocess
import sys
import tempfile
import traceback
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import torch

#: Signals a command (Lightning's signal connector, the preemption callback) may take over.
_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT, signal.SIGALRM)


class Hung(Exception):
    """The command outlived its timeout (the message holds every thread's stack)."""


def _warnings_as_a_process_shows_them() -> None:
    """Python's own filters, and warnings printed to stderr (where a user sees them and a
    test reads them) instead of into pytest's record."""
    warnings.resetwarnings()
    warnings.simplefilter("default")
    for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
        warnings.simplefilter("ignore", category)

    def show(message, category, filename, lineno, file=None, line=None) -> None:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))

    warnings.showwarning = show


@contextlib.contextmanager
def _restored_process_state() -> Iterator[None]:
    """Put back what a command may change in the process it runs in."""
    argv, cwd, environ = list(sys.argv), os.getcwd(), dict(os.environ)
    signal_handlers = {s: signal.getsignal(s) for s in _SIGNALS}
    loggers = [logging.getLogger()] + [
        logger
        for logger in logging.Logger.manager.loggerDict.values()
        if isinstance(logger, logging.Logger)
    ]
    saved_logging = [(lg, lg.level, list(lg.handlers), lg.propagate, lg.disabled) for lg in loggers]
    torch_state = (
        torch.get_num_threads(),
        torch.are_deterministic_algorithms_enabled(),
        torch.get_rng_state(),
    )
    try:
        with warnings.catch_warnings():
            _warnings_as_a_process_shows_them()
            yield
    finally:
        from hydra.core.global_hydra import GlobalHydra
        from hydra.core.hydra_config import HydraConfig

        GlobalHydra.instance().clear()
        HydraConfig.instance().cfg = None
        for logger, level, handlers, propagate, disabled in saved_logging:
            for handler in logger.handlers:
                if handler not in handlers:
                    handler.close()  # Hydra's file handler in the run directory
            logger.handlers[:] = handlers
            logger.setLevel(level)
            logger.propagate, logger.disabled = propagate, disabled
        torch.set_num_threads(torch_state[0])
        torch.use_deterministic_algorithms(torch_state[1])
        torch.set_rng_state(torch_state[2])
        for sig, handler in signal_handlers.items():
            signal.signal(sig, handler)
        os.environ.clear()
        os.environ.update(environ)
        os.chdir(cwd)
        sys.argv[:] = argv
        gc.collect()  # DataLoader workers of the finished Trainer exit now, not later


@contextlib.contextmanager
def _captured_output() -> Iterator[list[str]]:
    """File descriptors 1 and 2 (and ``sys.stdout``/``sys.stderr``, and logging's console
    handlers, which were bound to whatever stderr was when they were made) into temporary
    files, as a subprocess's pipes would catch them; yields ``[stdout, stderr]``, filled
    on exit."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    with contextlib.ExitStack() as stack:
        files = [stack.enter_context(tempfile.TemporaryFile()) for _ in range(2)]
        output: list[str] = []
        with _redirected(files):
            yield output
        for file in files:
            file.seek(0)
            output.append(file.read().decode("utf-8", errors="replace"))


@contextlib.contextmanager
def _redirected(files: list[Any]) -> Iterator[None]:
    saved_fds = [os.dup(1), os.dup(2)]
    saved_streams = sys.stdout, sys.stderr
    for fd, file in zip((1, 2), files, strict=True):
        os.dup2(file.fileno(), fd)
    sys.stdout, sys.stderr = (
        open(fd, "w", buffering=1, encoding="utf-8", errors="replace", closefd=False)  # noqa: SIM115
        for fd in (1, 2)
    )
    handlers = [
        (handler, handler.stream)
        for logger in [logging.getLogger(), *logging.Logger.manager.loggerDict.values()]
        for handler in getattr(logger, "handlers", [])
        if type(handler) is logging.StreamHandler
    ]
    for handler, stream in handlers:
        handler.setStream(sys.stdout if stream is saved_streams[0] else sys.stderr)
    try:
        yield
    finally:
        for handler, stream in handlers:
            handler.setStream(stream)
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdout, sys.stderr = saved_streams
        for fd, saved in zip((1, 2), saved_fds, strict=True):
            os.dup2(saved, fd)
            os.close(saved)


@contextlib.contextmanager
def _deadline(seconds: float, what: str) -> Iterator[None]:
    """Raise :class:`Hung` with all threads' stacks in the main thread after ``seconds``."""

    def expired(signum: int, frame: Any) -> None:
        with tempfile.TemporaryFile("w+") as file:
            faulthandler.dump_traceback(file, all_threads=True)
            file.seek(0)
            stacks = file.read()
        raise Hung(f"hung: {what} still running after {seconds:.0f} s\n--- stacks ---\n{stacks}")

    signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def run_main(
    main: Callable[[], Any],
    args: Sequence[str],
    *,
    cwd: str | Path,
    prog: str = "audioseq",
    timeout: float = 300,
    returncode: int | None = 0,
) -> subprocess.CompletedProcess:
    """``prog ARGS`` run as ``main()`` in this process, in ``cwd``; fail the test on a hang
    or, when ``returncode`` is given, on any other exit status (with stderr's tail)."""
    args = [str(a) for a in args]
    what = " ".join([prog, *args])
    status, hung = 0, None
    with _restored_process_state(), _captured_output() as output:
        sys.argv[:] = [prog, *args]
        os.chdir(cwd)
        try:
            with _deadline(timeout, what):
                main()
        except SystemExit as exit_:
            code = exit_.code
            status = code if isinstance(code, int) else (0 if code is None else 1)
            if not isinstance(code, int | None):
                print(code, file=sys.stderr)
        except Hung as error:
            hung = error
        except Exception:
            traceback.print_exc()  # what the interpreter prints for an uncaught exception
            status = 1
    out, err = output
    if hung is not None:
        pytest.fail(f"{hung}\n--- stderr (tail) ---\n{err[-3000:]}")
    result = subprocess.CompletedProcess([prog, *args], status, out, err)
    if returncode is not None and status != returncode:
        pytest.fail(
            f"exit status {status} (expected {returncode}): {what}\n"
            f"--- stderr (tail) ---\n{err[-4000:]}"
        )
    return result


def audioseq(name: str, *args: str, cwd: str | Path, **kwargs: Any) -> subprocess.CompletedProcess:
    """``audioseq-NAME ARGS`` (``scripts/NAME.py ARGS``) run in this process, in ``cwd``;
    the keywords of :func:`run_main` (``timeout``, ``returncode``) apply."""
    if any(a.startswith(("trainer=ddp", "trainer.strategy=ddp")) for a in args):
        raise ValueError(
            "DDP starts its ranks by re-running the command line: run it with processes.script"
        )
    main = importlib.import_module(f"audioseq.cli.{name}").main
    return run_main(main, args, cwd=cwd, prog=f"audioseq-{name}", **kwargs)


def attempt(name: str, *args: str, cwd: str | Path) -> subprocess.CompletedProcess:
    """``audioseq-NAME ARGS`` in this process, whatever its exit status (for error tests)."""
    return audioseq(name, *args, cwd=cwd, returncode=None)


def train(*overrides: str, cwd: str | Path, **kwargs: Any) -> subprocess.CompletedProcess:
    """``audioseq-train OVERRIDES`` in this process (the README's command)."""
    return audioseq("train", *overrides, cwd=cwd, **kwargs)
