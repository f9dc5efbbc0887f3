"""RNN, LSTM and GRU written from their equations, with torch's parameter names and layout.

They exist to be read (and stepped through in a debugger), and so that what a cell does
is not hidden in a fused kernel; ``RecurrentEncoder(impl="scratch")`` uses them, and so
does ``RecurrentEncoder.per_step_states`` (every h_t, for the gradient-flow plots). Each
layer and direction owns ``weight_ih_l{k}[_reverse]`` [G*H, D_in], ``weight_hh_l{k}`` [G*H, H],
``bias_ih_l{k}`` and ``bias_hh_l{k}`` [G*H], the G gate blocks stacked in torch's order
(LSTM: i, f, g, o; GRU: r, z, n), so a state dict loads into ``nn.RNN``/``nn.LSTM``/
``nn.GRU`` and back unchanged.

The equations write every gate as W·[h_{t-1}, x_t] + b. Splitting W into its input and
recurrent halves, W·[h, x] = W_ih·x + W_hh·h, lets W_ih·x + b_ih be computed for all
time steps in one matrix product before the loop; only W_hh·h_{t-1} must wait for the
previous step.
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audioseq.models.masking import frame_mask

GATES = {"rnn": 1, "lstm": 4, "gru": 3}


def rnn_step(x_proj: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor) -> Tensor:
    """Elman RNN: h_t = tanh(W_ih·x_t + b_ih + W_hh·h_{t-1} + b_hh); ``x_proj`` = W_ih·x_t + b_ih.

    The same W_hh multiplies the state at every step: over many steps the signal (and
    the gradient) shrinks or grows like powers of W_hh.
    """
    return torch.tanh(x_proj + F.linear(h, w_hh, b_hh))


def lstm_step(
    x_proj: Tensor, h: Tensor, c: Tensor, w_hh: Tensor, b_hh: Tensor
) -> tuple[Tensor, Tensor]:
    """LSTM: gates from [h_{t-1}, x_t], then the cell state C_t, a sum rather than a product
    of W_hh, carries information (and gradient) along like a conveyor belt."""
    pre_i, pre_f, pre_g, pre_o = (x_proj + F.linear(h, w_hh, b_hh)).chunk(4, dim=-1)
    f = torch.sigmoid(pre_f)  # forget gate: how much of C_{t-1} to keep
    i = torch.sigmoid(pre_i)  # input gate: how much of the candidate to write
    c_tilde = torch.tanh(pre_g)  # candidate C̃_t
    o = torch.sigmoid(pre_o)  # output gate: how much of the cell to show
    c = f * c + i * c_tilde  # C_t = f_t ⊙ C_{t-1} + i_t ⊙ C̃_t
    h = o * torch.tanh(c)  # h_t = o_t ⊙ tanh(C_t)
    return h, c


def gru_step(x_proj: Tensor, h: Tensor, w_hh: Tensor, b_hh: Tensor) -> Tensor:
    """GRU as torch defines it: reset and update gates, no separate cell state. The reset
    gate multiplies W_hn·h + b_hn (not h itself), which is why the biases stay split."""
    x_r, x_z, x_n = x_proj.chunk(3, dim=-1)
    h_r, h_z, h_n = F.linear(h, w_hh, b_hh).chunk(3, dim=-1)
    r = torch.sigmoid(x_r + h_r)  # reset gate: how much of the past enters the candidate
    z = torch.sigmoid(x_z + h_z)  # update gate: how much of h_{t-1} to keep
    n = torch.tanh(x_n + r * h_n)  # candidate state
    return (1 - z) * n + z * h  # h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}


def scan(
    cell: str,
    x_proj: Tensor,
    mask: Tensor,
    h: Tensor,
    c: Tensor,
    w_hh: Tensor,
    b_hh: Tensor,
    reverse: bool,
) -> tuple[list[Tensor], Tensor, Tensor]:
    """One layer in one direction over time-major ``x_proj`` [T, B, G*H].

    ``mask`` [T, B, 1] is False at padded frames, where the state is carried unchanged:
    padding never reaches a state, the final state is the one at each clip's last valid
    frame, and the reverse direction starts from the initial state there. ``c`` is the
    LSTM's cell state (passed through untouched by the other cells). Returns the state
    at every step in time order, T tensors [B, H], each the one the next step was computed
    from (so autograd can differentiate against it), and the final ``h`` and ``c``.
    """
    steps = x_proj.shape[0]
    outputs: list[Tensor] = []
    for k in range(steps):
        t = steps - 1 - k if reverse else k
        if cell == "lstm":
            h_new, c_new = lstm_step(x_proj[t], h, c, w_hh, b_hh)
            c = torch.where(mask[t], c_new, c)
        elif cell == "gru":
            h_new = gru_step(x_proj[t], h, w_hh, b_hh)
        else:
            h_new = rnn_step(x_proj[t], h, w_hh, b_hh)
        h = torch.where(mask[t], h_new, h)
        outputs.append(h)
    if reverse:
        outputs.reverse()
    return outputs, h, c


class ScratchRecurrent(nn.Module):
    """A multi-layer, optionally bidirectional RNN/LSTM/GRU built from the step functions.

    ``forward(x [B, T, D], lengths [B], state)`` returns outputs [B, T, dirs*H] (zero at
    padded frames) and the final state in torch's format: ``h`` or ``(h, c)``, each
    [layers*dirs, B, H]. As in torch, dropout applies to every layer's output but the last,
    in training only.
    """

    def __init__(
        self,
        cell: str,
        input_size: int,
        hidden_size: int,
        num_layers: int = 1,
        dropout: float = 0.0,
        bidirectional: bool = False,
    ) -> None:
        super().__init__()
        self.cell, self.hidden_size, self.num_layers = cell, hidden_size, num_layers
        self.dropout = dropout
        self.suffixes = ("", "_reverse") if bidirectional else ("",)
        gates = GATES[cell] * hidden_size
        for layer in range(num_layers):
            layer_input = input_size if layer == 0 else hidden_size * len(self.suffixes)
            for suffix in self.suffixes:
                shapes = {"weight_ih": (gates, layer_input), "weight_hh": (gates, hidden_size)}
                shapes |= {"bias_ih": (gates,), "bias_hh": (gates,)}
                for name, shape in shapes.items():
                    self.register_parameter(
                        f"{name}_l{layer}{suffix}", nn.Parameter(torch.empty(shape))
                    )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """torch's initialisation: every weight and bias uniform in ±1/sqrt(hidden_size)."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -bound, bound)

    def _initial_state(
        self, state: Tensor | tuple[Tensor, Tensor] | None, x: Tensor
    ) -> tuple[Tensor, Tensor]:
        """(h0, c0), each [layers*dirs, B, H]; c0 is empty for the cells without one."""
        if state is None:
            shape = (self.num_layers * len(self.suffixes), x.shape[0], self.hidden_size)
            h0 = x.new_zeros(shape)
            return h0, (x.new_zeros(shape) if self.cell == "lstm" else x.new_empty(0))
        if self.cell == "lstm":
            return state
        return state, x.new_empty(0)

    def forward(
        self, x: Tensor, lengths: Tensor, state: Tensor | tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor | tuple[Tensor, Tensor]]:
        outputs, final, _ = self.unroll(x, lengths, state)
        return outputs, final

    def unroll(
        self, x: Tensor, lengths: Tensor, state: Tensor | tuple[Tensor, Tensor] | None = None
    ) -> tuple[Tensor, Tensor | tuple[Tensor, Tensor], list[list[Tensor]]]:
        """``forward``'s outputs and final state, and ``steps[k][t]`` [B, H]: the state h_t
        of layer and direction k (ordered as the final state's first dimension) at every
        step t, each the tensor the next step and the next layer were computed from, so
        that autograd gives ∂L/∂h_t as the total derivative through both."""
        mask = frame_mask(lengths.to(x.device), x.shape[1]).t().unsqueeze(-1)  # [T, B, 1]
        h0, c0 = self._initial_state(state, x)
        layer_input = x.transpose(0, 1)  # time-major: one contiguous slice per step
        final_h, final_c, steps = [], [], []
        for layer in range(self.num_layers):
            if layer > 0:
                layer_input = F.dropout(layer_input, self.dropout, self.training)
            outputs = []
            for direction, suffix in enumerate(self.suffixes):
                k = layer * len(self.suffixes) + direction
                w_ih, w_hh, b_ih, b_hh = (
                    getattr(self, f"{name}_l{layer}{suffix}")
                    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")
                )
                x_proj = F.linear(layer_input, w_ih, b_ih)  # W_ih·x_t + b_ih for every t at once
                c = c0[k] if self.cell == "lstm" else c0
                hs, h, c = scan(self.cell, x_proj, mask, h0[k], c, w_hh, b_hh, direction == 1)
                outputs.append(torch.stack(hs))
                steps.append(hs)
                final_h.append(h)
                final_c.append(c)
            layer_input = torch.cat(outputs, dim=-1)
        outputs = (layer_input * mask).transpose(0, 1)
        h_n = torch.stack(final_h)
        return outputs, ((h_n, torch.stack(final_c)) if self.cell == "lstm" else h_n), steps
