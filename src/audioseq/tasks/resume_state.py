"""What a checkpoint must carry besides Lightning's own state for a resumed run to go on
exactly as the uninterrupted one: the global random streams and the metrics' running
states (Lightning saves neither).

Everything is stored as tensors and plain Python values, so that checkpoints still load
with ``torch.load(weights_only=True)``.
"""

import random
from typing import Any

import numpy as np
import torch
from torchmetrics import Metric


def random_states() -> dict[str, Any]:
    """The global random states of torch (CPU, and CUDA once initialised), NumPy and Python."""
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
        "numpy": [kind, keys.tolist(), position, has_gauss, gauss],
        "python": random.getstate(),
    }


def set_random_states(states: dict[str, Any]) -> None:
    """Restore :func:`random_states` (CUDA's only onto as many devices as it was saved from)."""
    torch.set_rng_state(states["torch"])
    cuda = states["cuda"]
    if cuda and torch.cuda.is_available() and torch.cuda.device_count() == len(cuda):
        torch.cuda.set_rng_state_all(cuda)
    kind, keys, position, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), position, has_gauss, gauss))
    version, internal, gauss_next = states["python"]
    random.setstate((version, tuple(internal), gauss_next))


def metric_state(metric: Metric) -> dict[str, Any]:
    """A torchmetrics metric's accumulated state and update count."""
    return {"states": dict(metric.metric_state), "updates": metric.update_count}


def load_metric_state(metric: Metric, saved: dict[str, Any]) -> None:
    """Put :func:`metric_state`'s result back into ``metric`` (on the metric's device)."""
    metric.reset()
    for name, value in saved["states"].items():
        if isinstance(value, list):
            value = [v.to(metric.device) for v in value]
        else:
            value = value.to(metric.device)
        setattr(metric, name, value)
    metric._update_count = saved["updates"]
