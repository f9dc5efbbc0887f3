"""A NaN or Inf in the gradients: stop with a line that says where, or skip the step.

Without a guard, one non-finite gradient turns every weight into NaN at the next optimiser
step, and the run goes on for hours printing ``loss nan`` (and, at the epoch's end,
checkpoints the ruined weights as ``last.ckpt``). The check runs after the backward pass
and before clipping and the optimiser step, on the gradients every DDP rank holds after
the all-reduce, so every rank reaches the same decision and none is left waiting.

- ``action=stop`` (default): raise NonFiniteError naming the step, the parameters whose
  gradients are not finite and the batch's clips; the checkpoints of the last finished
  epoch are untouched.
- ``action=skip``: drop this step's gradients (no update, no weight decay, no momentum
  change), count it, and go on; ``train/skipped_nonfinite`` in TensorBoard is the number
  of steps skipped per epoch.

The check costs one device-to-host sync per step (a few microseconds on CPU).
"""

from typing import Any

import lightning.pytorch as pl
import torch

from audioseq.config_schema import check
from audioseq.errors import AudioseqError

SHOWN = 5  # clips and parameters named in the message


class NonFiniteError(AudioseqError):
    """Training produced a NaN or Inf gradient."""


def all_finite(tensors: list[torch.Tensor]) -> bool:
    """Whether every element is finite, by one host sync: ``x * 0`` is 0 for a finite x
    and NaN for Inf or NaN, and a sum of zeros is exactly 0 (no overflow, any dtype).
    On CPU about 6x faster than ``isfinite(...).all()`` per tensor, which took 0.5 % of a
    GRU-256 training step (docs/PERFORMANCE.md)."""
    return bool(torch.isfinite(torch.stack([(t * 0).sum() for t in tensors]).sum()))


class NonFiniteGuard(pl.Callback):
    """Checks every optimiser step's gradients; ``action`` is ``stop`` or ``skip``."""

    def __init__(self, action: str = "stop") -> None:
        check("callbacks.nonfinite.action", action)  # the config schema's rule
        self.action = action
        self.keys: list[str] = []

    def on_train_batch_start(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self.keys = list(batch.get("key", [])) if isinstance(batch, dict) else []

    def on_before_optimizer_step(
        self, trainer: pl.Trainer, pl_module: pl.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        grads = [(n, p.grad) for n, p in pl_module.named_parameters() if p.grad is not None]
        bad = bool(grads) and not all_finite([g for _, g in grads])
        if self.action == "skip":
            # Every step, on every rank: DDP ranks log the same metrics in the same order.
            pl_module.log(
                "train/skipped_nonfinite",
                float(bad),
                on_step=False,
                on_epoch=True,
                reduce_fx="sum",
                sync_dist=False,
            )
        if not bad:
            return
        if self.action == "skip":
            for group in optimizer.param_groups:
                for param in group["params"]:
                    param.grad = None
            return
        names = [n for n, g in grads if not bool(torch.isfinite(g).all())]
        clips = ", ".join(self.keys[:SHOWN]) + (
            f" (and {len(self.keys) - SHOWN} more)" if len(self.keys) > SHOWN else ""
        )
        raise NonFiniteError(
            f"non-finite gradients at step {trainer.global_step} (epoch {trainer.current_epoch}) "
            f"in {', '.join(names[:SHOWN])}{' ...' if len(names) > SHOWN else ''}; "
            f"batch: {clips or 'no clip names'}; the checkpoints of the last finished epoch are "
            "kept (callbacks.nonfinite.action=skip skips such steps instead)"
        )
