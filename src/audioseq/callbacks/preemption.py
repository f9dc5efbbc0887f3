"""SIGTERM or SIGUSR1 (what schedulers such as SLURM send before they stop a job): save
``checkpoints/last.ckpt`` at the next step boundary, flush the logs, exit with status 75.

Lightning already turns SIGTERM into a ``SIGTERMException`` at the next batch boundary,
on every DDP rank at the same step (rank 0's flag is broadcast each step), but saves
nothing: the epoch in progress is lost. This callback saves the checkpoint when that
exception passes through ``on_exception`` (every rank takes part: saving has a barrier;
``audioseq.checkpoint_io`` makes the write atomic). SIGUSR1 is treated as SIGTERM,
except under SLURM with Lightning's ``auto_requeue``, where Lightning's own handler saves
an HPC checkpoint and requeues the job.

The training command then prints one line and exits with :data:`EXIT_PREEMPTED` (75,
``EX_TEMPFAIL``: try again); ``audioseq-train resume=RUN_DIR`` continues the run.

Schedulers signal every process of a job (SLURM's job step, a shell's ``kill %1``), the
DataLoader workers too; a worker killed by the signal made the main process fail with
"DataLoader worker ... is killed by signal" (or abort in glibc, "corrupted size vs.
prev_size") while it stopped, instead of saving and exiting with 75. The workers
therefore ignore these signals unless their parent sends them (:func:`loader_worker_init`).

Under DDP, Lightning 2.6's own SIGTERM handler is unsafe: it broadcasts from inside the
signal handler, in the middle of whatever collective the ranks are in, and each rank
stops at the end of a batch on its own flag, so a signal that reaches the ranks at
different moments (one sent to the main process, forwarded to the others) can leave one
rank saving the checkpoint while another waits in the next step's collective: gloo
aborted with "Received data size doesn't match expected size". This callback therefore
replaces that handler during training: the signal only sets a flag, and at the end of
every training batch the ranks all-reduce it (one small collective per step), so all of
them stop at the same batch. The flag travels on a gloo group of its own, as a CPU
tensor: on GPUs a flag on the device (NCCL) would make every step wait for the GPU to
finish its queued work before it could read the result.
"""

import os
import signal
import threading
from pathlib import Path
from types import FrameType

import lightning.pytorch as pl
import torch
import torch.distributed as dist
from lightning.fabric.plugins.environments import SLURMEnvironment
from lightning.fabric.utilities.seed import pl_worker_init_function
from lightning.pytorch.utilities.exceptions import SIGTERMException

EXIT_PREEMPTED = 75
#: What a scheduler sends before it stops a job.
SIGNALS = (signal.SIGTERM, signal.SIGUSR1)


def loader_worker_init(worker_id: int) -> None:
    """A DataLoader worker's ``worker_init_fn``: :data:`SIGNALS` from anyone but the
    worker's parent are ignored (the parent's own ``terminate()`` at shutdown still ends
    it), then seeding as Lightning does for ``seed_everything(workers=True)`` (it adds its
    own only to loaders without a ``worker_init_fn``)."""
    signal.pthread_sigmask(signal.SIG_BLOCK, SIGNALS)  # threads started later inherit it
    threading.Thread(target=_obey_parent_only, args=(os.getppid(),), daemon=True).start()
    if int(os.environ.get("PL_SEED_WORKERS", 0)):
        pl_worker_init_function(worker_id)


def _obey_parent_only(parent: int) -> None:
    """Wait for :data:`SIGNALS`; one the parent sent (shutting its workers down) ends the
    process quietly: a nonzero status would make the parent report a failed worker."""
    while True:
        if signal.sigwaitinfo(SIGNALS).si_pid == parent:
            os._exit(0)


def _as_sigterm(signum: int, frame: FrameType | None) -> None:
    os.kill(os.getpid(), signal.SIGTERM)


class Preemption(pl.Callback):
    """Saves ``dirpath/last.ckpt`` when a SIGTERM/SIGUSR1 stops training."""

    def __init__(self, dirpath: str) -> None:
        self.dirpath = Path(dirpath)
        self.saved: Path | None = None
        self._pending = False
        self._group: dist.ProcessGroup | None = None

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        environment = getattr(trainer._accelerator_connector, "cluster_environment", None)
        slurm_requeue = isinstance(environment, SLURMEnvironment) and environment.auto_requeue
        if not slurm_requeue and signal.getsignal(signal.SIGUSR1) in (signal.SIG_DFL, None):
            signal.signal(signal.SIGUSR1, _as_sigterm)

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._pending = False
        if trainer.world_size > 1:  # after Lightning's handlers; its teardown restores them
            signal.signal(signal.SIGTERM, self._note)
            if dist.is_initialized() and self._group is None:  # every rank, in step
                self._group = dist.new_group(backend="gloo")

    def _note(self, signum: int, frame: FrameType | None) -> None:
        self._pending = True

    def on_train_batch_end(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, *args: object
    ) -> None:
        """Every rank learns of a signal any rank received; all stop after this batch."""
        if self._group is not None:
            flag = torch.tensor([int(self._pending)])  # on the CPU: no wait for a GPU
            dist.all_reduce(flag, op=dist.ReduceOp.MAX, group=self._group)
            if flag.item():
                trainer._signal_connector.received_sigterm = True  # Lightning raises next

    def teardown(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        """The flag's group goes with the fit (a later fit may run in other groups)."""
        if self._group is not None and dist.is_initialized():
            dist.destroy_process_group(self._group)
        self._group = None

    def on_exception(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException
    ) -> None:
        if not isinstance(exception, SIGTERMException) or trainer.state.fn != "fit":
            return
        self.dirpath.mkdir(parents=True, exist_ok=True)
        path = self.dirpath / "last.ckpt"
        trainer.save_checkpoint(path)  # every rank (a barrier); atomic (AtomicCheckpointIO)
        for logger in trainer.loggers:
            logger.save()
            logger.finalize("interrupted")
        self.saved = path
