"""Frame-labelled data: the synthetic dialling recordings and the event -> frame label grid."""

import numpy as np
import pytest
import torch

from audioseq.data.collate import collate
from audioseq.data.frame_labels import LABEL_HOP, frame_labels, parse_events
from audioseq.data.spec import LoaderSpec
from audioseq.data.synthetic import SyntheticSource
from audioseq.errors import DataError


def dialling(split: str = "train", seed: int = 0, seconds: float = 6.0, batch_size: int = 4):
    source = SyntheticSource(task="dialling", seed=seed, train_size=8, val_size=4)
    spec = LoaderSpec(batch_size=batch_size, clip_seconds=seconds, train=split == "train")
    return source, source.dataset(split, spec)


def test_labels_are_background_then_the_keys() -> None:
    source, _ = dialling()
    assert source.labels[0] == "_background_" and source.labels[1:] == list("0123456789*#")


def test_a_recording_depends_on_seed_split_and_index_only() -> None:
    _, train = dialling()
    _, other_batching = dialling(batch_size=3)
    a = train.example(5)
    assert torch.equal(a.audio, other_batching.example(5).audio)
    assert torch.equal(a.frame_labels, other_batching.example(5).frame_labels)
    assert not torch.equal(a.audio, train.example(6).audio)
    assert not torch.equal(a.audio, dialling("val")[1].example(5).audio)
    assert not torch.equal(a.audio, dialling(seed=1)[1].example(5).audio)


def test_a_batch_is_the_collated_recordings() -> None:
    _, train = dialling()
    batch = train.batch([1, 4, 6])
    alone = collate([train.example(i) for i in (1, 4, 6)])
    for key in ("audio", "lengths", "label", "frame_labels"):
        assert torch.equal(batch[key], alone[key]), key
    assert batch["audio"].shape == (3, 6 * 16000)
    assert batch["frame_labels"].shape == (3, 600)  # one label every 10 ms
    assert (batch["label"] == -1).all()  # no clip label


def test_the_default_recording_is_a_minute_of_presses_pauses_and_noise() -> None:
    source = SyntheticSource(task="dialling", train_size=1, val_size=0, test_size=0)
    example = source.dataset("train", LoaderSpec(1, None, True)).example(0)
    assert example.audio.shape == (60 * 16000,)
    labels = example.frame_labels.numpy()
    keys = labels > 0
    onsets = np.flatnonzero(keys[1:] & (labels[1:] != labels[:-1])) + 1
    assert 0.1 < keys.mean() < 0.5 and len(onsets) > 50  # presses, pauses between
    assert len(set(labels[keys].tolist())) == 12  # every key turns up in a minute
    # The presses are where the labels say: much louder than the background frames.
    power = example.audio[: len(labels) * LABEL_HOP].reshape(-1, LABEL_HOP).pow(2).mean(1)
    assert power[torch.from_numpy(keys)].median() > 5 * power[~torch.from_numpy(keys)].median()


def test_frame_labels_mark_steps_whose_centre_lies_in_an_event() -> None:
    labels = frame_labels([(80, 400, 3), (1000, 1001, 5)], 1500)
    # step j's centre is 160 j + 80: steps 0 and 1 lie in [80, 400); 1000 is no centre
    assert labels.tolist() == [3, 3, 0, 0, 0, 0, 0, 0, 0, 0]


@pytest.mark.parametrize(
    ("events", "message"),
    [
        ({"start": 1}, "'events' must be a list"),
        ([{"start": 1, "end": 2}], "events[0]: expected an object with 'start', 'end' and 'label'"),
        ([{"start": 2, "end": 1, "label": "a"}], "events[0]: 'start' (2) must be before 'end' (1)"),
        ([{"start": "x", "end": 1, "label": "a"}], "events[0]: 'start' and 'end' must be seconds"),
        ([{"start": 0, "end": 1, "label": ""}], "events[0]: 'label' must be a non-empty string"),
    ],
)
def test_malformed_events_are_one_line_errors(events, message) -> None:
    with pytest.raises(DataError) as raised:
        parse_events(events, "train.jsonl:3")
    assert str(raised.value).startswith(f"train.jsonl:3: {message}"), str(raised.value)
