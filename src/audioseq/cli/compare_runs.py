"""The comparison of a multirun's jobs: prints a Markdown table, writes PNG plots.

python scripts/compare_runs.py logs/long_memory/multiruns/<timestamp> [--out docs/images]
    [--plot PATH] [--metric test/acc] [--curve val/acc] [--where model=rnn,lstm]
    [--images gradients/dL_dh[=PATH]]

argparse rather than Hydra: it reads runs that exist and composes no config. The work is
done in :mod:`audioseq.comparison`; this is the command line around it.
"""

import argparse
import sys
from collections.abc import Sequence

from audioseq.comparison.report import compare
from audioseq.errors import AudioseqError, one_line


def main(argv: Sequence[str] | None = None) -> int:
    """Exit status 0, or 2 with one ``error: ...`` line on stderr for a folder that cannot
    be compared; the table goes to stdout, the paths written to stderr."""
    parser = argparse.ArgumentParser(
        description="Compare the jobs of a Hydra multirun: Markdown table and PNG plots."
    )
    parser.add_argument("folder", help="the multirun folder (logs/<task>/multiruns/<time>)")
    parser.add_argument("--out", help="where the PNG files go (default: the multirun folder)")
    parser.add_argument(
        "--plot", help="path of the comparison plot (default: OUT/compare_runs.png)"
    )
    parser.add_argument("--metric", help="final metric to plot (default: test/acc if any)")
    parser.add_argument("--curve", default="val/acc", help="TensorBoard scalar over steps")
    parser.add_argument(
        "--where", action="append", default=[], metavar="KEY=V1,V2", help="keep matching jobs"
    )
    parser.add_argument(
        "--images", action="append", default=[], metavar="TAG[=PATH]",
        help="also write a grid of each job's latest TensorBoard image TAG (OUT/TAG.png)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    try:
        table, written = compare(
            args.folder, args.out, args.metric, args.curve, args.where, args.images, args.plot
        )
    except AudioseqError as exc:
        print(f"error: {one_line(exc)}", file=sys.stderr)
        return 2
    print(table)
    for path in written:
        print(f"wrote {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
