"""Shared fixtures: small, generic helpers for writing real audio files in tests.

Under pytest-xdist (``make test`` runs ``-n auto``) each test process gets its share of
the cores as torch threads, and so do the processes its tests start (console scripts,
DDP ranks), through ``OMP_NUM_THREADS``: two test processes that each ran one thread per
core spent half their CPU in contended thread pools (docs/PERFORMANCE.md).
"""

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from audioseq.data.workers import usable_cores

#: Test processes for ``-n auto``: one per usable core, at most 4 (each takes up to a GiB
#: and starts DDP ranks of its own; the longest modules bound the suite beyond that).
MAX_TEST_PROCESSES = 4


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int | None:
    """``-n auto``: the cores this run may use (its affinity and cgroup quota: xdist's own
    count is the host's in a container limited to fewer CPUs), at most 4; xdist's
    ``PYTEST_XDIST_AUTO_NUM_WORKERS`` still decides where it is set."""
    if "PYTEST_XDIST_AUTO_NUM_WORKERS" in os.environ:
        return None
    return min(MAX_TEST_PROCESSES, usable_cores())


if "PYTEST_XDIST_WORKER_COUNT" in os.environ:
    _threads = max(1, usable_cores() // int(os.environ["PYTEST_XDIST_WORKER_COUNT"]))
    os.environ["OMP_NUM_THREADS"] = str(_threads)
    import torch

    torch.set_num_threads(_threads)


def _sine(
    freq: float, seconds: float, rate: int, amplitude: float = 0.5, channels: int = 1
) -> np.ndarray:
    t = np.arange(round(seconds * rate)) / rate
    wave = (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return wave if channels == 1 else np.repeat(wave[:, None], channels, axis=1)


def _write_wav(path: str | Path, audio: np.ndarray, rate: int, subtype: str | None = None) -> Path:
    """Write ``audio`` ([T] or [T, C]) with soundfile; the format follows the suffix
    (.wav, .flac, ...); ``subtype`` is soundfile's (PCM_16, PCM_24, FLOAT, ...)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), np.asarray(audio), rate, subtype=subtype)
    return path


@pytest.fixture
def sine() -> Callable[..., np.ndarray]:
    """``sine(freq, seconds, rate, amplitude=0.5, channels=1)`` -> float32 [T] or [T, C]."""
    return _sine


@pytest.fixture
def write_wav() -> Callable[..., Path]:
    """``write_wav(path, audio, rate, subtype=None)`` -> the path of a real audio file."""
    return _write_wav
