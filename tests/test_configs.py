"""Every shipped config composes, and the pieces it names can be built."""

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from audioseq.cli.config_dir import config_dir
from audioseq.cli.train import build_task

CONF = Path(config_dir())


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF / group).glob("*.yaml") if not p.stem.startswith("_"))


def compose_train(*overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=list(overrides), return_hydra_config=False)


@pytest.mark.parametrize("model", options("model"))
@pytest.mark.parametrize("features", options("features"))
def test_every_model_and_frontend_builds(model: str, features: str) -> None:
    cfg = compose_train(f"model={model}", f"features={features}", "features.normalize=utterance")
    task = build_task(cfg, labels=["a", "b", "c"])
    audio = torch.randn(2, 8000)
    logits = task(audio, torch.tensor([8000, 5000]))
    assert logits.shape == (2, 3)


@pytest.mark.parametrize("scheduler", options("task/scheduler"))
def test_every_scheduler_steps(scheduler: str) -> None:
    cfg = compose_train(f"task/scheduler={scheduler}")
    params = [torch.nn.Parameter(torch.zeros(1))]
    optimizer = instantiate(cfg.task.optimizer)(params=params)
    if cfg.task.scheduler:
        schedule = instantiate(cfg.task.scheduler)(optimizer, total_steps=50)
        for _ in range(50):
            optimizer.step()
            schedule.step()
    assert optimizer.param_groups[0]["lr"] > 0


@pytest.mark.parametrize("trainer", options("trainer"))
def test_every_trainer_config_composes(trainer: str) -> None:
    cfg = compose_train(f"trainer={trainer}")
    assert cfg.trainer.gradient_clip_val > 0
    assert cfg.trainer._target_ == "lightning.pytorch.Trainer"


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_experiment_composes(experiment: str) -> None:
    cfg = compose_train(f"experiment={experiment}")
    assert cfg.model.encoder.cell in ("rnn", "lstm", "gru")


def test_synthetic_data_config_builds_a_datamodule() -> None:
    cfg = compose_train("data.train_size=10", "data.val_size=4", "data.test_size=4")
    datamodule = instantiate(cfg.data)
    assert datamodule.num_classes == 12
    assert datamodule.has_split("test")
