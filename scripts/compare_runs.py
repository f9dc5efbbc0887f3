#!/usr/bin/env python
"""Compare the jobs of a Hydra multirun: prints a Markdown table, writes PNG plots.

python scripts/compare_runs.py logs/long_memory/multiruns/<timestamp> [--out docs/images]
    [--plot PATH] [--metric test/acc] [--curve val/acc] [--where model=rnn,lstm]
    [--images gradients/dL_dh[=PATH]]
"""

import sys

from audioseq.reports import main

if __name__ == "__main__":
    sys.exit(main())
