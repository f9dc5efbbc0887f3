"""Ranks started by torchrun or SLURM's srun: one run directory, and only rank 0 writes it.

Lightning starts DDP ranks itself only when no launcher did. Under ``torchrun`` or
``srun`` every rank is a complete Hydra app: left alone, each would name a run directory
after its own clock (two folders when the seconds differ, one per node), write its own
``.hydra/`` and append to rank 0's ``train.log``. Before Hydra reads the command line,
:func:`external_launch` adds to it

- on every rank, unless the command line names the folder itself: ``hydra.run.dir``
  (``hydra.sweep.dir`` under ``-m``) named after the job id that every rank of the job
  shares: ``<log_dir>/<task_name>/runs/slurm-<SLURM_JOB_ID>.<SLURM_STEP_ID>`` under srun,
  ``.../runs/torchrun-<rdzv id>`` under ``torchrun --rdzv-id ID`` (or ``--standalone``).
  Plain ``torchrun`` has no id (``none``): each rank keeps its timestamped folder, and
  one line on stderr says to pass ``hydra.run.dir=PATH`` or ``--rdzv-id``;
- on ranks other than 0: ``hydra.output_subdir=null`` (no second ``.hydra/``) and
  ``hydra.job.name=<app>_rank<R>`` (its own ``<app>_rank<R>.log``), as Lightning does for
  the ranks it starts itself. Rank 0 alone writes metrics.json, checkpoints and TensorBoard.

The launcher is detected as Lightning detects it: ``TORCHELASTIC_RUN_ID`` means torchrun
(which wins inside a SLURM job, as in Lightning), ``SLURM_NTASKS`` means srun unless the
job is named ``bash`` or ``interactive``.
"""

import functools
import os
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

#: Must match conf/hydra/default.yaml, with the timestamp replaced by the run name.
RUN_DIR = "${paths.log_dir}/${task_name}/runs/"
SWEEP_DIR = "${paths.log_dir}/${task_name}/multiruns/"
_SLURM_INTERACTIVE = ("bash", "interactive")  # Lightning's rule: such jobs are not srun runs


@dataclass(frozen=True)
class Launch:
    """A process started by an external launcher."""

    launcher: str  # "torchrun" or "slurm"
    rank: int  # global rank
    local_rank: int
    world_size: int
    run_name: str | None  # the same on every rank of the job; None: the launcher has none


def _name(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", text)


def _slurm_run_name(env: Mapping[str, str]) -> str | None:
    job = env.get("SLURM_JOB_ID")
    if not job:
        return None
    step = env.get("SLURM_STEP_ID")
    return _name(f"slurm-{job}" + (f".{step}" if step else ""))


def detect(env: Mapping[str, str]) -> Launch | None:
    """The external launcher of this process, or None (a plain command: Lightning starts
    any other ranks itself)."""
    if "TORCHELASTIC_RUN_ID" in env:
        run_id = env["TORCHELASTIC_RUN_ID"]
        name = _name(f"torchrun-{run_id}") if run_id not in ("", "none") else None
        return Launch(
            "torchrun",
            int(env.get("RANK", 0)),
            int(env.get("LOCAL_RANK", 0)),
            int(env.get("WORLD_SIZE", 1)),
            name or _slurm_run_name(env),  # torchrun inside a SLURM job: the job's id
        )
    if "SLURM_NTASKS" in env and env.get("SLURM_JOB_NAME") not in _SLURM_INTERACTIVE:
        return Launch(
            "slurm",
            int(env.get("SLURM_PROCID", 0)),
            int(env.get("SLURM_LOCALID", 0)),
            int(env["SLURM_NTASKS"]),
            _slurm_run_name(env),
        )
    return None


def _given(args: Sequence[str], key: str) -> bool:
    return any(arg.lstrip("+~").split("=", 1)[0] == key for arg in args)


def launch_overrides(args: Sequence[str], launch: Launch, app: str) -> list[str]:
    """The overrides to append to ``args`` (the command line after the program name)."""
    extra = []
    multirun = any(arg in ("-m", "--multirun") for arg in args)
    key, base = ("hydra.sweep.dir", SWEEP_DIR) if multirun else ("hydra.run.dir", RUN_DIR)
    if launch.run_name and not _given(args, key):
        extra.append(f"{key}={base}{launch.run_name}")
    if launch.rank != 0:
        if not _given(args, "hydra.output_subdir"):
            extra.append("hydra.output_subdir=null")
        if not _given(args, "hydra.job.name"):
            extra.append(f"hydra.job.name={app}_rank{launch.rank}")
    return extra


def no_shared_run_dir(args: Sequence[str], launch: Launch | None) -> str | None:
    """The one-line warning for a multi-process launch whose ranks cannot agree on a run
    directory (printed by each node's local rank 0), or None."""
    multirun = any(arg in ("-m", "--multirun") for arg in args)
    key = "hydra.sweep.dir" if multirun else "hydra.run.dir"
    if launch is None or launch.run_name or launch.world_size < 2 or _given(args, key):
        return None
    if launch.local_rank != 0:
        return None
    missing, alternative = ("--rdzv-id", " or torchrun --rdzv-id=ID")
    if launch.launcher == "slurm":
        missing, alternative = ("SLURM_JOB_ID", "")
    return (
        f"audioseq: no {missing}, so each node names its own run folder: "
        f"pass {key}=PATH (the same on every node){alternative}"
    )


def external_launch(app: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Wraps a ``@hydra.main`` function: under torchrun or srun, adds the overrides above
    to ``sys.argv`` before Hydra parses it. ``app`` names the log file of ranks > 0."""

    def decorate(main: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(main)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            launch = detect(os.environ)
            if launch is not None:
                warning = no_shared_run_dir(sys.argv[1:], launch)
                if warning:
                    print(warning, file=sys.stderr)
                sys.argv += launch_overrides(sys.argv[1:], launch, app)
            return main(*args, **kwargs)

        return wrapper

    return decorate
