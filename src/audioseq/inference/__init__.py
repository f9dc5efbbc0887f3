"""Running trained checkpoints on new audio (audioseq-predict and friends)."""
