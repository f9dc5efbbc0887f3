"""AudioDataModule: one LightningDataModule for every source (synthetic, manifest, ...)."""

from functools import partial
from typing import Any

import lightning.pytorch as pl
from torch.utils.data import DataLoader, Dataset, IterableDataset

from audioseq import SAMPLE_RATE
from audioseq.data.collate import collate
from audioseq.data.manifest import ManifestSource
from audioseq.data.spec import LoaderSpec
from audioseq.data.synthetic import SyntheticSource
from audioseq.errors import ConfigError

SOURCES: dict[str, type] = {"synthetic": SyntheticSource, "manifest": ManifestSource}


def build_source(name: str, **options: Any):
    """Instantiate the source called ``name``; unknown names and options are config errors."""
    if name not in SOURCES:
        raise ConfigError(f"data.source: unknown source {name!r} (choose from {sorted(SOURCES)})")
    cls = SOURCES[name]
    fields = set(cls.__dataclass_fields__)
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ConfigError(
            f"data: unknown option(s) {unknown} for source {name!r} (known: {sorted(fields)})"
        )
    return cls(**options)


class EpochLoader(DataLoader):
    """A loader that tells its streaming dataset which epoch starts at every ``iter()``.

    Lightning only calls ``set_epoch`` on samplers, and an IterableDataset has none; the
    dataset keeps the epoch in shared memory, so persistent workers see it too.
    """

    def __init__(self, *args: Any, first_epoch: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._epochs = first_epoch

    def __iter__(self):
        self.dataset.set_epoch(self._epochs)
        self._epochs += 1
        return super().__iter__()


class AudioDataModule(pl.LightningDataModule):
    """Turns a source into train/val/test loaders of ``audio``/``lengths``/``label`` batches.

    Source-specific options (``train_size``, ``train_manifest``, ...) are passed through to
    the source named by ``source``. The hyperparameters are saved into checkpoints, so
    ``audioseq-eval`` can rebuild the same data from a checkpoint alone.
    """

    def __init__(
        self,
        source: str = "synthetic",
        clip_seconds: float | None = 1.0,
        batch_size: int = 64,
        num_workers: int = 2,
        persistent_workers: bool = True,
        pin_memory: bool | str = "auto",
        seed: int = 0,
        on_error: str = "raise",
        **source_options: Any,
    ) -> None:
        super().__init__()
        # Saved into checkpoints; not merged into the logger's hparams (the run logs the
        # whole resolved config itself, and the task's ``labels`` would clash).
        self.save_hyperparameters(logger=False)
        if batch_size < 1:
            raise ConfigError(f"data.batch_size must be >= 1, got {batch_size}")
        if num_workers < 0:
            raise ConfigError(f"data.num_workers must be >= 0, got {num_workers}")
        if clip_seconds is not None and clip_seconds <= 0:
            raise ConfigError(f"data.clip_seconds must be > 0 or null, got {clip_seconds}")
        if on_error not in ("raise", "skip"):
            raise ConfigError(f"data.on_error must be 'raise' or 'skip', got {on_error!r}")
        if pin_memory not in (True, False, "auto"):
            raise ConfigError(f"data.pin_memory must be true, false or auto, got {pin_memory!r}")
        self.source = build_source(source, seed=seed, **source_options)
        self._datasets: dict[str, Dataset | None] = {}

    @property
    def labels(self) -> list[str]:
        """Class names; a label's index is its position here."""
        return list(self.source.labels)

    @property
    def num_classes(self) -> int:
        return len(self.source.labels)

    def _rank(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer else (0, 1)

    def setup(self, stage: str | None = None) -> None:
        rank, world_size = self._rank()
        for split in ("train", "val", "test"):
            spec = LoaderSpec(
                batch_size=self.hparams.batch_size,
                clip_seconds=self.hparams.clip_seconds,
                train=split == "train",
                rank=rank,
                world_size=world_size,
                on_error=self.hparams.on_error,
            )
            self._datasets[split] = self.source.dataset(split, spec)

    def has_split(self, split: str) -> bool:
        if not self._datasets:
            self.setup()
        return self._datasets.get(split) is not None

    def _pin_memory(self) -> bool:
        if self.hparams.pin_memory != "auto":
            return bool(self.hparams.pin_memory)
        trainer = self.trainer
        return trainer is not None and trainer.accelerator.__class__.__name__ == "CUDAAccelerator"

    def _loader(self, split: str) -> DataLoader:
        if not self._datasets:
            self.setup()
        dataset = self._datasets.get(split)
        if dataset is None:
            raise ConfigError(f"data: this source has no {split} split")
        workers = self.hparams.num_workers
        common = dict(
            num_workers=workers,
            persistent_workers=bool(self.hparams.persistent_workers) and workers > 0,
            pin_memory=self._pin_memory(),
        )
        if isinstance(dataset, IterableDataset):  # the dataset batches and shards itself
            # A run resumed at epoch N continues with epoch N's order.
            first_epoch = self.trainer.current_epoch if self.trainer else 0
            return EpochLoader(dataset, batch_size=None, first_epoch=first_epoch, **common)
        clip = self.hparams.clip_seconds
        pad_to = None if clip is None else round(clip * SAMPLE_RATE)
        return DataLoader(
            dataset,
            batch_size=self.hparams.batch_size,
            shuffle=split == "train",
            collate_fn=partial(collate, pad_to=pad_to),
            **common,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")
