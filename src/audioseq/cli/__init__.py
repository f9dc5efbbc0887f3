"""Hydra entry points: audioseq-train, audioseq-eval."""
