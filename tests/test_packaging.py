"""A non-editable install (a built wheel) ships the Hydra configs and finds them."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from processes import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(ROOT)]
    subprocess.run(cmd, check=True, capture_output=True, timeout=600)
    return next(out.glob("audioseq-*.whl"))


def test_wheel_contains_every_config(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for config in (ROOT / "conf").rglob("*.yaml"):
        assert f"audioseq/conf/{config.relative_to(ROOT / 'conf')}" in names
    assert "audioseq/cli/train.py" in names


def test_installed_wheel_composes_its_own_configs(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target)]
    subprocess.run([*pip, str(wheel)], check=True, capture_output=True, timeout=600)
    env = {**os.environ, "PYTHONPATH": str(target)}
    probe = "from audioseq.cli.config_dir import config_dir; print(config_dir())"
    where = subprocess.run(
        [sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert where.stdout.strip() == str(target / "audioseq" / "conf")
    composed = subprocess.run(
        [sys.executable, "-m", "audioseq.cli.train", "--cfg", "job", "model=gru"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert composed.returncode == 0, composed.stderr
    assert "cell: gru" in composed.stdout
