"""Every shipped config composes, and the pieces it names can be built."""

import itertools
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

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


def _lrs(scheduler: str, steps: int) -> tuple[float, list[float], DictConfig]:
    """The base lr, the lr of every step of ``steps`` under ``task/scheduler``, and that
    scheduler's config."""
    cfg = compose_train(f"task/scheduler={scheduler}")
    optimizer = instantiate(cfg.task.optimizer)(params=[torch.nn.Parameter(torch.zeros(1))])
    base = optimizer.param_groups[0]["lr"]
    schedule = (
        instantiate(cfg.task.scheduler)(optimizer, total_steps=steps)
        if cfg.task.scheduler
        else None
    )
    lrs = []
    for _ in range(steps):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        if schedule is not None:
            schedule.step()
    return base, lrs, cfg.task.scheduler


#: What each shipped schedule must do over 50 steps (a new scheduler config adds a line).
SCHEDULE_SHAPES = {
    "constant": lambda base, lrs, cfg: all(lr == base for lr in lrs),
    "warmup_cosine": lambda base, lrs, cfg: (
        lrs[0] < base  # warming up (10 steps: a fifth of 50)
        and max(lrs) == pytest.approx(base)
        and lrs[-1] == pytest.approx(cfg.min_lr_ratio * base, rel=0.05)
        and all(a >= b for a, b in itertools.pairwise(lrs[10:]))
    ),
    "onecycle": lambda base, lrs, cfg: (
        max(lrs) == pytest.approx(cfg.max_lr)
        and lrs.index(max(lrs)) == pytest.approx(cfg.pct_start * 50, abs=1)
        and lrs[-1] < lrs[0]
    ),
}


@pytest.mark.parametrize("scheduler", options("task/scheduler"))
def test_every_scheduler_has_its_shape(scheduler: str) -> None:
    assert scheduler in SCHEDULE_SHAPES, f"add the expected shape of {scheduler} above"
    base, lrs, cfg = _lrs(scheduler, 50)
    assert SCHEDULE_SHAPES[scheduler](base, lrs, cfg), lrs


@pytest.mark.parametrize("trainer", options("trainer"))
def test_every_trainer_config_composes(trainer: str) -> None:
    cfg = compose_train(f"trainer={trainer}")
    assert cfg.trainer.gradient_clip_val > 0
    assert cfg.trainer._target_ == "lightning.pytorch.Trainer"


def _leaves(node: dict, prefix: str = "") -> dict[str, object]:
    """Flat ``a.b.c -> value`` of a plain nested dict (lists are values)."""
    flat = {}
    for key, value in node.items():
        path = f"{prefix}{key}"
        flat.update(_leaves(value, path + ".") if isinstance(value, dict) else {path: value})
    return flat


def _experiment_settings(name: str) -> tuple[dict[str, object], dict[str, str]]:
    """The leaf values an experiment file sets (after the experiments it includes) and the
    config groups it overrides (``{"model": "gru"}``)."""
    raw = OmegaConf.to_container(OmegaConf.load(CONF / "experiment" / f"{name}.yaml"))
    leaves: dict[str, object] = {}
    groups: dict[str, str] = {}
    for entry in raw.pop("defaults", []):
        if isinstance(entry, str) and entry != "_self_":
            included_leaves, included_groups = _experiment_settings(entry)
            leaves.update(included_leaves)
            groups.update(included_groups)
        elif isinstance(entry, dict):
            for key, option in entry.items():
                groups[key.removeprefix("override /").replace("/", ".")] = option
    raw.pop("hydra", None)
    leaves.update(_leaves(raw))
    return leaves, groups


@pytest.mark.parametrize("experiment", options("experiment"))
def test_every_experiment_is_its_groups_plus_its_values(experiment: str) -> None:
    """An experiment composes to exactly the groups it picks with the values its file sets
    on top: every value lands (nothing shadowed or misspelt) and nothing else moves."""
    leaves, groups = _experiment_settings(experiment)
    assert leaves, experiment
    composed = _leaves(OmegaConf.to_container(compose_train(f"experiment={experiment}")))
    picked = compose_train(*(f"{group}={option}" for group, option in groups.items()))
    expected = _leaves(OmegaConf.to_container(picked)) | leaves
    assert composed == expected


def test_synthetic_data_config_builds_a_datamodule() -> None:
    cfg = compose_train("data.train_size=10", "data.val_size=4", "data.test_size=4")
    datamodule = instantiate(cfg.data)
    assert datamodule.num_classes == 12
    assert datamodule.has_split("test")
