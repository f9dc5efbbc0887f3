#!/usr/bin/env python
"""Thin launcher: `python scripts/eval.py [overrides]` is `audioseq-eval [overrides]`."""

from audioseq.cli.eval import main

if __name__ == "__main__":
    main()
