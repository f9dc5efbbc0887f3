#!/usr/bin/env python
"""Thin launcher: `python scripts/export.py [overrides]` is `audioseq-export [overrides]`."""

from audioseq.cli.export import main

if __name__ == "__main__":
    main()
