#!/usr/bin/env python
"""Streaming real-time factor and per-chunk latency of each cell on this CPU.

    python scripts/bench_stream.py [--seconds 10] [--chunks 10,20,100] [--threads 1]

The default model size (logmel, 2 layers x 128 units, last pooling, 12 classes) streams
``--seconds`` of noise one chunk at a time: through the PyTorch modules (``eager``,
what audioseq-stream runs), and for chunks that are a multiple of the hop through the
exported TorchScript graph and, when installed, ONNX Runtime. Latency is the wall time
from a chunk's samples to its frames' posteriors; the real-time factor is the total of
those times over the audio's duration (below 1: faster than real time). Prints a Markdown
table and, last, one JSON line.
"""

import argparse
import json
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from audioseq.inference.export import Exported, export_model, onnxruntime_available
from audioseq.inference.streaming import StreamingClassifier
from audioseq.tasks.classification import AudioClassifier

SAMPLE_RATE = 16_000


def build(cell: str, hidden: int, layers: int) -> AudioClassifier:
    """An untrained model of the default size; speed does not depend on the weights."""
    torch.manual_seed(0)
    model = AudioClassifier(
        features={"_target_": "audioseq.models.frontends.LogMel", "normalize": "global"},
        model={
            "encoder": {
                "_target_": "audioseq.models.encoders.RecurrentEncoder",
                "cell": cell,
                "hidden_size": hidden,
                "num_layers": layers,
            },
            "pooling": "last",
        },
        labels=[str(k) for k in range(12)],
        optimizer={"_target_": "torch.optim.AdamW", "_partial_": True},
    )
    audio = 0.1 * torch.randn(4, 16_000)
    model.frontend.norm.accumulate(*model.frontend.raw(audio, torch.full((4,), 16_000)))
    model.frontend.norm.finish()
    return model.eval()


def measure(step: Callable[[torch.Tensor], None], audio: torch.Tensor, size: int) -> dict:
    """Per-chunk wall times of ``step`` over ``audio`` cut into chunks of ``size``."""
    times = []
    for start in range(0, audio.shape[-1] - size + 1, size):
        chunk = audio[..., start : start + size]
        began = time.perf_counter()
        step(chunk)
        times.append(time.perf_counter() - began)
    ordered = sorted(times)
    return {
        "rtf": sum(times) / (len(times) * size / SAMPLE_RATE),
        "mean_ms": 1000 * statistics.fmean(times),
        "p95_ms": 1000 * ordered[int(0.95 * (len(ordered) - 1))],
        "max_ms": 1000 * ordered[-1],
    }


def eager(model: AudioClassifier) -> tuple[Callable, Callable]:
    streamer = StreamingClassifier(model)

    def step(chunk: torch.Tensor) -> None:
        streamer.process(chunk).softmax(-1)

    return step, streamer.reset


def exported(path: Path, manifest: dict) -> tuple[Callable, Callable]:
    graph = Exported(path)
    stream = manifest["stream"]
    holder: dict[str, list[torch.Tensor]] = {}

    def reset() -> None:
        holder["state"] = [torch.zeros(1, stream["overlap_samples"])] + [
            torch.zeros(e["shape"]) for e in stream["state"][1:]
        ]

    def step(chunk: torch.Tensor) -> None:
        logits, *holder["state"] = graph(chunk[None], *holder["state"])
        logits.softmax(-1)

    reset()
    return step, reset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--chunks", default="10,20,100", help="chunk sizes in ms")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=2)
    parser.add_argument("--cells", default="rnn,lstm,gru")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    audio = 0.1 * torch.randn(round(args.seconds * SAMPLE_RATE))
    warmup = audio[:SAMPLE_RATE]
    print(f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
          f"{args.threads} thread(s), {args.seconds:g} s of audio per row")  # fmt: skip
    print("\n| cell | engine | chunk ms | real-time factor | latency mean ms | p95 ms | max ms |")
    print("|---|---|---|---|---|---|---|")
    results: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for cell in args.cells.split(","):
            model = build(cell, args.hidden, args.layers)
            for chunk_ms in (float(c) for c in args.chunks.split(",")):
                size = round(chunk_ms * SAMPLE_RATE / 1000)
                engines = {"eager": eager(model)}
                if size % model.frontend.hop_length == 0:
                    for fmt in ("torchscript", "onnx"):
                        if fmt == "onnx" and not onnxruntime_available():
                            continue
                        folder = Path(tmp) / f"{cell}-{size}-{fmt}"
                        manifest = export_model(model, fmt, folder, size, check=False)
                        path = folder / manifest["stream"]["file"]
                        engine = "onnxruntime" if fmt == "onnx" else fmt
                        engines[engine] = exported(path, manifest)
                for engine, (step, reset) in engines.items():
                    measure(step, warmup, size)
                    reset()
                    row = measure(step, audio, size)
                    times = f"{row['mean_ms']:.2f} | {row['p95_ms']:.2f} | {row['max_ms']:.2f}"
                    print(f"| {cell} | {engine} | {chunk_ms:g} | {row['rtf']:.4f} | {times} |")
                    key = f"stream/{cell}/{engine}/{chunk_ms:g}ms"
                    results[f"{key}/rtf"] = round(row["rtf"], 5)
                    results[f"{key}/latency_ms"] = round(row["mean_ms"], 3)
                    results[f"{key}/p95_ms"] = round(row["p95_ms"], 3)
    print()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
