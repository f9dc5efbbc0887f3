"""The process group is closed before the interpreter exits, on every rank.

Lightning destroys NCCL groups at exit but leaves gloo ones to interpreter finalisation,
where gloo's threads may still hold tensors whose release needs the GIL: a rank then aborts
after its work is done ("terminate called without an active exception", or a heap
corruption report), pytorch/pytorch#179291. Destroying the group while Python is fully
alive avoids that. A barrier first means no rank closes its sockets while another is still
reading from them.
"""

from collections.abc import Iterator
from contextlib import contextmanager

import lightning.pytorch as pl
import torch.distributed as dist


def _destroy() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextmanager
def closed_process_group(strategy: pl.strategies.Strategy) -> Iterator[None]:
    """Around a command's trainer calls: barrier then destroy on success; on an error or
    a preemption exit, destroy at once (a peer may never reach a barrier)."""
    try:
        yield
    except BaseException:
        _destroy()
        raise
    strategy.barrier("audioseq-exit")
    _destroy()
