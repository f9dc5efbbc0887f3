#!/usr/bin/env python
"""Data throughput: the DataModule's train loader against plain reads of the same audio.

    python scripts/bench_data.py [--clips 20000] [--samples-per-shard 1000] [--repeats 2]

Builds a synthetic corpus of one-second 16 kHz clips as WAV files with a manifest and as
tar shards (make_shards' writer), then measures, each in a fresh process after the
files are in the page cache:

- audio seconds per wall second (and per CPU second of the process and its workers,
  which other programs on a shared machine move much less): plain ``open().read()`` of
  the files, plain soundfile decoding in a tight loop, and one training epoch of the
  manifest and shard loaders with 0, 1 and 2 workers (batches of 64, 1 s crops,
  shuffling on);
- peak RSS (the main process and the largest worker) of both loaders over the full
  corpus and over a quarter of it: a streaming loader's memory must not grow with it.

Prints a Markdown table and, last, one JSON line with every figure.
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

SAMPLE_RATE = 16000


def build_corpus(root: Path, clips: int, per_shard: int) -> dict[str, Path]:
    """WAV files, manifests (all clips, first quarter) and shards of both."""
    from audioseq.data.shard_writer import input_entries, write_shards

    rng = np.random.default_rng(0)
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
    lines = []
    for i in range(clips):
        path = root / "clips" / f"{i // 1000:03d}" / f"{i:06d}.wav"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            tone = 0.3 * np.sin(2 * np.pi * (200 + 20 * (i % 10)) * t)
            sf.write(str(path), tone + 0.05 * rng.standard_normal(SAMPLE_RATE), SAMPLE_RATE)
        lines.append(json.dumps({"audio_filepath": str(path), "duration": 1.0, "label": i % 10}))
    paths = {}
    for name, count in (("full", clips), ("quarter", clips // 4)):
        manifest = root / f"{name}.jsonl"
        manifest.write_text("\n".join(lines[:count]) + "\n")
        shards = root / f"shards_{name}"
        if not (shards / "index.json").exists():
            write_shards(input_entries(manifest), shards, per_shard)
        paths[f"manifest/{name}"], paths[f"shards/{name}"] = manifest, shards
    return paths


def peak_rss_mb() -> tuple[float, float]:
    """Peak resident memory of this process and of its largest finished child (MiB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return round(own, 1), round(child, 1)


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (the loader's workers): unlike
    wall time, hardly moved by other programs competing for the cores."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure(kind: str, source: str, workers: int, batch_size: int) -> dict:
    """One measurement in this (fresh) process: audio seconds delivered per wall second."""
    if kind in ("read", "decode"):
        files = [
            json.loads(line)["audio_filepath"] for line in Path(source).read_text().splitlines()
        ]
        started, cpu = time.perf_counter(), cpu_seconds()
        if kind == "read":
            seconds = sum(len(Path(f).read_bytes()) for f in files) / (2 * SAMPLE_RATE)
        else:
            seconds = sum(len(sf.read(f, dtype="float32")[0]) for f in files) / SAMPLE_RATE
    else:
        from audioseq.data.datamodule import AudioDataModule

        options = {"train_manifest": source} if kind == "manifest" else {"train_shards": source}
        data = AudioDataModule(
            source=kind,
            batch_size=batch_size,
            num_workers=workers,
            persistent_workers=False,
            clip_seconds=1.0,
            **options,
        )
        loader = data.train_dataloader()
        started, cpu = time.perf_counter(), cpu_seconds()
        seconds = sum(int(batch["lengths"].sum()) for batch in loader) / SAMPLE_RATE
    wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu
    own, child = peak_rss_mb()
    return {"audio_s": seconds, "wall_s": wall, "cpu_s": cpu, "rss_mb": own, "worker_rss_mb": child}


def run_measure(kind: str, source: Path, workers: int, batch_size: int, repeats: int) -> dict:
    """The fastest of ``repeats`` runs, each in a fresh process (the machine is shared:
    the best run is the one least disturbed); RSS is the largest seen."""
    runs = []
    for _ in range(repeats):
        cmd = [sys.executable, __file__, "--measure", kind, str(source), str(workers)]
        cmd += ["--batch-size", str(batch_size)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if out.returncode:
            raise SystemExit(f"{kind} x{workers} failed:\n{out.stderr[-3000:]}")
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    best = min(runs, key=lambda r: r["wall_s"])
    return {
        **best,
        "rss_mb": max(r["rss_mb"] for r in runs),
        "worker_rss_mb": max(r["worker_rss_mb"] for r in runs),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=20000)
    parser.add_argument("--samples-per-shard", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2, help="runs per row; the best counts")
    parser.add_argument("--keep", type=Path, help="build (or reuse) the corpus here")
    parser.add_argument("--measure", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        kind, source, workers = args.measure
        print(json.dumps(measure(kind, source, int(workers), args.batch_size)))
        return

    load_before = os.getloadavg()[0]  # other programs on the machine skew wall times
    with tempfile.TemporaryDirectory(prefix="bench_data_") as tmp:
        root = args.keep or Path(tmp)
        started = time.perf_counter()
        paths = build_corpus(root, args.clips, args.samples_per_shard)
        build_s = time.perf_counter() - started
        files = [
            json.loads(x)["audio_filepath"] for x in paths["manifest/full"].read_text().splitlines()
        ]
        for f in files:  # warm the page cache: every row then reads from memory
            Path(f).read_bytes()
        for shard in paths["shards/full"].glob("*.tar"):
            shard.read_bytes()

        repeats = args.repeats
        manifest = paths["manifest/full"]
        rows = [("plain read (bytes)", "-", run_measure("read", manifest, 0, 0, repeats))]
        rows.append(("soundfile decode", "-", run_measure("decode", manifest, 0, 0, repeats)))
        for kind in ("manifest", "shards"):
            for workers in (0, 1, 2):
                result = run_measure(kind, paths[f"{kind}/full"], workers, args.batch_size, repeats)
                rows.append((f"{kind} loader", str(workers), result))
        memory = {
            kind: run_measure(kind, paths[f"{kind}/quarter"], 2, args.batch_size, 1)
            for kind in ("manifest", "shards")
        }
    decode = rows[1][2]["audio_s"] / rows[1][2]["wall_s"]
    decode_cpu = rows[1][2]["audio_s"] / rows[1][2]["cpu_s"]
    print(
        f"{args.clips} one-second clips, {platform.processor() or platform.machine()}, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; corpus built in "
        f"{build_s:.0f} s; load average {load_before:.1f} before, "
        f"{os.getloadavg()[0]:.1f} after\n"
    )
    print(
        "| reader | workers | audio s / wall s | vs decode | audio s / CPU s | vs decode "
        "| peak RSS MiB (main / worker) |"
    )
    print("|---|---|---|---|---|---|---|")
    figures: dict[str, float] = {}
    for name, workers, r in rows:
        rate, per_cpu = r["audio_s"] / r["wall_s"], r["audio_s"] / r["cpu_s"]
        rss = (
            f"{r['rss_mb']:.0f} / {r['worker_rss_mb']:.0f}"
            if workers != "-"
            else f"{r['rss_mb']:.0f}"
        )
        print(
            f"| {name} | {workers} | {rate:.0f} | {rate / decode:.2f}x | {per_cpu:.0f} "
            f"| {per_cpu / decode_cpu:.2f}x | {rss} |"
        )
        key = name.split()[0] if workers == "-" else f"{name.split()[0]}/workers={workers}"
        figures[f"audio_s_per_s/{key}"] = round(rate, 1)
        figures[f"audio_s_per_cpu_s/{key}"] = round(per_cpu, 1)
    print(f"\n| loader (2 workers) | peak RSS MiB, {args.clips // 4} clips | {args.clips} clips |")
    print("|---|---|---|")
    for kind, small in memory.items():
        big = next(r for n, w, r in rows if n == f"{kind} loader" and w == "2")
        print(
            f"| {kind} | {small['rss_mb']:.0f} / {small['worker_rss_mb']:.0f} "
            f"| {big['rss_mb']:.0f} / {big['worker_rss_mb']:.0f} |"
        )
        figures[f"rss_mb/{kind}/{args.clips // 4}"] = small["rss_mb"] + small["worker_rss_mb"]
        figures[f"rss_mb/{kind}/{args.clips}"] = big["rss_mb"] + big["worker_rss_mb"]
    figures["clips"] = args.clips
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
