"""The plots of a multirun: a final metric against each numeric swept key (a delay, a
learning rate), one line per value of the others (the model), the training curves from
each job's TensorBoard files, and a grid of one TensorBoard image from every job."""

import io
import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from audioseq.comparison.jobs import Job, ReportError, as_number, numeric_keys, swept_keys


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
    panels.sort(key=lambda p: tuple(as_number(v) for v in p))
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
            members.sort(key=lambda j: as_number(j.overrides[xkey]))
            xs = [as_number(j.overrides[xkey]) for j in members]
            ax.plot(xs, [j.metrics[metric] for j in members], "o-", color=colours[group],
                    label=group or "all")  # fmt: skip
        if xkey is not None:
            values = [as_number(j.overrides[xkey]) for j in jobs]
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
