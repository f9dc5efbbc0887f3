"""The typed schema of the training config: every key's type, range and choices, checked
right after Hydra composes the config, before any data is read or model is built.

Without it a wrong value surfaced wherever it was first used: ``trainer.max_epochs=abc``
as a traceback after start-up, ``features.n_mels=0`` after a whole epoch, inside a
TensorBoard callback. Here each is one line naming the key, the value and what is
allowed (``error: trainer.max_epochs=abc: must be an integer >= -1``; exit status 2).

Why a table of rules and not a structured-config dataclass per group: the groups hold
different keys per option (``data=synthetic`` vs ``data=manifest``, ``model=ar`` vs
``model=lstm``) and ``trainer`` takes any of Lightning's many Trainer arguments, so the
rules describe keys *where they are present*, and unknown keys stay the business of the
class that receives them (which rejects them with its own one-line error).
"""

from collections.abc import Callable, Iterator
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

#: ``key`` (dotted, from the root of the train config) -> its rule, where the key exists.
SCHEMA: dict[str, Rule] = {
    "seed": _int(0),
    "test": BOOL,
    "decode": BOOL,  # audioseq-inspect
    "imbalance_ratio": _num(1.0),  # audioseq-inspect
    "progress": BOOL,  # audioseq-inspect
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
    "data.num_workers": _int(0),
    "data.persistent_workers": BOOL,
    "data.pin_memory": Rule("bool", also=("auto",)),
    "data.clip_seconds": _num(0.0, open_low=True, null=True),
    "data.on_error": _one_of("raise", "skip"),
    "data.min_seconds": _num(0.0, null=True),
    "data.max_seconds": _num(0.0, open_low=True, null=True),
    "data.bucketing": BOOL,
    "data.num_buckets": _int(1),
    "data.cache": _one_of("auto", "memory", "none"),
    "data.cache_budget": _num(0.0, 1.0, open_low=True),
    "data.train_size": _int(1),
    "data.val_size": _int(0),
    "data.test_size": _int(0),
    "data.task": _one_of("dtmf", "memory", "dialling"),
    "data.delay_seconds": _num(0.0),
    "data.augment.time_shift_seconds": _num(0.0),
    "data.augment.gain_db": _num(0.0),
    "data.augment.noise_prob": _num(0.0, 1.0),
    "features.sample_rate": _int(16000, high=16000),
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
    "task.optimizer.lr": _num(0.0, open_low=True),
    "task.optimizer.weight_decay": _num(0.0),
    "task.label_smoothing": FRACTION,
    "task.tbptt_frames": _int(1, null=True),
    "task.smooth_ms": _num(0.0),
    "task.threshold": _num(0.0, 1.0),
    "task.refractory_ms": _num(0.0),
    "task.onset_tolerance_ms": _num(0.0),
    "task.mode": _one_of("min", "max"),
    "task.scheduler.warmup_steps": _int(0),
    "task.scheduler.min_lr_ratio": _num(0.0, 1.0),
}


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
    (("task._target_", "data.task"),
     lambda target, kind: kind != "dialling" or not target.endswith(".AudioClassifier"),
     "data.task=dialling makes long recordings labelled at every frame: train them with "
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


def validate(cfg: DictConfig) -> None:
    """Raise ConfigError (one line: key, value, what is allowed) for the first key of
    ``cfg`` that breaks its rule, a required value that is missing, or a combination
    that cannot work."""
    for key in _missing(OmegaConf.to_container(cfg, resolve=False)):
        raise ConfigError(f"{key}: a value is required (add {key}=...)")
    for key, rule in SCHEMA.items():
        present, value = _get(cfg, key)
        if present and not rule.accepts(value):
            raise ConfigError(f"{key}={_show(value)}: must be {rule.describe()}")
    for keys, test, message in COMBINATIONS:
        found = [_get(cfg, k) for k in keys]
        if all(present for present, _ in found) and not test(*(v for _, v in found)):
            shown = ", ".join(f"{k}={_show(v)}" for k, (_, v) in zip(keys, found, strict=True))
            raise ConfigError(f"{message} (got {shown})")


def _show(value: Any) -> str:
    return "null" if value is None else str(value)
