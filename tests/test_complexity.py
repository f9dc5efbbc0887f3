"""Parameter and MAC counts: the analytic formulas against torch's own FLOP counter."""

import pytest
import torch
from hydra import compose, initialize_config_dir
from torch.utils.flop_counter import FlopCounterMode

from audioseq.cli.config_dir import config_dir
from audioseq.cli.train import build_task
from audioseq.models.complexity import (
    encoder_macs_per_frame,
    linear_macs,
    model_complexity,
    task_complexity,
)
from audioseq.models.encoders import RecurrentEncoder
from audioseq.models.frontends import LogMel
from audioseq.models.heads import LinearHead
from audioseq.models.windowed import WindowedEncoder

FRAMES, INPUT = 7, 5


def counted_macs(module: torch.nn.Module, *inputs: torch.Tensor) -> int:
    """MACs of one forward pass as torch counts them (matrix products and convolutions)."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(*inputs)
    return counter.get_total_flops() // 2


ENCODERS = {
    **{
        f"{cell}-{impl}-{'bi' if bi else 'uni'}": (
            lambda cell=cell, impl=impl, bi=bi: RecurrentEncoder(
                INPUT, cell, hidden_size=6, num_layers=2, bidirectional=bi, impl=impl
            )
        )
        for cell in ("rnn", "lstm", "gru")
        # torch's FLOP counter does not see inside the fused CPU LSTM
        for impl in (("scratch",) if cell == "lstm" else ("fused", "scratch"))
        for bi in (False, True)
    },
    "ar": lambda: WindowedEncoder(INPUT, tau=4, hidden_size=6, num_layers=3),
    "markov": lambda: WindowedEncoder(INPUT, tau=1, hidden_size=6, num_layers=1),
}


@pytest.mark.parametrize("name", list(ENCODERS))
def test_encoder_macs_per_frame_match_torchs_count(name):
    encoder = ENCODERS[name]().eval()
    features = torch.randn(1, FRAMES, INPUT)
    brute = counted_macs(encoder, features, torch.tensor([FRAMES]))
    assert encoder_macs_per_frame(encoder) * FRAMES == brute


def test_hand_computed_lstm_and_ar_counts():
    lstm = RecurrentEncoder(INPUT, "lstm", hidden_size=6, num_layers=2, bidirectional=True)
    # layer 0: 2 directions x 4 gates x 6 x (5 + 6); layer 1: input 12 -> 2 x 4 x 6 x (12 + 6)
    assert encoder_macs_per_frame(lstm) == 2 * 4 * 6 * 11 + 2 * 4 * 6 * 18
    ar = WindowedEncoder(INPUT, tau=4, hidden_size=6, num_layers=3)
    assert encoder_macs_per_frame(ar) == 6 * 5 * 4 + 2 * 6 * 6


def test_model_complexity_of_one_second_of_audio():
    frontend = LogMel(n_mels=INPUT, normalize="utterance")
    encoder = RecurrentEncoder(INPUT, "gru", hidden_size=6, num_layers=1)
    head = LinearHead(encoder.output_size, 3)
    complexity = model_complexity(frontend, encoder, head)
    assert complexity.params == sum(
        p.numel() for m in (frontend, encoder, head) for p in m.parameters()
    )
    # 100 frames a second (hop 160 at 16 kHz), the head once per clip.
    head_macs = counted_macs(head, torch.randn(1, 6))
    assert head_macs == linear_macs(head) == 6 * 3
    assert complexity.macs_per_second == 100 * 3 * 6 * (5 + 6) + head_macs
    per_frame_head = model_complexity(frontend, encoder, head, head_per_frame=True)
    assert per_frame_head.macs_per_second == 100 * (3 * 6 * 11 + head_macs)
    assert complexity.metrics() == {
        "model/params": float(complexity.params),
        "model/macs_per_second": complexity.macs_per_second,
    }
    assert "MACs per second of audio" in str(complexity)


@pytest.mark.parametrize("model", ["ar", "markov", "rnn", "lstm", "gru"])
def test_every_shipped_model_has_a_count(model):
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("train", [f"model={model}", "features.normalize=utterance"])
    task = build_task(cfg, labels=["a", "b"])
    complexity = task_complexity(task)
    assert complexity.params == sum(p.numel() for p in task.parameters())
    # every weight is used at most once per frame (100 a second), most of them exactly once
    assert 50 * complexity.params < complexity.macs_per_second <= 100 * complexity.params


def test_an_unknown_encoder_is_named():
    with pytest.raises(TypeError, match="Linear"):
        encoder_macs_per_frame(torch.nn.Linear(2, 2))
