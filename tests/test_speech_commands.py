"""data=speech_commands on a miniature corpus in the v0.02 layout: split lists, label sets,
_unknown_ down-sampling, _silence_ windows, errors, the download error without a network,
batches, and one run through the real train command."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from in_process import audioseq

from audioseq.data.audio import read_audio
from audioseq.data.datamodule import AudioDataModule
from audioseq.data.sources.speech_commands import WORDS, SpeechCommandsSource
from audioseq.errors import ConfigError, DataError

KNOWN = ("yes", "no", "up", "down")  # 4 of the 10 keywords
OTHERS = ("bed", "bird", "cat", "dog", "happy", "marvin")  # become _unknown_ in v2_12
PER_WORD = 10  # clips per word: 2 in validation_list.txt, 2 in testing_list.txt, 6 train
NOISE_SECONDS = {"white.wav": (20.0, 16000), "pink.wav": (12.0, 8000)}


def write(path: Path, seconds: float, rate: int, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    audio = np.random.default_rng(seed).uniform(-0.3, 0.3, round(seconds * rate))
    sf.write(str(path), audio.astype(np.float32), rate, subtype="PCM_16")


def build(root: Path) -> Path:
    """Short clips (real ones are 1 s), two background noise files, the two lists, and the
    corpus's other files (README, LICENSE, a README in _background_noise_)."""
    val, test = [], []
    for w, word in enumerate(KNOWN + OTHERS):
        for i in range(PER_WORD):
            name = f"{word}/{w:02d}{i:06x}_nohash_{i % 3}.wav"
            write(root / name, 0.25, 16000, 100 * w + i)
            (val if i < 2 else test if i < 4 else []).append(name)
    for name, (seconds, rate) in NOISE_SECONDS.items():
        write(root / "_background_noise_" / name, seconds, rate, len(name))
    (root / "_background_noise_" / "README.md").write_text("noise\n")
    (root / "README.md").write_text("Speech Commands\n")
    (root / "LICENSE").write_text("CC-BY-4.0\n")
    (root / "validation_list.txt").write_text("\n".join(val) + "\n")
    (root / "testing_list.txt").write_text("\n".join(test) + "\n")
    return root


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return build(tmp_path_factory.mktemp("sc") / "SpeechCommands" / "speech_commands_v0.02")


@pytest.fixture
def own_corpus(tmp_path) -> Path:
    """A copy to damage."""
    return build(tmp_path / "speech_commands_v0.02")


def source(root: Path, **options) -> SpeechCommandsSource:
    return SpeechCommandsSource(root=str(root), **options)


def by_label(src: SpeechCommandsSource, split: str) -> dict[str, list]:
    groups: dict[str, list] = {}
    for e in src._entries[split]:
        groups.setdefault(e.label, []).append(e)
    return groups


def test_all35_keeps_every_word_and_follows_the_lists(corpus):
    src = source(corpus, label_set="all35")
    assert src.labels == list(WORDS) and len(src.labels) == 35
    listed = {
        "val": set((corpus / "validation_list.txt").read_text().split()),
        "test": set((corpus / "testing_list.txt").read_text().split()),
    }
    for split in ("val", "test"):
        assert {e.path.relative_to(corpus).as_posix() for e in src._entries[split]} == listed[split]
    train = src._entries["train"]
    assert len(train) == 10 * 6
    assert not {e.path.relative_to(corpus).as_posix() for e in train} & (
        listed["val"] | listed["test"]
    )
    assert {e.label for e in train} == set(KNOWN + OTHERS)
    assert all(e.duration == pytest.approx(0.25) for e in train)


def test_v2_12_labels_shares_and_determinism(corpus):
    src = source(corpus, unknown_share=0.25, silence_share=0.25, seed=3)
    assert src.labels == [
        *("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"),
        "_unknown_",
        "_silence_",
    ]
    for split, words in (("train", 6), ("val", 2), ("test", 2)):
        groups = by_label(src, split)
        known = len(KNOWN) * words  # 24 train clips: the split holds 48, a quarter unknown
        assert sum(len(groups[w]) for w in KNOWN) == known
        assert len(groups["_unknown_"]) == known // 2, split
        assert len(groups["_silence_"]) == known // 2, split
        assert {e.path.parent.name for e in groups["_unknown_"]} <= set(OTHERS)
    again = source(corpus, unknown_share=0.25, silence_share=0.25, seed=3)
    assert again._entries == src._entries
    other = source(corpus, unknown_share=0.25, silence_share=0.25, seed=4)
    assert by_label(other, "train")["_unknown_"] != by_label(src, "train")["_unknown_"]
    assert by_label(other, "train")["yes"] == by_label(src, "train")["yes"]


def test_unknown_share_null_keeps_every_other_word(corpus):
    src = source(corpus, unknown_share=None, silence_share=0.0)
    groups = by_label(src, "train")
    assert len(groups["_unknown_"]) == len(OTHERS) * 6
    assert "_silence_" not in groups


def test_silence_windows_are_1s_inside_the_noise_and_disjoint_across_splits(corpus):
    src = source(corpus, unknown_share=0.1, silence_share=0.4)
    spans: dict[str, dict[str, list]] = {}
    for split in ("train", "val", "test"):
        windows = by_label(src, split)["_silence_"]
        assert len(windows) == round(0.4 * len(KNOWN) * {"train": 6}.get(split, 2) / 0.5)
        for e in windows:
            seconds, rate = NOISE_SECONDS[e.path.name]
            assert e.duration == 1.0 and 0.0 <= e.offset <= seconds - 1.0
            spans.setdefault(e.path.name, {}).setdefault(split, []).append(
                (round(e.offset * rate), round(e.offset * rate) + rate)
            )
        audio = read_audio(windows[0].path, windows[0].offset, windows[0].duration)
        assert audio.shape == (16000,)
    assert set(spans) == set(NOISE_SECONDS)  # both files are used
    for per_split in spans.values():
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            for start, end in per_split.get(a, []):
                for other_start, other_end in per_split.get(b, []):
                    assert end <= other_start or other_end <= start, (a, b)


def test_bad_options(corpus):
    with pytest.raises(ConfigError, match=r"data.root is required"):
        SpeechCommandsSource()
    with pytest.raises(ConfigError, match=r"data.label_set=v1_30: must be one of"):
        source(corpus, label_set="v1_30")
    with pytest.raises(ConfigError, match=r"sum below 1"):
        source(corpus, unknown_share=0.5, silence_share=0.5)


def test_no_corpus_says_where_it_looked_and_how_to_get_it(tmp_path):
    with pytest.raises(DataError) as info:
        source(tmp_path / "sc")
    message = str(info.value)
    assert f"no Speech Commands corpus at {tmp_path / 'sc'}" in message
    assert "data.download=true" in message and "speech_commands_v0.02.tar.gz" in message


def test_download_without_network_is_one_clear_line(tmp_path, monkeypatch):
    # Every HTTP request goes through a proxy that is not there: no network, on any machine.
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("no_proxy", "")
    root = tmp_path / "SpeechCommands" / "speech_commands_v0.02"
    with pytest.raises(DataError) as info:
        source(root, download=True)
    message = str(info.value)
    assert message.startswith("data.download: could not fetch Speech Commands from http")
    assert str(root) in message and "\n" not in message
    with pytest.raises(ConfigError, match=r"data.root to end in /speech_commands_v0.02"):
        source(tmp_path / "sc", download=True)


def test_download_is_skipped_when_the_corpus_is_there(corpus, monkeypatch):
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    assert source(corpus, download=True, label_set="all35").labels == list(WORDS)


def test_missing_listed_clip_and_bad_headers(own_corpus):
    lines = (own_corpus / "testing_list.txt").read_text().splitlines()
    (own_corpus / lines[2]).unlink()
    with pytest.raises(DataError) as info:
        source(own_corpus)
    assert str(info.value).startswith(f"{own_corpus / 'testing_list.txt'}:3: audio file not found")
    (own_corpus / "yes" / "00000005_nohash_2.wav").write_bytes(b"RIFF....garbage")
    (own_corpus / "_background_noise_" / "pink.wav").write_bytes(b"")
    with pytest.warns(UserWarning):
        src = source(own_corpus, on_error="skip")
    assert src.skipped == {"missing": 1, "corrupt": 2}
    assert {e.path.name for e in by_label(src, "train")["_silence_"]} == {"white.wav"}


def test_no_noise_files_for_silence(own_corpus):
    for file in (own_corpus / "_background_noise_").glob("*.wav"):
        file.unlink()
    with pytest.raises(
        DataError, match=r"_background_noise_: no noise file longer than 1.25 s .*silence_share=0"
    ):
        source(own_corpus)
    assert "_silence_" not in by_label(source(own_corpus, silence_share=0.0), "train")


def test_the_datamodule_serves_batches(corpus):
    dm = AudioDataModule(
        source="speech_commands",
        root=str(corpus),
        batch_size=8,
        num_workers=0,
        seed=1,
        clip_seconds=1.0,
    )
    assert dm.num_classes == 12
    batches = list(dm.val_dataloader())
    labels = [label for b in batches for label in b["label"].tolist()]
    assert len(labels) == len(dm._datasets["val"]) and max(labels) <= 11
    silence = [
        i
        for b in batches
        for i, n in zip(b["lengths"].tolist(), b["label"].tolist(), strict=True)
        if n == 11
    ]
    assert silence and set(silence) == {16000}
    assert next(iter(dm.train_dataloader()))["audio"].shape == (8, 16000)


def test_train_command(corpus, tmp_path):
    run = tmp_path / "run"
    audioseq(
        "train",
        "debug=fast",
        "features.normalize=utterance",
        "data=speech_commands",
        f"data.root={corpus}",
        "data.batch_size=8",
        "model.encoder.hidden_size=16",
        f"hydra.run.dir={run}",
        cwd=tmp_path,
    )
    metrics = json.loads((run / "metrics.json").read_text())
    assert 0.0 <= metrics["test/acc"] <= 1.0
    saved = (run / ".hydra" / "config.yaml").read_text()
    # Trained with the corpus's own background noise mixed in (the folder is checked).
    assert "noise_dir: ${data.root}/_background_noise_" in saved and "noise_prob: 0.8" in saved
