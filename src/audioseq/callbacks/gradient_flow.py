"""Seeing vanishing gradients: ‖∂L/∂h_t‖ for every time step t and layer, in TensorBoard.

A fused torch RNN only hands back the top layer's outputs, and even those are not h_t as
the loss sees it: each h_t also feeds h_{t+1} inside the kernel. So the measurement takes
every h_t of every layer from the encoder's ``per_step_states`` (the recurrence unrolled
step by step, see :class:`audioseq.models.encoders.RecurrentEncoder`) and asks autograd
for ∂L/∂h_t: the total derivative, through the next layer and through all later steps.
Encoders without per-step states (AR, Markov) and bidirectional ones, whose h_t is two
states, still get ‖∂L/∂x_t‖ on their input features, which shows their receptive field.

It runs in float64 on copies of the modules, so that a gradient that has vanished to
1e-60 is still drawn rather than rounded to zero, and training is not touched.
"""

import copy
import logging
import math
from dataclasses import dataclass, field

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.figure import Figure
from torch import Tensor

from audioseq import SAMPLE_RATE
from audioseq.callbacks.tensorboard import tensorboard_writer
from audioseq.config_schema import check
from audioseq.models.masking import frame_mask

log = logging.getLogger(__name__)


@dataclass
class GradientFlow:
    """Mean over clips of ‖∂L/∂x_t‖ (``inputs``) and of ‖∂L/∂h_t‖ per layer (``layers``),
    each [T] with NaN where no clip is that long, plus parameter and gradient norms."""

    seconds_per_step: float
    inputs: np.ndarray
    layers: list[np.ndarray]
    steps: int  # frames every clip has: the scalars are taken inside this range
    weight_norms: dict[str, float] = field(default_factory=dict)
    grad_norms: dict[str, float] = field(default_factory=dict)


def _mean_norms(grads: Tensor, valid: Tensor) -> np.ndarray:
    """[B, T, ...] gradients -> [T] mean over the clips still running at t of each clip's
    norm (NaN where none is)."""
    norms = grads.flatten(2).norm(dim=-1) * valid
    counts = valid.sum(0)
    mean = norms.sum(0) / counts.clamp(min=1)
    return torch.where(counts > 0, mean, torch.nan).detach().cpu().numpy()


def measure(
    task: pl.LightningModule, audio: Tensor, lengths: Tensor, labels: Tensor
) -> GradientFlow:
    """‖∂L/∂h_t‖ on one batch for a task with ``frontend``, ``encoder``, ``pooling`` and
    ``head`` (a classifier); L is each clip's own cross-entropy (summed over the batch),
    so a curve is what one clip's loss sends back. Parameter gradient norms are those of
    the batch's mean loss, as in training. The task itself is left unchanged."""
    dtype = torch.float32 if audio.device.type == "mps" else torch.float64
    with torch.no_grad():
        features, frame_lengths = task.frontend(audio, lengths)
    modules = {name: copy.deepcopy(getattr(task, name)) for name in ("encoder", "pooling", "head")}
    for module in modules.values():
        module.to(dtype).eval()
    features = features.to(dtype).requires_grad_()
    encoder = modules["encoder"]
    if hasattr(encoder, "per_step_states") and not encoder.bidirectional:
        outputs, states = encoder.per_step_states(features, frame_lengths)
    else:
        outputs, states = encoder(features, frame_lengths)[0], []
    logits = modules["head"](modules["pooling"](outputs, frame_lengths))
    loss = F.cross_entropy(logits, labels, reduction="sum")
    params = [
        (f"{prefix}.{name}", p)
        for prefix, module in modules.items()
        for name, p in module.named_parameters()
        if p.requires_grad
    ]
    flat_states = [h for hs in states for h in hs]
    grads = torch.autograd.grad(
        loss, [features, *flat_states, *(p for _, p in params)], allow_unused=True
    )
    valid = frame_mask(frame_lengths, features.shape[1]).to(dtype)  # [B, T]
    steps = features.shape[1]
    layers = []
    for k, hs in enumerate(states):
        per_step = grads[1 + k * steps : 1 + (k + 1) * steps]
        per_step = [
            torch.zeros_like(h) if g is None else g for g, h in zip(per_step, hs, strict=True)
        ]
        layers.append(_mean_norms(torch.stack(per_step, dim=1), valid))
    param_grads = grads[1 + len(flat_states) :]
    batch = len(labels)
    return GradientFlow(
        seconds_per_step=task.frontend.hop_length / SAMPLE_RATE,
        inputs=_mean_norms(grads[0], valid),
        layers=layers,
        steps=int(frame_lengths.min()),
        weight_norms={name: float(p.detach().norm()) for name, p in params},
        grad_norms={
            name: float(g.norm()) / batch
            for (name, _), g in zip(params, param_grads, strict=True)
            if g is not None
        },
    )


def gradient_flow_figure(
    flow: GradientFlow, title: str, first: GradientFlow | None = None, first_label: str = ""
) -> Figure:
    """One curve per layer (and the input features, dashed): log ‖∂L/∂h_t‖ against time;
    ``first`` (the first measurement, usually before training) drawn faintly behind in
    the same colours, its legend entries marked with ``first_label``."""
    fig = Figure(figsize=(6.4, 4.0))  # no pyplot: no global backend or figure state
    ax = fig.subplots()
    for measured, faint in ((first, True), (flow, False)):
        if measured is None:
            continue
        seconds = np.arange(len(measured.inputs)) * measured.seconds_per_step
        curves = [(f"layer {k} h_t", c) for k, c in enumerate(measured.layers)]
        curves.append(("input x_t", measured.inputs))
        for colour, (label, curve) in enumerate(curves):
            positive = np.where(curve > 0, curve, np.nan)  # log scale: no place for a zero
            ax.plot(
                seconds,
                positive,
                "--" if label.startswith("input") else "-",
                color=f"C{colour}",
                alpha=0.3 if faint else 1.0,
                linewidth=1.0 if faint else 1.5,
                label=f"{label}, {first_label}" if faint else label,
            )
    ax.set_yscale("log")
    ax.set_xlim(0, max(len(flow.inputs) - 1, 1) * flow.seconds_per_step)  # the whole clip
    ax.set_xlabel("time t in the clip (s)")
    ax.set_ylabel("mean gradient norm ‖∂L/∂h_t‖")
    ax.set_title(title, fontsize=10)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="best", fontsize=7)
    fig.tight_layout()
    return fig


def log10_decay(curve: np.ndarray, steps: int) -> float | None:
    """log10(‖∂L/∂h_0‖ / ‖∂L/∂h_end‖): -60 means the gradient at the start is 1e-60 of
    the one at the end (in log10, because TensorBoard's float32 scalars would round such
    a ratio to 0); None where either is zero."""
    start, end = float(curve[0]), float(curve[max(steps - 1, 0)])
    return math.log10(start / end) if start > 0 and end > 0 else None


def scalar_steps(steps: int) -> list[int]:
    """The few t the scalars are logged at: start, middle and end."""
    return sorted({0, steps // 2, max(steps - 1, 0)})


class GradientFlowLogger(pl.Callback):
    """Every ``every_n_epochs`` epochs (and once before training when a sanity check ran),
    measures the gradient flow on the same ``max_clips`` clips of the first validation
    batch and logs to TensorBoard:

    - ``gradients/dL_dh``: the image, one curve per layer, log scale;
    - ``gradients/dL_dh/layer<k>/t=<t>`` and ``gradients/dL_dx/t=<t>`` at the start,
      middle and end of the clip, and ``gradients/dL_dh/layer<k>/log10_start_over_end``;
    - ``gradients/norm/<param>`` and ``weights/norm/<param>`` for every parameter of the
      encoder and head.

    Only classifiers (a task with ``pooling`` and ``head``) are measured; rank 0 does it.
    """

    def __init__(self, every_n_epochs: int = 1, max_clips: int = 16) -> None:
        check("callbacks.gradient_flow.every_n_epochs", every_n_epochs)  # the schema's rules
        check("callbacks.gradient_flow.max_clips", max_clips)
        self.every_n_epochs, self.max_clips = every_n_epochs, max_clips
        self._batch: dict[str, Tensor] | None = None
        self._first: tuple[GradientFlow, str] | None = None
        self._warned = False

    def on_validation_batch_end(
        self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0
    ) -> None:
        if self._batch is None and batch_idx == 0 and len(batch["label"]):
            n = self.max_clips
            self._batch = {k: batch[k][:n].detach().cpu() for k in ("audio", "lengths", "label")}

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._log(trainer, pl_module)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if (trainer.current_epoch + 1) % self.every_n_epochs == 0:
            self._log(trainer, pl_module)

    def _supported(self, pl_module: pl.LightningModule) -> bool:
        ok = all(hasattr(pl_module, n) for n in ("frontend", "encoder", "pooling", "head"))
        if not ok and not self._warned:
            log.warning("gradient_flow: %s is not a classifier; nothing measured", pl_module)
            self._warned = True
        return ok

    def _log(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        writer = tensorboard_writer(trainer)
        if writer is None or self._batch is None or not self._supported(pl_module):
            return
        device = pl_module.device
        # Outside inference mode, clones are ordinary tensors that autograd may save.
        with torch.inference_mode(False), torch.enable_grad():
            audio, lengths, labels = (
                self._batch[k].to(device).clone() for k in ("audio", "lengths", "label")
            )
            training = pl_module.training
            pl_module.eval()
            try:
                flow = measure(pl_module, audio, lengths, labels)
            finally:
                pl_module.train(training)
        step = trainer.global_step
        if self._first is None:
            self._first = (flow, "before training" if step == 0 else f"step {step}")
        model = getattr(pl_module, "hparams", {}).get("model", {})
        name = model.get("name") or getattr(pl_module.encoder, "cell", "encoder")
        title = f"‖∂L/∂h_t‖, {name}, step {step}"
        first, first_label = self._first
        figure = gradient_flow_figure(
            flow, title, first if first is not flow else None, first_label
        )
        writer.add_figure("gradients/dL_dh", figure, global_step=step)
        for t in scalar_steps(flow.steps):
            writer.add_scalar(f"gradients/dL_dx/t={t}", float(flow.inputs[t]), step)
            for k, curve in enumerate(flow.layers):
                writer.add_scalar(f"gradients/dL_dh/layer{k}/t={t}", float(curve[t]), step)
        for k, curve in enumerate(flow.layers):
            ratio = log10_decay(curve, flow.steps)
            if ratio is not None:
                writer.add_scalar(f"gradients/dL_dh/layer{k}/log10_start_over_end", ratio, step)
        for name, value in flow.grad_norms.items():
            writer.add_scalar(f"gradients/norm/{name}", value, step)
        for name, value in flow.weight_norms.items():
            writer.add_scalar(f"weights/norm/{name}", value, step)
