"""Fixed-window autoregressive encoders: output frame t sees frames t-tau+1..t, nothing older.

The baselines the recurrent models grew out of: an autoregressive model of order ``tau``
has no hidden state, so whatever happened more than ``tau`` frames ago is gone; the
Markov model is the case ``tau = 1``. Same interface as RecurrentEncoder.
"""

import torch
from torch import nn

from audioseq.config_schema import check_all
from audioseq.errors import ConfigError
from audioseq.models.masking import frame_mask


class WindowedEncoder(nn.Module):
    """An MLP over the window of the last ``tau`` frames, applied at every frame.

    Its first layer is a linear map of the concatenated window [x_{t-tau+1}, ..., x_t],
    which is exactly a convolution over time with kernel ``tau``: computing it as a causal
    ``Conv1d`` gives the same numbers for every frame at once, without copying each frame
    ``tau`` times. The further ``num_layers - 1`` layers act on each frame alone, so the
    receptive field stays ``tau`` frames. tanh throughout, as the recurrent cells' outputs.

    ``state`` carries the last ``tau - 1`` input frames [B, tau-1, D] from one chunk to
    the next, so chunked streaming equals one pass; frames before the start count as zeros.
    """

    bidirectional = False
    #: The batch dimension of ``state`` ([B, tau - 1, D]), for chunked runs.
    state_batch_dim = 0

    def __init__(
        self,
        input_size: int,
        tau: int = 10,
        hidden_size: int = 128,
        num_layers: int = 2,
        dropout: float = 0.0,
        bidirectional: bool = False,
    ) -> None:
        super().__init__()
        if bidirectional:
            # A recipe such as experiment=keywords sets it for the recurrent cells; say how
            # to drop it instead of failing on an unexpected keyword.
            raise ConfigError(
                "model.encoder.bidirectional=true: the windowed (ar/markov) encoders are causal "
                "windows with no backward direction; add ~model.encoder.bidirectional"
            )
        check_all(
            "model.encoder",
            tau=tau,
            hidden_size=hidden_size,
            num_layers=num_layers,
            dropout=dropout,
        )
        self.tau, self.output_size = tau, hidden_size
        self.window = nn.Conv1d(input_size, hidden_size, kernel_size=tau)
        self.layers = nn.ModuleList(
            nn.Linear(hidden_size, hidden_size) for _ in range(num_layers - 1)
        )
        self.dropout = nn.Dropout(dropout)

    def forward(
        self, features: torch.Tensor, frame_lengths: torch.Tensor, state: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        batch, _, size = features.shape
        lengths = frame_lengths.to(features.device)
        mask = frame_mask(lengths, features.shape[1]).unsqueeze(-1)
        # Causality already keeps padding out of valid outputs; zeroing it also keeps
        # non-finite padding out of the weight gradients (0 * nan is nan).
        features = features.masked_fill(~mask, 0.0)
        if state is None:
            state = features.new_zeros(batch, self.tau - 1, size)
        context = torch.cat([state, features], dim=1)  # frame j of the chunk at j + tau - 1
        hidden = torch.tanh(self.window(context.transpose(1, 2)).transpose(1, 2))
        for layer in self.layers:
            hidden = torch.tanh(layer(self.dropout(hidden)))
        # Each clip's last tau - 1 valid frames (reaching into the old state if it is short).
        rows = lengths.unsqueeze(1) + torch.arange(self.tau - 1, device=features.device)
        new_state = context.gather(1, rows.unsqueeze(-1).expand(-1, -1, size))
        return hidden.masked_fill(~mask, 0.0), new_state
