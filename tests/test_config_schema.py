"""The typed config schema: every option of every config group, and every command's
config, composes and passes it; each kind of bad value is one line naming the key, the
value and what is allowed, before anything is read or built (and, from the command line,
exit status 2 without a traceback)."""

import pytest
from hydra import compose, initialize_config_dir
from in_process import audioseq, train
from omegaconf import OmegaConf
from test_configs import CONF, compose_train, options

from audioseq.config_schema import COMMANDS, SCHEMA, validate
from audioseq.data.sources.speech_commands import LABEL_SETS
from audioseq.errors import ConfigError
from audioseq.inference.export import SUFFIX
from audioseq.models.encoders import CELLS
from audioseq.models.pooling import MODES as POOLINGS

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
    validate(compose_train(choice, *REQUIRED.get(choice, [])), "train")


#: What each command's config needs from the user (its ??? values).
COMMAND_REQUIRED = {
    "train": [],
    "inspect": [],
    "eval": ["ckpt_path=best.ckpt"],
    "predict": ["ckpt_path=best.ckpt", "inputs=[a.wav]"],
    "stream": ["ckpt_path=best.ckpt", "input=a.wav"],
    "export": ["ckpt_path=best.ckpt"],
}


def compose_command(command: str, *overrides: str):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(command, overrides=[*COMMAND_REQUIRED[command], *overrides])


@pytest.mark.parametrize("command", COMMAND_REQUIRED)
def test_every_command_config_passes_the_schema_with_its_defaults(command):
    validate(compose_command(command), command)


@pytest.mark.parametrize("data", ["from_checkpoint", "manifest"])
def test_eval_takes_the_checkpoint_data_or_a_data_group(data):
    """data=from_checkpoint's nulls mean "as saved"; a chosen group is checked as in train."""
    chosen = [f"data={data}", "data.train_manifest=t.jsonl"]
    validate(compose_command("eval", *chosen), "eval")
    with pytest.raises(ConfigError, match=r"^data\.batch_size=0: must be an integer >= 1"):
        validate(compose_command("eval", *chosen, "data.batch_size=0"), "eval")


def test_the_schema_names_only_keys_that_exist():
    """A rule for a key that no config has would never check anything."""
    keys = set()
    for choice in every_option():
        cfg = compose_train(choice, *REQUIRED.get(choice, []))
        keys |= {key for key in SCHEMA if _has(cfg, key)}
    # Lightning Trainer arguments the shipped configs leave out (users add them with +).
    assert set(SCHEMA) - keys == {"trainer.accumulate_grad_batches", "trainer.max_steps"}
    for command, rules in COMMANDS.items():
        cfg = compose_command(command)
        assert {key for key in rules if not _has(cfg, key)} == set(), command


def test_the_schemas_choices_are_what_the_code_implements():
    """The schema cannot import the models (they call it), so its lists are checked here."""
    assert set(SCHEMA["model.encoder.cell"].choices) == set(CELLS)
    assert set(SCHEMA["model.pooling"].choices) == set(POOLINGS)
    assert set(SCHEMA["data.label_set"].choices) == set(LABEL_SETS)
    assert set(COMMANDS["export"]["format"].choices) == set(SUFFIX)


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
        validate(compose_train(*overrides), "train")
    text = str(raised.value)
    assert text.startswith(message), text
    assert "\n" not in text


@pytest.mark.parametrize(("overrides", "message"), [BAD[0], BAD[2], BAD[19]])
def test_the_train_command_stops_before_building_anything(tmp_path, overrides, message):
    done = train(*overrides, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path, returncode=2)
    assert done.stderr.strip().splitlines()[-1].startswith(f"error: {message}")
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "run" / "checkpoints").exists()


COMMAND_BAD = [  # (command, overrides, the start of the one-line message)
    ("eval", ["split=train"], "split=train: must be one of ['test', 'val']"),
    ("eval", ["data.num_workers=-1"], "data.num_workers=-1: must be an integer >= 0"),
    ("eval", ["trainer.precision=bf17"], "trainer.precision=bf17: must be one of"),
    ("predict", ["top_k=0"], "top_k=0: must be an integer >= 1"),
    ("predict", ["batch_size=many"], "batch_size=many: must be an integer >= 1"),
    ("predict", ["window_seconds=0"], "window_seconds=0: must be a number > 0 (or null)"),
    ("predict", ["on_error=ignore"], "on_error=ignore: must be one of ['raise', 'skip']"),
    ("stream", ["chunk_ms=0"], "chunk_ms=0: must be a number > 0"),
    ("stream", ["threshold=1.5"], "threshold=1.5: must be a number in [0, 1] (or null)"),
    ("stream", ["smooth_ms=-5"], "smooth_ms=-5: must be a number >= 0 (or null)"),
    ("stream", ["threads=0"], "threads=0: must be an integer >= 1 (or null)"),
    ("stream", ["print_chunks=maybe"], "print_chunks=maybe: must be true or false"),
    ("export", ["format=tflite"], "format=tflite: must be one of ['torchscript', 'onnx']"),
    ("export", ["chunk_ms=-10"], "chunk_ms=-10: must be a number > 0"),
    ("export", ["opset=latest"], "opset=latest: must be an integer >= 7"),
    ("export", ["verify=maybe"], "verify=maybe: must be true or false"),
]


@pytest.mark.parametrize(
    ("command", "overrides", "message"),
    COMMAND_BAD,
    ids=[f"{c} {' '.join(o)}" for c, o, _ in COMMAND_BAD],
)
def test_bad_command_values_are_one_line_errors(command, overrides, message):
    with pytest.raises(ConfigError) as raised:
        validate(compose_command(command, *overrides), command)
    text = str(raised.value)
    assert text.startswith(message), text
    assert "\n" not in text


@pytest.mark.parametrize("command", ["eval", "predict", "stream", "export"])
def test_missing_mandatory_values_are_named(command):
    """Each ??? value in turn: the command line without it names it."""
    given = COMMAND_REQUIRED[command]
    for count, value in enumerate(given):
        key = value.split("=")[0]
        with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
            cfg = compose(command, overrides=given[:count])
        with pytest.raises(
            ConfigError, match=rf"^{key}: a value is required \(add {key}=\.\.\.\)$"
        ):
            validate(cfg, command)


@pytest.mark.parametrize(
    ("command", "overrides", "message"),
    [COMMAND_BAD[0], COMMAND_BAD[3], COMMAND_BAD[7], COMMAND_BAD[12]],
    ids=["eval", "predict", "stream", "export"],
)
def test_each_command_stops_before_reading_its_checkpoint(tmp_path, command, overrides, message):
    """The checkpoint does not exist: the schema's error comes first, not "not found"."""
    args = [*COMMAND_REQUIRED[command], *overrides, f"hydra.run.dir={tmp_path / 'run'}"]
    done = audioseq(command, *args, cwd=tmp_path, returncode=2)
    assert done.stderr.strip().splitlines()[-1].startswith(f"error: {message}")
    assert "Traceback" not in done.stderr
