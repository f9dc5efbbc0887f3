"""The inspection report: ``report.md`` and its pictures, ``durations.png`` (histogram per
split) and ``labels.png`` (clips per label and split), written into the run directory."""

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from audioseq.inspection.tally import Amount, Tally, plural

#: Rows of each list of problem clips in the report (the counts are always complete).
LISTED = 200
#: Labels drawn in labels.png (the most frequent; every label is in the report's table).
DRAWN = 60


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.4f}"


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += [
        "| " + " | ".join(str(cell).replace("|", "\\|") for cell in row) + " |" for row in rows
    ]
    return "\n".join(lines)


SPLIT_HEADER = ("split", "clips", "hours", "labels", "speakers", "unusable")


def split_rows(tally: Tally) -> list[list[object]]:
    """Per split: usable clips, hours, labels, speakers, unusable clips."""
    rows = []
    for split in tally.splits:
        total = tally.total(split)
        rows.append(
            [
                split,
                total.clips,
                hours(total.seconds),
                len(tally.labels(split)),
                len(tally.speakers(split)),
                tally.unusable_in(split),
            ]
        )
    return rows


def _per_split_table(
    tally: Tally, table: dict[tuple[str, str], Amount], keys: list[str], what: str
) -> str:
    """Clips and hours of each ``key`` (label or speaker) in each split."""
    header = [what]
    for split in tally.splits:
        header += [f"{split} clips", f"{split} hours"]
    rows = []
    for key in keys:
        row: list[object] = [key]
        for split in tally.splits:
            amount = table.get((split, key), Amount())
            row += [amount.clips, hours(amount.seconds)]
        rows.append(row)
    return markdown_table(header, rows)


def _counted(counter: Counter, what: str, show: Callable[[Any], str] = str) -> str:
    return markdown_table((what, "clips"), ((show(k), n) for k, n in sorted(counter.items())))


def _listed(rows: list[list[object]], header: Sequence[str]) -> str:
    more = f"\n\n... and {len(rows) - LISTED} more." if len(rows) > LISTED else ""
    return markdown_table(header, rows[:LISTED]) + more


def markdown(tally: Tally, problems: list[str], heading: str) -> str:
    """The whole report; ``heading``: what was inspected and how."""
    parts = [f"# Data inspection\n\n{heading}", markdown_table(SPLIT_HEADER, split_rows(tally))]
    parts.append("## Problems\n\n" + ("\n".join(f"- {p}" for p in problems) or "None found."))
    balance = [tally.imbalance(split) for split in tally.splits]
    parts.append(
        "## Labels\n\n"
        + _per_split_table(tally, tally.by_label, tally.labels(with_none=True), "label")
        + "\n\nLargest and smallest class: "
        + "; ".join(
            f"{b.split} `{b.largest}` {plural(b.most, 'clip')}, `{b.smallest}` {b.fewest} "
            f"({b.ratio:.2f}x)"
            for b in balance
            if b is not None
        )
        + "\n\n![clips per label](labels.png)"
    )
    if tally.by_speaker:
        shared = tally.shared_speakers()
        parts.append(
            "## Speakers\n\n"
            + (
                "In more than one split: "
                + ", ".join(f"{spk} ({', '.join(s)})" for spk, s in shared.items())
                if shared
                else "Every speaker is in one split only."
            )
            + "\n\n"
            + _per_split_table(tally, tally.by_speaker, tally.speakers(), "speaker")
        )
    stats = []
    for split in tally.splits:
        d = np.asarray(tally.durations[split] or [np.nan])
        stats.append([split, *(f"{v:.3f}" for v in (d.min(), np.median(d), d.mean(), d.max()))])
    parts.append(
        "## Durations (seconds)\n\n"
        + markdown_table(("split", "min", "median", "mean", "max"), stats)
        + "\n\n![durations](durations.png)"
    )
    parts.append(
        "## Formats found\n\n"
        + _counted(tally.rates, "sample rate", lambda r: f"{r} Hz")
        + "\n\n"
        + _counted(tally.channels, "channels")
        + "\n\n"
        + _counted(tally.encodings, "encoding")
    )
    unusable = [[c.split, c.where, c.reason, c.message] for c in tally.unusable]
    parts.append(
        "## Unusable clips\n\n"
        + (_listed(unusable, ("split", "clip", "reason", "why")) if unusable else "None.")
    )
    off = [[c.split, c.where, f"{c.seconds:.3f}", why] for c, why in tally.off_length]
    parts.append(
        "## Clips the frontend or the length limits leave out\n\n"
        + (_listed(off, ("split", "clip", "seconds", "why")) if off else "None.")
    )
    return "\n\n".join(parts) + "\n"


def durations_figure(tally: Tally) -> Figure:
    figure = Figure(figsize=(7, 3.5), layout="constrained")
    axes = figure.add_subplot()
    found = [np.asarray(tally.durations[s]) for s in tally.splits if tally.durations[s]]
    if found:
        every = np.concatenate(found)
        bins = np.histogram_bin_edges(every, bins=40)  # one length: a bin either side
        for split in tally.splits:
            if tally.durations[split]:
                axes.hist(tally.durations[split], bins=bins, histtype="step", label=split)
        for name in ("min_seconds", "max_seconds"):
            limit = getattr(tally, name)
            if limit is not None:
                axes.axvline(limit, linestyle="--", color="grey", label=f"data.{name}")
        figure.legend(loc="outside upper right", ncols=len(found) + 2)
    axes.set(xlabel="seconds", ylabel="clips", title="clip durations")
    return figure


def labels_figure(tally: Tally) -> Figure:
    counts = {
        lab: [tally.by_label.get((s, lab), Amount()).clips for s in tally.splits]
        for lab in tally.labels(with_none=True)
    }
    drawn = sorted(sorted(counts, key=lambda lab: -sum(counts[lab]))[:DRAWN])
    tall = 1.2 + 0.12 * len(drawn) * max(1, len(tally.splits))
    figure = Figure(figsize=(7, tall), layout="constrained")
    axes = figure.add_subplot()
    height = 0.8 / max(1, len(tally.splits))
    y = np.arange(len(drawn))
    for i, split in enumerate(tally.splits):
        axes.barh(y + i * height, [counts[lab][i] for lab in drawn], height, label=split)
    axes.set_yticks(y + height * (len(tally.splits) - 1) / 2, drawn)
    axes.invert_yaxis()
    shown = "" if len(drawn) == len(counts) else f" (the {len(drawn)} most frequent)"
    axes.set(xlabel="clips", title=f"clips per label{shown}")
    if tally.splits:
        figure.legend(loc="outside upper right", ncols=len(tally.splits))
    return figure


def write_report(run_dir: Path, tally: Tally, problems: list[str], heading: str) -> list[Path]:
    """``report.md``, ``durations.png`` and ``labels.png`` in ``run_dir``; their paths."""
    report = run_dir / "report.md"
    report.write_text(markdown(tally, problems, heading), encoding="utf-8")
    pictures = {"durations.png": durations_figure(tally), "labels.png": labels_figure(tally)}
    for name, figure in pictures.items():
        figure.savefig(run_dir / name, dpi=100)
    return [report, *(run_dir / name for name in pictures)]
