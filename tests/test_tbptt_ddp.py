"""Truncated BPTT under real 2-process DDP (gloo on CPU), through the console script with
the defaults a user gets: each rank trains on its own recordings of different lengths,
so the ranks' batches need different chunk counts; the rank that runs out takes zero
steps with the other, both take the same optimiser steps, and the gradients are
all-reduced at every step (the ranks end with the weights rank 0 saved). Manifests, and
shards made from them (each rank its own recordings from the shards' epoch plan)."""

import json
import os
from pathlib import Path

import pytest
import torch
from long_recordings import write_dialling_manifest
from processes import train

from audioseq.data.shards.writer import input_entries, write_shards

#: Per rank: each training batch's own chunk count, the optimiser steps, and the weights.
PROBE = """
import json
import lightning.pytorch as pl
import torch
from audioseq.models.chunks import chunk_count


class ChunkProbe(pl.Callback):
    def on_train_start(self, trainer, pl_module):
        self.chunks, self.steps = [], 0
        self.initial = {k: v.clone() for k, v in pl_module.state_dict().items()}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        size = pl_module.tbptt_frames
        self.chunks.append(chunk_count(pl_module.frontend, batch["lengths"], size))

    def on_before_optimizer_step(self, trainer, pl_module, optimizer):
        self.steps += 1

    def on_train_end(self, trainer, pl_module):
        rank, out = trainer.global_rank, trainer.default_root_dir
        report = {"chunks": self.chunks, "steps": self.steps, "global_step": trainer.global_step}
        with open(f"{out}/probe_rank{rank}.json", "w") as f:
            json.dump(report, f)
        torch.save({"initial": self.initial, "final": pl_module.state_dict()},
                   f"{out}/weights_rank{rank}.pt")
"""

#: Recordings of 2 to 13 s: with 1 s chunks, batches of 2 need 2 to 13 chunks.
SECONDS = [2.5, 12.2, 6.0, 3.1, 9.4, 2.2, 4.8, 7.7]


def data_overrides(source: str, manifests: dict[str, Path]) -> list[str]:
    """``data=manifest`` on the manifests, or ``data=shards`` on shards made from them."""
    if source == "manifest":
        return [f"data.{split}_manifest={path}" for split, path in manifests.items()]
    folders = {split: path.parent.parent / "shards" / split for split, path in manifests.items()}
    for split, folder in folders.items():
        write_shards(input_entries(manifests[split]), folder, 2, progress=False)
    return [f"data.{split}_shards={folder}" for split, folder in folders.items()]


@pytest.mark.parametrize(
    ("source", "accumulate"), [("manifest", 1), ("manifest", 2), ("shards", 1)]
)
def test_ddp_tbptt_ranks_step_together_on_synchronised_gradients(
    tmp_path: Path, source: str, accumulate: int
) -> None:
    (tmp_path / "ddp_probe.py").write_text(PROBE)
    manifests = {
        split: write_dialling_manifest(tmp_path / split, seconds, seed)
        for split, seconds, seed in (("train", SECONDS, 1), ("val", [5.0, 3.0], 2),
                                     ("test", [4.0, 6.0], 3))
    }  # fmt: skip
    run_dir = tmp_path / "run"
    train(
        "task=detect",
        f"data={source}",
        *data_overrides(source, manifests),
        "data.augment.time_shift_seconds=0",
        "trainer=ddp_cpu",
        "data.batch_size=2",
        "model=gru",
        "model.encoder.hidden_size=16",
        "model.encoder.num_layers=1",
        "task.tbptt_frames=100",
        f"+trainer.accumulate_grad_batches={accumulate}",
        "trainer.max_epochs=1",
        "+callbacks.probe._target_=ddp_probe.ChunkProbe",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
        timeout=300,
        env={**os.environ, "PYTHONPATH": str(tmp_path), "OMP_NUM_THREADS": "1"},
    )
    probes = [json.loads((run_dir / f"probe_rank{r}.json").read_text()) for r in (0, 1)]
    mine, theirs = probes[0]["chunks"], probes[1]["chunks"]
    assert len(mine) == len(theirs) == 2  # 8 recordings, 2 ranks, batches of 2
    assert mine != theirs  # a rank runs out of chunks before the other: zero steps
    chunks = sum(max(pair) for pair in zip(mine, theirs, strict=True))
    for probe in probes:  # a step per `accumulate` chunks of the longer rank, both ranks
        assert probe["steps"] == probe["global_step"] == -(-chunks // accumulate), probes

    weights = [torch.load(run_dir / f"weights_rank{r}.pt") for r in (0, 1)]
    saved = torch.load(run_dir / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    for name, value in weights[0]["final"].items():
        torch.testing.assert_close(weights[1]["final"][name], value, rtol=0, atol=0)
        torch.testing.assert_close(saved[name], value, rtol=0, atol=0)
    initial = weights[0]["initial"]
    assert any(not torch.equal(v, initial[k]) for k, v in weights[0]["final"].items())

    metrics = json.loads((run_dir / "metrics.json").read_text())
    for key in ("val/frame_acc", "val/event_f1", "val/event_f1_best", "test/event_f1",
                "test/frame_acc", "train/loss"):  # fmt: skip
        assert key in metrics, key
