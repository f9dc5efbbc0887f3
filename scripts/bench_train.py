#!/usr/bin/env python
"""Training throughput of each cell, and of the synthetic loader, on this machine.

    python scripts/bench_train.py [--steps 20] [--batch-size 64]
    python scripts/bench_train.py --against-plain [--cells ...] [--hidden ...] [--manifests ...]

Prints a Markdown table (clips and audio seconds per wall second) and, last, one JSON
line with the figures. All numbers of one run come from the same machine state, so
compare them as ratios; absolute numbers move with the machine's load.
"""

import argparse
import gc
import json
import platform
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_dir

from audioseq.cli.config_dir import config_dir
from audioseq.cli.train import build_task
from audioseq.data.datamodule import AudioDataModule


def time_steps(model: torch.nn.Module, batch: dict, steps: int) -> float:
    """Seconds per optimisation step (forward, backward, AdamW), after two warm-up steps."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for step in range(steps + 2):
        if step == 2:
            started = time.perf_counter()
        loss = model.loss_fn(model(batch["audio"], batch["lengths"]), batch["label"])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return (time.perf_counter() - started) / steps


def time_loader(workers: int, batches: int, batch_size: int) -> float:
    """Clips per second delivered by the synthetic train loader, once it delivers: the
    clock starts at the first batch, after the workers' start-up."""
    dm = AudioDataModule(
        train_size=(batches + 1) * batch_size, batch_size=batch_size, num_workers=workers
    )
    batches_of = iter(dm.train_dataloader())
    next(batches_of)
    started = time.perf_counter()
    clips = sum(len(batch["label"]) for batch in batches_of)
    seconds = time.perf_counter() - started
    del batches_of, dm
    gc.collect()  # the workers go now, not in the garbage a later loader's workers inherit
    return clips / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument(
        "--against-plain",
        action="store_true",
        help="audioseq-train against a hand-written loop (scripts/bench_against_plain.py)",
    )
    parser.add_argument("--cells", nargs="+", default=["rnn", "lstm", "gru"])
    parser.add_argument("--hidden", nargs="+", type=int, default=[128, 256])
    parser.add_argument("--epochs", type=int, default=4, help="per run; the first not counted")
    parser.add_argument("--rounds", type=int, default=2, help="alternating runs of each side")
    parser.add_argument("--manifests", nargs=2, type=Path, help="TRAIN VAL (default: a corpus)")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument(
        "--audioseq-overrides", nargs="*", default=[], help="more overrides for audioseq-train"
    )
    args = parser.parse_args()
    if args.against_plain:
        from bench_against_plain import against_plain

        figures = against_plain(
            args.cells,
            args.hidden,
            args.epochs,
            args.rounds,
            args.manifests,
            args.device,
            tuple(args.audioseq_overrides),
        )
        print(json.dumps(figures))
        return
    # Loaders first: forking workers after the training steps have started torch's
    # OpenMP pool measures the fork's side effects, not the loader.
    results = {
        f"loader/workers={workers}": round(time_loader(workers, 200, args.batch_size), 1)
        for workers in (0, 1, 2)
    }
    loader = AudioDataModule(train_size=args.batch_size, num_workers=0).train_dataloader()
    batch = next(iter(loader))
    rows = []
    with initialize_config_dir(config_dir=config_dir(), version_base="1.3"):
        for cell in ("rnn", "lstm", "gru"):
            for features in ("logmel", "frames"):
                cfg = compose(
                    "train",
                    [f"model={cell}", f"features={features}", "features.normalize=utterance"],
                )
                model = build_task(cfg, labels=[str(i) for i in range(12)])
                seconds = time_steps(model, batch, args.steps)
                clips = args.batch_size / seconds
                key = f"train/{cell}/{features}"
                results[key] = round(clips, 1)
                rows.append(f"| {cell} | {features} | {seconds * 1000:.0f} | {clips:.0f} |")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor()}")
    print(f"batch {args.batch_size} one-second clips, default model sizes (2 x 128)\n")
    print("| cell | features | ms / step | clips / s (= audio s / s) |\n|---|---|---|---|")
    print("\n".join(rows))
    print("\n| loader workers | clips / s |\n|---|---|")
    for workers in (0, 1, 2):
        print(f"| {workers} | {results[f'loader/workers={workers}']:.0f} |")
    print(json.dumps(results))


if __name__ == "__main__":
    main()
