"""The typed schema of every command's config: each key's type, range and choices, checked
right after Hydra composes the config, before any checkpoint or data is read or any model
is built.

Without it a wrong value surfaced wherever it was first used: ``trainer.max_epochs=abc``
as a traceback after start-up, ``features.n_mels=0`` after a whole epoch, inside a
TensorBoard callback. Here each is one line naming the key, the value and what is
allowed (``error: trainer.max_epochs=abc: must be an integer >= -1``; exit status 2).

Why a table of rules and not a structured-config dataclass per group: the groups hold
different keys per option (``data=synthetic`` vs ``data=manifest``, ``model=ar`` vs
``model=lstm``) and ``trainer`` takes any of Lightning's many Trainer arguments, so the
rules describe keys *where they are present*, and unknown keys stay the business of the
class that receives them (which rejects them with its own one-line error). Classes that
users also build in Python (AudioDataModule, the encoders) call :func:`check` on their
arguments, so both paths share one rule per key.

The module is long (over 300 lines) because it is that one table: every key's rule in
one place, which is its point; the checking code itself is short.
"""

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from omegaconf import DictConfig, OmegaConf

from audioseq.errors import ConfigError


@dataclass(frozen=True)
class Rule:
    """What one key may hold. ``kind``: ``int``, ``float`` (ints too), ``bool``, ``str``;
    ``low``/``high`` bound numbers (``open_low``/``open_high``: excluded); ``choices``
    for strings (or mixed values); ``null``: None allowed; ``also``: extra values allowed
    whatever the kind (e.g. ``"auto"``)."""

    kind: str
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    choices: tuple[Any, ...] | None = None
    null: bool = False
    also: tuple[Any, ...] = ()

    def describe(self) -> str:
        if self.choices is not None:
            allowed = f"one of {list(self.choices)}"
        else:
            names = {"int": "an integer", "float": "a number", "bool": "true or false"}
            allowed = names.get(self.kind, "a string")
            if self.low is not None and self.high is not None:
                left, right = "(" if self.open_low else "[", ")" if self.open_high else "]"
                allowed += f" in {left}{self.low:g}, {self.high:g}{right}"
            elif self.low is not None:
                allowed += f" {'>' if self.open_low else '>='} {self.low:g}"
            elif self.high is not None:
                allowed += f" {'<' if self.open_high else '<='} {self.high:g}"
        extra = [repr(a) for a in self.also] + (["null"] if self.null else [])
        return allowed + (f" (or {', '.join(extra)})" if extra else "")

    def accepts(self, value: Any) -> bool:
        if value is None:
            return self.null
        if value in self.also and not isinstance(value, bool):
            return True
        if self.choices is not None:
            return any(value == c and type(value) is type(c) for c in self.choices)
        if self.kind == "bool":
            return isinstance(value, bool)
        if self.kind == "str":
            return isinstance(value, str)
        numeric = (int,) if self.kind == "int" else (int, float)
        if isinstance(value, bool) or not isinstance(value, numeric):
            return False
        if self.low is not None and (value < self.low or (self.open_low and value == self.low)):
            return False
        return self.high is None or not (
            value > self.high or (self.open_high and value == self.high)
        )


def _int(low: float | None = None, **kw: Any) -> Rule:
    return Rule("int", low, **kw)


def _num(low: float | None = None, high: float | None = None, **kw: Any) -> Rule:
    return Rule("float", low, high, **kw)


def _one_of(*choices: Any, **kw: Any) -> Rule:
    return Rule("str", choices=choices, **kw)


BOOL = Rule("bool")
FRACTION = _num(0.0, 1.0, open_high=True)  # dropout, label smoothing
#: Lightning's limit_*_batches: a count, or a fraction of the batches (a float up to 1).
LIMIT = Rule("float", 0.0, null=True)
PRECISIONS = ("32-true", "32", "16-mixed", "bf16-mixed", "bf16-true", "16-true", "64-true",
              "64", "16", "bf16", "transformer-engine")  # fmt: skip

STR = Rule("str")
POSITIVE = _num(0.0, open_low=True)
ON_ERROR = _one_of("raise", "skip")

#: A config group's ``key`` (dotted, from the config root) -> its rule, where the key exists.
SCHEMA: dict[str, Rule] = {
    "trainer.max_epochs": _int(-1),
    "trainer.min_epochs": _int(0, null=True),
    "trainer.max_steps": _int(-1),
    "trainer.num_nodes": _int(1),
    "trainer.accelerator": _one_of("auto", "cpu", "gpu", "cuda", "mps", "tpu"),
    "trainer.precision": Rule("str", choices=(*PRECISIONS, 16, 32, 64)),
    "trainer.gradient_clip_val": _num(0.0, null=True),
    "trainer.gradient_clip_algorithm": _one_of("norm", "value"),
    "trainer.accumulate_grad_batches": _int(1),
    "trainer.check_val_every_n_epoch": _int(1, null=True),
    "trainer.log_every_n_steps": _int(1),
    "trainer.deterministic": Rule("bool", also=("warn",)),
    "trainer.enable_progress_bar": BOOL,
    "trainer.limit_train_batches": LIMIT,
    "trainer.limit_val_batches": LIMIT,
    "trainer.limit_test_batches": LIMIT,
    "trainer.num_sanity_val_steps": _int(-1),
    "data.batch_size": _int(1),
    "data.num_workers": _int(0, also=("auto",)),
    "data.persistent_workers": BOOL,
    "data.pin_memory": Rule("bool", also=("auto",)),
    "data.clip_seconds": _num(0.0, open_low=True, null=True),
    "data.on_error": ON_ERROR,
    "data.min_seconds": _num(0.0, null=True),
    "data.max_seconds": _num(0.0, open_low=True, null=True),
    "data.bucketing": BOOL,
    "data.num_buckets": _int(1),
    "data.cache": _one_of("auto", "memory", "none"),
    "data.cache_budget": _num(0.0, 1.0, open_low=True),
    "data.train_size": _int(1),
    "data.val_size": _int(0),
    "data.test_size": _int(0),
    "data.corpus": _one_of("dtmf", "memory", "dialling"),
    "data.delay_seconds": _num(0.0),
    "data.label_set": _one_of("all35", "v2_12"),  # speech_commands.LABEL_SETS (a test checks)
    "data.shuffle_buffer": _int(0),
    "data.sort_buffer_batches": _int(1),
    "data.retries": _int(0),
    "data.timeout_seconds": POSITIVE,
    "data.augment.time_shift_seconds": _num(0.0),
    "data.augment.gain_db": _num(0.0),
    "data.augment.noise_prob": _num(0.0, 1.0),
    "features.win_length": _int(1),
    "features.hop_length": _int(1),
    "features.n_mels": _int(1),
    "features.n_mfcc": _int(1),
    "features.f_min": _num(0.0),
    "features.f_max": _num(0.0, 8000.0, open_low=True, null=True),
    "features.log_floor": _num(0.0, open_low=True),
    "features.normalize": _one_of("global", "utterance", "none"),
    "features.stats_batches": _int(1),
    "features.specaugment.freq_masks": _int(0),
    "features.specaugment.freq_width": _int(0),
    "features.specaugment.time_masks": _int(0),
    "features.specaugment.time_width": _int(0),
    "model.encoder.cell": _one_of("rnn", "lstm", "gru"),
    "model.encoder.hidden_size": _int(1),
    "model.encoder.num_layers": _int(1),
    "model.encoder.dropout": FRACTION,
    "model.encoder.bidirectional": BOOL,
    "model.encoder.impl": _one_of("fused", "scratch"),
    "model.encoder.tau": _int(1),
    "model.pooling": _one_of("last", "mean", "max", "attention", null=True),
    "model.head_dropout": FRACTION,
    "model.freeze_encoder": BOOL,
    "task.optimizer.lr": POSITIVE,
    "task.optimizer.weight_decay": _num(0.0),
    "task.label_smoothing": FRACTION,
    "task.tbptt_frames": _int(1, null=True),
    "task.shift": _int(1),
    "task.smooth_ms": _num(0.0),
    "task.threshold": _num(0.0, 1.0),
    "task.refractory_ms": _num(0.0),
    "task.onset_tolerance_ms": _num(0.0),
    "task.mode": _one_of("min", "max"),
    "task.scheduler.warmup_steps": _int(0),
    "task.scheduler.min_lr_ratio": _num(0.0, 1.0),
    "callbacks.nonfinite.action": _one_of("stop", "skip"),
    "callbacks.gradient_flow.every_n_epochs": _int(1),
    "callbacks.gradient_flow.max_clips": _int(1),
    "callbacks.watchdog.timeout_s": POSITIVE,
    "callbacks.watchdog.multi_process_only": BOOL,
}

#: Each command's own top-level keys (those of conf/<command>.yaml) -> their rules.
COMMANDS: dict[str, dict[str, Rule]] = {
    "train": {"seed": _int(0), "test": BOOL, "ckpt_path": Rule("str", null=True)},
    "inspect": {"seed": _int(0), "decode": BOOL, "imbalance_ratio": _num(1.0), "progress": BOOL},
    "eval": {"seed": _int(0), "ckpt_path": STR, "split": _one_of("test", "val")},
    "predict": {
        "ckpt_path": STR,
        "top_k": _int(1),
        "batch_size": _int(1),
        "num_workers": _int(0, also=("auto",)),
        "device": STR,
        "window_seconds": _num(0.0, open_low=True, null=True),
        "hop_seconds": _num(0.0, open_low=True, null=True),
        "on_error": ON_ERROR,
        "progress": BOOL,
    },
    "stream": {
        "ckpt_path": STR,
        "chunk_ms": POSITIVE,
        "smooth_ms": _num(0.0, null=True),
        "threshold": _num(0.0, 1.0, null=True),
        "refractory_ms": _num(0.0, null=True),
        "print_chunks": BOOL,
        "output": Rule("str", null=True),
        "device": STR,
        "threads": _int(1, null=True),
    },
    "export": {
        "ckpt_path": STR,
        "format": _one_of("torchscript", "onnx"),
        "chunk_ms": POSITIVE,
        "output_dir": Rule("str", null=True),
        "opset": _int(7),
        "verify": BOOL,
    },
}

#: Keys renamed since runs and checkpoints were first written: old -> new. An old key on the
#: command line is refused with one line naming the new one (:func:`renamed_override`);
#: saved runs and checkpoints are read with the new names (:func:`upgrade_overrides`,
#: :func:`upgrade_data_settings`).
RENAMED: dict[str, str] = {
    # the synthetic source's corpus (dtmf, memory, dialling), not the task= config group
    "data.task": "data.corpus",
}


def renamed_override(args: Sequence[str]) -> str | None:
    """The error line for the first command-line override in ``args`` that uses a renamed
    key (``data.task=memory``), or None."""
    for arg in args:
        key, _, value = arg.lstrip("+~").partition("=")
        if key in RENAMED:
            return f"{key} is now called {RENAMED[key]}: use {RENAMED[key]}={value}"
    return None


def upgrade_overrides(overrides: Sequence[str]) -> list[str]:
    """A saved run's overrides (``.hydra/overrides.yaml``) with today's key names."""
    upgraded = []
    for override in overrides:
        key, sep, value = override.partition("=")
        bare = key.lstrip("+~")
        if bare in RENAMED:
            key = key[: len(key) - len(bare)] + RENAMED[bare]
        upgraded.append(key + sep + value)
    if "data=shards" in upgraded:  # the sort buffer was data.num_buckets for shards
        upgraded += [
            o.replace("data.num_buckets=", "data.sort_buffer_batches=", 1)
            for o in upgraded
            if o.startswith("data.num_buckets=")
        ]
    return upgraded


def upgrade_data_settings(saved: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint's saved DataModule settings with today's key names, so that checkpoints
    written before a rename rebuild the same data (``audioseq-eval``)."""
    saved = dict(saved)
    for old, new in RENAMED.items():
        old_key, new_key = old.removeprefix("data."), new.removeprefix("data.")
        if old.startswith("data.") and old_key in saved:
            saved.setdefault(new_key, saved.pop(old_key))
    # data=shards took its sort buffer (in batches) from data.num_buckets, which is now the
    # file-list sources' duration quantiles only; the shards source has its own key.
    if saved.get("source") == "shards" and "num_buckets" in saved:
        saved.setdefault("sort_buffer_batches", saved["num_buckets"])
    return saved


#: Groups whose null values mean "as saved in the checkpoint" rather than a value to check.
AS_SAVED: dict[str, tuple[str, ...]] = {"eval": ("data.",)}


_ABSENT = object()


def _get(cfg: DictConfig, key: str) -> tuple[bool, Any]:
    """(present, value) of a dotted key (``validate`` has ruled out ``???`` values)."""
    node = OmegaConf.select(cfg, key, default=_ABSENT)
    return node is not _ABSENT, node


#: Combinations of values that cannot work: (keys, test on their values, message).
COMBINATIONS: tuple[tuple[tuple[str, ...], Callable[..., bool], str], ...] = (
    (("features.f_min", "features.f_max"), lambda lo, hi: hi is None or lo < hi,
     "features.f_min must be below features.f_max"),
    (("features.n_mfcc", "features.n_mels"), lambda c, m: c <= m,
     "features.n_mfcc cannot exceed features.n_mels"),
    (("data.min_seconds", "data.max_seconds"), lambda lo, hi: lo is None or hi is None or lo <= hi,
     "data.min_seconds must not exceed data.max_seconds"),
    (("model.freeze_encoder", "model.init_from"), lambda frozen, start: not frozen or start,
     "model.freeze_encoder=true needs model.init_from (an encoder to keep)"),
    (("task._target_", "data.corpus"),
     lambda target, kind: kind != "dialling" or not target.endswith(".AudioClassifier"),
     "data.corpus=dialling makes long recordings labelled at every frame: train them with "
     "task=detect, not task=classify"),
    (("trainer.min_epochs", "trainer.max_epochs"),
     lambda lo, hi: lo is None or hi == -1 or lo <= hi,
     "trainer.min_epochs must not exceed trainer.max_epochs"),
)  # fmt: skip


def _missing(node: Any, prefix: str = "") -> Iterator[str]:
    """The dotted keys still set to ``???`` (a value the user must give)."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _missing(value, f"{prefix}{key}.")
    elif node == "???":
        yield prefix.rstrip(".")


def check(key: str, value: Any, command: str | None = None) -> None:
    """Raise ConfigError (one line: key, value, what is allowed) when ``value`` breaks the
    rule of ``key``: a config group's key, or with ``command`` one of that command's own."""
    rule = COMMANDS[command][key] if command else SCHEMA[key]
    if not rule.accepts(value):
        raise ConfigError(f"{key}={_show(value)}: must be {rule.describe()}")


def check_all(prefix: str, **values: Any) -> None:
    """:func:`check` for each of a class's settings, ``prefix`` + name being its key: the
    same rules for an object built in Python as for one composed by Hydra."""
    for name, value in values.items():
        check(f"{prefix}.{name}", value)


def validate(cfg: DictConfig, command: str) -> None:
    """Raise ConfigError (one line) for the first key of ``command``'s composed ``cfg`` that
    breaks its rule, a required value that is missing, or a combination that cannot work."""
    for key in _missing(OmegaConf.to_container(cfg, resolve=False)):
        raise ConfigError(f"{key}: a value is required (add {key}=...)")
    as_saved = AS_SAVED.get(command, ())
    for key in SCHEMA:
        present, value = _get(cfg, key)
        if present and not (value is None and key.startswith(as_saved)):
            check(key, value)
    for key in COMMANDS[command]:
        present, value = _get(cfg, key)
        if present:
            check(key, value, command)
    for keys, test, message in COMBINATIONS:
        found = [_get(cfg, k) for k in keys]
        if all(present for present, _ in found) and not test(*(v for _, v in found)):
            shown = ", ".join(f"{k}={_show(v)}" for k, (_, v) in zip(keys, found, strict=True))
            raise ConfigError(f"{message} (got {shown})")


def _show(value: Any) -> str:
    return "null" if value is None else str(value)
