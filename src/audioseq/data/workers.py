"""Loader worker processes: how many by default, and what they must leave alone."""

import os


def leave_sigchld_alone() -> None:
    """Keep torch's DataLoader from installing its SIGCHLD handler in this process.

    The handler reports a dead worker the moment it dies. With it installed, suspending
    a training job (Ctrl-Z, ``scontrol suspend``: every stop and continue of a worker
    signals this process) aborted training with glibc heap corruption or NaN gradients,
    in 5 of 6 runs of a short default training (and 3 of 3 stopping the workers alone);
    without it, every run finished (root cause not found). A worker that dies is still
    reported, by the loader's own status check, within 5 seconds. The switch is torch's
    private module flag, so this is a no-op if torch renames it.
    """
    from torch.utils.data._utils import signal_handling

    signal_handling._SIGCHLD_handler_set = True


def usable_cores() -> int:
    """The cores this process may run on (its affinity: a batch job's share, not the
    machine's count)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def auto_workers(cores: int, local_ranks: int) -> int:
    """``data.num_workers=auto``: half of each rank's cores, up to 8, and none where a
    rank has two cores or fewer. The training process needs its cores for its own threads
    (and a GPU's feeding); on two cores, workers only take time from them: RNN-128 trained
    20 % slower with two workers than with none (docs/PERFORMANCE.md)."""
    per_rank = cores // max(1, local_ranks)
    return 0 if per_rank <= 2 else min(8, per_rank // 2)
