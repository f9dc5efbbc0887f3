"""audioseq-inspect: read every split of a data source once and report what is in it and
what training would trip over (report.md, durations.png and labels.png in the run folder).

audioseq-inspect                                   # the built-in DTMF corpus
audioseq-inspect data=manifest data.train_manifest=train.jsonl data.val_manifest=val.jsonl
audioseq-inspect data=folder data.root=data/birds decode=false    # headers only: fast

(The module is not called ``inspect``: a script of that name would shadow Python's.)
"""

import logging
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from audioseq.cli.config_dir import config_dir
from audioseq.cli.errors import refuse_renamed_keys, report_errors
from audioseq.cli.predict import progress_bar
from audioseq.config_schema import validate
from audioseq.inspection.clips import split_readers
from audioseq.inspection.report import SPLIT_HEADER, split_rows, write_report
from audioseq.inspection.tally import Tally, plural

log = logging.getLogger(__name__)

#: Problem lines the summary prints (report.md has them all).
SHOWN = 12


def _found(counts: Counter, show: Callable[[Any], str]) -> str:
    return ", ".join(f"{show(key)} ({n})" for key, n in sorted(counts.items()))


def summary(tally: Tally, problems: list[str], title: str) -> Group:
    """What fits on one screen: the splits, the formats found and the problems."""
    table = Table(*SPLIT_HEADER, title=title)
    for row in split_rows(tally):
        table.add_row(*map(str, row))
    lines = [
        f"sample rates: {_found(tally.rates, lambda rate: f'{rate} Hz')}",
        f"channels: {_found(tally.channels, str)}",
        f"encodings: {_found(tally.encodings, str)}",
        "problems:" if problems else "problems: none found",
        *(f"  - {line}" for line in problems[:SHOWN]),
    ]
    if len(problems) > SHOWN:
        lines.append(f"  ... {len(problems) - SHOWN} more in report.md")
    return Group(table, *(Text(line) for line in lines))  # Text: no rich markup in labels


def inspect_data(cfg: DictConfig) -> Tally:
    """Read every clip of every split, write the report into the run directory and print
    the summary; returns the tally."""
    validate(cfg, "inspect")
    data = OmegaConf.to_container(cfg.data, resolve=True)
    frame = instantiate(cfg.features).win_length  # shorter clips give the model no frame
    tally = Tally(frame, data.get("min_seconds"), data.get("max_seconds"))
    readers = split_readers(data, cfg.decode)  # listing errors stop here, before reading
    started = time.perf_counter()
    for reader in readers:
        with progress_bar(reader.total, cfg.progress, f"reading {reader.split}") as advance:
            for clip in reader.clips():
                tally.add(clip)
                advance()
    seconds = time.perf_counter() - started
    problems = tally.problems(cfg.imbalance_ratio)
    hydra_cfg = HydraConfig.get()
    clips = plural(sum(len(d) for d in tally.durations.values()) + len(tally.unusable), "clip")
    title = f"data={data['source']}: {clips} read in {seconds:.1f} s"
    how = "decoded as training decodes them" if cfg.decode else "headers only (decode=false)"
    heading = (
        f"`{' '.join(['audioseq-inspect', *hydra_cfg.overrides.task])}`\n\n"
        f"{title}, {how}. A frame is {frame} samples ({1000 * frame / 16000:g} ms, "
        f"features={hydra_cfg.runtime.choices.get('features')})."
    )
    run_dir = Path(hydra_cfg.runtime.output_dir)
    paths = write_report(run_dir, tally, problems, heading)
    Console().print(summary(tally, problems, title))
    log.info("report written to %s (%s beside it)", paths[0], ", ".join(p.name for p in paths[1:]))
    return tally


@refuse_renamed_keys  # data.task=... names data.corpus
@hydra.main(version_base="1.3", config_path=config_dir(), config_name="inspect")
@report_errors
def main(cfg: DictConfig) -> None:
    inspect_data(cfg)


if __name__ == "__main__":
    main()
