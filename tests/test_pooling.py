"""Pooling and masks: frame outputs [B, F, H] -> [B, H], padded frames never count."""

import pytest
import torch

from audioseq.errors import ConfigError
from audioseq.models.masking import frame_mask
from audioseq.models.pooling import Pooling

LENGTHS = torch.tensor([6, 3, 1])


def outputs_with_padding(garbage: float = 1e6, extra: int = 0, hidden: int = 4) -> torch.Tensor:
    """[3, 6 + extra, hidden] frame outputs; frames at or beyond each length hold ``garbage``."""
    gen = torch.Generator().manual_seed(0)
    outputs = torch.randn(3, 6 + extra, hidden, generator=gen)
    outputs[~frame_mask(LENGTHS, 6 + extra)] = garbage
    return outputs


def test_frame_mask():
    mask = frame_mask(torch.tensor([3, 0, 5]), 5)
    assert mask.dtype == torch.bool
    assert mask.tolist() == [
        [True, True, True, False, False],
        [False] * 5,
        [True] * 5,
    ]


def test_last_picks_the_last_valid_frame():
    outputs = outputs_with_padding()
    pooled = Pooling("last")(outputs, LENGTHS)
    for row, n in enumerate(LENGTHS.tolist()):
        assert torch.equal(pooled[row], outputs[row, n - 1])


def test_mean_is_the_mean_of_valid_frames():
    outputs = outputs_with_padding()
    pooled = Pooling("mean")(outputs, LENGTHS)
    for row, n in enumerate(LENGTHS.tolist()):
        torch.testing.assert_close(pooled[row], outputs[row, :n].mean(0))


@pytest.mark.parametrize("garbage", [1e6, -1e6, float("nan")])
def test_max_ignores_padding_even_when_it_is_larger(garbage):
    outputs = outputs_with_padding(garbage=garbage)
    pooled = Pooling("max")(outputs, LENGTHS)
    for row, n in enumerate(LENGTHS.tolist()):
        assert torch.equal(pooled[row], outputs[row, :n].amax(0))


@pytest.mark.parametrize("mode", ["last", "mean", "max"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_extra_padding_changes_nothing(mode, bidirectional):
    """Appending garbage frames beyond the lengths (a longer clip in the batch) is a no-op."""
    pool = Pooling(mode, bidirectional)
    tight = outputs_with_padding(garbage=0.0)
    padded = torch.cat([tight, torch.full((3, 9, 4), 123.0)], dim=1)
    padded[~frame_mask(LENGTHS, padded.shape[1])] = -55.0
    torch.testing.assert_close(pool(padded, LENGTHS), pool(tight, LENGTHS))
    for row, n in enumerate(LENGTHS.tolist()):
        alone = pool(tight[row : row + 1, :n], LENGTHS[row : row + 1])
        torch.testing.assert_close(pool(padded, LENGTHS)[row], alone[0])


def test_bidirectional_last_takes_forward_at_the_end_and_backward_at_frame_0():
    outputs = outputs_with_padding(hidden=6)
    pooled = Pooling("last", bidirectional=True)(outputs, LENGTHS)
    assert pooled.shape == (3, 6)
    for row, n in enumerate(LENGTHS.tolist()):
        assert torch.equal(pooled[row, :3], outputs[row, n - 1, :3])
        assert torch.equal(pooled[row, 3:], outputs[row, 0, 3:])


@pytest.mark.parametrize("mode", ["mean", "max"])
def test_bidirectional_mean_and_max_pool_both_halves_alike(mode):
    outputs = outputs_with_padding(hidden=6)
    assert torch.equal(
        Pooling(mode, bidirectional=True)(outputs, LENGTHS), Pooling(mode)(outputs, LENGTHS)
    )


@pytest.mark.parametrize("mode", ["last", "mean", "max"])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_no_gradient_reaches_padded_frames(mode, bidirectional):
    outputs = torch.randn(3, 8, 4, requires_grad=True)
    Pooling(mode, bidirectional)(outputs, LENGTHS).sum().backward()
    padded = ~frame_mask(LENGTHS, 8)
    assert not outputs.grad[padded].any()
    assert outputs.grad[~padded].abs().sum() > 0


@pytest.mark.parametrize("mode", ["last", "mean", "max"])
def test_int32_lengths_pool_like_int64(mode):
    outputs = outputs_with_padding()
    pool = Pooling(mode)
    assert torch.equal(pool(outputs, LENGTHS.to(torch.int32)), pool(outputs, LENGTHS))


def test_bad_mode_is_a_config_error():
    with pytest.raises(ConfigError, match="pooling"):
        Pooling("median")


def test_attention_pooling_is_a_softmax_weighted_mean_of_valid_frames_only():
    pooling = Pooling("attention", size=4)
    clean = outputs_with_padding(garbage=0.0, extra=2)
    padded = clean.masked_fill(~frame_mask(LENGTHS, 8).unsqueeze(-1), 1e6)
    with torch.no_grad():
        expected = pooling(clean[:, :6], LENGTHS)
        torch.testing.assert_close(pooling(padded, LENGTHS), expected)  # padding never counts
        torch.testing.assert_close(pooling(clean[2:, :1], LENGTHS[2:]), clean[2:, 0])
        pooling.score.weight.zero_()  # equal scores: the plain mean
        torch.testing.assert_close(pooling(padded, LENGTHS), Pooling("mean")(padded, LENGTHS))
    assert sum(p.numel() for p in pooling.parameters()) == 5  # a learned scorer
