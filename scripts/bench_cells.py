#!/usr/bin/env python
"""How much slower the cells written from the equations are than torch's fused ones.

    python scripts/bench_cells.py [--batch-size 64] [--frames 98] [--repeats 5] [--variable]

Forward + backward of the encoder alone (default size: 2 layers x 128 units, 40 log-mel
features; 98 frames = one second of audio), for ``impl=fused``, ``impl=scratch``, and
scratch with its time loop compiled by ``torch.jit.script``. It counts CPU time of one
intra-op thread (``--threads``), which other processes on a busy machine do not inflate
the way they inflate wall time; the variants run interleaved and the median of
``--repeats`` is reported. Prints a Markdown table and, last, one JSON line.
"""

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable

import torch

from audioseq.models import cells
from audioseq.models.encoders import RecurrentEncoder

FEATURES = 40


def step_seconds(encoder: RecurrentEncoder, x: torch.Tensor, lengths: torch.Tensor) -> float:
    """CPU seconds of one forward + backward pass."""
    started = time.process_time()
    outputs, _ = encoder(x, lengths)
    outputs.sum().backward()
    return time.process_time() - started


def with_scan(scan: Callable, run: Callable[[], float]) -> float:
    """``run()`` with ``cells.scan`` replaced by ``scan`` (the jit-scripted loop)."""
    plain, cells.scan = cells.scan, scan
    try:
        return run()
    finally:
        cells.scan = plain


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--frames", type=int, default=98)
    parser.add_argument("--hidden-size", type=int, default=128)
    parser.add_argument("--num-layers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument(
        "--variable", action="store_true", help="lengths from half to all frames (padded batch)"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    x = torch.randn(args.batch_size, args.frames, FEATURES)
    lengths = torch.full((args.batch_size,), args.frames)
    if args.variable:
        lengths = torch.randint(args.frames // 2, args.frames + 1, (args.batch_size,))
        lengths[0] = args.frames
    scripted = torch.jit.script(cells.scan)
    results, rows = {}, []
    for cell in ("rnn", "lstm", "gru"):
        options = dict(hidden_size=args.hidden_size, num_layers=args.num_layers)
        fused = RecurrentEncoder(FEATURES, cell, impl="fused", **options)
        scratch = RecurrentEncoder(FEATURES, cell, impl="scratch", **options)
        scratch.load_state_dict(fused.state_dict())
        variants: dict[str, Callable[[], float]] = {
            "fused": lambda f=fused: step_seconds(f, x, lengths),
            "scratch": lambda s=scratch: step_seconds(s, x, lengths),
            "scratch_jit": lambda s=scratch: with_scan(
                scripted, lambda: step_seconds(s, x, lengths)
            ),
        }
        times: dict[str, list[float]] = {name: [] for name in variants}
        for repeat in range(args.repeats + 2):  # two warm-up rounds (jit profiles twice)
            for name, run in variants.items():
                seconds = run()
                if repeat >= 2:
                    times[name].append(seconds)
        ms = {name: 1000 * statistics.median(values) for name, values in times.items()}
        for name, value in ms.items():
            results[f"{cell}/{name}_ms"] = round(value, 1)
        results[f"{cell}/scratch_slowdown"] = round(ms["scratch"] / ms["fused"], 2)
        rows.append(
            f"| {cell} | {ms['fused']:.0f} | {ms['scratch']:.0f} | {ms['scratch_jit']:.0f} "
            f"| {ms['scratch'] / ms['fused']:.2f}x | {ms['scratch_jit'] / ms['fused']:.2f}x |"
        )
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {platform.processor()}")
    kind = "variable lengths (packed)" if args.variable else "equal lengths"
    print(
        f"batch {args.batch_size} x {args.frames} frames x {FEATURES} features, {kind}, "
        f"{args.num_layers} x {args.hidden_size} units, median of {args.repeats}\n"
    )
    print("CPU ms per forward + backward pass:\n")
    print("| cell | fused | scratch | scratch + jit | scratch / fused | jit / fused |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
