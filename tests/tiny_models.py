"""Small untrained classifiers for the streaming and export tests, and their checkpoints."""

from pathlib import Path

import torch
from omegaconf import OmegaConf
from processes import ROOT

from audioseq.tasks.checkpoint import TASK_KEY, task_path
from audioseq.tasks.classification import AudioClassifier

FRONTENDS = {
    "logmel": {"_target_": "audioseq.models.frontends.LogMel", "n_mels": 8},
    "mfcc": {"_target_": "audioseq.models.frontends.MFCC", "n_mels": 12, "n_mfcc": 6},
    "frames": {"_target_": "audioseq.models.frontends.Frames", "frame_samples": 160},
}
CELLS = ["rnn", "lstm", "gru"]
#: Window encoders (AR / Markov: AR with tau = 1) stream and export too, where they exist.
if (ROOT / "conf" / "model" / "ar.yaml").is_file():
    CELLS += ["ar", "markov"]
LABELS = ["a", "b", "c"]


def encoder_config(cell: str, bidirectional: bool = False, impl: str = "fused") -> dict:
    if cell in ("ar", "markov"):
        config = OmegaConf.to_container(OmegaConf.load(ROOT / "conf/model/ar.yaml"))
        tau = 1 if cell == "markov" else 4
        return {**config["encoder"], "tau": tau, "hidden_size": 6}
    return {
        "_target_": "audioseq.models.encoders.RecurrentEncoder",
        "cell": cell,
        "hidden_size": 6,
        "num_layers": 2,
        "bidirectional": bidirectional,
        "impl": impl,
    }


def make_classifier(
    frontend: str = "logmel",
    cell: str = "gru",
    normalize: str = "global",
    pooling: str = "last",
    bidirectional: bool = False,
    impl: str = "fused",
) -> AudioClassifier:
    """A small untrained classifier; ``global`` statistics estimated from random audio."""
    torch.manual_seed(0)
    model = AudioClassifier(
        features={**FRONTENDS[frontend], "normalize": normalize},
        model={
            "encoder": encoder_config(cell, bidirectional, impl),
            "pooling": pooling,
            "head_dropout": 0.1,
        },
        labels=LABELS,
        optimizer={"_target_": "torch.optim.AdamW", "_partial_": True, "lr": 1e-3},
    )
    if normalize == "global":
        audio = torch.randn(2, 8000, generator=torch.Generator().manual_seed(5))
        model.frontend.norm.accumulate(*model.frontend.raw(audio, torch.tensor([8000, 6000])))
        model.frontend.norm.finish()
    return model.eval()


def save_checkpoint(model: AudioClassifier, path: Path) -> Path:
    """What Lightning's checkpoint holds of a model, as ``load_checkpoint`` reads it."""
    torch.save(
        {
            "state_dict": model.state_dict(),
            "hyper_parameters": dict(model.hparams),
            TASK_KEY: task_path(model),
        },
        path,
    )
    return path


def signal(seconds: float = 1.3, seed: int = 1) -> torch.Tensor:
    """Noise with a silent start and a loud burst: features far from the statistics too."""
    gen = torch.Generator().manual_seed(seed)
    audio = 0.1 * torch.randn(round(seconds * 16000), generator=gen)
    audio[:2000] = 0.0
    audio[9000:11000] *= 20
    return audio
