"""Comparing the jobs of a Hydra multirun: a Markdown table and plots (scripts/compare_runs.py).

Generic over what was swept: the columns are the override keys whose values differ
between jobs. Numeric swept keys (a delay, a learning rate) become x axes; the others
(the model) become the lines. Training curves come from each job's TensorBoard files.
"""

import argparse
import io
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from omegaconf import OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from audioseq.errors import AudioseqError, one_line

METRICS = ("val/acc_best", "test/acc", "test/f1_macro", "test/loss", "epochs", "train_seconds")
PLOT_METRICS = ("test/acc", "val/acc_best", "val/acc", "test/loss", "val/loss")


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


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def numeric_keys(jobs: Sequence[Job], keys: Sequence[str]) -> list[str]:
    """The swept keys whose every value is a number: the x axes of the plots."""
    return [k for k in keys if all(_number(j.overrides.get(k)) is not None for j in jobs)]


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


def scalar_curve(job_dir: Path, tag: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of a scalar tag over all the job's event files, by step."""
    points: dict[int, float] = {}
    for events in sorted(job_dir.glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0, "images": 1})
        acc.Reload()
        if tag in acc.Tags().get("scalars", []):
            points.update({e.step: e.value for e in acc.Scalars(tag)})
    steps = np.array(sorted(points))
    return steps, np.array([points[s] for s in steps])


def last_image(job_dir: Path, tag: str) -> bytes | None:
    """The PNG bytes of the latest image logged under ``tag`` in the job's event files."""
    latest = None
    for events in sorted(job_dir.glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 1, "images": 1})
        acc.Reload()
        if tag in acc.Tags().get("images", []):
            event = acc.Images(tag)[-1]
            if latest is None or event.step >= latest.step:
                latest = event
    return None if latest is None else latest.encoded_image_string


def _label(job: Job, keys: Sequence[str]) -> str:
    values = [job.overrides.get(k, "–") for k in keys]
    if len(keys) == 1:
        return values[0]
    return ", ".join(f"{k}={v}" for k, v in zip(keys, values, strict=True))


def comparison_figure(jobs: Sequence[Job], metric: str, curve: str) -> Figure:
    """Top row: ``metric`` against each numeric swept key, one line per value of the other
    swept keys. Bottom row: the ``curve`` tag over training steps, one panel per value of
    the numeric keys (all jobs in one panel when there are none)."""
    keys = swept_keys(jobs)
    xkeys = numeric_keys(jobs, keys)
    group_keys = [k for k in keys if k not in xkeys]
    groups = list(dict.fromkeys(_label(j, group_keys) for j in jobs))  # in job order
    colours = {g: f"C{i % 10}" for i, g in enumerate(groups)}
    panels = list({tuple(j.overrides.get(k) for k in xkeys) for j in jobs})
    panels.sort(key=lambda p: tuple(_number(v) for v in p))
    cols = min(max(len(xkeys), len(panels), 1), 5)
    rows = 1 + math.ceil(len(panels) / cols)
    fig = Figure(figsize=(max(4.2 * cols, 6.0), 3.6 * rows))
    grid = fig.add_gridspec(rows, cols)
    done = [j for j in jobs if metric in j.metrics]
    top = xkeys[:cols] or [None]
    span = max(min(2, cols // len(top)), 1)  # a lone x key gets room for its legend
    for col, xkey in enumerate(top):
        ax = fig.add_subplot(grid[0, col * span : (col + 1) * span])
        for group in groups:
            members = [j for j in done if _label(j, group_keys) == group]
            if xkey is None:
                names, values = (
                    [_label(j, keys) for j in members],
                    [j.metrics[metric] for j in members],
                )
                ax.bar(names, values, color=colours[group])
                ax.tick_params(axis="x", labelrotation=60, labelsize=7)
                continue
            members.sort(key=lambda j: _number(j.overrides[xkey]))
            xs = [_number(j.overrides[xkey]) for j in members]
            ax.plot(xs, [j.metrics[metric] for j in members], "o-", color=colours[group],
                    label=group or "all")  # fmt: skip
        if xkey is not None:
            values = [_number(j.overrides[xkey]) for j in jobs]
            if min(values) > 0 and max(values) / min(values) >= 8:
                ax.set_xscale("log")
            ax.set_xticks(sorted(set(values)), [f"{v:g}" for v in sorted(set(values))])
            ax.set_xlabel(xkey)
            ax.legend(fontsize=8)
        ax.set_ylabel(metric)
        ax.grid(True, alpha=0.3)
    first_panel = None
    for index, panel in enumerate(panels):
        ax = fig.add_subplot(grid[1 + index // cols, index % cols], sharey=first_panel)
        if first_panel is None:  # one y scale: the panels compare at a glance
            first_panel = ax
        for job in (j for j in jobs if tuple(j.overrides.get(k) for k in xkeys) == panel):
            steps, values = scalar_curve(job.path, curve)
            if len(steps):
                group = _label(job, group_keys)
                ax.plot(steps, values, ".-", color=colours[group], label=group or job.name)
        title = ", ".join(f"{k}={v}" for k, v in zip(xkeys, panel, strict=True))
        ax.set_title(title or "all jobs", fontsize=9)
        ax.set_xlabel("step")
        ax.set_ylabel(curve)
        ax.grid(True, alpha=0.3)
        if index == 0:
            ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def image_grid(jobs: Sequence[Job], tag: str) -> Figure:
    """The latest ``tag`` image of every job side by side, titled by its swept overrides."""
    import matplotlib.image

    keys = swept_keys(jobs)
    found = [(j, img) for j in jobs if (img := last_image(j.path, tag)) is not None]
    if not found:
        raise ReportError(f"no job has a TensorBoard image {tag!r}")
    cols = min(len(found), 3)
    rows = math.ceil(len(found) / cols)
    fig = Figure(figsize=(6.0 * cols, 4.0 * rows))
    for index, (job, png) in enumerate(found):
        ax = fig.add_subplot(rows, cols, index + 1)
        ax.imshow(matplotlib.image.imread(io.BytesIO(png), format="png"))
        ax.set_title(", ".join(f"{k}={job.overrides.get(k, '–')}" for k in keys), fontsize=10)
        ax.axis("off")
    fig.tight_layout()
    return fig


def compare(
    folder: str | Path,
    out: str | Path | None = None,
    metric: str | None = None,
    curve: str = "val/acc",
    where: Sequence[str] = (),
    images: Sequence[str] = (),
    plot: str | Path | None = None,
) -> tuple[str, list[Path]]:
    """The Markdown table, and the PNG files written: the comparison ``plot`` (default
    ``out/compare_runs.png``; ``out`` defaults to ``folder``) and, for each ``TAG`` or
    ``TAG=PATH`` in ``images``, a grid of that TensorBoard image (``out/<TAG>.png``)."""
    jobs = select(load_multirun(folder), where)
    finished = [j for j in jobs if j.metrics]
    if not finished:
        raise ReportError(f"{folder}: no job has a metrics.json yet")
    if metric is None:
        metric = next((m for m in PLOT_METRICS if any(m in j.metrics for j in finished)), None)
    if metric is None or not any(metric in j.metrics for j in finished):
        known = sorted({k for j in finished for k in j.metrics})
        raise ReportError(f"--metric {metric!r} is in no metrics.json (known: {known})")
    out = Path(out) if out is not None else Path(folder)
    targets = [(None, Path(plot) if plot else out / "compare_runs.png")]
    for spec in images:
        tag, _, path = spec.partition("=")
        targets.append((tag, Path(path) if path else out / f"{tag.replace('/', '_')}.png"))
    for tag, path in targets:
        figure = comparison_figure(jobs, metric, curve) if tag is None else image_grid(jobs, tag)
        path.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=110)
    return markdown_table(jobs), [path for _, path in targets]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Compare the jobs of a Hydra multirun: Markdown table and PNG plots."
    )
    parser.add_argument("folder", help="the multirun folder (logs/<task>/multiruns/<time>)")
    parser.add_argument("--out", help="where the PNG files go (default: the multirun folder)")
    parser.add_argument(
        "--plot", help="path of the comparison plot (default: OUT/compare_runs.png)"
    )
    parser.add_argument("--metric", help="final metric to plot (default: test/acc if any)")
    parser.add_argument("--curve", default="val/acc", help="TensorBoard scalar over steps")
    parser.add_argument(
        "--where", action="append", default=[], metavar="KEY=V1,V2", help="keep matching jobs"
    )
    parser.add_argument(
        "--images", action="append", default=[], metavar="TAG[=PATH]",
        help="also write a grid of each job's latest TensorBoard image TAG (OUT/TAG.png)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        table, written = compare(
            args.folder, args.out, args.metric, args.curve, args.where, args.images, args.plot
        )
    except AudioseqError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    print(table)
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    return 0
