"""The jobs of a Hydra multirun: each one's overrides, final metrics and parameter count,
and which override keys were swept (the columns of the table, the axes of the plots)."""

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf

from audioseq.errors import AudioseqError


class ReportError(AudioseqError):
    """A folder that cannot be compared (not a multirun, no jobs, an unknown metric...)."""


@dataclass
class Job:
    """One job folder of a multirun: its overrides, final metrics and parameter count."""

    name: str
    path: Path
    overrides: dict[str, str]
    metrics: dict[str, float] = field(default_factory=dict)
    params: int | None = None


def _job_sort_key(path: Path) -> tuple[int, int, str]:
    """Job folders 0, 1, ..., 10 in number order, anything else after them by name."""
    return (0, int(path.name), "") if path.name.isdigit() else (1, 0, path.name)


def _overrides(path: Path) -> dict[str, str]:
    items = OmegaConf.to_container(OmegaConf.load(path)) or []
    pairs = (str(item).split("=", 1) for item in items if "=" in str(item))
    return {key.lstrip("+~"): value for key, value in pairs}


def count_params(job_dir: Path) -> int | None:
    """Parameters of the job's model, rebuilt from its last (or best) checkpoint (for runs
    whose metrics.json has no ``model/params``)."""
    from audioseq.tasks.checkpoint import load_checkpoint  # torch and the models: only here

    for name in ("last.ckpt", "best.ckpt"):
        path = job_dir / "checkpoints" / name
        if path.is_file():
            try:
                model, _ = load_checkpoint(path)
            except AudioseqError:
                return None
            return sum(p.numel() for p in model.parameters())
    return None


def load_multirun(folder: str | Path, with_params: bool = True) -> list[Job]:
    """Every job of the multirun in ``folder``, in job order; a clear error otherwise."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ReportError(f"{folder}: no such folder")
    if (folder / ".hydra").is_dir():
        raise ReportError(
            f"{folder} is a single run, not a multirun: pass the folder that holds the "
            "numbered job folders (logs/<task_name>/multiruns/<timestamp>)"
        )
    job_dirs = [p for p in folder.iterdir() if (p / ".hydra" / "overrides.yaml").is_file()]
    if not job_dirs:
        nested = sorted(p.name for p in folder.iterdir() if (p / "multirun.yaml").is_file())
        hint = f"; it holds multiruns {nested}: pass one of them" if nested else ""
        raise ReportError(
            f"{folder} is not a Hydra multirun folder: no job folders with "
            f".hydra/overrides.yaml{hint}"
        )
    jobs = []
    for path in sorted(job_dirs, key=_job_sort_key):
        metrics_file = path / "metrics.json"
        metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
        job = Job(path.name, path, _overrides(path / ".hydra" / "overrides.yaml"), metrics)
        if "model/params" in metrics:
            job.params = int(metrics["model/params"])
        elif with_params and metrics:  # a run from before metrics.json had the count
            job.params = count_params(path)
        jobs.append(job)
    return jobs


def swept_keys(jobs: Sequence[Job]) -> list[str]:
    """Override keys whose value differs between jobs (or is missing in some), in the order
    they first appear."""
    keys: list[str] = []
    for job in jobs:
        keys += [k for k in job.overrides if k not in keys]
    return [k for k in keys if len({job.overrides.get(k) for job in jobs}) > 1]


def select(jobs: Sequence[Job], where: Sequence[str]) -> list[Job]:
    """Jobs whose overrides match every ``KEY=V1,V2`` filter."""
    selected = list(jobs)
    for condition in where:
        if "=" not in condition:
            raise ReportError(f"--where {condition!r}: expected KEY=VALUE[,VALUE...]")
        key, values = condition.split("=", 1)
        selected = [j for j in selected if j.overrides.get(key) in values.split(",")]
    if not selected:
        raise ReportError(f"no job matches {' '.join(where)}")
    return selected


def as_number(value: str | None) -> float | None:
    """An override's value as a number, None when it is missing or not one."""
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def numeric_keys(jobs: Sequence[Job], keys: Sequence[str]) -> list[str]:
    """The swept keys whose every value is a number: the x axes of the plots."""
    return [k for k in keys if all(as_number(j.overrides.get(k)) is not None for j in jobs)]
