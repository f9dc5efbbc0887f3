"""TensorBoard extras: confusion matrices, audio and feature samples."""
