"""A Hydra callback: at the end of every ``-m`` sweep, the comparison of its jobs
(:mod:`audioseq.comparison`, as ``scripts/compare_runs.py`` prints it) is written into the sweep
folder: ``compare_runs.md`` (the table) and ``compare_runs.png`` (the plot)."""

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from audioseq.errors import AudioseqError, one_line

log = logging.getLogger(__name__)


class CompareRuns(Callback):
    """Writes the sweep's comparison when the sweep ends (a report that cannot be made,
    e.g. when no job finished, is a warning: the sweep's own results stay as they are)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        from audioseq.comparison.report import compare  # matplotlib and TensorBoard: only when used

        folder = Path(config.hydra.sweep.dir)
        try:
            table, written = compare(folder)
        except AudioseqError as exc:
            log.warning("no comparison of %s: %s", folder, one_line(exc))
            return
        (folder / "compare_runs.md").write_text(table + "\n")
        log.info("comparison of the sweep: %s, %s", folder / "compare_runs.md", written[0])
