"""Classification head: pooled [B, H] -> logits [B, C]."""

from torch import nn


class LinearHead(nn.Sequential):
    """Dropout then one linear layer: the encoder does the sequence work."""

    def __init__(self, in_features: int, num_classes: int, dropout: float = 0.0) -> None:
        super().__init__(nn.Dropout(dropout), nn.Linear(in_features, num_classes))
