"""Where the Hydra configs live: the checkout's conf/ or the copy shipped in the wheel."""

from importlib.resources import files
from pathlib import Path


def config_dir() -> str:
    """Absolute path of the configs: ``conf/`` beside ``src/`` in a checkout (editable
    installs and scripts/), else ``audioseq/conf`` inside an installed wheel."""
    checkout = Path(__file__).resolve().parents[3] / "conf"
    if (checkout / "train.yaml").is_file():
        return str(checkout)
    return str(files("audioseq") / "conf")
