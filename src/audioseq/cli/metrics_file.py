"""metrics.json: the final numbers of a run as flat keys (``val/acc_best``, ``test/acc``...)."""

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch


def scalar_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Plain floats from Lightning's metric dicts (tensors and numbers; NaN dropped)."""
    out = {}
    for key, value in metrics.items():
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            value = value.item()
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            out[key] = float(value)
    return out


def write_metrics(run_dir: str | Path, metrics: Mapping[str, Any]) -> Path:
    """Write ``metrics.json`` atomically (a half-written file never replaces a good one)."""
    path = Path(run_dir) / "metrics.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(dict(sorted(metrics.items())), indent=2) + "\n")
    tmp.replace(path)
    return path
