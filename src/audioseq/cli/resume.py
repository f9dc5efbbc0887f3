"""``audioseq-train resume=RUN_DIR``: continue a stopped run in its own directory.

Before Hydra reads the command line, ``resume=RUN_DIR`` is replaced by the run's own
overrides (``RUN_DIR/.hydra/overrides.yaml``), ``hydra.run.dir=RUN_DIR`` and
``ckpt_path=RUN_DIR/checkpoints/last.ckpt``, so the same config trains on from the last
checkpoint: the same folder, ``checkpoints/``, ``.hydra`` and TensorBoard run (steps go
on from the checkpoint's; points a killed run logged after its last checkpoint are
purged, ``purge_step``). Only overrides that cannot change what is being trained may be
added (:data:`SAFE`, e.g. ``trainer.max_epochs=30`` to train longer); anything else is
refused with one line, since the result would no longer be the run the folder describes.
"""

import functools
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml

from audioseq.config_schema import upgrade_overrides

#: Override keys (or key prefixes ending in ".") allowed at resume.
SAFE = (
    "trainer.max_epochs",
    "trainer.max_steps",
    "trainer.max_time",
    "trainer.enable_progress_bar",
    "data.num_workers",
    "callbacks.watchdog.",
)
#: Overrides of the stopped run that the resume sets itself.
_REPLACED = ("ckpt_path", "hydra.run.dir", "resume", "logger.tensorboard.purge_step")


class ResumeError(Exception):
    """``resume=`` cannot continue this run (the message says why)."""


def _key(override: str) -> str:
    return override.lstrip("+~").split("=", 1)[0]


def _safe(key: str) -> bool:
    return any(key == s or (s.endswith(".") and key.startswith(s)) for s in SAFE)


def resume_args(args: Sequence[str]) -> list[str]:
    """``args`` (the command line after the program name) with ``resume=RUN_DIR`` replaced
    by what continues that run; unchanged without ``resume=``."""
    given = [a for a in args if _key(a) == "resume"]
    if not given:
        return list(args)
    run = Path(given[-1].split("=", 1)[1]).expanduser().resolve()
    if any(a in ("-m", "--multirun") for a in args):
        raise ResumeError("resume= continues one run; it cannot be combined with -m")
    saved = run / ".hydra" / "overrides.yaml"
    if not saved.is_file():
        raise ResumeError(f"resume={run}: no .hydra/overrides.yaml there (not an audioseq run)")
    checkpoint = run / "checkpoints" / "last.ckpt"
    if not checkpoint.is_file():
        raise ResumeError(f"resume={run}: no checkpoints/last.ckpt (the run saved none yet)")
    added = [a for a in args if _key(a) != "resume"]
    unsafe = [a for a in added if not _safe(_key(a))]
    if unsafe:
        raise ResumeError(
            f"resume={run}: {unsafe} would change the run; at resume only these may change: "
            f"{', '.join(SAFE)} (start a new run for anything else)"
        )
    # under today's key names: a run saved before a rename continues as it was
    previous = [
        o
        for o in upgrade_overrides(yaml.safe_load(saved.read_text()) or [])
        if _key(o) not in _REPLACED
    ]
    step = torch.load(checkpoint, map_location="cpu", weights_only=False).get("global_step", 0)
    return [
        *previous,
        *added,
        f"hydra.run.dir={run}",
        f"ckpt_path={checkpoint}",
        f"+logger.tensorboard.purge_step={step}",
    ]


def resumable(main: Callable[..., Any]) -> Callable[..., Any]:
    """Wraps a ``@hydra.main`` function: rewrites ``resume=`` in ``sys.argv`` first."""

    @functools.wraps(main)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            sys.argv[1:] = resume_args(sys.argv[1:])
        except ResumeError as e:
            print(f"error: {e}", file=sys.stderr)
            sys.exit(2)
        return main(*args, **kwargs)

    return wrapper
