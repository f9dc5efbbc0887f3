"""AudioDataModule: one LightningDataModule for every source (synthetic, manifest, ...)."""

import logging
import weakref
from functools import partial
from typing import Any

import lightning.pytorch as pl
import torch
from hydra.utils import get_class
from torch.utils.data import DataLoader, Dataset, IterableDataset

from audioseq import SAMPLE_RATE
from audioseq.callbacks.preemption import loader_worker_init
from audioseq.config_schema import check_all
from audioseq.data.augment import WaveformAugment
from audioseq.data.batch_slots import BatchSlots, SlotLoader
from audioseq.data.batching import DurationBucketSampler, as_is, collate
from audioseq.data.cache import CacheBudget
from audioseq.data.epoch_loader import EpochLoader
from audioseq.data.partition import rank_indices
from audioseq.data.sources import Source
from audioseq.data.spec import LoaderSpec
from audioseq.data.workers import auto_workers, leave_sigchld_alone, usable_cores
from audioseq.errors import ConfigError

log = logging.getLogger(__name__)

#: The DataModule's own settings (not a source's) that the config schema has rules for.
CHECKED = ("batch_size", "num_workers", "persistent_workers", "pin_memory", "clip_seconds",
           "on_error", "min_seconds", "max_seconds", "bucketing", "num_buckets", "cache",
           "cache_budget")  # fmt: skip
#: ``data.source`` names and their classes (imported when used).
SOURCES: dict[str, str] = {
    "synthetic": "audioseq.data.sources.synthetic.SyntheticSource",
    "manifest": "audioseq.data.sources.manifest.ManifestSource",
    "folder": "audioseq.data.sources.folder.FolderSource",
    "speech_commands": "audioseq.data.sources.speech_commands.SpeechCommandsSource",
    "shards": "audioseq.data.sources.shards.ShardSource",
}


def build_source(name: str, shared: dict[str, Any], **options: Any) -> Source:
    """Instantiate the source called ``name`` with its ``options`` and whichever of the
    ``shared`` settings (seed, on_error, ...) it takes; unknown names and options are
    config errors."""
    if name not in SOURCES:
        raise ConfigError(f"data.source: unknown source {name!r} (choose from {sorted(SOURCES)})")
    cls = get_class(SOURCES[name])
    fields = set(cls.__dataclass_fields__)
    unknown = sorted(set(options) - fields)
    if unknown:
        raise ConfigError(
            f"data: unknown option(s) {unknown} for source {name!r} (known: {sorted(fields)})"
        )
    return cls(**{k: v for k, v in shared.items() if k in fields}, **options)


class AudioDataModule(pl.LightningDataModule):
    """Turns a source into train/val/test loaders of ``audio``/``lengths``/``label`` batches.

    Source-specific options (``train_size``, ``train_manifest``, ...) are passed through to
    the source named by ``source``. The hyperparameters are saved into checkpoints, so
    ``audioseq-eval`` can rebuild the same data from a checkpoint alone.
    """

    def __init__(
        self,
        source: str = "synthetic",
        clip_seconds: float | None = None,
        batch_size: int = 64,
        num_workers: int | str = "auto",
        persistent_workers: bool = True,
        pin_memory: bool | str = "auto",
        seed: int = 0,
        on_error: str = "raise",
        min_seconds: float | None = None,
        max_seconds: float | None = None,
        bucketing: bool = False,
        num_buckets: int = 10,
        augment: dict[str, Any] | None = None,
        cache: str = "none",
        cache_budget: float = 0.25,
        **source_options: Any,
    ) -> None:
        super().__init__()
        # Saved into checkpoints; not merged into the logger's hparams (the run logs the
        # whole resolved config itself, and the task's ``labels`` would clash).
        self.save_hyperparameters(logger=False)
        # The schema's rules, for a DataModule built in Python as for one composed by Hydra.
        check_all("data", **{key: self.hparams[key] for key in CHECKED})
        shared = dict(
            seed=seed,
            on_error=on_error,
            min_seconds=min_seconds,
            max_seconds=max_seconds,
            bucketing=bucketing,
        )
        self.source = build_source(source, shared, **source_options)
        self.augment = WaveformAugment(**augment, seed=seed) if augment else None
        self._datasets: dict[str, Dataset | None] = {}
        self._built: tuple[int, int, bool] | None = None  # (rank, world size, cached)
        self._train_position: dict[str, int] | None = None  # from a checkpoint
        self._said_workers = False
        self._loaders: weakref.WeakSet[SlotLoader] = weakref.WeakSet()

    @property
    def labels(self) -> list[str]:
        """Class names; a label's index is its position here."""
        return list(self.source.labels)

    @property
    def num_classes(self) -> int:
        return len(self.source.labels)

    @property
    def skipped_at_setup(self) -> dict[str, int]:
        """Samples the source dropped while checking its lists (``on_error=skip``)."""
        return dict(getattr(self.source, "skipped", {}))

    def _rank(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer else (0, 1)

    def _local_ranks(self) -> int:
        trainer = self.trainer
        return max(1, trainer.world_size // max(1, trainer.num_nodes)) if trainer else 1

    def setup(self, stage: str | None = None) -> None:
        """Build the splits' datasets for this rank (once: fit, then test reuse them and
        their cache)."""
        self._build(cache=True)

    def _build(self, cache: bool) -> None:
        rank, world_size = self._rank()
        built = self._built
        if built is not None and built[:2] == (rank, world_size) and (built[2] or not cache):
            return
        budget = None
        if cache:
            budget = CacheBudget(self.hparams.cache, self.hparams.cache_budget, self._local_ranks())
        for split in ("train", "val", "test"):
            spec = LoaderSpec(
                batch_size=self.hparams.batch_size,
                clip_seconds=self.hparams.clip_seconds,
                train=split == "train",
                rank=rank,
                world_size=world_size,
                on_error=self.hparams.on_error,
                min_seconds=self.hparams.min_seconds,
                max_seconds=self.hparams.max_seconds,
                augment=self.augment if split == "train" else None,
                seed=self.hparams.seed,
                cache=budget,
                split=split,
                show_progress=rank == 0,
            )
            self._datasets[split] = self.source.dataset(split, spec)
        self._built = (rank, world_size, cache)

    def teardown(self, stage: str) -> None:
        """Stop the loaders' persistent workers when Lightning is done with them (at the
        end of fit, validate, test): a sweep of trials in one process would otherwise
        keep every trial's workers alive until the garbage collector finds them."""
        for loader in list(self._loaders):
            loader.close()

    def state_dict(self) -> dict[str, Any]:
        """Where training stands in its epoch (the fit loop's loader), in checkpoints.

        Lightning saves the training loader's own ``state_dict`` too, but restores it only
        into a loader made after the checkpoint is read; ``configure_optimizers`` asking
        for ``estimated_stepping_batches`` makes it before (Lightning issue #20550). A
        DataModule's state is restored first, so the next training loader gets it.
        """
        trainer = self.trainer
        loader = trainer.train_dataloader if trainer is not None else None
        if not isinstance(loader, EpochLoader):
            return {}
        # limit_train_batches may end an epoch before the loader runs out
        return {
            "train_position": {**loader.state_dict(), "epoch_batches": trainer.num_training_batches}
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._train_position = state_dict.get("train_position")

    def has_split(self, split: str) -> bool:
        """Whether the source has ``split`` (asked before training: fills no cache)."""
        self._build(cache=False)
        return self._datasets.get(split) is not None

    def _pin_memory(self) -> bool:
        if self.hparams.pin_memory != "auto":
            return bool(self.hparams.pin_memory)
        trainer = self.trainer
        return trainer is not None and trainer.accelerator.__class__.__name__ == "CUDAAccelerator"

    def _num_workers(self) -> int:
        """``data.num_workers``, with ``auto`` resolved for this node (said once a node)."""
        if self.hparams.num_workers != "auto":
            return int(self.hparams.num_workers)
        cores, ranks = usable_cores(), self._local_ranks()
        workers = auto_workers(cores, ranks)
        if not self._said_workers and (self.trainer is None or self.trainer.local_rank == 0):
            ranks_text = f"{ranks} rank{'s' if ranks > 1 else ''}"
            log.info(  # by one rank of each node: the others chose the same
                "data.num_workers=auto: %d loader workers per rank (%d cores, %s on this node)",
                workers, cores, ranks_text,
            )  # fmt: skip
        self._said_workers = True
        return workers

    def _loader(self, split: str) -> DataLoader:
        self.setup()
        dataset = self._datasets.get(split)
        if dataset is None:
            raise ConfigError(f"data: this source has no {split} split")
        if hasattr(dataset, "fill_cache"):
            dataset.fill_cache()
        workers = self._num_workers()
        if workers > 0:
            leave_sigchld_alone()
        common = dict(
            num_workers=workers,
            persistent_workers=bool(self.hparams.persistent_workers) and workers > 0,
            pin_memory=self._pin_memory(),
            # Worker seeds come from the loader's own generator, not the global torch RNG,
            # so starting a loader (which a resumed run does at other moments than an
            # uninterrupted one) leaves the training's draws (dropout, SpecAugment) alone.
            generator=torch.Generator().manual_seed(self.hparams.seed),
            worker_init_fn=loader_worker_init,  # workers leave SIGTERM to this process
            slots=self._slots(dataset, workers),
        )
        if split == "train":
            loader = self._train_loader(dataset, common)
        elif isinstance(dataset, IterableDataset):  # the dataset batches and shards itself
            loader = EpochLoader(dataset, batch_size=None, collate_fn=as_is, **common)
        elif self.hparams.bucketing:
            sampler = self._batch_sampler(dataset)
            loader = SlotLoader(
                dataset, batch_sampler=sampler, collate_fn=self._collate(), **common
            )
        else:  # clips strided over the ranks, in file order
            rank, world_size = self._rank()
            mine = rank_indices(len(dataset), rank, world_size, drop_last=False)
            loader = SlotLoader(
                dataset,
                batch_size=self.hparams.batch_size,
                sampler=mine,
                collate_fn=self._collate(),
                **common,
            )
        self._loaders.add(loader)
        return loader

    def _slots(self, dataset: Dataset, workers: int) -> BatchSlots | None:
        """Reused batch buffers for the loader's workers (:mod:`~audioseq.data.batch_slots`),
        as wide as the dataset's widest batch where it knows it (its crop, or its longest
        declared clip): none without workers. A worker has up to ``prefetch_factor`` (2)
        batches in flight, the training loop holds two (the step's and the next), and an
        epoch abandoned midway can leave ``prefetch_factor`` more claimed until the next
        one. Beyond that (a callback that keeps batches; workers that run out at an epoch's
        end hand their share of the prefetching to the others), a worker collates into
        fresh shared memory."""
        if workers == 0 or not hasattr(dataset, "batch_width"):
            return None
        width = dataset.batch_width()
        if width is None:
            return None
        return BatchSlots(workers, 2 + 2 + 2, self.hparams.batch_size, width)

    def _train_loader(self, dataset: Dataset, common: dict[str, Any]) -> EpochLoader:
        """The training loader, at the position a checkpoint gave (the first one made after
        it was read: the fit loop's), else at the start of the trainer's epoch."""
        first_epoch = self.trainer.current_epoch if self.trainer else 0
        if isinstance(dataset, IterableDataset):
            loader = EpochLoader(
                dataset, batch_size=None, collate_fn=as_is, first_epoch=first_epoch, **common
            )
        else:
            loader = EpochLoader(
                dataset,
                batch_sampler=self._batch_sampler(dataset, train=True),
                collate_fn=self._collate(),
                first_epoch=first_epoch,
                **common,
            )
        if self._train_position is not None:
            loader.load_state_dict(self._train_position)
            self._train_position = None
        return loader

    def _collate(self) -> partial:
        clip = self.hparams.clip_seconds
        return partial(collate, pad_to=None if clip is None else round(clip * SAMPLE_RATE))

    def _batch_sampler(self, dataset: Dataset, train: bool = False) -> DurationBucketSampler:
        """This rank's batches (the DataModule shards every loader across ranks itself: the
        trainer configs set use_distributed_sampler=false). In training they follow from
        (seed, epoch), so a resumed epoch can leave out its first batches; without
        ``bucketing``, one bucket and no durations make that a plain shuffle."""
        rank, world_size = self._rank()
        bucketing = self.hparams.bucketing
        return DurationBucketSampler(
            dataset.durations() if bucketing else [None] * len(dataset),
            batch_size=self.hparams.batch_size,
            num_buckets=self.hparams.num_buckets if bucketing else 1,
            shuffle=train,
            seed=self.hparams.seed,
            rank=rank,
            world_size=world_size,
            drop_last=train,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")
