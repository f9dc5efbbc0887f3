"""Truncated back-propagation through time (task=detect, task.tbptt_frames=K).

- chunked runs equal one pass (overlap and state carried), for every encoder kind;
- K >= the recording: exactly the gradients of full BPTT;
- smaller K: the loss goes down on the dialling recordings, and the carried state is used
  (a task whose labels depend on the past learns far worse when it is zeroed per chunk);
- peak memory does not grow with the recording (10-minute vs 1-minute recordings).
"""

import copy
import os
import re
import sys

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from processes import ROOT, run, train
from tensorboard_events import scalars
from test_configs import compose_train

from audioseq.cli.train import build_task
from audioseq.data.frame_labels import LABEL_HOP, PAD
from audioseq.models import chunks
from audioseq.models.encoders import RecurrentEncoder
from audioseq.models.frontends import LogMel
from audioseq.models.windowed import WindowedEncoder

LABELS = ["_background_", "low", "high"]
#: Tiny models on a small shared CPU: one intra-op thread each is several times faster
#: than two threads fighting other processes for two cores (the runs' results are alike).
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def detector(*overrides: str):
    """A small FrameDetector from the shipped task=detect config."""
    cfg = compose_train(
        "task=detect",
        "model=gru",
        "model.encoder.hidden_size=16",
        "model.encoder.num_layers=1",
        "model.encoder.dropout=0",
        "model.head_dropout=0",
        "features.normalize=none",
        "task/scheduler=constant",
        "trainer.gradient_clip_val=null",
        *overrides,
    )
    return build_task(cfg, LABELS)


def sticky_batch(seed: int, size: int = 8, seconds: float = 4.0) -> dict:
    """Recordings of short low (600 Hz) or high (2 kHz) beeps every 0.3-0.8 s in faint noise,
    each frame labelled with the *last* beep heard (background before the first): the
    label of most frames was decided chunks ago, so only a carried state knows it."""
    rng = np.random.default_rng(seed)
    samples = round(seconds * 16000)
    audio = 0.003 * rng.standard_normal((size, samples)).astype(np.float32)
    labels = np.zeros((size, -(-samples // LABEL_HOP)), np.int64)
    t = np.arange(800) / 16000
    for row in range(size):
        position = int(rng.uniform(0.05, 0.3) * 16000)
        while position + 800 < samples:
            kind = int(rng.integers(1, 3))
            audio[row, position : position + 800] += 0.3 * np.sin(
                2 * np.pi * (600, 2000)[kind - 1] * t
            )
            labels[row, (position + 800) // LABEL_HOP :] = kind
            position += int(rng.uniform(0.3, 0.8) * 16000)
    return {
        "audio": torch.from_numpy(audio),
        "lengths": torch.full((size,), samples),
        "label": torch.full((size,), -1),
        "key": [f"sticky/{seed}/{row}" for row in range(size)],
        "skipped": {},
        "frame_labels": torch.from_numpy(labels),
    }


def loader(batches: list[dict]) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(batches, batch_size=None)


@pytest.mark.parametrize(
    "encoder",
    [
        RecurrentEncoder(40, "lstm", 8, 2),
        RecurrentEncoder(40, "gru", 8, 1, impl="scratch"),
        WindowedEncoder(40, tau=4, hidden_size=8),
    ],
    ids=["lstm", "gru-scratch", "ar"],
)
def test_chunks_give_the_outputs_of_one_pass(encoder) -> None:
    """Recordings of different lengths, chunks of any size: the same frame outputs (the
    ones that end early simply drop out of later chunks)."""
    torch.manual_seed(0)
    frontend, head = LogMel(normalize="none"), torch.nn.Linear(8, 3)
    audio, lengths = torch.randn(3, 16000), torch.tensor([16000, 9000, 300])
    features, frames = frontend(audio, lengths)
    whole = head(encoder(features, frames)[0])
    for size in (7, 30, 1000):
        out = torch.zeros_like(whole)
        for chunk in chunks.run_chunks(frontend, encoder, head, audio, lengths, size):
            for j, row in enumerate(chunk.rows.nonzero().flatten().tolist()):
                count = int(chunk.frames[j])
                out[row, chunk.start : chunk.start + count] = chunk.outputs[j, :count]
        valid = torch.arange(whole.shape[1]) < frames[:, None]
        torch.testing.assert_close(out[valid], whole[valid], atol=1e-6, rtol=0)


class Gradients(pl.Callback):
    """The gradients of the first optimiser step, before it changes anything."""

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        if not hasattr(self, "grads"):
            self.grads = {n: p.grad.clone() for n, p in pl_module.named_parameters()}


def test_tbptt_over_the_whole_recording_gives_full_bptt_gradients(tmp_path, one_thread) -> None:
    """One chunk of K >= the frames: the training step's gradients are those of a plain
    forward and backward pass over whole recordings (of different lengths), exactly."""
    torch.manual_seed(0)
    model = detector("task.tbptt_frames=1000")
    reference = copy.deepcopy(model)
    batch = sticky_batch(0, size=3, seconds=3.0)
    batch["lengths"] = torch.tensor([48000, 40000, 31000])
    capture = Gradients()
    trainer = pl.Trainer(max_steps=1, default_root_dir=tmp_path, callbacks=[capture])
    trainer.fit(model, train_dataloaders=loader([batch]))

    logits = reference(batch["audio"], batch["lengths"])
    frames = reference.frontend.frame_lengths(batch["lengths"])
    steps = (torch.arange(logits.shape[1]) * 160 + 200) // LABEL_HOP  # each frame's centre
    targets = batch["frame_labels"][:, steps]
    targets[torch.arange(logits.shape[1]) >= frames[:, None]] = PAD
    F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=PAD).backward()
    for name, parameter in reference.named_parameters():
        torch.testing.assert_close(capture.grads[name], parameter.grad, rtol=0, atol=0)


def fit_sticky(tmp_path, name: str, epochs: int) -> float:
    """Train on sticky recordings with 100 ms chunks; the validation frame accuracy."""
    torch.manual_seed(0)
    model = detector("task.tbptt_frames=10")
    train_batches = [sticky_batch(seed) for seed in range(4)]
    trainer = pl.Trainer(max_epochs=epochs, default_root_dir=tmp_path / name)
    trainer.fit(model, loader(train_batches), loader([sticky_batch(100)]))
    return float(trainer.callback_metrics["val/frame_acc"])


def test_the_carried_state_is_what_learns_a_task_that_needs_the_past(
    tmp_path, monkeypatch, one_thread
) -> None:
    carried = fit_sticky(tmp_path, "carried", epochs=6)
    # The same training with the state zeroed at every chunk boundary (and in validation).
    monkeypatch.setattr(chunks, "carry", lambda state: chunks.map_state(state, torch.zeros_like))
    zeroed = fit_sticky(tmp_path, "zeroed", epochs=6)
    print(f"frame accuracy: state carried {carried:.3f}, zeroed per chunk {zeroed:.3f}")
    assert carried > 0.9 and carried > zeroed + 0.15


DIALLING = [
    "experiment=dialling",
    "data.train_size=8",
    "data.val_size=2",
    "data.test_size=2",
    "data.batch_size=4",
    "model.encoder.hidden_size=16",
]


def test_the_loss_goes_down_with_short_chunks_on_dialling(tmp_path) -> None:
    run_dir = tmp_path / "run"
    train(
        *DIALLING,
        "data.clip_seconds=10",
        "task.tbptt_frames=50",
        "trainer.max_epochs=3",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
        env=ONE_THREAD,
    )
    losses = [value for _, value in scalars(run_dir)["train/loss_epoch"]]
    assert len(losses) == 3 and losses[-1] < 0.8 * losses[0], losses


#: Runs the train command, then prints the process's peak resident memory.
PEAK = (
    "import atexit, resource, runpy, sys\n"
    "atexit.register(lambda: print('peak_rss_kib', "
    "resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr))\n"
    "sys.argv = sys.argv[1:]\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


def peak_rss_mib(tmp_path, minutes: int) -> float:
    result = run(
        [sys.executable, "-c", PEAK, str(ROOT / "scripts" / "train.py"), *DIALLING,
         f"data.clip_seconds={60 * minutes}", "data.train_size=2", "data.val_size=1",
         "data.batch_size=2", "trainer.max_epochs=1", "task.tbptt_frames=200",
         f"hydra.run.dir={tmp_path / f'{minutes}min'}"],
        cwd=tmp_path,
        timeout=600,
        env=ONE_THREAD,
    )  # fmt: skip
    return int(re.findall(r"peak_rss_kib (\d+)", result.stderr)[-1]) / 1024


def test_memory_does_not_grow_with_the_recording(tmp_path) -> None:
    """Training (and validating, testing) on 3-minute recordings peaks at about the
    memory of 1-minute ones: the graph holds one chunk, features are made per chunk.
    (Measured: 812 and 838 MiB; 1218 MiB for 3 minutes with ``task.tbptt_frames=null``.)"""
    short, long = peak_rss_mib(tmp_path, 1), peak_rss_mib(tmp_path, 3)
    print(f"peak RSS: 1-minute recordings {short:.0f} MiB, 3-minute {long:.0f} MiB")
    assert long <= 1.2 * short
