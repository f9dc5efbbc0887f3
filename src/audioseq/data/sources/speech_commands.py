"""Google Speech Commands v0.02: the folder layout plus its split lists and label sets.

``all35`` keeps the 35 words. ``v2_12`` is the usual keyword-spotting benchmark: ten words,
``_unknown_`` (every other word, down-sampled to ``unknown_share`` of each split) and
``_silence_`` (1 s windows cut from ``_background_noise_``, ``silence_share`` of each
split). Both shares are fractions of the split's final size and are drawn from the seed,
so a run is reproducible; val/test follow the same rule so that their class mix matches
training.
"""

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from audioseq.config_schema import check
from audioseq.data.audio_files import audio_files
from audioseq.data.entries import Entry, check_files, check_labels
from audioseq.data.skipping import SkipPolicy
from audioseq.data.sources.clip_dataset import ClipDataset
from audioseq.data.sources.file_list import split_dataset
from audioseq.data.sources.folder import check_headers, class_folders, split_entries
from audioseq.data.spec import LoaderSpec
from audioseq.errors import ConfigError, DataError

# fmt: off
WORDS = (
    "backward", "bed", "bird", "cat", "dog", "down", "eight", "five", "follow", "forward",
    "four", "go", "happy", "house", "learn", "left", "marvin", "nine", "no", "off", "on",
    "one", "right", "seven", "sheila", "six", "stop", "three", "tree", "two", "up",
    "visual", "wow", "yes", "zero",
)
# fmt: on
KEYWORDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go")
UNKNOWN, SILENCE = "_unknown_", "_silence_"
LABEL_SETS = {"all35": list(WORDS), "v2_12": [*KEYWORDS, UNKNOWN, SILENCE]}
NOISE = "_background_noise_"
URL = "http://download.tensorflow.org/data/speech_commands_v0.02.tar.gz"
#: Where torchaudio unpacks the archive: ``<dir>/<folder>/speech_commands_v0.02``.
CORPUS_NAME = "speech_commands_v0.02"
SPLITS = ("train", "val", "test")
#: The part of every noise file that each split cuts its silence from (so none overlap).
SILENCE_REGIONS = {"train": (0.0, 0.8), "val": (0.8, 0.9), "test": (0.9, 1.0)}


def is_corpus(root: Path) -> bool:
    return (root / "validation_list.txt").is_file() and (root / "testing_list.txt").is_file()


def fetch(root: Path) -> None:
    """Download and unpack the corpus into ``root`` with torchaudio (a progress bar shows)."""
    if root.name != CORPUS_NAME:
        raise ConfigError(
            f"data.download=true needs data.root to end in /{CORPUS_NAME} (where torchaudio "
            f"unpacks it), e.g. data.root=data/SpeechCommands/{CORPUS_NAME}; got {root}"
        )
    if is_corpus(root):
        return
    from torchaudio.datasets import SPEECHCOMMANDS  # imported only for a download

    root.parent.mkdir(parents=True, exist_ok=True)
    try:
        SPEECHCOMMANDS(str(root.parent.parent), folder_in_archive=root.parent.name, download=True)
    except Exception as e:  # no network, a cut download, a bad archive: all one line
        reason = " ".join(str(getattr(e, "reason", e)).split())
        raise DataError(
            f"data.download: could not fetch Speech Commands from {URL} into {root} "
            f"({type(e).__name__}: {reason}); check the network or unpack the archive there"
        ) from None


def open_corpus(root: Path, download: bool) -> Path:
    """``root`` once it holds the corpus (fetched first with ``download``)."""
    if download:
        fetch(root)
    if not is_corpus(root):
        raise DataError(
            f"no Speech Commands corpus at {root} (looked for validation_list.txt and "
            f"testing_list.txt there): set data.download=true, or unpack {URL} into it"
        )
    return root


def word_entries(root: Path) -> dict[str, list[Entry]]:
    """Every clip of the corpus by split (its lists decide), labelled with its word: what
    the label sets start from, and what audioseq-inspect reports."""
    lists = {"val": root / "validation_list.txt", "test": root / "testing_list.txt"}
    return split_entries(class_folders(root), root, lists)


def pick(items: list, count: int, seed: int, split: str) -> list:
    """``count`` of ``items`` (all if fewer), the same ones for the same seed and split."""
    if count >= len(items):
        return list(items)
    rng = np.random.default_rng([seed, SPLITS.index(split), 0])
    return [items[i] for i in sorted(rng.choice(len(items), count, replace=False))]


def silence_windows(noise: list[Entry], split: str, count: int, seed: int) -> list[Entry]:
    """``count`` 1 s windows from the split's region of the noise files, at random offsets
    on a millisecond grid (so windows of different splits never share a sample)."""
    lo, hi = SILENCE_REGIONS[split]
    spans = []  # (file, first and last window start in ms)
    for e in noise:
        total = int(e.duration * 1000)
        first, end = int(lo * total), int(hi * total)
        if end - first > 1000:  # a 1 ms margin: no shared sample after rounding, at any rate
            spans.append((e, first, end - 1001))
    if not count:
        return []
    if not spans:
        raise DataError(
            f"{NOISE}: no noise file longer than {1 / (hi - lo):g} s to cut 1 s {split} "
            f"{SILENCE} clips from (each split cuts from its own {hi - lo:.0%} of every file); "
            "data.silence_share=0 goes without"
        )
    rng = np.random.default_rng([seed, SPLITS.index(split), 1])
    room = np.array([last - first + 1 for _, first, last in spans], dtype=np.float64)
    windows = []
    for i in rng.choice(len(spans), count, p=room / room.sum()):
        e, first, last = spans[i]
        offset = int(rng.integers(first, last + 1)) / 1000
        windows.append(Entry(e.path, SILENCE, 1.0, offset, f"{e.path}@{offset:.3f}s"))
    return windows


@dataclass
class SpeechCommandsSource:
    """The corpus under ``root``, split by ``validation_list.txt`` / ``testing_list.txt``."""

    root: str | None = None
    label_set: str = "v2_12"
    unknown_share: float | None = 0.1
    silence_share: float = 0.1
    download: bool = False
    seed: int = 0
    on_error: str = "raise"

    def __post_init__(self) -> None:
        self._check_options()
        root = open_corpus(Path(self.root), self.download)
        policy = SkipPolicy(self.on_error)
        self.skipped = policy.counts  # samples dropped before training, by reason
        self.labels = list(LABEL_SETS[self.label_set])
        splits = word_entries(root)
        silence = self.label_set == "v2_12" and self.silence_share > 0
        noise = self._noise(root, policy) if silence else []
        self._entries = {
            split: self._split(split, check_files(entries, policy), noise, policy)
            for split, entries in splits.items()
        }

    def _check_options(self) -> None:
        if not self.root:
            raise ConfigError("data.root is required for data=speech_commands")
        check("data.label_set", self.label_set)  # the config schema's rule
        shares = (self.unknown_share or 0.0, self.silence_share)
        if min(shares) < 0 or sum(shares) >= 1:
            raise ConfigError(
                "data.unknown_share and data.silence_share must be >= 0 with a sum below 1, "
                f"got {self.unknown_share} and {self.silence_share}"
            )

    def _noise(self, root: Path, policy: SkipPolicy) -> list[Entry]:
        files = audio_files(root / NOISE) if (root / NOISE).is_dir() else []
        return check_headers([Entry(p, SILENCE, None, 0.0, str(p)) for p in files], policy)

    def _split(
        self, split: str, entries: list[Entry], noise: list[Entry], policy: SkipPolicy
    ) -> list[Entry]:
        silence = 0
        if self.label_set == "v2_12":
            entries, silence = self._v2_12(split, entries)
        entries = check_headers(check_labels(entries, self.labels, policy), policy)
        return entries + silence_windows(noise, split, silence, self.seed)

    def _v2_12(self, split: str, entries: list[Entry]) -> tuple[list[Entry], int]:
        """Keywords as they are, other words down-sampled as ``_unknown_``, and how many
        silence clips the split gets."""
        known, others = [], []
        for e in entries:
            if e.label is None or e.label in KEYWORDS:
                known.append(e)
            else:
                others.append(replace(e, label=UNKNOWN))
        words = len(known)
        if self.unknown_share is None:  # every other word; silence a share of the whole
            unknown = others
            silence = round(self.silence_share * (words + len(unknown)) / (1 - self.silence_share))
        else:
            size = words / (1 - self.unknown_share - self.silence_share)
            unknown = pick(others, round(self.unknown_share * size), self.seed, split)
            silence = round(self.silence_share * size)
        return known + unknown, silence

    def dataset(self, split: str, spec: LoaderSpec) -> ClipDataset | None:
        return split_dataset(self._entries, split, self.labels, spec)
