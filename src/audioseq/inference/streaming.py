"""Streaming a classifier chunk by chunk: the frontend's overlap and the encoder state carry.

A unidirectional encoder with causal features (no centre padding, ``global`` or no
normalisation) computes frame k from the samples up to its end and the state before it.
Feeding the signal in pieces and carrying (a) the samples that do not yet complete a
frame and (b) the encoder state therefore gives the same frame outputs as processing the
whole signal at once. With ``last`` pooling the head applied to frame k's output is the
clip classification of everything up to frame k, so each frame yields logits; a frame
detector (``task=detect``) has no pooling: its head classifies every frame anyway.
"""

import torch
from torch import nn

from audioseq.errors import ConfigError

#: The training choices that stream, in the words of their config keys.
STREAMING_POOLING = ("last",)
STREAMING_NORMALIZE = ("global", "none")
STREAMABLE = (
    "model.pooling=last, features.normalize=global|none and a unidirectional encoder "
    "(model.encoder.bidirectional=false)"
)


def check_streamable(model: nn.Module) -> None:
    """Raise a ConfigError saying which choice of ``model`` cannot stream, and why."""
    if not all(hasattr(model, name) for name in ("frontend", "encoder", "head", "labels")):
        raise ConfigError(
            f"streaming needs a classification or detection checkpoint (task=classify or "
            f"detect); this one holds a {type(model).__name__}"
        )
    if getattr(model.encoder, "bidirectional", False):
        raise ConfigError(
            "cannot stream a bidirectional encoder: its backward half reads the future. "
            f"Streaming needs {STREAMABLE}"
        )
    normalize = model.frontend.norm.mode
    if normalize not in STREAMING_NORMALIZE:
        raise ConfigError(
            f"cannot stream features.normalize={normalize}: it uses statistics of the whole "
            f"clip, future frames included (global and none stream). Streaming needs {STREAMABLE}"
        )
    if getattr(model, "frame_level", False):  # a class per frame: nothing pooled
        return
    pooling = getattr(getattr(model, "pooling", None), "mode", None)
    if pooling not in STREAMING_POOLING:
        raise ConfigError(
            f"cannot stream model.pooling={pooling}: it pools over the whole clip, so no frame "
            "has the clip's logits (last streams: its logits at every frame classify the "
            f"audio so far). Streaming needs {STREAMABLE}"
        )


def frame_logits(model: nn.Module, audio: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Offline reference: the head applied to every frame's encoder output, [B, F, C].

    With ``last`` pooling, row b's logits at frame k are the clip logits of its first
    ``(k * hop + win)`` samples; the streamed logits must equal these.
    """
    features, frame_lengths = model.frontend(audio, lengths)
    outputs, _ = model.encoder(features, frame_lengths)
    return model.head(outputs)


class StreamingClassifier:
    """Feeds chunks of any size through a streamable classifier, carrying what they share.

    ``process(chunk)`` takes [S] (one stream) or [B, S] (B streams in lockstep) float32
    samples at 16 kHz and returns the logits of the frames completed by the chunk:
    [F, C] or [B, F, C], F >= 0. Frame k ends at sample ``k * hop + win``.
    """

    def __init__(self, model: nn.Module) -> None:
        check_streamable(model)
        self.model = model.eval()
        self.win = int(model.frontend.win_length)
        self.hop = int(model.frontend.hop_length)
        self.num_classes = len(model.labels)
        self.device = next(model.parameters()).device
        self.reset()

    def reset(self) -> None:
        """Forget the stream: the next chunk starts a new one."""
        self._pending: torch.Tensor | None = None  # samples not yet consumed, [B, <win]
        self._state = None
        self.frames = 0  # frames emitted so far
        self.samples = 0  # samples received so far

    def frame_end(self, index: int) -> int:
        """The sample at which frame ``index`` ends (exclusive): where its evidence stops."""
        return index * self.hop + self.win

    @torch.inference_mode()
    def process(self, chunk: torch.Tensor) -> torch.Tensor:
        single = chunk.ndim == 1
        chunk = chunk.reshape(1, -1) if single else chunk
        chunk = chunk.to(self.device, torch.float32)
        if self._pending is None:
            self._pending = chunk.new_zeros(chunk.shape[0], 0)
        buffer = torch.cat([self._pending, chunk], dim=1)
        self.samples += chunk.shape[1]
        available = buffer.shape[1]
        count = (available - self.win) // self.hop + 1 if available >= self.win else 0
        if count == 0:
            self._pending = buffer
            logits = buffer.new_zeros(buffer.shape[0], 0, self.num_classes)
            return logits[0] if single else logits
        used = buffer[:, : (count - 1) * self.hop + self.win]
        lengths = torch.full((buffer.shape[0],), used.shape[1], dtype=torch.int64)
        features, frame_lengths = self.model.frontend(used, lengths.to(self.device))
        outputs, self._state = self.model.encoder(features, frame_lengths, self._state)
        logits = self.model.head(outputs).float()
        self._pending = buffer[:, count * self.hop :]
        self.frames += count
        return logits[0] if single else logits
