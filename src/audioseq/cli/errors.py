"""Turning user errors into one line on stderr and exit status 2 (no traceback); a crash
in native code (a segfault or an abort in torch, gloo, a codec) into every thread's Python
stack on stderr, instead of a bare exit status."""

import faulthandler
import functools
import sys
from collections.abc import Callable
from typing import Any

from audioseq.config_schema import renamed_override
from audioseq.errors import AudioseqError, one_line


def user_error(exc: BaseException | None) -> AudioseqError | None:
    """The AudioseqError behind ``exc``: itself, or the cause of a wrapper such as Hydra's
    InstantiationException."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, AudioseqError):
            return exc
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def report_errors(main: Callable[..., Any]) -> Callable[..., Any]:
    """Run ``main``; a user error prints ``error: <what and where>`` and exits with 2."""

    @functools.wraps(main)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if not faulthandler.is_enabled():  # e.g. a DDP rank that dies of SIGSEGV says where
            faulthandler.enable(all_threads=True)
        try:
            return main(*args, **kwargs)
        except Exception as exc:
            cause = user_error(exc)
            if cause is None:
                raise
            print(f"error: {one_line(cause)}", file=sys.stderr)
            sys.exit(2)

    return wrapper


def refuse_renamed_keys(main: Callable[..., Any]) -> Callable[..., Any]:
    """Wraps a ``@hydra.main`` function: an override of a renamed key (``data.task=...``)
    prints one line naming the new key and exits with 2, instead of Hydra's "not in
    struct" message."""

    @functools.wraps(main)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        message = renamed_override(sys.argv[1:])
        if message is not None:
            print(f"error: {message}", file=sys.stderr)
            sys.exit(2)
        return main(*args, **kwargs)

    return wrapper
