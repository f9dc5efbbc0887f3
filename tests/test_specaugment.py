"""SpecAugment: iid masks within limits, inside valid frames, training only, in every
frontend and under the full AudioClassifier."""

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from audioseq.cli.config_dir import config_dir
from audioseq.cli.train import build_task
from audioseq.data.batching import collate
from audioseq.data.example import Example
from audioseq.errors import ConfigError
from audioseq.models.frontends import MFCC, Frames, LogMel
from audioseq.models.specaugment import SpecAugment, build_specaugment
from audioseq.tasks.classification import AudioClassifier

LENGTHS = [50, 30, 12, 3]
PAD = 7.0  # what the padded frames hold in the module tests: must come out unchanged


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Small tensors: one intra-op thread is faster, and immune to a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def padded_features(dim: int = 20) -> tuple[torch.Tensor, torch.Tensor]:
    """Features with no zero in the valid frames and ``PAD`` in the padded ones."""
    lengths = torch.tensor(LENGTHS)
    features = torch.full((len(LENGTHS), max(LENGTHS), dim), PAD)
    gen = torch.Generator().manual_seed(0)
    for row, length in enumerate(LENGTHS):
        features[row, :length] = 1.0 + torch.rand(length, dim, generator=gen)
    return features, lengths


def runs(flags: torch.Tensor) -> list[tuple[int, int]]:
    """(start, width) of each run of True in a 1-D bool tensor."""
    found, start = [], None
    for i, flag in enumerate([*flags.tolist(), False]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            found.append((start, i - start))
            start = None
    return found


def masked_parts(out: torch.Tensor, row: int, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Which features (columns) and which frames of one clip's valid part are masked."""
    valid = out[row, :length] == 0
    return valid.all(0), valid.all(1)


def test_masks_stay_within_counts_widths_and_valid_frames():
    features, lengths = padded_features()
    module = SpecAugment(20, freq_masks=2, freq_width=5, time_masks=2, time_width=8).train()
    widest_freq, time_positions = 0, {row: set() for row in range(len(LENGTHS))}
    torch.manual_seed(0)
    for _ in range(200):
        out = module(features, lengths)
        assert out.shape == features.shape
        for row, length in enumerate(LENGTHS):
            assert (out[row, length:] == PAD).all()  # padding untouched
            columns, frames = masked_parts(out, row, length)
            if frames.all():  # two time masks can cover a 3-frame clip: nothing to tell apart
                assert length < 2 * 8
                continue
            # every cell is either kept or masked (to 0), by a column or a frame mask
            kept = out[row, :length] == features[row, :length]
            masked = columns[None, :] | frames[:, None]
            assert torch.equal(kept, ~masked)
            assert len(runs(columns)) <= 2 and int(columns.sum()) <= 2 * 4
            assert len(runs(frames)) <= 2
            assert int(frames.sum()) <= 2 * (min(8, length) - 1)
            time_positions[row] |= set(torch.nonzero(frames).flatten().tolist())
            widest_freq = max([widest_freq, *(w for _, w in runs(columns))])
    assert widest_freq >= 4  # the width limit is reached, not just respected
    for row, length in enumerate(LENGTHS):  # masks reach every valid frame, the last too
        assert time_positions[row] == set(range(length)), row


def test_masks_are_drawn_independently_per_clip():
    features = 1.0 + torch.rand(8, 40, 20)
    lengths = torch.full((8,), 40)
    torch.manual_seed(1)
    out = SpecAugment(20, freq_masks=1, freq_width=10, time_masks=1, time_width=20).train()(
        features, lengths
    )
    patterns = {tuple((out[row] == 0).flatten().tolist()) for row in range(8)}
    assert len(patterns) > 4


def test_single_mask_widths_are_below_the_width():
    features = 1.0 + torch.rand(64, 40, 20)
    lengths = torch.full((64,), 40)
    torch.manual_seed(2)
    out = SpecAugment(20, time_masks=1, time_width=6).train()(features, lengths)
    widths = {int((out[row] == 0).all(1).sum()) for row in range(64)}
    assert widths == set(range(6))  # uniform in [0, time_width), as torchaudio's masks


def test_eval_mode_is_the_identity():
    features, lengths = padded_features()
    module = SpecAugment(20, freq_masks=2, freq_width=5, time_masks=2, time_width=8).eval()
    assert module(features, lengths) is features


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"freq_masks": -1}, "freq_masks=-1: must be an integer >= 0"),
        ({"time_width": 2.5}, "time_width=2.5: must be an integer >= 0"),
        ({"freq_masks": 1, "freq_width": 21}, r"freq_width must be in \[1, 20\]"),
        ({"freq_masks": 1, "freq_width": 0}, r"freq_width must be in \[1, 20\]"),
        ({"time_masks": 1, "time_width": 0}, "time_width must be >= 1"),
        ({"time_mask": 1}, r"unknown option\(s\) \['time_mask'\]"),
    ],
)
def test_bad_settings_are_config_errors(options, match):
    with pytest.raises(ConfigError, match=match):
        build_specaugment(options, 20)


def test_zero_masks_or_none_is_off():
    assert build_specaugment(None, 20) is None
    assert build_specaugment({"freq_masks": 0, "freq_width": 8, "time_masks": 0}, 20) is None


# ---- in the frontends ----------------------------------------------------------------------

SPEC = {"freq_masks": 2, "freq_width": 4, "time_masks": 2, "time_width": 5}


def make_frontend(kind: str, specaugment: dict | None):
    if kind == "logmel":
        return LogMel(n_mels=16, normalize="utterance", specaugment=specaugment)
    if kind == "mfcc":
        return MFCC(n_mels=16, n_mfcc=8, normalize="utterance", specaugment=specaugment)
    return Frames(frame_samples=160, normalize="utterance", specaugment=specaugment)


def batch_audio() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    lengths = torch.tensor([4000, 2500, 900])
    audio = torch.zeros(3, 4000)
    for row, length in enumerate(lengths.tolist()):
        audio[row, :length] = torch.randn(length, generator=gen)
    return audio, lengths


@pytest.mark.parametrize("kind", ["logmel", "mfcc", "frames"])
def test_frontends_mask_in_training_only(kind):
    plain = make_frontend(kind, None)
    frontend = make_frontend(kind, SPEC)
    assert plain.specaugment is None and isinstance(frontend.specaugment, SpecAugment)
    audio, lengths = batch_audio()
    reference, frame_lengths = plain(audio, lengths)

    evaluated, eval_lengths = frontend.eval()(audio, lengths)
    assert torch.equal(evaluated, reference) and torch.equal(eval_lengths, frame_lengths)

    torch.manual_seed(4)
    trained, train_lengths = frontend.train()(audio, lengths)
    assert torch.equal(train_lengths, frame_lengths)
    changed = trained != reference
    assert changed.any()
    assert (trained[changed] == 0).all()  # masked to 0, nothing else altered
    for row, length in enumerate(frame_lengths.tolist()):
        assert (trained[row, length:] == 0).all()  # padded frames stay zero
        columns, frames = masked_parts(trained, row, length)
        assert torch.equal(
            changed[row, :length],
            (columns[None, :] | frames[:, None]) & (reference[row, :length] != 0),
        )

    assert torch.equal(frontend.raw(audio, lengths)[0], plain.raw(audio, lengths)[0])


def test_frontend_rejects_a_band_wider_than_its_features():
    with pytest.raises(ConfigError, match=r"freq_width must be in \[1, 12\]"):
        LogMel(n_mels=12, specaugment={"freq_masks": 1, "freq_width": 13})


# ---- under the full classifier -------------------------------------------------------------


def classifier(specaugment: dict | None) -> AudioClassifier:
    torch.manual_seed(0)
    return AudioClassifier(
        features={
            "_target_": "audioseq.models.frontends.LogMel",
            "n_mels": 12,
            "normalize": "utterance",
            "specaugment": specaugment,
        },
        model={
            "encoder": {
                "_target_": "audioseq.models.encoders.RecurrentEncoder",
                "cell": "gru",
                "hidden_size": 8,
                "num_layers": 1,
            },
            "pooling": "mean",
            "head_dropout": 0.0,
        },
        labels=["a", "b"],
        optimizer={"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 1e-2},
    )


def clips() -> list[Example]:
    gen = torch.Generator().manual_seed(5)
    return [
        Example(f"c{i}", torch.randn(length, generator=gen), i % 2)
        for i, length in enumerate([4000, 3000, 2000, 1000])
    ]


def test_classifier_masks_while_training_and_evaluates_unmasked():
    model = classifier({"freq_masks": 2, "freq_width": 4, "time_masks": 2, "time_width": 5})
    plain = classifier(None)
    assert model.state_dict().keys() == plain.state_dict().keys()  # checkpoints unchanged
    plain.load_state_dict(model.state_dict())
    batch = collate(clips())

    model.train()
    torch.manual_seed(6)
    first = model(batch["audio"], batch["lengths"])
    second = model(batch["audio"], batch["lengths"])
    assert not torch.equal(first, second)  # fresh masks every step (no dropout here)

    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(
            model(batch["audio"], batch["lengths"]), plain.eval()(batch["audio"], batch["lengths"])
        )

    rebuilt = AudioClassifier(**model.hparams)
    assert repr(rebuilt) == repr(model)
    assert isinstance(rebuilt.frontend.specaugment, SpecAugment)


def test_classifier_trains_with_specaugment():
    model = classifier({"freq_masks": 1, "freq_width": 4, "time_masks": 2, "time_width": 5})
    batch = collate(clips())
    optimizer = model.configure_optimizers()
    model.train()
    torch.manual_seed(7)
    for _ in range(3):
        optimizer.zero_grad()
        loss = model.loss_fn(model(batch["audio"], batch["lengths"]), batch["label"])
        loss.backward()
        assert torch.isfinite(loss)
        assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
        optimizer.step()


@pytest.mark.parametrize("features", ["logmel", "mfcc", "frames"])
def test_shipped_configs_are_off_and_switch_on_from_the_command_line(features):
    with initialize_config_dir(config_dir=str(Path(config_dir())), version_base="1.3"):
        off = compose("train", overrides=[f"features={features}", "features.normalize=utterance"])
        on = compose(
            "train",
            overrides=[
                f"features={features}",
                "features.normalize=utterance",
                "features.specaugment.freq_masks=2",
                "features.specaugment.time_masks=2",
            ],
        )
    assert build_task(off, labels=["a", "b"]).frontend.specaugment is None
    task = build_task(on, labels=["a", "b"]).train()
    assert isinstance(task.frontend.specaugment, SpecAugment)
    audio, lengths = batch_audio()
    assert task(audio, lengths).shape == (3, 2)
