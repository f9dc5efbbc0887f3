"""RecurrentEncoder: packed sequences, so padding never reaches an output or a state."""

import pytest
import torch

from audioseq.errors import ConfigError
from audioseq.models.encoders import RecurrentEncoder
from audioseq.models.masking import frame_mask
from audioseq.tasks.classification import AudioClassifier

CELLS = ("rnn", "lstm", "gru")
INPUT = 5
LENGTHS = torch.tensor([7, 12, 4, 12])


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: one intra-op thread is faster, and immune to a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_encoder(cell: str, bidirectional: bool = False, num_layers: int = 2) -> RecurrentEncoder:
    torch.manual_seed(0)
    encoder = RecurrentEncoder(
        INPUT, cell=cell, hidden_size=8, num_layers=num_layers, dropout=0.1,
        bidirectional=bidirectional,
    )  # fmt: skip
    return encoder.eval()


def padded_features(lengths: torch.Tensor = LENGTHS, garbage: float = 9.0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    features = torch.randn(len(lengths), int(lengths.max()), INPUT, generator=gen)
    features[~frame_mask(lengths, features.shape[1])] = garbage
    return features


def state_rows(state, row: int):
    """The part of a (possibly LSTM) state that belongs to batch row ``row``."""
    if isinstance(state, tuple):
        return tuple(s[:, row : row + 1] for s in state)
    return (state[:, row : row + 1],)


def as_tuple(state):
    return state if isinstance(state, tuple) else (state,)


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
def test_clip_alone_equals_its_rows_in_a_padded_batch(cell, bidirectional):
    encoder = make_encoder(cell, bidirectional)
    features = padded_features()
    with torch.no_grad():
        outputs, state = encoder(features, LENGTHS)
        assert outputs.shape == (4, 12, encoder.output_size)
        assert encoder.output_size == 8 * (2 if bidirectional else 1)
        for row, n in enumerate(LENGTHS.tolist()):
            alone, alone_state = encoder(features[row : row + 1, :n], LENGTHS[row : row + 1])
            torch.testing.assert_close(outputs[row, :n], alone[0], atol=1e-5, rtol=1e-5)
            assert not outputs[row, n:].any(), "outputs at padded frames must be zero"
            for got, want in zip(state_rows(state, row), as_tuple(alone_state), strict=True):
                torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cell", CELLS)
def test_final_state_is_the_state_at_the_last_valid_frame(cell):
    """Unidirectional, one layer: the final hidden state equals the output at length - 1."""
    encoder = make_encoder(cell, num_layers=1)
    with torch.no_grad():
        outputs, state = encoder(padded_features(), LENGTHS)
    hidden = as_tuple(state)[0][-1]
    torch.testing.assert_close(hidden, outputs[torch.arange(4), LENGTHS - 1])


@pytest.mark.parametrize("cell", CELLS)
def test_state_round_trip_two_halves_equal_the_whole(cell):
    encoder = make_encoder(cell)
    features = padded_features(torch.tensor([10, 10, 10]))
    full = torch.tensor([10, 10, 10])
    with torch.no_grad():
        whole, whole_state = encoder(features, full)
        first, state = encoder(features[:, :6], torch.tensor([6, 6, 6]))
        second, end_state = encoder(features[:, 6:], torch.tensor([4, 4, 4]), state)
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole, atol=1e-5, rtol=1e-5)
    for got, want in zip(as_tuple(end_state), as_tuple(whole_state), strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cell", CELLS)
def test_state_round_trip_with_a_padded_second_chunk(cell):
    """Streaming: the last chunk of each clip may be shorter; the carried state still matches."""
    encoder = make_encoder(cell)
    lengths = torch.tensor([10, 7, 8])
    features = padded_features(lengths)
    with torch.no_grad():
        whole, whole_state = encoder(features, lengths)
        first, state = encoder(features[:, :6], torch.tensor([6, 6, 6]))
        second, end_state = encoder(features[:, 6:], lengths - 6, state)
    joined = torch.cat([first, second], dim=1)
    torch.testing.assert_close(joined, whole, atol=1e-5, rtol=1e-5)
    for got, want in zip(as_tuple(end_state), as_tuple(whole_state), strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("cell", CELLS)
def test_gradients_do_not_reach_padded_frames(cell):
    encoder = make_encoder(cell, bidirectional=True)
    features = padded_features().requires_grad_(True)
    outputs, _ = encoder(features, LENGTHS)
    outputs.sum().backward()
    padded = ~frame_mask(LENGTHS, features.shape[1])
    assert not features.grad[padded].any()
    assert features.grad[~padded].abs().sum() > 0


def test_frame_lengths_may_live_on_the_features_device_as_any_int():
    encoder = make_encoder("gru")
    features = padded_features()
    with torch.no_grad():
        a, _ = encoder(features, LENGTHS)
        b, _ = encoder(features, LENGTHS.to(torch.int32))
    assert torch.equal(a, b)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"cell": "transformer"}, "cell"),
        ({"cell": "LSTM"}, "cell"),
        ({"hidden_size": 0}, "hidden_size"),
        ({"num_layers": 0}, "num_layers"),
        ({"dropout": 1.0}, "dropout"),
        ({"dropout": -0.1}, "dropout"),
    ],
)
def test_bad_options_are_config_errors(options, match):
    with pytest.raises(ConfigError, match=match):
        RecurrentEncoder(INPUT, **options)


# --- the whole classifier -----------------------------------------------------------------


def make_classifier(cell: str, bidirectional: bool, pooling: str) -> AudioClassifier:
    torch.manual_seed(0)
    model = AudioClassifier(
        features={
            "_target_": "audioseq.models.frontends.LogMel",
            "n_mels": 8,
            "normalize": "utterance",
        },
        model={
            "encoder": {
                "_target_": "audioseq.models.encoders.RecurrentEncoder",
                "cell": cell,
                "hidden_size": 6,
                "num_layers": 2,
                "bidirectional": bidirectional,
            },
            "pooling": pooling,
            "head_dropout": 0.1,
        },
        labels=["a", "b", "c"],
        optimizer={"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 3e-3},
    )
    return model.eval()


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("bidirectional", [False, True])
@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
def test_classifier_logits_of_a_clip_alone_equal_its_row_in_a_padded_batch(
    cell, bidirectional, pooling
):
    model = make_classifier(cell, bidirectional, pooling)
    gen = torch.Generator().manual_seed(2)
    lengths = torch.tensor([1200, 3200, 300, 2500])
    audio = torch.randn(4, 3200, generator=gen)
    audio[~frame_mask(lengths, 3200)] = 0.0
    with torch.no_grad():
        logits = model(audio, lengths)
        assert logits.shape == (4, 3)
        for row, n in enumerate(lengths.tolist()):
            alone = model(audio[row : row + 1, :n], lengths[row : row + 1])
            torch.testing.assert_close(logits[row], alone[0], atol=1e-5, rtol=1e-5)
