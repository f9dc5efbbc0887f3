"""audioseq-eval: evaluate a checkpoint; prints the metrics and the per-class scores,
writes metrics.json, per_class.csv, confusion_matrix.csv and confusion_matrix.png.

audioseq-eval ckpt_path=logs/train/runs/<timestamp>/checkpoints/best.ckpt
audioseq-eval ckpt_path=... data.test_manifest=other.jsonl split=test
"""

import json
import logging
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.utils import to_absolute_path
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from audioseq.allocator import reuse_freed_memory
from audioseq.cli.components import build_trainer
from audioseq.cli.config_dir import config_dir
from audioseq.cli.errors import refuse_renamed_keys, report_errors
from audioseq.cli.eval_report import ConfusionCollector, per_class, scores_table, write_report
from audioseq.cli.metrics_file import scalar_metrics, write_metrics
from audioseq.cli.process_group import closed_process_group
from audioseq.cli.quiet import quiet_lightning
from audioseq.config_schema import validate
from audioseq.data.datamodule import AudioDataModule
from audioseq.errors import ConfigError
from audioseq.tasks.checkpoint import load_checkpoint

log = logging.getLogger(__name__)


def data_settings(cfg: DictConfig, saved: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """The checkpoint's data settings, changed by the user's ``data.KEY=...`` overrides, or
    replaced by the composed ``data`` group when the user chose one (``data=manifest``)."""
    keys = [o.split("=", 1)[0].lstrip("+~") for o in overrides]
    data = OmegaConf.to_container(cfg.data, resolve=True)
    data.pop("_target_", None)
    if "data" in keys or not saved:
        return {key: value for key, value in data.items() if value is not None}
    changed = {key.removeprefix("data.") for key in keys if key.startswith("data.")}
    # Evaluation never augments; the training noise folder need not exist any more.
    return {**saved, **{key: data[key] for key in changed}, "augment": None}


def evaluate(cfg: DictConfig) -> dict[str, float]:
    validate(cfg, "eval")  # before the checkpoint is read
    quiet_lightning()
    reuse_freed_memory()
    model, saved = load_checkpoint(to_absolute_path(cfg.ckpt_path))
    settings = data_settings(cfg, saved, list(HydraConfig.get().overrides.task))
    datamodule = AudioDataModule(**settings)
    # A detector's labels name its frame classes: the data's must be the same, in order.
    named = getattr(model, "uses_labels", True) or getattr(model, "frame_level", False)
    if named and datamodule.labels != model.labels:
        raise ConfigError(
            f"data labels {datamodule.labels} differ from the checkpoint's {model.labels}"
        )
    if not datamodule.has_split(cfg.split):
        raise ConfigError(f"data: no {cfg.split} split to evaluate")
    collector = ConfusionCollector()
    trainer = build_trainer(cfg, extra_callbacks=[collector])
    run = trainer.test if cfg.split == "test" else trainer.validate
    with closed_process_group(trainer.strategy):
        metrics = scalar_metrics(run(model, datamodule=datamodule)[0])
    if trainer.is_global_zero:
        run_dir = HydraConfig.get().runtime.output_dir
        path = write_metrics(run_dir, metrics)
        print(json.dumps(metrics, indent=2))
        log.info("metrics written to %s", path)
        if collector.matrix is not None:  # a classifier: the per-class report
            Console().print(scores_table(per_class(collector.matrix, model.labels), cfg.split))
            title = f"{cfg.split} ({int(collector.matrix.sum())} clips)"
            paths = write_report(run_dir, collector.matrix, model.labels, title)
            log.info("per-class report written to %s", ", ".join(p.name for p in paths))
    return metrics


@refuse_renamed_keys  # data.task=... names data.corpus
@hydra.main(version_base="1.3", config_path=config_dir(), config_name="eval")
@report_errors
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
