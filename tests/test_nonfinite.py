"""A clip whose features overflow (finite samples of 1e30: power 1e60 is Inf in float32)
makes NaN gradients through the real data path: the default stops with a line naming the
step and the clip, keeping the checkpoints; action=skip drops those steps and counts them."""

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from in_process import train
from processes import script
from tensorboard_events import scalars

from audioseq.callbacks.nonfinite import all_finite

LOUD = "loud.wav"


def corpus(tmp_path: Path) -> list[str]:
    """8 good clips and one that overflows, for train; good clips for val."""
    rng = np.random.default_rng(0)
    lines = {"train": [], "val": []}
    for split in lines:
        for i in range(8):
            name = f"{split}{i}.wav"
            sf.write(tmp_path / name, (0.1 * rng.standard_normal(8000)).astype(np.float32), 16000)
            lines[split].append({"audio_filepath": name, "label": "ab"[i % 2]})
    sf.write(tmp_path / LOUD, np.full(8000, 1e30, np.float32), 16000, subtype="FLOAT")
    lines["train"].append({"audio_filepath": LOUD, "label": "a"})
    for split, records in lines.items():
        (tmp_path / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return [
        "data=manifest",
        f"data.train_manifest={tmp_path / 'train.jsonl'}",
        f"data.val_manifest={tmp_path / 'val.jsonl'}",
        "data.batch_size=3",
        "features.normalize=utterance",  # global statistics would be poisoned before step 0
        "model.encoder.hidden_size=8",
        f"hydra.run.dir={tmp_path / 'run'}",
    ]


def test_a_nonfinite_gradient_stops_the_run_naming_the_clip(tmp_path):
    done = train(*corpus(tmp_path), "trainer.max_epochs=3", cwd=tmp_path, returncode=2)
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("error: non-finite gradients at step "), last
    assert LOUD in last and "action=skip" in last
    assert "Traceback" not in done.stderr


def test_skip_drops_the_steps_and_counts_them(tmp_path):
    done = train(
        *corpus(tmp_path), "trainer.max_epochs=2", "callbacks.nonfinite.action=skip", cwd=tmp_path
    )
    assert "non-finite" not in done.stderr
    run = tmp_path / "run"
    skipped = scalars(run)["train/skipped_nonfinite"]
    assert [value for _, value in skipped] == [1.0, 1.0]  # the loud clip, once per epoch
    metrics = json.loads((run / "metrics.json").read_text())
    assert np.isfinite(metrics["val/loss"])  # the weights never saw the NaN
    assert (run / "checkpoints" / "last.ckpt").is_file()


def test_ddp_ranks_agree_and_stop_together(tmp_path):
    """The check reads all-reduced gradients: both ranks stop at the same step, no rank
    is left waiting (the run would hit the test's timeout)."""
    done = script(  # DDP ranks re-run the command: a process of its own
        "train",
        *corpus(tmp_path),
        "trainer=ddp_cpu",
        "trainer.max_epochs=3",
        cwd=tmp_path,
        returncode=2,
        timeout=240,
    )
    assert "error: non-finite gradients at step " in done.stderr


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
def test_all_finite_finds_one_nan_or_inf_and_never_overflows(dtype):
    """The one-sync check agrees with ``isfinite`` element by element, also for tensors of
    the largest finite values (whose plain sum would overflow) and mixed dtypes."""
    largest = torch.full((1000, 10), torch.finfo(dtype).max, dtype=dtype)
    tensors = [torch.randn(50, 3).to(dtype), largest, -largest, torch.zeros(7, dtype=torch.float32)]
    assert all_finite(tensors)
    for bad in (float("nan"), float("inf"), -float("inf")):
        for i in range(len(tensors)):
            broken = [t.clone() for t in tensors]
            broken[i].view(-1)[-1] = bad
            assert not all_finite(broken), (bad, i)
