"""DDP inside a Hydra multirun (``-m``): one job, one run directory, all ranks.

Lightning starts DDP ranks 1..N-1 by re-running the command line with the parent's
``hydra.run.dir``. Under ``-m`` that command line is the whole sweep, so every rank would
run every job into a multirun folder of its own. Before each job's fit we rewrite
``sys.argv`` to that job's own overrides (without ``-m``) and point ``hydra.run.dir`` at the
job's folder, so the children run exactly this job into the same directory. After the job
the environment Lightning set is removed (``closed_process_group`` has closed the group), so
the next job of the sweep starts its own ranks.
"""

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager

from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import read_write

_FLAGS_WITH_VALUE = {"-cp", "--config-path", "-cn", "--config-name", "-cd", "--config-dir"}
_DDP_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE")


def job_argv(argv: list[str], job_overrides: list[str]) -> list[str]:
    """The command line that runs one job of a sweep: config flags kept, ``-m`` and the
    sweep's overrides replaced by the job's own."""
    kept, args = [argv[0]], iter(argv[1:])
    for arg in args:
        if arg in ("-m", "--multirun") or not arg.startswith("-"):
            continue
        kept.append(arg)
        if arg in _FLAGS_WITH_VALUE:
            kept.append(next(args, ""))
    return kept + list(job_overrides)


def _launches_ranks(strategy: object) -> bool:
    name = strategy if isinstance(strategy, str) else type(strategy).__name__
    return "ddp" in str(name).lower() and "spawn" not in str(name).lower()


@contextmanager
def multirun_job(strategy: object) -> Iterator[None]:
    """Around one job's training: set up DDP children for this job alone, then clean up."""
    hydra_cfg = HydraConfig.get()
    if hydra_cfg.mode != RunMode.MULTIRUN or not _launches_ranks(strategy):
        yield
        return
    if "LOCAL_RANK" in os.environ:  # ranks launched externally (torchrun, SLURM): no children
        yield
        return
    saved_argv, saved_env = list(sys.argv), {k: os.environ.get(k) for k in _DDP_ENV}
    saved_run_dir = hydra_cfg.run.dir
    sys.argv = job_argv(sys.argv, list(hydra_cfg.overrides.task))
    with read_write(hydra_cfg.run):
        hydra_cfg.run.dir = hydra_cfg.runtime.output_dir
    try:
        yield
    finally:
        sys.argv = saved_argv
        with read_write(hydra_cfg.run):
            hydra_cfg.run.dir = saved_run_dir
        for key, value in saved_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
