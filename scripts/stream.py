#!/usr/bin/env python
"""Thin launcher: `python scripts/stream.py [overrides]` is `audioseq-stream [overrides]`."""

from audioseq.cli.stream import main

if __name__ == "__main__":
    main()
