"""Hydra entry points: audioseq-train, -eval, -predict, -stream, -export."""
