#!/usr/bin/env python
"""Thin launcher: `python scripts/predict.py [overrides]` is `audioseq-predict [overrides]`."""

from audioseq.cli.predict import main

if __name__ == "__main__":
    main()
