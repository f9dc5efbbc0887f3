#!/usr/bin/env python
"""Data throughput: the DataModule's train loader against plain reads of the same audio.

    python scripts/bench_data.py [--clips 20000] [--samples-per-shard 1000] [--repeats 2]

Builds a synthetic corpus of one-second 16 kHz clips as WAV files with a manifest and as
tar shards (make_shards' writer), then measures, each in a fresh process after the
files are in the page cache:

- audio seconds per wall second (and per CPU second of the process and its workers,
  which other programs on a shared machine move much less): plain ``open().read()`` of
  the files, plain soundfile decoding in a tight loop, and the second training epoch
  (persistent workers started, as in training) of the manifest and shard loaders with
  0, 1 and 2 workers (batches of 64, 1 s crops, shuffling on), of the manifest loader
  with its clips cached in memory (``data.cache=memory``), and cold: decoding, manifest
  and shards with the files dropped from the page cache first;
- peak RSS (the main process and the largest worker) of both loaders over the full
  corpus and over a quarter of it: a streaming loader's memory must not grow with it.

Prints a Markdown table and, last, one JSON line with every figure. With ``--shards-ab
ROUNDS`` only shards against files, warm, alternating in one process (``shards_ab``).
"""

import argparse
import gc
import json
import os
import platform
import resource
import statistics
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
    from audioseq.data.shards.writer import input_entries, write_shards

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


def drop_from_page_cache(paths: list[Path]) -> None:
    """Ask the kernel to forget the files' cached pages (``posix_fadvise(DONTNEED)``: no
    root needed), so the next read comes from the disk: a cold start."""
    for path in paths:
        with open(path, "rb") as f:
            os.posix_fadvise(f.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def peak_rss_mb() -> tuple[float, float]:
    """Peak resident memory of this process and of its largest finished child (MiB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    child = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return round(own, 1), round(child, 1)


def cpu_seconds() -> float:
    """CPU time of this process and its children, live ones (persistent loader workers,
    from /proc) and finished ones: unlike wall time, hardly moved by other programs
    competing for the cores."""
    tick = os.sysconf("SC_CLK_TCK")

    def of(pid: int) -> float:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / tick

    live = [
        int(p)
        for t in Path("/proc/self/task").iterdir()
        for p in (t / "children").read_text().split()
    ]
    own, finished = of(os.getpid()), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own + sum(of(p) for p in live) + finished.ru_utime + finished.ru_stime


def _elapsed_cpu(since: float) -> float:
    """CPU seconds since ``since``, at least one clock tick (/proc counts in ticks: a tiny
    corpus can take less than one)."""
    return max(cpu_seconds() - since, 1 / os.sysconf("SC_CLK_TCK"))


def corpus_files(kind: str, source: str) -> list[Path]:
    """The files a reader of ``source`` opens: the audio files of a manifest, or shards."""
    if kind == "shards":
        return sorted(Path(source).glob("*.tar"))
    return [Path(json.loads(x)["audio_filepath"]) for x in Path(source).read_text().splitlines()]


def measure(
    kind: str, source: str, workers: int, batch_size: int, cache: str = "none", cold: bool = False
) -> dict:
    """One measurement in this (fresh) process: audio seconds delivered per wall and per
    CPU second. Loaders run one epoch first (workers started, ``data.cache`` filled) and
    the second is measured, as in training; ``cold``: the corpus's files are dropped from
    the page cache just before the measured pass."""
    files = corpus_files(kind, source)
    if kind in ("read", "decode"):
        if cold:
            drop_from_page_cache(files)
        started, cpu = time.perf_counter(), cpu_seconds()
        if kind == "read":
            seconds = sum(len(f.read_bytes()) for f in files) / (2 * SAMPLE_RATE)
        else:
            seconds = sum(len(sf.read(f, dtype="float32")[0]) for f in files) / SAMPLE_RATE
        wall, cpu = time.perf_counter() - started, _elapsed_cpu(cpu)
    else:
        from audioseq.data.datamodule import AudioDataModule

        options = {"train_manifest": source} if kind == "manifest" else {"train_shards": source}
        data = AudioDataModule(
            source=kind,
            batch_size=batch_size,
            num_workers=workers,
            persistent_workers=True,
            clip_seconds=1.0,
            cache=cache,
            **options,
        )
        loader = data.train_dataloader()
        sum(1 for _ in loader)  # the first epoch: workers start, the cache fills
        if cold:
            drop_from_page_cache(files)
        started, cpu = time.perf_counter(), cpu_seconds()
        seconds = sum(int(batch["lengths"].sum()) for batch in loader) / SAMPLE_RATE
        wall, cpu = time.perf_counter() - started, _elapsed_cpu(cpu)
        del loader, data  # the workers exit: their peak RSS becomes readable
        gc.collect()
    own, child = peak_rss_mb()
    return {"audio_s": seconds, "wall_s": wall, "cpu_s": cpu, "rss_mb": own, "worker_rss_mb": child}


def run_measure(
    kind: str,
    source: Path,
    workers: int,
    batch_size: int,
    repeats: int,
    cold: bool = False,
    cache: str = "none",
) -> dict:
    """The fastest of ``repeats`` runs, each in a fresh process (the machine is shared:
    the best run is the one least disturbed); RSS is the largest seen."""
    runs = []
    for _ in range(repeats):
        cmd = [sys.executable, __file__, "--measure", kind, str(source), str(workers)]
        cmd += ["--batch-size", str(batch_size), "--cache", cache] + (["--cold"] if cold else [])
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


def shards_ab(paths: dict[str, Path], batch_size: int, rounds: int) -> dict[str, float]:
    """Shards against files, warm, in one process: epochs of the manifest loader, of the
    shard loader with the index's sample table and of the shard loader without it (each
    sample read whole by its byte range), alternated ``rounds`` times with 0 and with 2
    workers; the median audio seconds per CPU second of each. Alternating in one process
    makes the machine's drift hit all three alike."""
    from audioseq.data.datamodule import AudioDataModule

    figures = {}
    for workers in (0, 2):
        loaders = {}
        for name in ("manifest", "shards_table", "shards_range"):
            kind = name.split("_")[0]
            source = {"train_manifest": str(paths["manifest/full"])}
            if kind == "shards":
                source = {"train_shards": str(paths["shards/full"])}
            loader = AudioDataModule(
                source=kind,
                batch_size=batch_size,
                num_workers=workers,
                persistent_workers=workers > 0,
                clip_seconds=1.0,
                cache="none",
                **source,
            ).train_dataloader()
            if name == "shards_range":
                loader.dataset.tables = [None] * len(loader.dataset.tables)
            sum(1 for _ in loader)  # workers started
            loaders[name] = loader
        rates: dict[str, list[float]] = {name: [] for name in loaders}
        for _ in range(rounds):
            for name, loader in loaders.items():
                cpu = cpu_seconds()
                seconds = sum(int(batch["lengths"].sum()) for batch in loader) / SAMPLE_RATE
                rates[name].append(seconds / _elapsed_cpu(cpu))
        for name, values in rates.items():
            figures[f"audio_s_per_cpu_s/{name}/workers={workers}"] = round(
                statistics.median(values), 1
            )
        for name in ("shards_table", "shards_range"):
            ratio = statistics.median(
                a / b for a, b in zip(rates[name], rates["manifest"], strict=True)
            )
            figures[f"ratio/{name}_vs_manifest/workers={workers}"] = round(ratio, 3)
        del loaders
        gc.collect()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=20000)
    parser.add_argument("--samples-per-shard", type=int, default=1000)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=2, help="runs per row; the best counts")
    parser.add_argument("--keep", type=Path, help="build (or reuse) the corpus here")
    parser.add_argument(
        "--shards-ab",
        type=int,
        metavar="ROUNDS",
        help="only shards against files, warm: alternating epochs in one process",
    )
    parser.add_argument("--measure", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--cache", default="none", help=argparse.SUPPRESS)
    parser.add_argument("--cold", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        from audioseq.allocator import reuse_freed_memory

        reuse_freed_memory()  # as the train, eval and predict commands do, for every row
        kind, source, workers = args.measure
        result = measure(kind, source, int(workers), args.batch_size, args.cache, args.cold)
        print(json.dumps(result))
        return

    load_before = os.getloadavg()[0]  # other programs on the machine skew wall times
    with tempfile.TemporaryDirectory(prefix="bench_data_") as tmp:
        root = args.keep or Path(tmp)
        started = time.perf_counter()
        paths = build_corpus(root, args.clips, args.samples_per_shard)
        build_s = time.perf_counter() - started
        # Warm the page cache: every row but the cold ones then reads from memory.
        for kind in ("manifest", "shards"):
            for path in corpus_files(kind, str(paths[f"{kind}/full"])):
                path.read_bytes()
        if args.shards_ab:
            print(json.dumps(shards_ab(paths, args.batch_size, args.shards_ab)))
            return

        repeats = args.repeats
        manifest = paths["manifest/full"]
        rows = [("plain read (bytes)", "-", run_measure("read", manifest, 0, 0, repeats))]
        rows.append(("soundfile decode", "-", run_measure("decode", manifest, 0, 0, repeats)))
        for kind in ("manifest", "shards"):
            for workers in (0, 1, 2):
                result = run_measure(kind, paths[f"{kind}/full"], workers, args.batch_size, repeats)
                rows.append((f"{kind} loader", str(workers), result))
        for workers in (0, 2):  # the decoded clips in memory (data.cache): the second epoch
            result = run_measure(
                "manifest", manifest, workers, args.batch_size, repeats, cache="memory"
            )
            rows.append(("manifest loader, cached", str(workers), result))
        # Cold: the files dropped from the page cache before the measured pass (as after a
        # reboot, or for a corpus larger than the memory).
        rows.append(("soundfile decode, cold", "-", run_measure(
            "decode", manifest, 0, 0, repeats, cold=True)))  # fmt: skip
        for kind in ("manifest", "shards"):
            result = run_measure(kind, paths[f"{kind}/full"], 2, args.batch_size, repeats, True)
            rows.append((f"{kind} loader, cold", "2", result))
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
        slug = name.replace(" loader", "").replace(", ", "_").replace(" ", "_")
        slug = slug.replace("plain_read_(bytes)", "plain").replace("soundfile_decode", "soundfile")
        key = slug if workers == "-" else f"{slug}/workers={workers}"
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
