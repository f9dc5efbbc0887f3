"""glibc's malloc in the training process: reuse freed blocks instead of fresh pages.

A training step allocates and frees tensors of a few MiB (the batch, the features, the
activations and their gradients). glibc serves a block above its mmap threshold with a
fresh mapping and unmaps it when freed, and returns free memory at the top of its heap to
the system once it passes the trim threshold. Both thresholds start low (128 KiB) and
slide up only as blocks are freed, so how often the next step has to fault its memory in
again, a page at a time, depends on the order of earlier allocations: measured on the
development machine, 2,000-8,000 page faults per step of a small RNN (about 4 µs each
there) in some runs and none in others. Fixing the thresholds at the top of glibc's own
sliding range (mmap 32 MiB, trim twice that) from the start keeps those blocks in the
heap for reuse: RNN-128 epochs 6-9 % faster on 2 CPU cores and GRU-128 3 %, with the same
peak memory (docs/PERFORMANCE.md). The LSTM's oneDNN workspace is over 32 MiB a step and
is mapped afresh either way. This is what PyTorch's CPU tuning guide gets by preloading
jemalloc or tcmalloc; glibc does it with two ``mallopt`` calls.

Freed memory in the middle of the heap is another matter: ``trim_heap`` returns it once
there is more of it than the trim threshold.
"""

import ctypes
import logging
import os
import sys
from functools import cache

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's malloc.h
MMAP_THRESHOLD = 32 << 20  # glibc's ceiling for its sliding threshold (64-bit)
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD  # what glibc's sliding rule pairs with it

#: Settings a user may have chosen for the allocator; any of them leaves it alone.
_USER_CHOICES = ("MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_", "GLIBC_TUNABLES", "LD_PRELOAD")


def reuse_freed_memory() -> bool:
    """Fix glibc's mmap and trim thresholds for this process (and the loader workers it
    forks). Whether they were set: not on other systems or C libraries, nor where the
    environment chooses the allocator or its settings."""
    if not sys.platform.startswith("linux") or any(os.environ.get(k) for k in _USER_CHOICES):
        return False
    libc = _glibc()
    if libc is None:
        return False
    done = bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(
        libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
    )
    log.debug("glibc %s malloc thresholds fixed: %s", libc.gnu_get_libc_version().decode(), done)
    return done


class _MallInfo2(ctypes.Structure):
    """glibc's ``struct mallinfo2`` (glibc 2.33+)."""

    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            *("arena", "ordblks", "smblks", "hblks", "hblkhd"),
            *("usmblks", "fsmblks", "uordblks", "fordblks", "keepcost"),
        )
    ]


@cache
def _glibc() -> ctypes.CDLL | None:
    """This process's C library if it is glibc (whose ``gnu_get_libc_version`` musl lacks,
    though it has stub ``mallopt``/``malloc_trim``), else None."""
    try:  # the symbols already loaded into this process, libc among them
        libc = ctypes.CDLL(None)
    except (OSError, TypeError):  # Windows has no such handle
        return None
    if not hasattr(libc, "gnu_get_libc_version") or not hasattr(libc, "malloc_trim"):
        return None  # macOS, musl
    libc.gnu_get_libc_version.restype = ctypes.c_char_p
    if hasattr(libc, "mallinfo2"):
        libc.mallinfo2.restype = _MallInfo2
    return libc


def trim_heap(slack: int = TRIM_THRESHOLD) -> bool:
    """Return the heap's free pages to the system when more than ``slack`` bytes of it are
    free (always, on a glibc without ``mallinfo2``); whether it trimmed.

    A shard loader's shuffle buffer keeps ~32 KB samples alive for random spans among
    short-lived decode buffers, which leaves holes all over the heap that glibc's own trim
    (top of the heap only) never returns: a worker's RSS crept up by ~160 MB before it
    levelled off. Trimming every 16 batches regardless kept it flat, but every trim made
    the next batches fault their pages in again (7 faults a clip; the shard loader ran at
    0.8x the per-file loader in one process). Trimming only past the slack bounds the
    memory the same way and, measured, hardly ever happens.
    """
    libc = _glibc()
    if libc is None:
        return False
    if hasattr(libc, "mallinfo2") and libc.mallinfo2().fordblks <= slack:
        return False
    libc.malloc_trim(0)
    return True
