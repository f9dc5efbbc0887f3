"""OmegaConf resolvers the configs use; registered when a command module is imported.

``${audioseq.folder:PATH}`` creates the folder PATH (with its parents) and returns it:
the Optuna study's SQLite file must have an existing folder before the first trial runs,
and that folder (``logs/<task>/optuna/``) outlives each sweep's own timestamped folder so
that running the same search again adds trials to the same study.
"""

from pathlib import Path

from omegaconf import OmegaConf


def _folder(path: str) -> str:
    Path(path).mkdir(parents=True, exist_ok=True)
    return path


OmegaConf.register_new_resolver("audioseq.folder", _folder, replace=True)
