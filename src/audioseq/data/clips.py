"""Fixed-length clips: random crop for training, centre crop for evaluation."""

import torch


def crop(
    audio: torch.Tensor, num_samples: int, *, random: bool, generator: torch.Generator | None = None
) -> torch.Tensor:
    """Cut a [T] waveform to at most ``num_samples``.

    Longer clips are cropped at a random offset (``random=True``, training) or around the
    centre (evaluation, so every epoch sees the same audio). Shorter clips are returned as
    they are: collate pads them and records their true length.
    """
    excess = audio.shape[0] - num_samples
    if excess <= 0:
        return audio
    start = int(torch.randint(0, excess + 1, (1,), generator=generator)) if random else excess // 2
    return audio[start : start + num_samples]
