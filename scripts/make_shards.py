#!/usr/bin/env python
"""Turn a manifest (.jsonl) or a class-per-folder tree into WebDataset tar shards.

    python scripts/make_shards.py train.jsonl data/train --samples-per-shard 1000 [--flac]

Writes OUT_DIR/<name>-000000.tar, ... (equal sample counts; the last may hold fewer),
16 kHz mono 16-bit audio with a JSON sidecar per sample, and OUT_DIR/index.json with the
counts, durations and labels; then `data=shards data.train_shards=OUT_DIR` trains on it.
"""

import argparse
import sys

from audioseq.data.shards.writer import input_entries, write_shards
from audioseq.errors import AudioseqError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("input", help="a .jsonl manifest or a folder with one sub-folder per class")
    parser.add_argument("out_dir", help="where the shards and index.json go")
    parser.add_argument("--samples-per-shard", type=int, required=True)
    parser.add_argument("--flac", action="store_true", help="FLAC instead of WAV (smaller)")
    parser.add_argument("--seed", type=int, default=0, help="for the shuffle of the input order")
    parser.add_argument("--no-shuffle", action="store_true", help="keep the input order")
    parser.add_argument(
        "--on-error", choices=("raise", "skip"), default="raise", help="for unreadable inputs"
    )
    args = parser.parse_args(argv)
    try:
        index = write_shards(
            input_entries(args.input),
            args.out_dir,
            args.samples_per_shard,
            flac=args.flac,
            shuffle=not args.no_shuffle,
            seed=args.seed,
            on_error=args.on_error,
        )
    except AudioseqError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    skipped = sum(index["skipped"].values())
    print(
        f"{index['count']} samples ({index['seconds'] / 3600:.2f} h, {len(index['labels'])} "
        f"labels) in {len(index['shards'])} shards under {args.out_dir}"
        + (f"; {skipped} skipped" if skipped else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
