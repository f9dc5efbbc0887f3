"""Comparing the jobs of a Hydra multirun (``scripts/compare_runs.py`` and the end-of-sweep
callback): reading the jobs and what was swept (``jobs``), the Markdown table (``table``),
the plots (``figures``) and writing them all (``report``)."""
