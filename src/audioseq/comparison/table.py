"""The Markdown table of a multirun: one row per job, its swept values, then its metrics."""

from collections.abc import Sequence

from audioseq.comparison.jobs import Job, swept_keys

METRICS = ("val/acc_best", "test/acc", "test/f1_macro", "test/loss", "epochs", "train_seconds")


def _format(key: str, value: float | int | None) -> str:
    if value is None:
        return "–"
    if key in ("epochs", "params"):
        return f"{int(value):,}"
    if key.endswith("seconds"):
        return f"{value:.0f}"
    return f"{value:.3f}"


def markdown_table(jobs: Sequence[Job], metrics: Sequence[str] = METRICS) -> str:
    """One row per job: the swept overrides, the parameter count, then the metrics; a job
    without metrics.json (still running, or crashed) is a row marked unfinished."""
    keys = swept_keys(jobs)
    present = [m for m in metrics if any(m in j.metrics for j in jobs)]
    has_params = any(j.params is not None for j in jobs)
    header = ["job", *keys, *(["params"] if has_params else []), *present]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for job in jobs:
        row = [job.name, *(job.overrides.get(k, "–") for k in keys)]
        row += [_format("params", job.params)] if has_params else []
        if not job.metrics:
            row += ["unfinished"] + ["–"] * (len(present) - 1) if present else []
        else:
            row += [_format(m, job.metrics.get(m)) for m in present]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)
