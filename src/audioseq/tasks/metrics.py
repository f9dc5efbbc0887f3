"""Running means for losses, without torchmetrics' per-update NaN check."""

import torch
from torchmetrics import MeanMetric


class WeightedMean(MeanMetric):
    """``MeanMetric`` (same states, so checkpoints load either way) minus the NaN check
    of every update.

    That check reads ``isnan(...).any()`` on the host: on a GPU, a wait for the step's
    queued work at every training step. And what it does with a NaN, drop it with a
    warning, would hide a diverged loss; here a NaN loss makes the mean NaN, which is what
    TensorBoard should show (the non-finite guard stops or skips such steps anyway).
    """

    def update(self, value: torch.Tensor | float, weight: torch.Tensor | float = 1.0) -> None:
        value = torch.as_tensor(value, dtype=self.dtype, device=self.device)
        weight = torch.as_tensor(weight, dtype=self.dtype, device=self.device)
        weight = torch.broadcast_to(weight, value.shape)
        self.mean_value += (value * weight).sum()
        self.weight += weight.sum()
