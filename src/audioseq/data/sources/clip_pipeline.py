"""What every decoded clip goes through before batching: length check, augmentation, crop.

File-list clips (``clip_dataset``, whose cache keeps clips between the check and the
rest) and shard samples (``shard_samples``) both come this way, so ``data.min_seconds``,
``data.augment`` and ``data.clip_seconds`` mean the same for every source that decodes.
"""

import torch

from audioseq import SAMPLE_RATE
from audioseq.data.augment import clip_generator
from audioseq.data.batching import crop
from audioseq.data.spec import LoaderSpec
from audioseq.errors import DataError


def seconds_to_samples(seconds: float | None) -> int | None:
    return None if seconds is None else round(seconds * SAMPLE_RATE)


class ClipPipeline:
    """A split's settings, applied to one clip: ``checked`` once decoded, then ``shaped``."""

    def __init__(self, spec: LoaderSpec) -> None:
        self.spec = spec
        self.clip_samples = seconds_to_samples(spec.clip_seconds)
        self.min_samples = seconds_to_samples(spec.min_seconds)

    def checked(self, audio: torch.Tensor, where: str) -> torch.Tensor:
        """``audio`` unless it is shorter than ``data.min_seconds`` (a clip without a
        declared duration is only measured here): then a ``too_short`` DataError."""
        if self.min_samples is not None and audio.shape[0] < self.min_samples:
            seconds = audio.shape[0] / SAMPLE_RATE
            raise DataError(
                f"{where}: {seconds:.3f} s is shorter than data.min_seconds", "too_short"
            )
        return audio

    def shaped(self, audio: torch.Tensor, epoch: int, *clip: int) -> torch.Tensor:
        """Augmented and cropped at random in training, from the clip's own generator
        (seeded from the seed, ``epoch`` and ``clip``, so no worker or resume changes it);
        cropped around the centre in evaluation."""
        train, generator = self.spec.train, None
        if train and self.spec.augment is not None:
            generator = clip_generator(self.spec.seed, epoch, *clip)
            audio = self.spec.augment(audio, generator)
        if self.clip_samples is not None and audio.shape[0] > self.clip_samples:
            if train and generator is None:  # made only when drawn from: 5 µs a clip
                generator = clip_generator(self.spec.seed, epoch, *clip)
            audio = crop(audio, self.clip_samples, random=train, generator=generator)
        return audio
