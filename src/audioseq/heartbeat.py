"""The heartbeat the hang watchdog watches: the time and label of this process's last progress.

Kept apart from the watchdog callback so that any layer (tasks, data, callbacks) can say
"a long piece of work or a collective just completed" without importing the callbacks.
"""

import time

_last: tuple[float, str] = (time.monotonic(), "start")


def beat(label: str) -> None:
    """Records progress now; ``label`` says which (it appears in a hang's diagnosis)."""
    global _last
    _last = (time.monotonic(), label)


def last() -> tuple[float, str]:
    """(monotonic time, label) of the latest :func:`beat`."""
    return _last
