"""Writing a multirun's comparison: the Markdown table and the PNG files, with the checks
that say why a folder cannot be compared."""

from collections.abc import Sequence
from pathlib import Path

from audioseq.comparison.figures import comparison_figure, image_grid
from audioseq.comparison.jobs import ReportError, load_multirun, select
from audioseq.comparison.table import markdown_table

PLOT_METRICS = ("test/acc", "val/acc_best", "val/acc", "test/loss", "val/loss")


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
