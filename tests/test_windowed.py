"""Fixed-window (AR / Markov) encoders: receptive field, streaming, padding, training."""

import math

import pytest
import torch
from hydra import compose, initialize_config_dir

from audioseq.cli.config_dir import config_dir
from audioseq.errors import ConfigError
from audioseq.models.masking import frame_mask
from audioseq.models.windowed import WindowedEncoder
from audioseq.tasks.classification import AudioClassifier

INPUT, TAU = 4, 3
LENGTHS = torch.tensor([9, 12, 2, 12])


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: one intra-op thread is faster, and immune to a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_encoder(tau: int = TAU, num_layers: int = 2) -> WindowedEncoder:
    torch.manual_seed(0)
    return WindowedEncoder(INPUT, tau=tau, hidden_size=6, num_layers=num_layers).double().eval()


def features(batch: int = 2, frames: int = 12, seed: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randn(batch, frames, INPUT, generator=gen, dtype=torch.float64)


def full(x: torch.Tensor) -> torch.Tensor:
    return torch.full((x.shape[0],), x.shape[1])


@pytest.mark.parametrize("tau", [1, 3, 5])
def test_output_sees_exactly_the_last_tau_frames(tau):
    encoder = make_encoder(tau)
    x = features()
    t = 8
    with torch.no_grad():
        base, _ = encoder(x, full(x))
        for frame in range(x.shape[1]):
            changed = x.clone()
            changed[:, frame] += 1.0
            out, _ = encoder(changed, full(x))
            inside = t - tau < frame <= t
            assert torch.equal(out[:, t], base[:, t]) != inside, (frame, inside)


def test_markov_config_is_the_ar_config_with_tau_1():
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        ar = compose("train", ["model=ar"]).model
        markov = compose("train", ["model=markov"]).model
    assert markov.encoder.tau == 1 and ar.encoder.tau > 1
    assert {**markov.encoder, "tau": ar.encoder.tau} == {**ar.encoder}
    assert markov.encoder._target_ == "audioseq.models.windowed.WindowedEncoder"


def test_frames_before_the_start_count_as_zeros():
    encoder = make_encoder()
    x = features()
    padded = torch.cat([torch.zeros(2, TAU - 1, INPUT, dtype=x.dtype), x], dim=1)
    with torch.no_grad():
        out, _ = encoder(x, full(x))
        longer, _ = encoder(padded, full(padded))
    torch.testing.assert_close(out, longer[:, TAU - 1 :])


@pytest.mark.parametrize("tau", [1, 3, 5])
@pytest.mark.parametrize("split", [1, 6])
def test_streaming_two_chunks_with_carried_state_equals_one_pass(tau, split):
    """The second chunk is padded; with split=1 the state reaches back into the zeros."""
    encoder = make_encoder(tau)
    lengths = torch.tensor([12, 7, 9])
    x = features(3)
    x[~frame_mask(lengths, 12)] = 5.0
    with torch.no_grad():
        whole, whole_state = encoder(x, lengths)
        first, state = encoder(x[:, :split], torch.full((3,), split))
        second, end_state = encoder(x[:, split:], lengths - split, state)
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole)
    torch.testing.assert_close(end_state, whole_state)
    assert whole_state.shape == (3, tau - 1, INPUT)


def test_padding_never_reaches_valid_outputs_state_or_gradients():
    encoder = make_encoder()
    x = features(len(LENGTHS))
    mask = frame_mask(LENGTHS, x.shape[1])
    x[~mask] = float("nan")
    x.requires_grad_(True)
    outputs, state = encoder(x, LENGTHS)
    assert not outputs[~mask].any()
    outputs.sum().backward()
    assert not x.grad[~mask].any()
    assert all(torch.isfinite(p.grad).all() for p in encoder.parameters())
    for row, n in enumerate(LENGTHS.tolist()):
        with torch.no_grad():
            alone, alone_state = encoder(x[row : row + 1, :n], LENGTHS[row : row + 1])
        torch.testing.assert_close(outputs[row, :n].detach(), alone[0])
        torch.testing.assert_close(state[row], alone_state[0])


@pytest.mark.parametrize(
    ("options", "match"),
    [({"tau": 0}, "tau"), ({"hidden_size": 0}, "hidden_size"), ({"dropout": 1.0}, "dropout")],
)
def test_bad_options_are_config_errors(options, match):
    with pytest.raises(ConfigError, match=match):
        WindowedEncoder(INPUT, **options)


@pytest.mark.parametrize("tau", [1, 4])
def test_trains_inside_the_classifier(tau):
    torch.manual_seed(0)
    model = AudioClassifier(
        features={"_target_": "audioseq.models.frontends.LogMel", "n_mels": 12,
                  "normalize": "utterance"},
        model={
            "encoder": {"_target_": "audioseq.models.windowed.WindowedEncoder", "tau": tau,
                        "hidden_size": 8, "num_layers": 2},
            "pooling": "mean",
        },
        labels=["low", "high"],
        optimizer={"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 2e-2},
    )  # fmt: skip
    assert model.encoder.output_size == 8 and not model.encoder.bidirectional
    lengths = torch.tensor([1600, 1100, 900, 1400])
    t = torch.arange(1600) / 16_000
    audio = torch.stack([0.5 * torch.sin(2 * math.pi * f * t) for f in (300, 3000, 300, 3000)])
    audio[~frame_mask(lengths, 1600)] = 0.0
    labels = torch.tensor([0, 1, 0, 1])
    optimizer = model.configure_optimizers()
    losses = []
    for _ in range(12):
        optimizer.zero_grad()
        loss = model.loss_fn(model(audio, lengths), labels)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0], losses
