#!/usr/bin/env python
"""Thin launcher: `python scripts/train.py [overrides]` is `audioseq-train [overrides]`."""

from audioseq.cli.train import main

if __name__ == "__main__":
    main()
