"""The typed config schema: every option of every config group composes and passes it;
each kind of bad value is one line naming the key, the value and what is allowed, before
anything is built (and, from the command line, exit status 2 without a traceback)."""

import pytest
from hydra import compose, initialize_config_dir
from in_process import train
from omegaconf import OmegaConf
from test_configs import CONF, compose_train, options

from audioseq.config_schema import SCHEMA, validate
from audioseq.errors import ConfigError

#: What a group option needs from the user (its ??? values).
REQUIRED = {
    "data=manifest": ["data.train_manifest=train.jsonl"],
    "data=folder": ["data.root=corpus"],
    "data=shards": ["data.train_shards=shards"],
}
TRAIN_GROUPS = ["data", "features", "model", "task", "trainer", "logger", "callbacks", "debug",
                "experiment", "hparams_search"]  # fmt: skip


def every_option() -> list[str]:
    found = []
    for group in TRAIN_GROUPS:
        for option in options(group):
            if group == "data" and option == "from_checkpoint":  # audioseq-eval's, not train's
                continue
            found.append(f"{group}={option}")
    return found


@pytest.mark.parametrize("choice", every_option())
def test_every_group_option_composes_and_passes_the_schema(choice):
    validate(compose_train(choice, *REQUIRED.get(choice, [])))


def test_the_schema_names_only_keys_that_exist():
    """A rule for a key that no config has would never check anything."""
    keys = set()
    for choice in every_option():
        cfg = compose_train(choice, *REQUIRED.get(choice, []))
        keys |= {key for key in SCHEMA if _has(cfg, key)}
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        inspect = compose("inspect")  # audioseq-inspect's own keys share the schema
    keys |= {key for key in SCHEMA if _has(inspect, key)}
    # Lightning Trainer arguments the shipped configs leave out (users add them with +).
    assert set(SCHEMA) - keys == {"trainer.accumulate_grad_batches", "trainer.max_steps"}


def _has(cfg, key: str) -> bool:
    return OmegaConf.select(cfg, key, default="<absent>") != "<absent>"


BAD = [  # (overrides, the start of the one-line message)
    (["trainer.max_epochs=abc"], "trainer.max_epochs=abc: must be an integer >= -1"),
    (["trainer.max_epochs=2.5"], "trainer.max_epochs=2.5: must be an integer"),
    (["features.n_mels=0"], "features.n_mels=0: must be an integer >= 1"),
    (["model.pooling=median"], "model.pooling=median: must be one of ['last', 'mean'"),
    (["model.encoder.cell=transformer"], "model.encoder.cell=transformer: must be one of"),
    (["model.encoder.dropout=1.0"], "model.encoder.dropout=1.0: must be a number in [0, 1)"),
    (["model.encoder.hidden_size=-4"], "model.encoder.hidden_size=-4: must be an integer >= 1"),
    (["data.batch_size=0"], "data.batch_size=0: must be an integer >= 1"),
    (["data.num_workers=two"], "data.num_workers=two: must be an integer >= 0"),
    (["data.cache=ram"], "data.cache=ram: must be one of ['auto', 'memory', 'none']"),
    (["data.clip_seconds=0"], "data.clip_seconds=0: must be a number > 0 (or null)"),
    (["data.persistent_workers=maybe"], "data.persistent_workers=maybe: must be true or false"),
    (["task.optimizer.lr=0"], "task.optimizer.lr=0: must be a number > 0"),
    (["task.label_smoothing=-0.1"], "task.label_smoothing=-0.1: must be a number in [0, 1)"),
    (["trainer.precision=bf17"], "trainer.precision=bf17: must be one of"),
    (["trainer.gradient_clip_algorithm=clip"], "trainer.gradient_clip_algorithm=clip:"),
    (["features.f_min=8000", "features.f_max=7600"], "features.f_min must be below features.f_max"),
    (["features=mfcc", "features.n_mfcc=80"], "features.n_mfcc cannot exceed features.n_mels"),
    (["model.freeze_encoder=true"], "model.freeze_encoder=true needs model.init_from"),
    (["data=manifest"], "data.train_manifest: a value is required"),
    (["data=folder"], "data.root: a value is required"),
    (["data.min_seconds=2", "data.max_seconds=1"], "data.min_seconds must not exceed"),
]


@pytest.mark.parametrize(("overrides", "message"), BAD, ids=[" ".join(o) for o, _ in BAD])
def test_bad_values_are_one_line_errors(overrides, message):
    with pytest.raises(ConfigError) as raised:
        validate(compose_train(*overrides))
    text = str(raised.value)
    assert text.startswith(message), text
    assert "\n" not in text


@pytest.mark.parametrize(("overrides", "message"), [BAD[0], BAD[2], BAD[19]])
def test_the_train_command_stops_before_building_anything(tmp_path, overrides, message):
    done = train(*overrides, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path, returncode=2)
    assert done.stderr.strip().splitlines()[-1].startswith(f"error: {message}")
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()
