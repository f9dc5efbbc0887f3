"""Listening to the data: validation clips as audio and their features as images.

At the first validation the first clips of the first batch are logged under
``samples/clip_<i>`` (the first ``max_seconds`` of each). At the end of training the
model's mistakes on up to ``max_batches`` validation batches are logged under
``misclassified/<i>_true_<t>_pred_<p>_p<confidence>``: the most confident mistake of each
true class first, so that a validation set sorted by class does not fill every slot from
its first class.
"""

from collections import defaultdict
from dataclasses import dataclass
from itertools import zip_longest

import lightning.pytorch as pl
import torch

from audioseq import SAMPLE_RATE
from audioseq.callbacks.tensorboard import tensorboard_writer


def feature_image(features: torch.Tensor) -> torch.Tensor:
    """[F, D] features -> [D, F] image in 0..1, low feature index at the bottom."""
    image = features.detach().float().cpu().T.flip(0)
    low, high = image.min(), image.max()
    return (image - low) / (high - low).clamp(min=1e-8)


@dataclass(frozen=True)
class Mistake:
    """A misclassified clip: class indices, the softmax probability of the predicted
    class, and the clip itself (unpadded, on the CPU)."""

    true: int
    pred: int
    confidence: float
    audio: torch.Tensor


def best_per_class(mistakes: list[Mistake], limit: int) -> dict[int, list[Mistake]]:
    """Each true class's ``limit`` most confident mistakes, most confident first; all that
    :func:`choose_mistakes` can pick, so the scan keeps only these."""
    ranked: dict[int, list[Mistake]] = defaultdict(list)
    for mistake in sorted(mistakes, key=lambda m: -m.confidence):
        if len(ranked[mistake.true]) < limit:
            ranked[mistake.true].append(mistake)
    return ranked


def choose_mistakes(mistakes: list[Mistake], num_clips: int) -> list[Mistake]:
    """``num_clips`` mistakes spread over the true classes: the most confident one of each
    class (most confident first), then each class's second, and so on."""
    chosen: list[Mistake] = []
    for rank in zip_longest(*best_per_class(mistakes, num_clips).values()):
        chosen += sorted((m for m in rank if m is not None), key=lambda m: -m.confidence)
    return chosen[:num_clips]


class AudioSampleLogger(pl.Callback):
    """Logs ``num_clips`` validation clips (audio + features) at the first validation and
    ``num_clips`` mistakes from the first ``max_batches`` validation batches at the end."""

    def __init__(
        self, num_clips: int = 4, max_batches: int = 20, max_seconds: float = 10.0
    ) -> None:
        self.num_clips, self.max_batches = num_clips, max_batches
        self.max_samples = round(max_seconds * SAMPLE_RATE)
        self._done_first = False

    def _log_clip(self, writer, tag: str, pl_module, audio, length, step: int) -> None:
        # The first max_seconds of long recordings: enough to listen to, and their
        # features do not cost the memory of a spectrogram of minutes.
        length = length.clamp(max=self.max_samples)
        audio = audio[: int(length)]
        clip = audio.detach().float().cpu()
        writer.add_audio(f"{tag}/audio", clip.clamp(-1, 1), step, sample_rate=SAMPLE_RATE)
        with torch.no_grad():
            device = pl_module.device
            features, frames = pl_module.frontend(audio[None].to(device), length[None].to(device))
        image = feature_image(features[0, : int(frames[0])])
        writer.add_image(f"{tag}/features", image, step, dataformats="HW")

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ):
        if self._done_first or trainer.sanity_checking or batch_idx != 0:
            return
        self._done_first = True
        writer = tensorboard_writer(trainer)
        if writer is None:
            return
        named = getattr(pl_module, "uses_labels", True)
        for i in range(min(self.num_clips, len(batch["label"]))):
            label = f"_{pl_module.labels[int(batch['label'][i])]}" if named else ""
            tag = f"samples/clip_{i}{label}"
            self._log_clip(writer, tag, pl_module, batch["audio"][i], batch["lengths"][i], 0)

    def on_train_end(self, trainer, pl_module) -> None:
        """Rank 0 only; runs the LightningModule itself (not the DDP wrapper), so no
        collective starts (docs/DISTRIBUTED.md)."""
        writer = tensorboard_writer(trainer)
        loaders = trainer.val_dataloaders
        if writer is None or loaders is None or not getattr(pl_module, "uses_labels", True):
            return
        modes = {module: module.training for module in pl_module.modules()}
        pl_module.eval()  # no dropout or SpecAugment in the scan or the logged features
        try:
            chosen = choose_mistakes(self._mistakes(pl_module, loaders), self.num_clips)
            for i, m in enumerate(chosen):
                true, pred = pl_module.labels[m.true], pl_module.labels[m.pred]
                tag = f"misclassified/{i}_true_{true}_pred_{pred}_p{m.confidence:.2f}"
                length = torch.tensor(len(m.audio))
                self._log_clip(writer, tag, pl_module, m.audio, length, trainer.global_step)
        finally:
            for module, training in modes.items():
                module.train(training)

    def _mistakes(self, pl_module: pl.LightningModule, loaders) -> list[Mistake]:
        """The mistakes of the first ``max_batches`` batches that :func:`choose_mistakes`
        could pick (memory stays bounded by classes x ``num_clips`` clips)."""
        pool: list[Mistake] = []
        for index, batch in enumerate(loaders):
            if index >= self.max_batches:
                break
            if not len(batch["label"]):  # every sample of the batch was skipped
                continue
            audio, lengths = batch["audio"], batch["lengths"]
            with torch.no_grad():
                logits = pl_module(audio.to(pl_module.device), lengths.to(pl_module.device))
            confidence, preds = (t.cpu() for t in logits.float().softmax(-1).max(-1))
            for i in torch.nonzero(preds != batch["label"]).flatten().tolist():
                clip = audio[i, : int(lengths[i])].clone()  # not a view: frees the batch
                true, pred = int(batch["label"][i]), int(preds[i])
                pool.append(Mistake(true, pred, float(confidence[i]), clip))
            pool = [m for ranked in best_per_class(pool, self.num_clips).values() for m in ranked]
        return pool
