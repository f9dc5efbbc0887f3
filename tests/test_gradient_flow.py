"""The gradient-flow callback: the encoder's per-step states are its forward pass, the
vanilla RNN's ‖∂L/∂h_t‖ vanishes where the LSTM's does not, and a real run writes its
TensorBoard tags."""

import io

import matplotlib.image
import numpy as np
import pytest
import torch
from in_process import audioseq
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from audioseq.callbacks.gradient_flow import GradientFlowLogger, log10_decay, measure
from audioseq.errors import ConfigError
from audioseq.models.encoders import RecurrentEncoder
from audioseq.models.masking import frame_mask
from audioseq.tasks.classification import AudioClassifier

FEATURES = {"_target_": "audioseq.models.frontends.LogMel", "normalize": "utterance"}
OPTIMIZER = {"_target_": "torch.optim.AdamW", "_partial_": True}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: one intra-op thread is faster, and immune to a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def classifier(encoder: dict, pooling: str = "last") -> AudioClassifier:
    torch.manual_seed(0)
    model = {"encoder": encoder, "pooling": pooling, "head_dropout": 0.0}
    return AudioClassifier(FEATURES, model, labels=list("abcd"), optimizer=OPTIMIZER).eval()


def recurrent(cell: str, hidden: int = 16, layers: int = 1, impl: str = "fused") -> dict:
    return {"_target_": "audioseq.models.encoders.RecurrentEncoder", "cell": cell,
            "hidden_size": hidden, "num_layers": layers, "impl": impl}  # fmt: skip


def clips(seconds: float = 0.5, count: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(2)
    audio = 0.1 * torch.randn(count, round(seconds * 16000), generator=gen)
    return audio, torch.full((count,), audio.shape[1])


# ---- the per-step states are the encoder ------------------------------------------------


@pytest.mark.parametrize("impl", ["fused", "scratch"])
@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_per_step_states_reproduce_the_encoder_with_padding(cell, impl):
    torch.manual_seed(0)
    encoder = RecurrentEncoder(5, cell, hidden_size=6, num_layers=2, impl=impl).double().eval()
    lengths = torch.tensor([9, 4, 7])
    features = torch.randn(3, 9, 5, dtype=torch.float64)
    with torch.no_grad():
        expected, _ = encoder(features, lengths)
        outputs, states = encoder.per_step_states(features, lengths)
    assert len(states) == 2 and all(len(hs) == 9 for hs in states)
    mask = frame_mask(lengths, 9).unsqueeze(-1)
    torch.testing.assert_close(outputs, expected, atol=1e-10, rtol=0)
    top = torch.stack(states[-1], dim=1)  # the top layer's h_t, step by step
    torch.testing.assert_close(top * mask, expected, atol=1e-10, rtol=0)


def test_per_step_states_give_the_total_derivative_on_the_encoders_own_weights():
    """h_0 reaches the last output only through the later steps: the gradient flows there,
    and into the fused module's parameters (shared, not copied)."""
    torch.manual_seed(0)
    encoder = RecurrentEncoder(5, "gru", hidden_size=6, num_layers=2).double()
    outputs, states = encoder.per_step_states(torch.randn(2, 7, 5, dtype=torch.float64),
                                              torch.tensor([7, 5]))  # fmt: skip
    grads = torch.autograd.grad(outputs[0, -1].sum(), [states[0][0], *encoder.parameters()])
    assert all(g is not None and g.abs().sum() > 0 for g in grads)


def test_bidirectional_per_step_states_are_per_direction_and_not_measured():
    torch.manual_seed(0)
    encoder = RecurrentEncoder(5, "lstm", hidden_size=4, num_layers=1, bidirectional=True)
    lengths = torch.tensor([6, 3])
    features = torch.randn(2, 6, 5)
    with torch.no_grad():
        expected, _ = encoder(features, lengths)
        _, (forward, backward) = encoder.per_step_states(features, lengths)
    both = torch.cat([torch.stack(forward, dim=1), torch.stack(backward, dim=1)], dim=-1)
    mask = frame_mask(lengths, 6).unsqueeze(-1)
    torch.testing.assert_close(both * mask, expected)
    task = classifier({**recurrent("gru", hidden=4), "bidirectional": True})
    flow = measure(task, *clips(0.3, 2), torch.tensor([0, 1]))
    assert flow.layers == [] and np.all(flow.inputs > 0)  # h_t is two states: inputs only


# ---- what the measurement shows ----------------------------------------------------------


def small_weights(task: AudioClassifier, scale: float) -> None:
    with torch.no_grad():
        for parameter in task.encoder.parameters():
            parameter.uniform_(-scale, scale)


def test_the_vanilla_rnn_gradient_vanishes_much_faster_than_the_lstm():
    """Same small weights: the RNN multiplies ∂L/∂h by W_hh·tanh' at every step, the LSTM's
    cell state by the forget gate (0.5 here); with the forget gate open (bias 3, f≈0.95)
    the LSTM's gradient hardly decays at all over the same 48 frames."""
    audio, lengths = clips()
    labels = torch.tensor([0, 1, 2])
    decay = {}
    for cell in ("rnn", "lstm"):
        task = classifier(recurrent(cell, hidden=32))
        small_weights(task, 0.05)
        flow = measure(task, audio, lengths, labels)
        assert flow.steps == 48 and len(flow.layers) == 1
        curve = flow.layers[0]
        assert np.all(curve > 0)
        assert curve[-1] > curve[len(curve) // 2] > curve[0]  # decays towards the start
        decay[cell] = log10_decay(curve, flow.steps)
    with torch.no_grad():
        task.encoder.rnn.bias_ih_l0[32:64] = 3.0  # the LSTM's forget gate (i, f, g, o)
    decay["lstm_open"] = log10_decay(measure(task, audio, lengths, labels).layers[0], 48)
    assert decay["rnn"] < decay["lstm"] - 10, decay  # ten orders of magnitude more
    assert decay["lstm"] < -5, decay
    assert decay["lstm_open"] > -3, decay


def test_measure_reports_parameter_norms_and_leaves_the_task_alone():
    task = classifier(recurrent("gru", layers=2))
    before = {k: v.clone() for k, v in task.state_dict().items()}
    flow = measure(task, *clips(0.3, 2), torch.tensor([0, 3]))
    assert len(flow.layers) == 2
    names = {"encoder.rnn.weight_hh_l0", "encoder.rnn.weight_hh_l1", "head.1.weight"}
    assert names <= set(flow.grad_norms) and names <= set(flow.weight_norms)
    assert all(v > 0 for v in flow.grad_norms.values())
    weight = float(task.encoder.rnn.weight_hh_l1.detach().norm())
    assert flow.weight_norms["encoder.rnn.weight_hh_l1"] == pytest.approx(weight)
    assert all(p.grad is None for p in task.parameters())
    for key, value in task.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_a_windowed_encoder_gets_only_its_input_gradient_inside_its_window():
    tau = 5
    encoder = {"_target_": "audioseq.models.windowed.WindowedEncoder", "tau": tau,
               "hidden_size": 8, "num_layers": 1}  # fmt: skip
    flow = measure(classifier(encoder), *clips(0.3, 2), torch.tensor([1, 2]))
    assert flow.layers == []
    steps = len(flow.inputs)
    assert np.all(flow.inputs[: steps - tau] == 0)  # older than tau frames: no influence
    assert np.all(flow.inputs[steps - tau :] > 0)


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="every_n_epochs"):
        GradientFlowLogger(every_n_epochs=0)


# ---- a real run --------------------------------------------------------------------------


def test_a_training_run_logs_the_image_and_scalars(tmp_path):
    run_dir = tmp_path / "run"
    audioseq(
        "train", "callbacks=gradient_flow",
        "data.corpus=memory", "data.delay_seconds=0.2", "model=rnn", "model.pooling=last",
        "model.encoder.hidden_size=16", "model.encoder.num_layers=2", "debug=fast",
        "trainer.max_epochs=2", "trainer.num_sanity_val_steps=1", "data.batch_size=8",
        "data.train_size=32", "data.val_size=16", "data.test_size=16",
        "features.stats_batches=2", "callbacks.gradient_flow.max_clips=4",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )  # fmt: skip
    images, scalars = {}, {}
    for events in run_dir.glob("events.out.tfevents.*"):
        acc = EventAccumulator(str(events), size_guidance={"scalars": 0, "images": 0})
        acc.Reload()
        for tag in acc.Tags()["images"]:
            images.setdefault(tag, []).extend(acc.Images(tag))
        for tag in acc.Tags()["scalars"]:
            scalars.setdefault(tag, []).extend(acc.Scalars(tag))
    flows = images["gradients/dL_dh"]
    assert len(flows) == 3  # before training (after the sanity check) and after each epoch
    assert flows[0].step == 0 and flows[-1].step == 6
    picture = matplotlib.image.imread(io.BytesIO(flows[-1].encoded_image_string), format="png")
    assert picture.shape[0] > 200 and picture.shape[1] > 300
    frames = (4800 - 400) // 160 + 1  # 0.3 s in 25 ms windows every 10 ms: 28
    for tag in (
        "gradients/dL_dh/layer0/t=0",
        f"gradients/dL_dh/layer0/t={frames // 2}",
        f"gradients/dL_dh/layer1/t={frames - 1}",
        "gradients/dL_dx/t=0",
        "gradients/dL_dh/layer1/log10_start_over_end",
        "gradients/norm/encoder.rnn.weight_hh_l1",
        "weights/norm/encoder.rnn.weight_hh_l0",
        "weights/norm/head.1.weight",
    ):
        assert len(scalars[tag]) == 3, tag
    end = scalars[f"gradients/dL_dh/layer1/t={frames - 1}"][-1].value
    start = scalars["gradients/dL_dh/layer1/t=0"][-1].value
    assert 0 <= start < end  # even in two epochs: the start hears less than the end
