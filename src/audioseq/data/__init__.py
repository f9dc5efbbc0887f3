"""Everything left of the model, in the order data flows: file -> tensor -> batch.

- ``sources/``: where clips come from, one module per ``data.source``;
  ``shards/``: the tar shard format that the shards source reads.
- ``audio.py`` (and its WAV fast path ``wav.py``): decode, check, resample to 16 kHz mono;
  ``audio_files.py``: which files on disk are audio (the suffixes, the folder scan);
  ``cache.py``: decoded clips kept once in shared memory; ``augment.py``: waveform
  augmentation for training.
- ``batching.py``: crop, collate and duration bucketing; ``partition.py``: which items each
  rank and worker takes.
- ``datamodule.py``: the LightningDataModule that ties a source to its loaders;
  ``epoch_loader.py``: its training loader, which keeps its place in an epoch across a resume.
- Records shared by these: ``example.py``, ``entries.py``, ``frame_labels.py``,
  ``skipping.py``, ``spec.py``; ``recording_chain.py`` writes re-encoded copies of a corpus.
"""
