"""Predictions to CSV or JSON Lines, chosen by the output's suffix."""

import csv
import json
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from audioseq.errors import ConfigError
from audioseq.inference.predictor import Prediction

FORMATS = (".csv", ".jsonl")


class PredictionWriter:
    """Writes rows to ``<output>.tmp`` and moves it over ``output`` only when every row is
    in, so that a failed run never leaves half a file where a good one was.

    JSON Lines: ``{"path", "window", "start", "end", "top_k": [{"label", "prob"}, ...]}``
    (``window`` null for the whole clip). CSV: ``path,window,start,end,label_1,prob_1,...``
    with ``top_k`` label/probability pairs (``window`` empty for the whole clip).
    """

    def __init__(self, output: str | Path, top_k: int) -> None:
        self.output = Path(output)
        self.format = self.output.suffix.lower()
        if self.format not in FORMATS:
            raise ConfigError(f"output: {self.output}: must end in .csv or .jsonl")
        self.top_k = top_k
        self.rows = 0
        self._tmp = self.output.with_name(self.output.name + ".tmp")
        self._file: IO[str] | None = None
        self._csv: Any = None  # a csv.writer

    def __enter__(self) -> "PredictionWriter":
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self._file = self._tmp.open("w", newline="", encoding="utf-8")
        if self.format == ".csv":
            self._csv = csv.writer(self._file)
            ranks = range(1, self.top_k + 1)
            pairs = [name for r in ranks for name in (f"label_{r}", f"prob_{r}")]
            self._csv.writerow(["path", "window", "start", "end", *pairs])
        return self

    def write(self, p: Prediction) -> None:
        assert self._file is not None, "use PredictionWriter as a context manager"
        if self._csv is not None:
            pairs = [value for pair in zip(p.labels, p.probs, strict=True) for value in pair]
            window = "" if p.window is None else p.window
            self._csv.writerow([p.path, window, p.start, p.end, *pairs])
        else:
            top = [
                {"label": label, "prob": prob}
                for label, prob in zip(p.labels, p.probs, strict=True)
            ]
            record = {"path": p.path, "window": p.window, "start": p.start, "end": p.end}
            self._file.write(json.dumps({**record, "top_k": top}) + "\n")
        self.rows += 1

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        assert self._file is not None
        self._file.close()
        if kind is None:
            self._tmp.replace(self.output)
        else:
            self._tmp.unlink(missing_ok=True)
