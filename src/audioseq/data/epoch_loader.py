"""The training DataLoader that carries its epoch and its place in it across a resume."""

import logging
from collections.abc import Iterator
from typing import Any

from torch.utils.data import IterableDataset

from audioseq.data.batch_slots import SlotLoader

log = logging.getLogger(__name__)


class EpochLoader(SlotLoader):
    """A training loader that knows its epoch and how far into it training got.

    Every ``iter()`` starts the next epoch: the loader tells its streaming dataset, or its
    batch sampler and map-style dataset, which epoch that is (Lightning calls ``set_epoch``
    on plain samplers only). It counts the batches it has handed to the training loop
    (workers may have made more: those are not counted) and, having ``state_dict`` and
    ``load_state_dict``, is saved in every Lightning checkpoint. Restored before a resumed
    epoch's ``iter()`` (by Lightning, or by the DataModule: see its ``state_dict``), it
    yields only the epoch's remaining batches, which is what Lightning expects (it skips
    none itself): the dataset or sampler is told to leave the others out.
    """

    def __init__(self, *args: Any, first_epoch: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._next_epoch = first_epoch
        self._epoch, self._yielded, self._resume_at = first_epoch, 0, 0

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self._epoch, "batches": self._yielded, "workers": self.num_workers}

    def load_state_dict(self, state: dict[str, int]) -> None:
        epoch, done = state["epoch"], state["batches"]
        if done >= state.get("epoch_batches", len(self)):  # over: the next one starts afresh
            epoch, done = epoch + 1, 0
        self._next_epoch, self._resume_at = epoch, done
        if (
            done
            and state["workers"] != self.num_workers
            and getattr(self.dataset, "batches_depend_on_workers", False)
        ):
            log.warning(
                "data.num_workers changed from %d to %d: the rest of epoch %d is not the "
                "one the stopped run would have trained on (its batches depend on it)",
                state["workers"],
                self.num_workers,
                state["epoch"],
            )

    def __iter__(self) -> Iterator[Any]:
        epoch, start = self._next_epoch, self._resume_at
        if isinstance(self.dataset, IterableDataset):
            self.dataset.set_epoch(epoch, start)
        else:
            self.batch_sampler.set_epoch(epoch, start)
            self.dataset.set_epoch(epoch)
        self._epoch, self._yielded, self._resume_at = epoch, start, 0
        self._next_epoch = epoch + 1
        return self._counted(super().__iter__())

    def _counted(self, batches: Iterator[Any]) -> Iterator[Any]:
        for batch in batches:
            self._yielded += 1  # before the training step: a checkpoint after it counts it
            yield batch
