"""LightningModules: a frontend, an encoder, pooling, a head, a loss and metrics."""
