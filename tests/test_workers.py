"""``data.num_workers=auto``: loader workers that follow the cores each rank may use."""

import logging
import os

import pytest

from audioseq.data.datamodule import AudioDataModule
from audioseq.data.workers import auto_workers, cgroup_cpu_quota, usable_cores
from audioseq.errors import ConfigError


@pytest.mark.parametrize(
    ("cores", "ranks", "workers"),
    [(1, 1, 0), (2, 1, 0), (3, 1, 1), (4, 1, 2), (16, 1, 8), (64, 1, 8), (16, 2, 4),
     (8, 4, 0), (2, 2, 0)],
)  # fmt: skip
def test_half_of_each_ranks_cores_up_to_8_and_none_on_two_or_fewer(cores, ranks, workers):
    assert auto_workers(cores, ranks) == workers


def test_the_default_follows_this_process_and_says_so_once(caplog):
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


@pytest.mark.parametrize(
    ("files", "quota"),
    [
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu.max": "200000 100000\n"}, 2.0),
        ({"cpu.max": "150000 100000\n"}, 1.5),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "400000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 4.0),
        ({}, None),
        ({"cpu.max": "garbage\n"}, None),
    ],
)
def test_a_containers_cpu_quota_is_read_from_its_cgroup(tmp_path, files, quota):
    """A pod limited to N CPUs sees every core of its host in its affinity: the quota in
    its cgroup (v2 or v1) is what it may use."""
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    assert cgroup_cpu_quota(tmp_path) == quota


def test_the_usable_cores_are_at_most_the_affinity_and_the_quota():
    quota = cgroup_cpu_quota()
    expected = len(os.sched_getaffinity(0))
    if quota is not None:
        expected = max(1, min(expected, int(quota)))
    assert usable_cores() == expected
