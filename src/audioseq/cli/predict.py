"""audioseq-predict: top-k labels for audio files, folders and manifests, from a checkpoint.

audioseq-predict ckpt_path=logs/train/runs/<timestamp>/checkpoints/best.ckpt inputs=[a.wav,dir/]
audioseq-predict ckpt_path=... inputs=[test.jsonl] output=predictions.csv top_k=5
audioseq-predict ckpt_path=... inputs=[long.wav] window_seconds=1 hop_seconds=0.5
"""

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import hydra
from hydra.utils import get_original_cwd, to_absolute_path
from omegaconf import DictConfig, ListConfig
from rich.console import Console
from rich.progress import MofNCompleteColumn, Progress
from rich.table import Table

from audioseq.allocator import reuse_freed_memory
from audioseq.cli.config_dir import config_dir
from audioseq.cli.errors import report_errors
from audioseq.config_schema import validate
from audioseq.data.skipping import SkipPolicy
from audioseq.data.workers import auto_workers, usable_cores
from audioseq.errors import ConfigError
from audioseq.inference.inputs import list_inputs
from audioseq.inference.predictor import Prediction, Predictor, predict_entries
from audioseq.inference.writer import PredictionWriter

log = logging.getLogger(__name__)

#: Clips shown in the summary table (all of them are in the output file).
SHOWN = 10


def input_paths(inputs: Any) -> list[str]:
    """``inputs=a.wav`` or ``inputs=[a.wav,dir/]`` as absolute paths."""
    values = list(inputs) if isinstance(inputs, ListConfig | list | tuple) else [inputs]
    if not values or any(v is None or not str(v) for v in values):
        raise ConfigError("inputs: give audio files, folders or manifests, e.g. inputs=[a.wav]")
    return [to_absolute_path(str(v)) for v in values]


@contextmanager
def progress_bar(
    total: int, enabled: bool, description: str = "predicting"
) -> Iterator[Callable[[], None]]:
    """A rich progress bar over the clips on stderr; yields its ``advance``."""
    if not enabled:
        yield lambda: None
        return
    columns = (*Progress.get_default_columns(), MofNCompleteColumn())
    with Progress(*columns, console=Console(stderr=True)) as bar:
        task = bar.add_task(description, total=total)
        yield lambda: bar.advance(task)


def summary_table(rows: list[Prediction], clips: int) -> Table:
    """The first clips' top-k labels, paths relative to where the command was started."""
    caption = f"{clips - len(rows)} more in the output file" if clips > len(rows) else None
    table = Table(caption=caption)
    table.add_column("path", overflow="fold")  # a narrow terminal folds paths, not labels
    table.add_column("top-k (probability)", no_wrap=True)
    for p in rows:
        path = os.path.relpath(p.path, get_original_cwd())
        table.add_row(
            p.path if path.startswith("..") else path,
            "  ".join(
                f"{label} ({prob:.3f})" for label, prob in zip(p.labels, p.probs, strict=True)
            ),
        )
    return table


def predict(cfg: DictConfig) -> dict[str, Any]:
    """Write the predictions file; returns what was done (rows, clips, windows, skipped)."""
    validate(cfg, "predict")  # before the checkpoint is read
    reuse_freed_memory()
    predictor = Predictor.from_checkpoint(to_absolute_path(cfg.ckpt_path), cfg.device)
    entries = list_inputs(input_paths(cfg.inputs))
    policy = SkipPolicy(cfg.on_error)
    top_k = min(cfg.top_k, len(predictor.labels))
    shown: list[Prediction] = []
    clips = windows = 0
    writer = PredictionWriter(to_absolute_path(cfg.output), top_k)
    workers = cfg.num_workers
    if workers == "auto":
        cores = usable_cores()
        workers = auto_workers(cores, local_ranks=1)
        log.info("num_workers=auto: %d decoding workers (%d cores)", workers, cores)
    log.info("predicting %d clip(s) on %s", len(entries), predictor.device)
    with writer, progress_bar(len(entries), cfg.progress) as advance:
        for p in predict_entries(
            predictor,
            entries,
            policy,
            batch_size=cfg.batch_size,
            top_k=top_k,
            window_seconds=cfg.window_seconds,
            hop_seconds=cfg.hop_seconds,
            num_workers=workers,
            on_clip_done=advance,
        ):
            writer.write(p)
            if p.window is not None:
                windows += 1
                continue
            clips += 1
            if len(shown) < SHOWN:
                shown.append(p)
    Console().print(summary_table(shown, clips))
    if policy.counts:
        log.warning(
            "skipped %d unreadable input(s): %s", policy.counts.total(), dict(policy.counts)
        )
    log.info("%d clip(s), %d window(s) written to %s", clips, windows, writer.output)
    return {"rows": writer.rows, "clips": clips, "windows": windows, "skipped": dict(policy.counts)}


@hydra.main(version_base="1.3", config_path=config_dir(), config_name="predict")
@report_errors
def main(cfg: DictConfig) -> None:
    predict(cfg)


if __name__ == "__main__":
    main()
