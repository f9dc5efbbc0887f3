"""The frontend plus model as plain tensor graphs that trace to TorchScript and ONNX.

Two differences from the training modules make them exportable, with the same numbers:

- Features: torch.stft returns complex tensors, which ONNX lacks, so the power spectrum
  is a strided conv1d with the windowed DFT basis (cosines and sines) as its kernels,
  followed by the same mel filters, log and DCT as the frontend.
- Encoder: pack_padded_sequence does not export. A unidirectional RNN runs over the padded
  frames as they are (padding comes after a clip's valid frames and cannot reach them);
  a bidirectional one runs its backward direction on each clip reversed within its own
  length, one layer at a time, so padding never reaches a valid frame either.

``OfflineGraph``: ``(audio [B, T], lengths [B]) -> logits [B, C]``, any model.
``StreamGraph``: ``(chunk [B, S], *state) -> (logits [B, S / hop, C], *state)`` for
streamable models (see :mod:`audioseq.inference.streaming`); ``state_layout`` names the
state tensors.
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audioseq.errors import ConfigError
from audioseq.inference.streaming import check_streamable
from audioseq.models.encoders import CELLS, RecurrentEncoder
from audioseq.models.frontends import MFCC, Frames, Frontend, LogMel


class FeatureGraph(nn.Module):
    """A frontend's features with conv1d/matmul only; ``mask``ed normalisation as in
    :class:`~audioseq.models.normalization.FeatureNorm`."""

    def __init__(self, frontend: Frontend) -> None:
        super().__init__()
        self.win, self.hop = int(frontend.win_length), int(frontend.hop_length)
        self.mode = frontend.norm.mode
        self.eps = frontend.norm.eps
        self.register_buffer("mean", frontend.norm.mean.detach().clone())
        self.register_buffer("std", frontend.norm.std.detach().clone())
        self.spectral = not isinstance(frontend, Frames)
        self.dct: Tensor | None = None
        if isinstance(frontend, Frames):
            kernel = torch.eye(self.win).unsqueeze(1)  # frame k = samples [k*win, (k+1)*win)
        elif isinstance(frontend, LogMel):  # MFCC is a LogMel too
            mel = frontend.mel
            spec = mel.spectrogram
            if spec.center or spec.normalized or spec.power != 2.0 or spec.pad:
                raise ConfigError("export needs an uncentred, unnormalised power spectrogram")
            n_fft = spec.n_fft
            window = F.pad(spec.window.double(), (0, n_fft - spec.window.shape[0]))[: self.win]
            n = torch.arange(self.win, dtype=torch.float64)
            k = torch.arange(n_fft // 2 + 1, dtype=torch.float64)
            angle = 2 * math.pi * torch.remainder(k[:, None] * n[None], n_fft) / n_fft
            basis = torch.cat([torch.cos(angle), -torch.sin(angle)]) * window
            kernel = basis.float().unsqueeze(1)
            self.register_buffer("fb", mel.mel_scale.fb.detach().clone())
            self.log_floor = frontend.log_floor
            if isinstance(frontend, MFCC):
                self.register_buffer("dct_mat", frontend.dct_mat.detach().clone())
                self.dct = self.dct_mat
        else:
            raise ConfigError(f"export does not know the frontend {type(frontend).__name__}")
        self.register_buffer("kernel", kernel)

    def raw(self, audio: Tensor) -> Tensor:
        """Unnormalised features [B, F, D] of every whole window of ``audio`` [B, T]."""
        frames = F.conv1d(audio.unsqueeze(1), self.kernel, stride=self.hop)  # [B, K, F]
        if not self.spectral:
            return frames.transpose(1, 2)
        half = frames.shape[1] // 2
        real, imag = frames[:, :half], frames[:, half:]
        power = (real * real + imag * imag).transpose(1, 2)  # [B, F, n_fft // 2 + 1]
        features = torch.log(torch.matmul(power, self.fb) + self.log_floor)
        return features if self.dct is None else torch.matmul(features, self.dct_mat)

    def normalize(self, features: Tensor, mask: Tensor | None) -> Tensor:
        """``mask`` [B, F, 1] float (None: every frame valid)."""
        if self.mode == "global":
            features = (features - self.mean) / self.std
        elif self.mode == "utterance":
            assert mask is not None, "utterance normalisation needs the frame mask"
            count = mask.sum(1, keepdim=True).clamp(min=1)
            mean = (features * mask).sum(1, keepdim=True) / count
            var = (((features - mean) * mask) ** 2).sum(1, keepdim=True) / count
            features = (features - mean) / (torch.sqrt(var) + self.eps)
        return features if mask is None else features * mask


_PARAM_NAMES = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")


def _single_layer(cell: str, weights: dict[str, Tensor], layer: int, suffix: str) -> nn.RNNBase:
    """One fused layer in one direction with the weights of ``layer``/``suffix``."""
    w_ih = weights[f"weight_ih_l{layer}{suffix}"]
    module = CELLS[cell](w_ih.shape[1], weights["weight_hh_l0"].shape[1], 1, batch_first=True)
    module.load_state_dict(
        {f"{name}_l0": weights[f"{name}_l{layer}{suffix}"] for name in _PARAM_NAMES}
    )
    return module


def reverse_within(x: Tensor, frame_lengths: Tensor) -> Tensor:
    """Each row's first ``frame_lengths`` frames in reverse order, padding left in place
    (applying it twice gives ``x`` back)."""
    steps = torch.arange(x.shape[1], device=x.device).unsqueeze(0)
    lengths = frame_lengths.unsqueeze(1)
    index = torch.where(steps < lengths, lengths - 1 - steps, steps)
    return torch.gather(x, 1, index.unsqueeze(-1).expand(-1, -1, x.shape[2]))


class EncoderGraph(nn.Module):
    """A RecurrentEncoder (fused or scratch: same parameter names) as fused torch modules
    without packing; any other encoder is called as it is."""

    #: For other encoders: None when their state is one tensor, else its tuple's length.
    structure: int | None = None

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.recurrent = isinstance(encoder, RecurrentEncoder)
        self.bidirectional = bool(getattr(encoder, "bidirectional", False))
        self.cell = getattr(encoder, "cell", "")
        if not self.recurrent:
            self.generic = encoder
            return
        weights = {name: p.detach() for name, p in encoder.rnn.named_parameters()}
        layers = sum(name.startswith("weight_ih_l") and "reverse" not in name for name in weights)
        if self.bidirectional:
            self.layers = nn.ModuleList(
                nn.ModuleList(_single_layer(self.cell, weights, k, s) for s in ("", "_reverse"))
                for k in range(layers)
            )
        else:
            w_ih = weights["weight_ih_l0"]
            hidden = weights["weight_hh_l0"].shape[1]
            self.fused = CELLS[self.cell](w_ih.shape[1], hidden, layers, batch_first=True)
            self.fused.load_state_dict(weights)

    def forward(self, x: Tensor, frame_lengths: Tensor) -> Tensor:
        """Outputs [B, F, H] of padded ``x``, exact at every valid frame."""
        if not self.recurrent:
            return self.generic(x, frame_lengths)[0]
        if not self.bidirectional:
            return self.fused(x)[0]
        for forward, backward in self.layers:
            ahead = forward(x)[0]
            behind = reverse_within(backward(reverse_within(x, frame_lengths))[0], frame_lengths)
            x = torch.cat([ahead, behind], dim=-1)
        return x

    def step(self, x: Tensor, state: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        """Streaming: outputs of ``x`` (every frame valid) from ``state``, and the new state."""
        if not self.recurrent:
            outputs, new = self.generic(x, _full_lengths(x), _unflatten(state, self.structure))
            return outputs, _flatten(new)
        if self.cell == "lstm":
            outputs, (h, c) = self.fused(x, (state[0], state[1]))
            return outputs, [h, c]
        outputs, h = self.fused(x, state[0])
        return outputs, [h]


def _full_lengths(x: Tensor) -> Tensor:
    return torch.full((x.shape[0],), x.shape[1], dtype=torch.int64, device=x.device)


def _flatten(state: Tensor | tuple[Tensor, ...] | list[Tensor]) -> list[Tensor]:
    return [state] if isinstance(state, Tensor) else list(state)


def _unflatten(state: list[Tensor], structure: int | None) -> Tensor | tuple[Tensor, ...]:
    return state[0] if structure is None else tuple(state)


class OfflineGraph(nn.Module):
    """``(audio [B, T], lengths [B]) -> logits [B, C]`` with the model's pooling."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.features = FeatureGraph(model.frontend)
        self.encoder = EncoderGraph(model.encoder)
        self.pooling, self.head = model.pooling, model.head
        self.win, self.hop = self.features.win, self.features.hop

    def forward(self, audio: Tensor, lengths: Tensor) -> Tensor:
        # A window of zeros at the end: a clip shorter than one window still has frame 0
        # (as the frontend pads it); the extra frames are masked.
        features = self.features.raw(F.pad(audio, (0, self.win)))
        frame_lengths = (
            torch.div((lengths - self.win).clamp(min=0), self.hop, rounding_mode="floor") + 1
        )
        steps = torch.arange(features.shape[1], device=audio.device).unsqueeze(0)
        mask = (steps < frame_lengths.unsqueeze(1)).unsqueeze(-1).to(features.dtype)
        features = self.features.normalize(features, mask)
        outputs = self.encoder(features, frame_lengths)
        return self.head(self.pooling(outputs, frame_lengths))


class StreamGraph(nn.Module):
    """``(chunk [B, S], *state) -> (logits [B, S / hop, C], *state)``; S is fixed at
    ``chunk_samples``, a multiple of the hop, so every state tensor keeps its shape.

    State, in order (see ``state_layout``): ``overlap`` [B, win - hop], the last samples
    of the previous chunk (absent when win == hop, as for ``features=frames``), then the
    encoder's: ``h`` [layers, B, H] (and ``c`` for an LSTM). To start a stream, set
    ``overlap`` to its first win - hop samples and feed chunks from there on (zeros work
    too: the stream then begins with win - hop samples of silence), and the encoder state
    to zeros.
    """

    def __init__(self, model: nn.Module, chunk_samples: int) -> None:
        super().__init__()
        check_streamable(model)
        self.features = FeatureGraph(model.frontend)
        self.win, self.hop = self.features.win, self.features.hop
        if chunk_samples <= 0 or chunk_samples % self.hop:
            raise ConfigError(
                f"the streaming graph's chunk ({chunk_samples} samples) must be a positive "
                f"multiple of the hop ({self.hop} samples = {1000 * self.hop / 16000:g} ms)"
            )
        self.chunk_samples, self.overlap = chunk_samples, self.win - self.hop
        self.encoder = EncoderGraph(model.encoder)
        self.head = model.head
        self._encoder_shapes = self._probe_state(model)

    def _probe_state(self, model: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
        """Names and shapes (batch 1) of the encoder's state, from one step of it."""
        x = torch.zeros(1, 1, model.frontend.num_features)
        with torch.no_grad():
            _, state = model.encoder(x, torch.ones(1, dtype=torch.int64))
        flat = _flatten(state)
        if not self.encoder.recurrent:
            self.encoder.structure = None if isinstance(state, Tensor) else len(flat)
        if self.encoder.recurrent:
            names = ["h", "c"] if self.encoder.cell == "lstm" else ["h"]
        else:  # e.g. a window encoder's last tau - 1 input frames [B, tau - 1, D]
            names = ["state"] if len(flat) == 1 else [f"state{k}" for k in range(len(flat))]
        return [(name, tuple(t.shape)) for name, t in zip(names, flat, strict=True)]

    def state_layout(self) -> list[dict[str, object]]:
        """``[{"name", "shape", "batch_dim"}, ...]`` for batch 1, in signature order."""
        layout = []
        if self.overlap:
            layout.append({"name": "overlap", "shape": [1, self.overlap], "batch_dim": 0})
        for name, shape in self._encoder_shapes:
            batch_dim = 1 if self.encoder.recurrent else 0
            layout.append({"name": name, "shape": list(shape), "batch_dim": batch_dim})
        return layout

    def initial_state(self, first: Tensor) -> list[Tensor]:
        """The state that starts streams whose first win - hop samples are ``first`` [B, *]."""
        batch = first.shape[0]
        state = [first[:, : self.overlap].float()] if self.overlap else []
        for entry in self.state_layout()[1 if self.overlap else 0 :]:
            shape = list(entry["shape"])
            shape[entry["batch_dim"]] = batch
            state.append(torch.zeros(shape))
        return state

    def forward(self, chunk: Tensor, *state: Tensor) -> tuple[Tensor, ...]:
        carried = list(state)
        if self.overlap:
            audio = torch.cat([carried.pop(0), chunk], dim=1)
            overlap = [audio[:, audio.shape[1] - self.overlap :]]
        else:
            audio, overlap = chunk, []
        features = self.features.normalize(self.features.raw(audio), None)
        outputs, carried = self.encoder.step(features, carried)
        return (self.head(outputs), *overlap, *carried)
