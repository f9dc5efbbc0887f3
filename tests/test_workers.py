"""``data.num_workers=auto``: loader workers that follow the cores each rank may use."""

import logging
import os

import pytest

from audioseq.data.datamodule import AudioDataModule
from audioseq.data.workers import auto_workers, usable_cores
from audioseq.errors import ConfigError


@pytest.mark.parametrize(
    ("cores", "ranks", "workers"),
    [(1, 1, 0), (2, 1, 0), (3, 1, 1), (4, 1, 2), (16, 1, 8), (64, 1, 8), (16, 2, 4),
     (8, 4, 0), (2, 2, 0)],
)  # fmt: skip
def test_half_of_each_ranks_cores_up_to_8_and_none_on_two_or_fewer(cores, ranks, workers):
    assert auto_workers(cores, ranks) == workers


def test_the_default_follows_this_process_and_says_so_once(caplog):
    assert usable_cores() == len(os.sched_getaffinity(0))
    dm = AudioDataModule(train_size=8, val_size=4, test_size=0, batch_size=4)
    assert dm.hparams.num_workers == "auto"
    with caplog.at_level(logging.INFO, logger="audioseq.data.datamodule"):
        loaders = dm.train_dataloader(), dm.val_dataloader()
    expected = auto_workers(usable_cores(), 1)
    assert [loader.num_workers for loader in loaders] == [expected, expected]
    said = [r.getMessage() for r in caplog.records if "num_workers=auto" in r.getMessage()]
    assert said == [
        f"data.num_workers=auto: {expected} loader workers per rank "
        f"({usable_cores()} cores, 1 rank on this node)"
    ]


@pytest.mark.parametrize("value", ["many", -1, 1.5])
def test_anything_else_than_a_count_or_auto_is_refused(value):
    with pytest.raises(ConfigError, match=r"data\.num_workers.*'auto'"):
        AudioDataModule(num_workers=value)
