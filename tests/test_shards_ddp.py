"""Shards under real DDP (2 gloo processes on CPU, 2 workers each) and through the
training CLI: every key once per epoch, equal batch counts per rank, bad samples skipped
without a hang."""

import json
import sys

import pytest
from in_process import audioseq
from processes import run, script
from shard_corpus import good_sample, make_shards, shard_keys, write_tar

# Lightning's DDP launcher starts rank 1 by running this same script again.
SCRIPT = r'''
import json
import sys
from pathlib import Path

import lightning.pytorch as pl
import torch

from audioseq.data.datamodule import AudioDataModule

out, train, val = Path(sys.argv[1]), sys.argv[2], sys.argv[3]


class Recorder(pl.LightningModule):
    """Records, per split and epoch, the batches and keys this rank saw."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.seen = {}

    def record(self, split, batch):
        entry = self.seen.setdefault(
            f"{split}/{self.current_epoch}", {"batches": 0, "keys": [], "skipped": {}}
        )
        entry["batches"] += 1
        entry["keys"] += batch["key"]
        for reason, count in batch["skipped"].items():
            entry["skipped"][reason] = entry["skipped"].get(reason, 0) + count

    def training_step(self, batch, batch_idx):
        self.record("train", batch)
        return (self.weight * batch["audio"].sum()).sum() + self.weight.sum() * 0

    def validation_step(self, batch, batch_idx):
        self.record("val", batch)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.0)

    def on_fit_end(self):
        (out / f"rank{self.global_rank}.json").write_text(json.dumps(self.seen))


data = AudioDataModule(
    source="shards",
    train_shards=train,
    val_shards=val,
    batch_size=3,
    num_workers=2,
    persistent_workers=True,
    on_error="skip",
    clip_seconds=0.25,
    seed=5,
    shuffle_buffer=4,
)
trainer = pl.Trainer(
    accelerator="cpu",
    devices=2,
    strategy="ddp",
    max_epochs=2,
    logger=False,
    enable_checkpointing=False,
    enable_model_summary=False,
    num_sanity_val_steps=0,
)
trainer.fit(Recorder(), datamodule=data)
'''


def test_ddp_two_ranks_two_workers_each_sample_once_equal_batches(tmp_path):
    # Train: uneven shards (5+5+5+5+3) plus one holding a corrupt and an unlabelled sample.
    train = make_shards(tmp_path, 23, 5, name="train")
    bad = [good_sample(100), good_sample(101), good_sample(102), good_sample(103)]
    bad[1]["wav"] = b"RIFF but not really a wav file" * 4
    bad[2]["json"] = {"duration": 0.25}
    write_tar(train, "bad.tar", bad)
    val = make_shards(tmp_path, 12, 3, name="val")
    program = tmp_path / "ddp_shards.py"
    program.write_text(SCRIPT)
    run([sys.executable, program, tmp_path, train, val], cwd=tmp_path, timeout=600)

    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2)]
    good_train = [k for k in shard_keys(train) if k not in ("bad.tar/s0101", "bad.tar/s0102")]
    expected = {"train": sorted(good_train), "val": sorted(shard_keys(val))}
    batches = {"train": 5, "val": 2}  # 27 slots: 13 + 14 in batches of 3; 12: 6 + 6
    orders = []
    for epoch in range(2):
        for split in ("train", "val"):
            seen = [rank[f"{split}/{epoch}"] for rank in ranks]
            assert [s["batches"] for s in seen] == [batches[split]] * 2, (split, epoch)
            keys = seen[0]["keys"] + seen[1]["keys"]
            assert sorted(keys) == expected[split], (split, epoch)  # each exactly once
            skipped = [s["skipped"] for s in seen]
            if split == "train":
                total = {r: sum(s.get(r, 0) for s in skipped) for r in ("corrupt", "no_label")}
                assert total == {"corrupt": 1, "no_label": 1}
                orders.append(keys)
    assert orders[0] != orders[1]  # reshuffled between epochs


def test_train_cli_on_shards_writes_metrics(tmp_path):
    train = make_shards(tmp_path, 24, 8, name="train", flac=True)
    val = make_shards(tmp_path, 9, 5, name="val")
    run_dir = tmp_path / "run"
    audioseq(
        "train",
        "data=shards",
        f"data.train_shards={train}",
        f"data.val_shards={val}",
        "data.batch_size=4",
        "debug=fast",
        "features.normalize=utterance",
        "model.encoder.hidden_size=8",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
    )
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert {"val/acc", "epochs", "train_seconds"} <= set(metrics)
    assert "source: shards" in (run_dir / ".hydra" / "config.yaml").read_text()


@pytest.mark.slow
def test_train_cli_ddp_on_shards_with_workers(tmp_path):
    """The full stack: Hydra, trainer=ddp_cpu, 2 workers per rank, uneven shards."""
    train = make_shards(tmp_path, 29, 6, name="train")
    val = make_shards(tmp_path, 10, 4, name="val")
    run_dir = tmp_path / "run"
    script(
        "train",
        "data=shards",
        "trainer=ddp_cpu",
        f"data.train_shards={train}",
        f"data.val_shards={val}",
        "data.batch_size=4",
        "data.num_workers=2",
        "features.normalize=utterance",
        "model.encoder.hidden_size=8",
        "trainer.max_epochs=2",
        f"hydra.run.dir={run_dir}",
        cwd=tmp_path,
        timeout=900,
    )
    assert json.loads((run_dir / "metrics.json").read_text())["epochs"] == 2
