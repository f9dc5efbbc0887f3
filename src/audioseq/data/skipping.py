"""``data.on_error``: stop at the first bad sample, or drop it and count it by reason."""

import warnings
from collections import Counter
from dataclasses import dataclass

from audioseq.config_schema import check
from audioseq.errors import DataError

#: Why a sample was dropped; each is logged as ``data/skipped/<reason>``.
REASONS = (
    "missing",  # the file is not there
    "empty",  # no audio samples
    "corrupt",  # unreadable header or data
    "truncated",  # fewer samples than the file or manifest promises
    "nonfinite",  # NaN or Inf samples
    "too_short",  # shorter than data.min_seconds
    "no_label",  # a labelled task but no label
    "unknown_label",  # a label outside the label set
    "bad_shard",  # a tar shard (or a member of it) that cannot be read
)


@dataclass(frozen=True)
class Skipped:
    """Stands in a batch for a sample that was dropped; collate counts these."""

    key: str
    reason: str


class SkipPolicy:
    """Applies ``on_error`` to a DataError: re-raise it with ``where`` in front, or turn
    it into a Skipped marker (warning once per file) and count it."""

    def __init__(self, on_error: str = "raise") -> None:
        check("data.on_error", on_error)
        self.on_error = on_error
        self.counts: Counter[str] = Counter()
        self._warned: set[str] = set()

    @property
    def skipping(self) -> bool:
        return self.on_error == "skip"

    def __call__(self, error: DataError, where: str, file: str | None = None) -> Skipped:
        message = f"{where}: {error}" if where and not str(error).startswith(where) else str(error)
        if not self.skipping:
            raise DataError(message, error.reason) from None
        file = file or where
        if file not in self._warned:
            self._warned.add(file)
            warnings.warn(f"skipping ({error.reason}) {message}", stacklevel=2)
        self.counts[error.reason] += 1
        return Skipped(where, error.reason)
