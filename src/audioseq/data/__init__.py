"""Everything left of collate: sources, decoding, crop/pad, batching and the DataModule."""
