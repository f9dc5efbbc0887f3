#!/usr/bin/env python
"""Thin launcher: `python scripts/compare_runs.py MULTIRUN [options]` prints a Markdown
table of the jobs of a Hydra multirun and writes PNG plots (options: `--help`, or
src/audioseq/cli/compare_runs.py)."""

import sys

from audioseq.cli.compare_runs import main

if __name__ == "__main__":
    sys.exit(main())
