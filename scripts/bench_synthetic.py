#!/usr/bin/env python
"""Clips per second of the synthetic source in one process: per-clip paths vs the batch path.

    python scripts/bench_synthetic.py [--task dtmf] [--rounds 5] [--turn-seconds 0.5]

Iterates the train split of ``SyntheticBatches`` through a DataLoader with
``num_workers=0``, which is what one loader worker does, with one intra-op thread (as in
a worker). Three ways of making the same batches take turns, so that the load of a busy
machine falls on all of them alike:

- ``baseline``: the float64 per-clip generator of git revision ``--baseline`` (by default
  the last one before the batch path), each clip made on its own and then collated;
- ``per_clip``: today's generator, each clip made on its own (``example``) and collated;
- ``batch``: today's ``SyntheticBatches.batch``, each clip rendered into its batch row.

Prints one JSON line: the median over the rounds of clips per wall second and per CPU
second of this process, the speed-ups of ``batch`` over the others, and the load average.
"""

import argparse
import json
import os
import statistics
import subprocess
import time
import types
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from audioseq import SAMPLE_RATE
from audioseq.data.batching import Batch, collate
from audioseq.data.example import Example
from audioseq.data.sources.synthetic import SyntheticBatches
from audioseq.data.spec import LoaderSpec

#: The last revision whose synthetic source made every clip on its own in float64.
BEFORE_BATCH_PATH = "a5ca866f1cc28ee5e8a08bf61b2ea9a14449a810"
ROOT = Path(__file__).resolve().parents[1]


class PerClip(SyntheticBatches):
    """The loop before the batch path: one ``example`` per clip, then ``collate``."""

    def batch(self, indices: list[int]) -> Batch:
        return collate([self.example(i) for i in indices], pad_to=self.pad_to)


class Baseline(PerClip):
    """``PerClip`` with the generator module of another revision."""

    generator: types.ModuleType

    def example(self, index: int) -> Example:
        ((rng, label),) = self._streams([index])
        if self.corpus == "memory":
            audio = self.generator.memory_clip(rng, label, self.delay_seconds, SAMPLE_RATE)
        else:
            audio = self.generator.dtmf_clip(rng, label, self.clip_samples, SAMPLE_RATE)
        return Example(self._key(index), torch.from_numpy(audio), label)


def generator_at(revision: str) -> types.ModuleType:
    """``audioseq.data.sources.dtmf`` as it was at ``revision`` (read with ``git show``;
    before the issue-13 restructuring it was ``audioseq.data.dtmf``)."""
    for path in ("src/audioseq/data/sources/dtmf.py", "src/audioseq/data/dtmf.py"):
        shown = subprocess.run(
            ["git", "show", f"{revision}:{path}"], cwd=ROOT, capture_output=True, text=True
        )
        if shown.returncode == 0:
            break
    else:
        raise SystemExit(f"no dtmf.py at revision {revision}: {shown.stderr.strip()}")
    source = shown.stdout
    module = types.ModuleType(f"dtmf_at_{revision[:7]}")
    exec(compile(source, f"{revision[:7]}:{path}", "exec"), module.__dict__)
    return module


def turn(dataset: SyntheticBatches, seconds: float) -> tuple[float, float]:
    """(clips per wall second, clips per CPU second) over at least ``seconds`` of batches."""
    clips, wall, cpu = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - wall < seconds:
        for batch in DataLoader(dataset, batch_size=None, num_workers=0):
            clips += len(batch["label"])
            if time.perf_counter() - wall >= seconds:
                break
    return clips / (time.perf_counter() - wall), clips / (time.process_time() - cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=("dtmf", "memory"), default="dtmf")
    parser.add_argument("--clip-seconds", type=float, default=1.0, help="dtmf clips")
    parser.add_argument("--delay-seconds", type=float, default=1.0, help="memory clips")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--turn-seconds", type=float, default=0.5)
    parser.add_argument("--baseline", default=BEFORE_BATCH_PATH, help="git revision")
    args = parser.parse_args()
    torch.set_num_threads(1)

    spec = LoaderSpec(
        batch_size=args.batch_size,
        clip_seconds=args.clip_seconds if args.task == "dtmf" else None,
        train=True,
    )
    Baseline.generator = generator_at(args.baseline)
    variants = {
        name: kind("train", 16 * args.batch_size, 0, spec, args.task, args.delay_seconds)
        for name, kind in (
            ("baseline", Baseline),
            ("per_clip", PerClip),
            ("batch", SyntheticBatches),
        )
    }
    for dataset in variants.values():  # warm-up: imports, caches
        next(iter(dataset))
    wall: dict[str, list[float]] = {name: [] for name in variants}
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, dataset in variants.items():
            per_wall, per_cpu = turn(dataset, args.turn_seconds)
            wall[name].append(per_wall)
            cpu[name].append(per_cpu)

    results: dict[str, object] = {"task": args.task, "baseline": args.baseline[:7]}
    for name in variants:
        results[f"clips_per_s/{name}"] = round(statistics.median(wall[name]), 1)
        results[f"clips_per_cpu_s/{name}"] = round(statistics.median(cpu[name]), 1)
    for other in ("baseline", "per_clip"):
        for unit in ("clips_per_s", "clips_per_cpu_s"):
            ratio = results[f"{unit}/batch"] / results[f"{unit}/{other}"]
            results[f"batch_over_{other}/{unit.removeprefix('clips_')}"] = round(ratio, 2)
    results["load_average_1min"] = round(os.getloadavg()[0], 2)
    results["numpy"], results["torch"] = np.__version__, torch.__version__
    print(json.dumps(results))


if __name__ == "__main__":
    main()
