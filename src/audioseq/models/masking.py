"""Masks from lengths: which frames of a padded batch are real."""

import torch


def frame_mask(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    """[B, max_len] bool, True where the frame index is below that row's length."""
    return torch.arange(max_len, device=lengths.device) < lengths.unsqueeze(1)
