"""A hang is a failure with a diagnosis: every rank dumps its stacks and exits, fast.

A rank that waits in a collective its peers never reach waits for the backend's timeout
(gloo and NCCL: 30 minutes or more) and ignores SIGTERM under Lightning's DDP. The
watchdog is a daemon thread per process that watches the heartbeat
(:mod:`audioseq.heartbeat`), renewed whenever a step, validation batch or epoch hook
completes and by code that completes a collective. When no beat comes for ``timeout_s``
seconds, it writes every thread's Python stack into
``<run dir>/hang/rank<global rank>.txt``, prints one line to stderr naming the rank, the
last progress and where the trainer thread waits, and ends the process with
``os._exit(HANG_EXIT_STATUS)``: 124, the status of ``timeout(1)``. Before exiting it waits
(at most ``GRACE_S``) until every rank's dump exists, so that its exit does not break a
peer's collective before that peer has dumped too. The other ranks of a node then give
its rank 0 up to ``STAGGER_S`` to exit first: under Lightning's DDP launcher rank 0 is
their parent, and a child's exit makes it SIGKILL the whole job (the shell would see 137
instead of 124).
"""

import faulthandler
import inspect
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType

import lightning.pytorch as pl
from lightning.pytorch.core.hooks import CheckpointHooks, DataHooks, ModelHooks

import audioseq
from audioseq.config_schema import check
from audioseq.heartbeat import beat, last

HANG_EXIT_STATUS = 124  # like timeout(1): the run was stopped because it made no progress
GRACE_S = 30.0  # the longest a hung rank waits for its peers' dumps before exiting
STAGGER_S = 3.0  # the longest a node's other ranks wait for its rank 0 to exit first
_PACKAGE = os.path.dirname(os.path.abspath(audioseq.__file__)) + os.sep
_HOOKS = {
    name
    for cls in (pl.Callback, ModelHooks, DataHooks, CheckpointHooks)
    for name in vars(cls)
    if not name.startswith("_")
} | {"training_step", "validation_step", "test_step", "predict_step"}


def _short(filename: str) -> str:
    """``torch/distributed/distributed_c10d.py`` rather than the site-packages path."""
    roots = [p for p in sys.path if p and filename.startswith(os.path.join(p, ""))]
    return os.path.relpath(filename, max(roots, key=len)) if roots else filename


def _describe(frame: FrameType) -> str:
    code = frame.f_code
    name = getattr(code, "co_qualname", code.co_name)
    return f"{name} ({_short(code.co_filename)}:{frame.f_lineno})"


def where(frame: FrameType | None) -> str:
    """``waiting in <innermost> called from <innermost audioseq or Lightning-hook frame>``."""
    if frame is None:
        return "waiting in no Python frame"
    text, caller = f"waiting in {_describe(frame)}", frame.f_back
    while caller is not None:
        code = caller.f_code
        if code.co_filename.startswith(_PACKAGE) or code.co_name in _HOOKS:
            return f"{text} called from {_describe(caller)}"
        caller = caller.f_back
    return text


def _seconds(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


class HangWatchdog(pl.Callback):
    """Ends a run that makes no progress for ``timeout_s`` seconds, with stacks and a reason.

    Armed in ``setup`` of every stage (only for ``world_size > 1`` unless
    ``multi_process_only=False``), disarmed in ``teardown`` and ``on_exception``.
    """

    def __init__(self, timeout_s: float = 300, multi_process_only: bool = True) -> None:
        check("callbacks.watchdog.timeout_s", timeout_s)  # the config schema's rules
        check("callbacks.watchdog.multi_process_only", multi_process_only)
        self.timeout_s = float(timeout_s)
        self.multi_process_only = multi_process_only
        self._exit = os._exit  # tests replace it
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._disarm()
        if trainer.world_size > 1 or not self.multi_process_only:
            rank, size = trainer.global_rank, trainer.world_size
            self._dump = Path(trainer.default_root_dir) / "hang" / f"rank{rank}.txt"
            self._who, self._size = f"rank {rank}/{size}", size
            self._local_rank = trainer.local_rank
            self._armed_at, self._target = time.time(), threading.get_ident()
            beat(f"setup of {getattr(stage, 'value', stage)}")
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._watch, name="hang-watchdog", daemon=True)
            self._thread.start()

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        self._disarm()

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        self._disarm()

    def _disarm(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self._thread = None

    def _watch(self) -> None:
        while not self._stop.is_set():
            beaten, label = last()
            left = beaten + self.timeout_s - time.monotonic()
            if left <= 0:
                return self._fire(time.monotonic() - beaten, label)
            self._stop.wait(left)  # a beat meanwhile only moves the deadline later

    def _fire(self, idle: float, label: str) -> None:
        """Dump, print the line, wait for the peers' dumps, exit (also if writing fails)."""
        try:
            frame = sys._current_frames().get(self._target)
            line = (
                f"audioseq: hang: {self._who} made no progress for {_seconds(idle)} s"
                f' after "{label}"; {where(frame)}'
            )
            shown = os.path.relpath(self._dump)
            shown = self._dump if shown.startswith("..") else shown
            try:
                self._dump.parent.mkdir(parents=True, exist_ok=True)
                partial = self._dump.with_suffix(".partial")
                with open(partial, "w") as file:
                    file.write(f"{line}\nThe trainer runs in thread 0x{self._target:016x}.\n\n")
                    file.flush()
                    faulthandler.dump_traceback(file, all_threads=True)
                os.write(2, f"{line}; stacks in {shown}\n".encode())
                os.replace(partial, self._dump)  # complete dumps only: peers wait for these
                self._await_peers()
                if self._local_rank != 0:
                    self._await_parent_exit()
            except OSError as error:
                os.write(2, f"{line}; stacks not written ({error}), here instead:\n".encode())
                faulthandler.dump_traceback(2, all_threads=True)
        finally:
            self._exit(HANG_EXIT_STATUS)

    def _await_peers(self) -> None:
        """Until every rank's dump exists (a shared run dir) or the grace time is over."""
        deadline = time.monotonic() + min(GRACE_S, self.timeout_s)
        peers = [self._dump.with_name(f"rank{r}.txt") for r in range(self._size)]
        while time.monotonic() < deadline:
            if all(p.exists() and p.stat().st_mtime >= self._armed_at - 1 for p in peers):
                return
            time.sleep(0.05)

    @staticmethod
    def _await_parent_exit() -> None:
        """Until the parent process (rank 0 under Lightning's launcher; torchrun's agent,
        which stays, otherwise) has gone or ``STAGGER_S`` is over."""
        parent, deadline = os.getppid(), time.monotonic() + STAGGER_S
        while os.getppid() == parent and time.monotonic() < deadline:
            time.sleep(0.05)


#: The hooks that renew the heartbeat and the label each leaves (Callback's argument names).
PROGRESS = {
    "on_train_start": "start of training",
    "on_train_epoch_start": "start of train epoch {epoch}",
    "on_train_batch_start": "start of train batch {batch_idx} of epoch {epoch}",
    "on_train_batch_end": "end of train batch {batch_idx} of epoch {epoch}",
    "on_train_epoch_end": "end of train epoch {epoch}",
    "on_validation_start": "start of validation in epoch {epoch}",
    "on_validation_epoch_start": "start of validation epoch {epoch}",
    "on_validation_batch_start": "start of validation batch {batch_idx} of epoch {epoch}",
    "on_validation_batch_end": "end of validation batch {batch_idx} of epoch {epoch}",
    "on_validation_epoch_end": "end of validation epoch {epoch}",
    "on_validation_end": "end of validation in epoch {epoch}",
    "on_test_start": "start of test",
    "on_test_epoch_start": "start of test epoch",
    "on_test_batch_start": "start of test batch {batch_idx}",
    "on_test_batch_end": "end of test batch {batch_idx}",
    "on_test_epoch_end": "end of test epoch",
    "on_predict_start": "start of predict",
    "on_predict_batch_start": "start of predict batch {batch_idx}",
    "on_predict_batch_end": "end of predict batch {batch_idx}",
    "on_predict_epoch_end": "end of predict epoch",
}


def _progress_hook(name: str, label: str) -> Callable[..., None]:
    """The Callback hook ``name`` that beats with ``label`` filled from its arguments."""
    signature = inspect.signature(getattr(pl.Callback, name))

    def hook(self: HangWatchdog, trainer: pl.Trainer, *args, **kwargs) -> None:
        text = label.format_map(
            signature.bind(self, trainer, *args, **kwargs).arguments
            | {"epoch": trainer.current_epoch}
        )
        beat(f"sanity check: {text}" if trainer.sanity_checking else text)

    hook.__name__ = hook.__qualname__ = name
    return hook


for _name, _label in PROGRESS.items():
    setattr(HangWatchdog, _name, _progress_hook(_name, _label))
