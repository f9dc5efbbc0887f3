"""Listening to the data: validation clips as audio and their features as images.

At the first validation the first clips of the first batch are logged under
``samples/clip_<i>``; at the end of training, clips the model gets wrong are logged under
``misclassified/<i>`` with the true and predicted class in the tag.
"""

import lightning.pytorch as pl
import torch

from audioseq import SAMPLE_RATE
from audioseq.callbacks.tensorboard import tensorboard_writer


def feature_image(features: torch.Tensor) -> torch.Tensor:
    """[F, D] features -> [D, F] image in 0..1, low feature index at the bottom."""
    image = features.detach().float().cpu().T.flip(0)
    low, high = image.min(), image.max()
    return (image - low) / (high - low).clamp(min=1e-8)


class AudioSampleLogger(pl.Callback):
    """Logs ``num_clips`` validation clips (audio + features) and misclassified clips."""

    def __init__(self, num_clips: int = 4, max_batches: int = 20) -> None:
        self.num_clips, self.max_batches = num_clips, max_batches
        self._done_first = False

    def _log_clip(self, writer, tag: str, pl_module, audio, length, step: int) -> None:
        clip = audio[: int(length)].detach().float().cpu()
        writer.add_audio(f"{tag}/audio", clip.clamp(-1, 1), step, sample_rate=SAMPLE_RATE)
        with torch.no_grad():
            features, frames = pl_module.frontend(audio[None].to(pl_module.device), length[None])
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
        writer = tensorboard_writer(trainer)
        loaders = trainer.val_dataloaders
        if writer is None or loaders is None or not getattr(pl_module, "uses_labels", True):
            return
        found = 0
        pl_module.eval()
        for index, batch in enumerate(loaders):
            if index >= self.max_batches or found >= self.num_clips:
                break
            audio, lengths = (
                batch["audio"].to(pl_module.device),
                batch["lengths"].to(pl_module.device),
            )
            with torch.no_grad():
                preds = pl_module(audio, lengths).argmax(-1).cpu()
            for i in torch.nonzero(preds != batch["label"]).flatten().tolist():
                if found >= self.num_clips:
                    break
                true, pred = (pl_module.labels[int(x)] for x in (batch["label"][i], preds[i]))
                tag = f"misclassified/{found}_true_{true}_pred_{pred}"
                self._log_clip(writer, tag, pl_module, audio[i], lengths[i], trainer.global_step)
                found += 1
