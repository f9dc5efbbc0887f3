"""How big and how costly a model is: parameters, and multiply-accumulates per second of audio.

MACs count the matrix products, which dominate: per frame, every recurrent layer and
direction multiplies W_ih by its input and W_hh by its state, G·H·(D_in + H) MACs for G
gate blocks (RNN 1, LSTM 4, GRU 3); a windowed encoder's first layer takes H·D·tau, each
further layer H·H. Element-wise gate arithmetic, biases, the frontend's DSP and pooling are
left out. The head runs once per clip, counted once per second of audio (one-second clips,
as the built-in data), or on every frame for a task whose head predicts each frame.
"""

from dataclasses import dataclass

from torch import nn

from audioseq import SAMPLE_RATE
from audioseq.models.cells import GATES
from audioseq.models.encoders import RecurrentEncoder
from audioseq.models.frontends import Frontend
from audioseq.models.windowed import WindowedEncoder


@dataclass(frozen=True)
class Complexity:
    """Trainable parameters and MACs per second of audio."""

    params: int
    macs_per_second: float

    def metrics(self) -> dict[str, float]:
        """The keys of metrics.json and the hparams table."""
        return {"model/params": float(self.params), "model/macs_per_second": self.macs_per_second}

    def __str__(self) -> str:
        macs = self.macs_per_second / 1e6
        return f"{self.params:,} parameters, {macs:,.2f} M MACs per second of audio"


def encoder_macs_per_frame(encoder: nn.Module) -> int:
    """Multiply-accumulates of the encoder's matrix products for one frame."""
    if isinstance(encoder, RecurrentEncoder):
        directions = 2 if encoder.bidirectional else 1
        hidden = encoder.hidden_size
        total = 0
        for layer in range(encoder.num_layers):
            layer_input = encoder.input_size if layer == 0 else hidden * directions
            total += directions * GATES[encoder.cell] * hidden * (layer_input + hidden)
        return total
    if isinstance(encoder, WindowedEncoder):
        window = encoder.window
        first = window.out_channels * window.in_channels * encoder.tau
        return first + sum(layer.in_features * layer.out_features for layer in encoder.layers)
    raise TypeError(f"no MAC count for encoder {type(encoder).__name__}")


def linear_macs(module: nn.Module) -> int:
    """Multiply-accumulates of every nn.Linear in ``module``, applied to one vector."""
    return sum(m.in_features * m.out_features for m in module.modules() if isinstance(m, nn.Linear))


def model_complexity(
    frontend: Frontend, encoder: nn.Module, head: nn.Module, head_per_frame: bool = False
) -> Complexity:
    """Parameters of the three parts; MACs for one second of audio at the frontend's frame
    rate (``SAMPLE_RATE / hop_length`` frames)."""
    frames_per_second = SAMPLE_RATE / frontend.hop_length
    params = sum(p.numel() for part in (frontend, encoder, head) for p in part.parameters())
    head_runs = frames_per_second if head_per_frame else 1.0
    macs = frames_per_second * encoder_macs_per_frame(encoder) + head_runs * linear_macs(head)
    return Complexity(params=params, macs_per_second=macs)


def task_complexity(task: nn.Module) -> Complexity:
    """:func:`model_complexity` of a task's ``frontend``, ``encoder`` and ``head``; a task
    whose head predicts every frame says so with a ``head_per_frame = True`` attribute."""
    return model_complexity(
        task.frontend, task.encoder, task.head, getattr(task, "head_per_frame", False)
    )
