"""Recurrent encoders: (features [B,F,D], frame_lengths [B], state) -> (outputs [B,F,H], state)."""

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from audioseq.config_schema import check_all
from audioseq.models.cells import ScratchRecurrent

CELLS: dict[str, type[nn.RNNBase]] = {"rnn": nn.RNN, "lstm": nn.LSTM, "gru": nn.GRU}

State = torch.Tensor | tuple[torch.Tensor, torch.Tensor] | None


class RecurrentEncoder(nn.Module):
    """An RNN/LSTM/GRU in which padding never reaches an output or a state.

    ``impl="fused"``: torch's fused modules over packed sequences; ``impl="scratch"``: the
    cells of :mod:`audioseq.models.cells`, written from the equations (slower, readable).
    Both keep the parameters under the same names (``rnn.weight_ih_l0``...), so a
    checkpoint of one loads into the other. ``state`` is the initial hidden state
    (``(h, c)`` for an LSTM) and the final one is returned, which makes chunked
    streaming and truncated back-propagation possible.
    """

    #: The batch dimension of ``state`` ([layers * dirs, B, H]), for chunked runs.
    state_batch_dim = 1

    def __init__(
        self,
        input_size: int,
        cell: str = "lstm",
        hidden_size: int = 128,
        num_layers: int = 2,
        dropout: float = 0.0,
        bidirectional: bool = False,
        impl: str = "fused",
    ) -> None:
        super().__init__()
        check_all(
            "model.encoder",
            cell=cell,
            hidden_size=hidden_size,
            num_layers=num_layers,
            dropout=dropout,
            bidirectional=bidirectional,
            impl=impl,
        )
        self.cell, self.bidirectional, self.impl = cell, bidirectional, impl
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.output_size = hidden_size * (2 if bidirectional else 1)
        options = dict(
            input_size=input_size,
            hidden_size=hidden_size,
            num_layers=num_layers,
            dropout=dropout if num_layers > 1 else 0.0,
            bidirectional=bidirectional,
        )
        self.rnn: nn.Module
        if impl == "scratch":
            self.rnn = ScratchRecurrent(cell, **options)
        else:
            self.rnn = CELLS[cell](**options, batch_first=True)

    def forward(
        self, features: torch.Tensor, frame_lengths: torch.Tensor, state: State = None
    ) -> tuple[torch.Tensor, State]:
        if self.impl == "scratch":
            return self.rnn(features, frame_lengths, state)
        steps = features.shape[1]
        lengths = frame_lengths.cpu()
        if bool((lengths == steps).all()):  # nothing padded: skip packing's overhead
            return self.rnn(features, state)
        packed = pack_padded_sequence(features, lengths, batch_first=True, enforce_sorted=False)
        outputs, state = self.rnn(packed, state)
        outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=steps)
        return outputs, state

    def per_step_states(
        self, features: torch.Tensor, frame_lengths: torch.Tensor
    ) -> tuple[torch.Tensor, list[list[torch.Tensor]]]:
        """``forward``'s outputs (from a zero state), and every layer's h_t at every step
        as its own tensor, ``states[k][t]`` [B, H] (k: layer and direction, in the order
        of the state's first dimension), for measuring ∂L/∂h_t: the total derivative
        through later steps and layers, which a fused kernel's outputs cannot give.

        It runs the cells of :mod:`audioseq.models.cells` step by step on this encoder's
        own parameters (for ``impl="fused"`` too: the names and layout are the same), so
        gradients reach them; slow, for measurements rather than training.
        """
        scratch = self.rnn
        if self.impl != "scratch":
            with torch.device("meta"):  # its own parameters are replaced: allocate none
                scratch = ScratchRecurrent(
                    self.cell,
                    self.input_size,
                    self.hidden_size,
                    self.num_layers,
                    self.rnn.dropout,
                    self.bidirectional,
                )
            for name, parameter in self.rnn.named_parameters():
                setattr(scratch, name, parameter)  # shared, not copied
            scratch.train(self.training)
        outputs, _, states = scratch.unroll(features, frame_lengths)
        return outputs, states
