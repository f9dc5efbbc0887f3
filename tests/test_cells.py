"""Cells written from the equations: the same numbers, gradients and weights as torch's."""

import pytest
import torch

from audioseq.errors import ConfigError
from audioseq.models.encoders import RecurrentEncoder
from audioseq.models.masking import frame_mask

CELLS = ("rnn", "lstm", "gru")
INPUT, HIDDEN = 5, 6
LENGTHS = torch.tensor([7, 12, 3, 12, 1])
TOL = {"atol": 1e-5, "rtol": 1e-5}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: one intra-op thread is faster, and immune to a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pair(
    cell: str, num_layers: int, bidirectional: bool, dropout: float = 0.0
) -> tuple[RecurrentEncoder, RecurrentEncoder]:
    """A fused encoder and a scratch one holding the fused one's weights, in float64."""
    options = dict(
        cell=cell,
        hidden_size=HIDDEN,
        num_layers=num_layers,
        bidirectional=bidirectional,
        dropout=dropout,
    )
    torch.manual_seed(0)
    fused = RecurrentEncoder(INPUT, impl="fused", **options).double()
    scratch = RecurrentEncoder(INPUT, impl="scratch", **options).double()
    scratch.load_state_dict(fused.state_dict())
    return fused, scratch


def padded_features(lengths: torch.Tensor = LENGTHS, garbage: float = 9.0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    features = torch.randn(len(lengths), int(lengths.max()), INPUT, generator=gen)
    features[~frame_mask(lengths, features.shape[1])] = garbage
    return features.double()


def as_tuple(state) -> tuple[torch.Tensor, ...]:
    return state if isinstance(state, tuple) else (state,)


def random_state(cell: str, num_layers: int, bidirectional: bool, batch: int):
    gen = torch.Generator().manual_seed(3)
    shape = (num_layers * (2 if bidirectional else 1), batch, HIDDEN)
    h = torch.randn(shape, generator=gen, dtype=torch.float64)
    return (h, torch.randn(shape, generator=gen, dtype=torch.float64)) if cell == "lstm" else h


def run_with_grads(encoder: RecurrentEncoder, features: torch.Tensor, state):
    """Outputs, final state, and the gradients of a loss that uses both, for the input,
    the initial state and every parameter."""
    features = features.clone().requires_grad_(True)
    state = tuple(s.clone().requires_grad_(True) for s in as_tuple(state))
    outputs, final = encoder(features, LENGTHS, state if len(state) == 2 else state[0])
    weights = torch.linspace(-1, 1, outputs.shape[-1], dtype=torch.float64)
    loss = (outputs * weights).pow(2).sum() + sum(s.sin().sum() for s in as_tuple(final))
    loss.backward()
    grads = {name: p.grad for name, p in encoder.named_parameters()}
    grads |= {"input": features.grad} | {f"state{i}": s.grad for i, s in enumerate(state)}
    return outputs.detach(), tuple(s.detach() for s in as_tuple(final)), grads


@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("num_layers", [1, 2])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_scratch_equals_fused_outputs_states_and_gradients(cell, num_layers, bidirectional):
    fused, scratch = pair(cell, num_layers, bidirectional)
    features = padded_features()
    state = random_state(cell, num_layers, bidirectional, len(LENGTHS))
    want_out, want_state, want_grads = run_with_grads(fused, features, state)
    got_out, got_state, got_grads = run_with_grads(scratch, features, state)
    torch.testing.assert_close(got_out, want_out, **TOL)
    assert not got_out[~frame_mask(LENGTHS, features.shape[1])].any()
    for got, want in zip(got_state, want_state, strict=True):
        torch.testing.assert_close(got, want, **TOL)
    assert got_grads.keys() == want_grads.keys()
    for name, want in want_grads.items():
        torch.testing.assert_close(got_grads[name], want, **TOL, msg=name)
    assert not got_grads["input"][~frame_mask(LENGTHS, features.shape[1])].any()


@pytest.mark.parametrize("cell", CELLS)
def test_parameter_names_and_shapes_are_torchs(cell):
    fused, scratch = pair(cell, num_layers=2, bidirectional=True)
    want = {name: p.shape for name, p in fused.state_dict().items()}
    assert {name: p.shape for name, p in scratch.state_dict().items()} == want
    assert "rnn.weight_hh_l1_reverse" in want


@pytest.mark.parametrize("cell", CELLS)
def test_weights_load_both_ways(cell):
    """scratch -> fused and fused -> scratch give the same function."""
    features = padded_features()
    torch.manual_seed(5)
    scratch = RecurrentEncoder(INPUT, cell, HIDDEN, num_layers=2, impl="scratch").double()
    fused = RecurrentEncoder(INPUT, cell, HIDDEN, num_layers=2, impl="fused").double()
    fused.load_state_dict(scratch.state_dict())
    back = RecurrentEncoder(INPUT, cell, HIDDEN, num_layers=2, impl="scratch").double()
    back.load_state_dict(fused.state_dict())
    with torch.no_grad():
        want, _ = scratch(features, LENGTHS)
        torch.testing.assert_close(fused(features, LENGTHS)[0], want, **TOL)
        torch.testing.assert_close(back(features, LENGTHS)[0], want, **TOL)


@pytest.mark.parametrize("cell", CELLS)
def test_state_carried_across_two_chunks_equals_one_pass(cell):
    """Streaming, with a padded second chunk: the carried state picks up where it left off."""
    _, scratch = pair(cell, num_layers=2, bidirectional=False)
    lengths = torch.tensor([10, 7, 8])
    features = padded_features(lengths)
    with torch.no_grad():
        whole, whole_state = scratch(features, lengths)
        first, state = scratch(features[:, :6], torch.tensor([6, 6, 6]))
        second, end_state = scratch(features[:, 6:], lengths - 6, state)
    torch.testing.assert_close(torch.cat([first, second], dim=1), whole, **TOL)
    for got, want in zip(as_tuple(end_state), as_tuple(whole_state), strict=True):
        torch.testing.assert_close(got, want, **TOL)


@pytest.mark.parametrize("cell", CELLS)
def test_dropout_between_layers_only_in_training(cell):
    _, scratch = pair(cell, num_layers=2, bidirectional=False, dropout=0.5)
    features = padded_features()
    with torch.no_grad():
        scratch.eval()
        a, _ = scratch(features, LENGTHS)
        b, _ = scratch(features, LENGTHS)
        scratch.train()
        c, _ = scratch(features, LENGTHS)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


def test_unknown_impl_is_a_config_error():
    with pytest.raises(ConfigError, match="impl"):
        RecurrentEncoder(INPUT, impl="cuda")
