#!/usr/bin/env python
"""Training throughput of audioseq against a hand-written PyTorch loop, side by side.

    python scripts/bench_train.py --against-plain [--cells rnn lstm gru] [--hidden 128 256]
        [--epochs 4] [--rounds 2] [--manifests TRAIN.jsonl VAL.jsonl]

(this module holds that mode of bench_train.py)

For each cell and hidden size, alternately (``--rounds`` times each, every run in a fresh
process):

(a) ``audioseq-train data=manifest model=CELL ...``, the command a user types, with every
    default: the loader (``data.cache=auto``, ``data.num_workers=auto``), callbacks,
    progress bar and TensorBoard extras;
(b) the same model (built by audioseq from the same config, so the compute is identical)
    trained by a plain loop: clips decoded once into a list of tensors, the same shift and
    gain augmentation in the loop's own process, AdamW, gradient clipping, validation
    every epoch; with glibc's malloc thresholds fixed as audioseq-train fixes them
    (``audioseq.allocator``), so that the ratio is that of the loops.

Both report the median wall time of an epoch (training and validation) after the first,
which pays for start-up (workers, the cache, feature statistics); the ratio of each side's
fastest epoch is given beside the ratio of medians: on a shared machine other programs only
ever add time, so the fastest epoch is the least disturbed one. Without ``--manifests``
a corpus of one-second 16 kHz WAV files (12 classes of noisy tone pairs) is written to a
temporary folder. Prints a Markdown table and, last, one JSON line.
"""

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

RATE = 16000
TRAIN_CLIPS, VAL_CLIPS = 2400, 600


def write_corpus(root: Path) -> tuple[Path, Path]:
    """12 classes of one-second noisy two-tone clips as WAV files, with two manifests."""
    rng = np.random.default_rng(0)
    t = np.arange(RATE) / RATE
    manifests = []
    for split, count in (("train", TRAIN_CLIPS), ("val", VAL_CLIPS)):
        lines = []
        for i in range(count):
            label = i % 12
            low, high = 300 + 60 * (label % 4), 1200 + 200 * (label // 4)
            wave = 0.2 * (np.sin(2 * np.pi * low * t) + np.sin(2 * np.pi * high * t))
            wave += 0.1 * rng.standard_normal(RATE)
            path = root / split / f"{i:05d}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(path), wave.astype(np.float32), RATE, subtype="PCM_16")
            lines.append(
                json.dumps({"audio_filepath": str(path), "duration": 1.0, "label": f"c{label}"})
            )
        manifest = root / f"{split}.jsonl"
        manifest.write_text("\n".join(lines) + "\n")
        manifests.append(manifest)
    return manifests[0], manifests[1]


def overrides(cell: str, hidden: int, device: str = "cpu") -> list[str]:
    """The runs' settings; on CUDA audioseq's trainer=gpu (bf16 autocast)."""
    gpu = ["trainer=gpu"] if device == "cuda" else []
    return [f"model={cell}", f"model.encoder.hidden_size={hidden}", *gpu]


def audioseq_epoch_seconds(run_dir: Path, *settings: str) -> list[float]:
    """Run ``audioseq-train SETTINGS`` into ``run_dir``; the wall time of each epoch after
    the first, from the times of its per-epoch validation events in TensorBoard."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    command = [sys.executable, "-m", "audioseq.cli.train", "test=false", *settings]
    command.append(f"hydra.run.dir={run_dir}")
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"audioseq-train {' '.join(settings)} failed:\n{done.stderr[-3000:]}")
    events = EventAccumulator(str(run_dir), size_guidance={"scalars": 0})
    events.Reload()
    times = [e.wall_time for e in events.Scalars("val/acc")]
    return list(np.diff(times))


def plain_epoch_seconds(
    train: Path, val: Path, cell: str, hidden: int, epochs: int, device: str = "cpu"
) -> list[float]:
    """The hand-written loop, in this process (called through ``--plain``); on CUDA with
    bf16 autocast, as audioseq's trainer=gpu."""
    from hydra import compose, initialize_config_dir

    from audioseq.cli.config_dir import config_dir
    from audioseq.cli.train import build_task

    def load(manifest: Path) -> tuple[list[torch.Tensor], list[str]]:
        records = [json.loads(line) for line in manifest.read_text().splitlines()]
        waves = [
            torch.from_numpy(sf.read(r["audio_filepath"], dtype="float32")[0]) for r in records
        ]
        return waves, [r["label"] for r in records]

    (train_waves, train_labels), (val_waves, val_labels) = load(train), load(val)
    names = sorted(set(train_labels))
    index = {name: i for i, name in enumerate(names)}
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        cfg = compose("train", ["data=manifest", "data.train_manifest=x", *overrides(cell, hidden)])
    torch.manual_seed(0)
    model = build_task(cfg, names)
    first = torch.nn.utils.rnn.pad_sequence(train_waves[:256], batch_first=True)
    with torch.no_grad():  # global feature statistics, as audioseq estimates them
        features, frames = model.frontend.raw(first, torch.full((len(first),), first.shape[1]))
        model.frontend.norm.accumulate(features, frames)
        model.frontend.norm.finish()
    settings = cfg.task.optimizer
    model.to(device)
    autocast = torch.autocast("cuda", torch.bfloat16, enabled=device == "cuda")
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
    )
    shift, gain_db = round(cfg.data.augment.time_shift_seconds * RATE), cfg.data.augment.gain_db
    batch_size = cfg.data.batch_size

    def batches(waves, labels, train_mode):
        order = torch.randperm(len(waves)) if train_mode else torch.arange(len(waves))
        for start in range(0, len(order), batch_size):
            chosen = order[start : start + batch_size].tolist()
            clips = []
            for i in chosen:
                wave = waves[i]
                if train_mode:  # a zero-filled shift and a gain, as audioseq's defaults
                    offset, moved = (
                        int(torch.randint(-shift, shift + 1, ())),
                        torch.zeros_like(wave),
                    )
                    if offset >= 0:
                        moved[offset:] = wave[: len(wave) - offset]
                    else:
                        moved[:offset] = wave[-offset:]
                    wave = moved * 10 ** (float(torch.empty(()).uniform_(-gain_db, gain_db)) / 20)
                clips.append(wave)
            lengths = torch.tensor([len(c) for c in clips])
            target = torch.tensor([index[labels[i]] for i in chosen])
            yield torch.nn.utils.rnn.pad_sequence(clips, batch_first=True), lengths, target

    seconds = []
    for _ in range(epochs):
        started = time.perf_counter()
        model.train()
        for audio, lengths, target in batches(train_waves, train_labels, True):
            audio, lengths, target = audio.to(device), lengths.to(device), target.to(device)
            with autocast:
                loss = model.loss_fn(model(audio, lengths).float(), target)
            optimizer.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
        model.eval()
        with torch.no_grad():
            correct = sum(
                int((model(a, n).argmax(-1) == y).sum())
                for a, n, y in batches(val_waves, val_labels, False)
            )
        seconds.append(time.perf_counter() - started)
    print(f"plain val acc {correct / len(val_waves):.3f}", file=sys.stderr)
    return seconds[1:]


def against_plain(
    cells: list[str],
    hiddens: list[int],
    epochs: int,
    rounds: int,
    manifests: list[Path] | None,
    device: str = "cpu",
    extra: tuple[str, ...] = (),
) -> dict:
    """Both sides for every cell and hidden size; ``extra``: more audioseq-train overrides
    (e.g. ``data.num_workers=0``). Returns the figures; prints the table."""
    results: dict[str, float] = {}
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench_plain_") as tmp:
        train, val = manifests or write_corpus(Path(tmp))
        clips = sum(1 for line in Path(train).read_text().splitlines() if line.strip())
        for cell in cells:
            for hidden in hiddens:
                ours, plain = [], []
                for r in range(rounds):
                    ours += audioseq_epoch_seconds(
                        Path(tmp) / f"run_{cell}_{hidden}_{r}",
                        "data=manifest",
                        f"data.train_manifest={train}",
                        f"data.val_manifest={val}",
                        f"trainer.max_epochs={epochs}",
                        *overrides(cell, hidden, device),
                        *extra,
                    )
                    out = subprocess.run(
                        [
                            sys.executable,
                            __file__,
                            "--plain",
                            str(train),
                            str(val),
                            cell,
                            str(hidden),
                            str(epochs),
                            device,
                        ],
                        capture_output=True,
                        text=True,
                        check=False,
                    )
                    if out.returncode:
                        raise SystemExit(f"plain loop failed:\n{out.stderr[-3000:]}")
                    plain += json.loads(out.stdout.strip().splitlines()[-1])
                a, b = statistics.median(ours), statistics.median(plain)
                fastest = min(plain) / min(ours)
                key = f"{cell}/{hidden}"
                results[f"clips_per_s/audioseq/{key}"] = round(clips / a, 1)
                results[f"clips_per_s/plain/{key}"] = round(clips / b, 1)
                results[f"ratio/{key}"] = round(b / a, 3)
                results[f"ratio_fastest/{key}"] = round(fastest, 3)
                rows.append(
                    f"| {cell} | {hidden} | {a:.2f} | {b:.2f} | {clips / a:.0f} "
                    f"| {clips / b:.0f} | {b / a:.3f} | {fastest:.3f} |"
                )
    print(
        f"{clips} training clips per epoch, {epochs} epochs per run (the first not "
        f"counted), {rounds} alternating rounds, {device}, audioseq overrides "
        f"{list(extra) or 'none'}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads\n"
    )
    print(
        "| cell | hidden | audioseq s/epoch | plain s/epoch | audioseq clips/s "
        "| plain clips/s | ratio | ratio of fastest epochs |\n|---|---|---|---|---|---|---|---|"
    )
    print("\n".join(rows))
    return results


if __name__ == "__main__" and sys.argv[1:2] == ["--plain"]:
    from audioseq.allocator import reuse_freed_memory

    reuse_freed_memory()  # as audioseq-train does: the comparison is of the loops alone
    train, val, cell, hidden, epochs, device = sys.argv[2:8]
    seconds = plain_epoch_seconds(Path(train), Path(val), cell, int(hidden), int(epochs), device)
    print(json.dumps(seconds))
