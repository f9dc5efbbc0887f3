#!/usr/bin/env python
"""GPU check: every cell trains at bf16 on the synthetic source, then on shards, and the
plain-loop ratio on the GPU; clips/s, GPU busy share and peak memory as one JSON line.

    bash scripts/gpu_check.sh          # after `make setup`; under 5 minutes on one GPU

Busy share and memory come from ``nvidia-smi`` sampled every 200 ms during each run (the
driver's own utilisation counter: the share of time a kernel was running).
"""

import json
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import torch
from bench_against_plain import against_plain, audioseq_epoch_seconds, write_corpus

TRAIN_SIZE, EPOCHS = 16000, 3


class GpuSampler:
    """``nvidia-smi`` utilisation (%) and memory used (MiB) every 200 ms, in a thread."""

    def __enter__(self) -> "GpuSampler":
        self.busy: list[float] = []
        self.memory: list[float] = []
        query = "--query-gpu=utilization.gpu,memory.used"
        self.process = subprocess.Popen(
            ["nvidia-smi", query, "--format=csv,noheader,nounits", "-lms", "200", "-i", "0"],
            stdout=subprocess.PIPE,
            text=True,
        )
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()
        return self

    def _read(self) -> None:
        for line in self.process.stdout:
            busy, memory = (float(x) for x in line.split(","))
            self.busy.append(busy)
            self.memory.append(memory)

    def __exit__(self, *_: object) -> None:
        self.process.terminate()
        self.thread.join(timeout=5)

    def summary(self, prefix: str) -> dict[str, float]:
        if not self.busy:
            return {}
        return {
            f"gpu_busy_pct/{prefix}": round(statistics.mean(self.busy), 1),
            f"peak_memory_mib/{prefix}": max(self.memory),
        }


def main() -> None:
    if not torch.cuda.is_available():
        raise SystemExit("gpu_check: no CUDA device visible to torch (nvidia-smi, drivers?)")
    figures: dict[str, float | str] = {"device": torch.cuda.get_device_name(0)}
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        root = Path(tmp)
        for cell in ("rnn", "lstm", "gru"):
            with GpuSampler() as gpu:
                seconds = audioseq_epoch_seconds(
                    root / f"synthetic_{cell}",
                    "trainer=gpu",
                    f"model={cell}",
                    f"data.train_size={TRAIN_SIZE}",
                    f"trainer.max_epochs={EPOCHS}",
                )
            figures[f"clips_per_s/synthetic/{cell}"] = round(TRAIN_SIZE / min(seconds), 1)
            figures |= gpu.summary(f"synthetic/{cell}")
        train, val = write_corpus(root / "corpus")
        from audioseq.data.shards.writer import input_entries, write_shards

        for split, manifest in (("train", train), ("val", val)):
            write_shards(input_entries(manifest), root / f"shards_{split}", 500)
        clips = sum(1 for _ in train.read_text().splitlines())
        with GpuSampler() as gpu:
            seconds = audioseq_epoch_seconds(
                root / "shards_lstm",
                "trainer=gpu",
                "data=shards",
                f"data.train_shards={root / 'shards_train'}",
                f"data.val_shards={root / 'shards_val'}",
                f"trainer.max_epochs={EPOCHS}",
            )
        figures["clips_per_s/shards/lstm"] = round(clips / min(seconds), 1)
        figures |= gpu.summary("shards/lstm")
        figures |= against_plain(["lstm"], [256], EPOCHS, 1, [train, val], device="cuda")
    print(json.dumps(figures))


if __name__ == "__main__":
    sys.exit(main())
