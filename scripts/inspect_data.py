#!/usr/bin/env python
"""Thin launcher: `python scripts/inspect_data.py [overrides]` is `audioseq-inspect [overrides]`.

Not `inspect.py`: a script of that name would shadow Python's `inspect` module."""

from audioseq.cli.inspect_data import main

if __name__ == "__main__":
    main()
