"""Loader worker processes: how many by default, and what they must leave alone."""

import os
from pathlib import Path


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
    """The cores this process may use: its CPU affinity (a batch job's share, not the
    machine's count), lowered to its cgroup's CPU quota where one is set (a container
    or a Kubernetes pod limited to N CPUs still sees every core of the host)."""
    if hasattr(os, "sched_getaffinity"):
        cores = len(os.sched_getaffinity(0))
    else:
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_quota()
    return max(1, min(cores, int(quota))) if quota is not None else cores


def cgroup_cpu_quota(root: Path = Path("/sys/fs/cgroup")) -> float | None:
    """CPUs allowed by the cgroup's quota (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us`` over
    ``cpu.cfs_period_us``); None without a quota or where there is no cgroup file."""
    try:
        if (root / "cpu.max").exists():
            quota, period = (root / "cpu.max").read_text().split()[:2]
            return None if quota == "max" else int(quota) / int(period)
        v1 = root / "cpu"
        quota = int((v1 / "cpu.cfs_quota_us").read_text())
        return None if quota <= 0 else quota / int((v1 / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None


def auto_workers(cores: int, local_ranks: int) -> int:
    """``data.num_workers=auto``: half of each rank's cores, up to 8, and none where a
    rank has two cores or fewer. The training process needs its cores for its own threads
    (and a GPU's feeding); on two cores, workers only take time from them: RNN-128 trained
    20 % slower with two workers than with none (docs/PERFORMANCE.md)."""
    per_rank = cores // max(1, local_ranks)
    return 0 if per_rank <= 2 else min(8, per_rank // 2)
