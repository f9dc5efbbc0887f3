"""Learning-rate schedules, built as Hydra partials: ``scheduler(optimizer, total_steps=...)``."""

import math

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR


def warmup_cosine(
    optimizer: Optimizer, total_steps: int, warmup_steps: int = 100, min_lr_ratio: float = 0.05
) -> LambdaLR:
    """Linear warm-up to the base lr, then cosine decay to ``min_lr_ratio`` of it.

    The warm-up is capped at a fifth of training, so that short (debug) runs still reach
    the base learning rate.
    """
    total_steps = max(1, int(total_steps))
    warmup = max(0, min(warmup_steps, total_steps // 5))

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)
