"""The process group is closed by the command, not left to interpreter exit."""

from pathlib import Path

import pytest
import torch
import torch.distributed as dist
from lightning.pytorch.strategies import DDPStrategy

from audioseq.cli.process_group import closed_process_group


def _join_group(tmp_path: Path) -> DDPStrategy:
    """A real one-rank gloo group, as a DDP rank has after Lightning's set-up."""
    dist.init_process_group(
        "gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1
    )
    return DDPStrategy(process_group_backend="gloo")


def test_the_group_is_destroyed_after_the_work(tmp_path: Path) -> None:
    strategy = _join_group(tmp_path)
    with closed_process_group(strategy):
        total = torch.ones(3)
        dist.all_reduce(total)
        assert dist.is_initialized()
    assert not dist.is_initialized()
    assert total.tolist() == [1.0, 1.0, 1.0]


@pytest.mark.parametrize("error", [RuntimeError("bad batch"), SystemExit(75)])
def test_the_group_is_destroyed_when_a_rank_stops_early(
    tmp_path: Path, error: BaseException
) -> None:
    strategy = _join_group(tmp_path)
    with pytest.raises(type(error)), closed_process_group(strategy):
        raise error
    assert not dist.is_initialized()


def test_without_a_group_it_does_nothing() -> None:
    assert not dist.is_initialized()
    with closed_process_group(DDPStrategy()):
        pass
    assert not dist.is_initialized()
