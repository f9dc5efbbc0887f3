"""A plain PyTorch training loop on any manifests: the yardstick audioseq's recipes must beat.

About a hundred lines of what a careful engineer writes by hand, with none of audioseq's
code: clips decoded once into memory (soundfile, resampled to 16 kHz mono), 40 log-mel
bands of 25 ms every 10 ms, each utterance normalised by its own statistics, a 2-layer
LSTM of 128 units, mean pooling over the valid frames, Adam at 1e-3, batches of 64, and
training augmentation of a random shift of up to +-100 ms and a random gain of +-6 dB.
The test accuracy is that of the epoch with the best validation accuracy.

    python scripts/plain_baseline.py TRAIN.jsonl VAL.jsonl TEST.jsonl --epochs 20 --seed 0

prints one JSON line: {"val_acc_best": ..., "test_acc": ..., "seconds_per_epoch": ...}.
"""

import argparse
import json
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio
from torch import nn

RATE = 16000


def load(manifest: Path) -> list[tuple[torch.Tensor, str]]:
    """(16 kHz mono float32 waveform, label) for every line of a JSON Lines manifest."""
    clips = []
    for line in manifest.read_text().splitlines():
        if not line.strip():
            continue
        record = json.loads(line)
        path = Path(record["audio_filepath"])
        path = path if path.is_absolute() else manifest.parent / path
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
        wave = torch.from_numpy(audio.mean(axis=1))
        if rate != RATE:
            wave = torchaudio.functional.resample(wave, rate, RATE)
        clips.append((wave, record["label"]))
    return clips


def augment(wave: torch.Tensor, rng: np.random.Generator) -> torch.Tensor:
    """A zero-filled shift of up to +-100 ms and a gain of +-6 dB."""
    shift = int(rng.integers(-RATE // 10, RATE // 10 + 1))
    wave = torch.roll(wave, shift)
    if shift > 0:
        wave[:shift] = 0
    elif shift < 0:
        wave[shift:] = 0
    return wave * 10 ** (rng.uniform(-6, 6) / 20)


class Model(nn.Module):
    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(RATE, n_fft=400, hop_length=160, n_mels=40)
        self.lstm = nn.LSTM(40, 128, num_layers=2, batch_first=True)
        self.head = nn.Linear(128, num_classes)

    def forward(self, audio: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        feats = torch.log(self.mel(audio) + 1e-6).transpose(1, 2)  # [B, F, 40]
        frames = (lengths // 160 + 1).clamp(max=feats.shape[1])
        mask = (torch.arange(feats.shape[1])[None] < frames[:, None]).unsqueeze(-1).float()
        mean = (feats * mask).sum(1, keepdim=True) / frames[:, None, None]
        std = (((feats - mean) * mask) ** 2).sum(1, keepdim=True) / frames[:, None, None]
        feats = (feats - mean) / (std.sqrt() + 1e-5) * mask
        packed = nn.utils.rnn.pack_padded_sequence(feats, frames, True, enforce_sorted=False)
        out, _ = nn.utils.rnn.pad_packed_sequence(self.lstm(packed)[0], batch_first=True)
        pooled = (out * mask[:, : out.shape[1]]).sum(1) / frames[:, None]
        return self.head(pooled)


def batches(clips, labels, size, rng=None):
    """Padded (audio, lengths, targets) batches; shuffled and augmented when ``rng`` is given."""
    order = rng.permutation(len(clips)) if rng is not None else np.arange(len(clips))
    for start in range(0, len(order), size):
        chosen = [clips[i] for i in order[start : start + size]]
        waves = [augment(w.clone(), rng) if rng is not None else w for w, _ in chosen]
        lengths = torch.tensor([len(w) for w in waves])
        audio = nn.utils.rnn.pad_sequence(waves, batch_first=True)
        yield audio, lengths, torch.tensor([labels[label] for _, label in chosen])


@torch.no_grad()
def accuracy(model: Model, clips, labels) -> float:
    model.eval()
    correct = sum(
        int((model(audio, lengths).argmax(-1) == target).sum())
        for audio, lengths, target in batches(clips, labels, 256)
    )
    model.train()
    return correct / len(clips)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for split in ("train", "val", "test"):
        parser.add_argument(split, type=Path, help=f"{split} manifest (JSON Lines)")
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    train, val, test = (load(m) for m in (args.train, args.val, args.test))
    labels = {label: i for i, label in enumerate(sorted({label for _, label in train}))}
    model = Model(len(labels))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    best, test_at_best, started = -1.0, 0.0, time.perf_counter()
    for _ in range(args.epochs):
        for audio, lengths, target in batches(train, labels, args.batch_size, rng):
            loss = nn.functional.cross_entropy(model(audio, lengths), target)
            optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
        val_acc = accuracy(model, val, labels)
        if val_acc > best:
            best, test_at_best = val_acc, accuracy(model, test, labels)
    seconds = time.perf_counter() - started
    result = {"val_acc_best": best, "test_acc": test_at_best, "epochs": args.epochs}
    result |= {"seed": args.seed, "seconds_per_epoch": seconds / args.epochs}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
