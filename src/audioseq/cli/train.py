"""audioseq-train: fit a model, test its best checkpoint, write metrics.json.

audioseq-train                                  # LSTM on the built-in DTMF data
audioseq-train model=gru features=mfcc trainer.max_epochs=5
audioseq-train -m model=rnn,lstm,gru            # a sweep, one folder per job
"""

import logging
import sys
import time
from typing import Any, NoReturn

import hydra
import lightning.pytorch as pl
from hydra.core.hydra_config import HydraConfig
from hydra.utils import get_class, instantiate
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import TensorBoardLogger
from lightning.pytorch.utilities.exceptions import SIGTERMException
from omegaconf import DictConfig, OmegaConf

from audioseq.allocator import reuse_freed_memory
from audioseq.callbacks.preemption import EXIT_PREEMPTED, Preemption
from audioseq.cli import resolvers  # noqa: F401  (registers ${audioseq.folder:...})
from audioseq.cli.components import build_trainer, flat_params
from audioseq.cli.config_dir import config_dir
from audioseq.cli.errors import refuse_renamed_keys, report_errors
from audioseq.cli.external_launch import external_launch
from audioseq.cli.metrics_file import scalar_metrics, write_metrics
from audioseq.cli.multirun_ddp import multirun_job
from audioseq.cli.process_group import closed_process_group
from audioseq.cli.quiet import quiet_lightning
from audioseq.cli.resume import resumable
from audioseq.config_schema import validate
from audioseq.errors import ConfigError
from audioseq.models.complexity import task_complexity
from audioseq.tasks.init_from import apply_init_from

log = logging.getLogger(__name__)

HPARAM_GROUPS = ("data", "features", "model", "task", "trainer", "seed")
#: Task settings read by the callbacks (``${task.monitor}``), not by the task's constructor.
SELECTION_KEYS = ("monitor", "mode")


def build_task(cfg: DictConfig, labels: list[str]) -> pl.LightningModule:
    """The LightningModule named by ``task._target_``, built from plain config dicts, its
    encoder loaded from ``model.init_from`` when set."""
    task = OmegaConf.to_container(cfg.task, resolve=True)
    cls = get_class(task.pop("_target_"))
    for key in SELECTION_KEYS:
        task.pop(key, None)
    model = OmegaConf.to_container(cfg.model, resolve=True)
    module = cls(
        features=OmegaConf.to_container(cfg.features, resolve=True),
        model=model,
        labels=labels,
        **task,
    )
    apply_init_from(module, model)
    return module


def _log_hparams(trainer: pl.Trainer, cfg: DictConfig, metrics: dict[str, float]) -> None:
    """The hparams table: the flattened config beside the final metrics (``hp/...``)."""
    params = flat_params(cfg, HPARAM_GROUPS)
    final = {f"hp/{key}": value for key, value in metrics.items()}
    for logger in trainer.loggers:
        if isinstance(logger, TensorBoardLogger):  # the only one with an hparams/metrics view
            logger.log_hyperparams(params, metrics=final)
        else:
            logger.log_hyperparams(params)


def _preempted(trainer: pl.Trainer) -> NoReturn:
    """One line on how the run stopped and how to continue it; exit status 75."""
    saved = next((c.saved for c in trainer.callbacks if isinstance(c, Preemption)), None)
    run_dir = HydraConfig.get().runtime.output_dir
    what = f"saved {saved}" if saved else "no checkpoint saved (callbacks.preemption is off)"
    if trainer.is_global_zero:
        print(
            f"audioseq: stopped by a signal at step {trainer.global_step} (epoch "
            f"{trainer.current_epoch}); {what}; continue with: audioseq-train resume={run_dir}",
            file=sys.stderr,
        )
    sys.exit(EXIT_PREEMPTED)


def train(cfg: DictConfig) -> dict[str, float]:
    """Fit, test the best checkpoint, and write metrics.json into the run directory."""
    validate(cfg, "train")  # types, ranges, choices: one line now, not a traceback later
    quiet_lightning()
    reuse_freed_memory()
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data, _convert_="all")  # plain types: checkpoints load safely
    if not datamodule.has_split("val"):
        raise ConfigError(
            "data: no validation split (set e.g. data.val_manifest): "
            f"{cfg.task.get('monitor', 'val/acc')} picks the checkpoint"
        )
    model = build_task(cfg, datamodule.labels)
    complexity = task_complexity(model)
    log.info("model: %s", complexity)
    trainer = build_trainer(cfg, manual_optimization=not model.automatic_optimization)
    with multirun_job(trainer.strategy), closed_process_group(trainer.strategy):
        started = time.perf_counter()
        try:
            trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        except SIGTERMException:
            _preempted(trainer)
        metrics: dict[str, Any] = {
            key: value
            for key, value in scalar_metrics(trainer.callback_metrics).items()
            if not key.endswith(("_step", "_epoch"))  # the plain name holds the epoch value
        }
        metrics["train_seconds"] = time.perf_counter() - started
        metrics["epochs"] = trainer.current_epoch
        metrics["steps"] = trainer.global_step  # optimizer steps
        metrics.update(complexity.metrics())  # model/params, model/macs_per_second
        if cfg.get("test") and datamodule.has_split("test"):
            checkpoint = trainer.checkpoint_callback
            best = isinstance(checkpoint, ModelCheckpoint) and checkpoint.best_model_path
            # the path itself: "best" makes Lightning warn on every run that periodic_last
            # is a second ModelCheckpoint
            results = trainer.test(model, datamodule=datamodule, ckpt_path=best or None)
            metrics.update(scalar_metrics(results[0]))
    if trainer.is_global_zero:
        path = write_metrics(HydraConfig.get().runtime.output_dir, metrics)
        _log_hparams(trainer, cfg, {k: v for k, v in metrics.items() if "/" in k})
        log.info("metrics written to %s", path)
    return metrics


@refuse_renamed_keys  # data.task=... names data.corpus
@resumable  # resume=RUN_DIR: the run's own overrides, its folder and last.ckpt
@external_launch("train")  # torchrun / srun ranks: one run directory, rank 0 writes it
@hydra.main(version_base="1.3", config_path=config_dir(), config_name="train")
@report_errors
def main(cfg: DictConfig) -> float | None:
    metrics = train(cfg)
    return metrics.get(f"{cfg.task.get('monitor', 'val/acc')}_best")  # the sweep's objective


if __name__ == "__main__":
    main()
