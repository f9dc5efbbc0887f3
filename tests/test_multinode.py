"""Multi-node on the real launchers: two torchrun "nodes" on this machine, and the SLURM
batch script through a stand-in srun.

The nodes run the per-node commands of the README as written (gloo, one process per node,
the rendezvous on 127.0.0.1). Each rank saves what it did (steps, world size, the cluster
environment Lightning chose, its final weights) through :class:`RankProbe`, a callback
added on the command line; the user's default callbacks all stay on.
"""

import json
import os
import socket
import sys
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from processes import ROOT, TRAIN, run, run_together, train

from audioseq.cli.external_launch import Launch, detect, launch_overrides, no_shared_run_dir

TORCHRUN = str(Path(sys.executable).with_name("torchrun"))
SMALL = [
    "data.train_size=256",
    "data.val_size=32",
    "data.test_size=32",
    "model.encoder.hidden_size=16",
    "model.encoder.num_layers=1",
    "model.encoder.dropout=0",
    "model.head_dropout=0",
    "trainer.max_epochs=1",
]
# 2 nodes x 16 = 1 process x 32: 8 optimizer steps either way.
NODE_BATCH, STEPS = 16, 8
# See test_two_torchrun_nodes_match_one_process for the measured differences.
LOSS_TOL, WEIGHT_TOL = 1e-4, 1e-3


class RankProbe(pl.Callback):
    """Test-only: at the end of fitting each rank saves ``rank<R>.pt`` into ``out_dir``."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        environment = getattr(trainer.strategy, "cluster_environment", None)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        state = {
            "global_step": trainer.global_step,
            "world_size": trainer.world_size,
            "environment": type(environment).__name__,
            "weights": {k: v.detach().clone() for k, v in pl_module.state_dict().items()},
        }
        torch.save(state, self.out_dir / f"rank{trainer.global_rank}.pt")


def probe(out_dir: Path) -> list[str]:
    return [
        "+callbacks.rank_probe._target_=test_multinode.RankProbe",
        f"+callbacks.rank_probe.out_dir={out_dir}",
    ]


def probed(out_dir: Path, rank: int) -> dict:
    return torch.load(out_dir / f"rank{rank}.pt", weights_only=False)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without launcher variables, the tests folder importable (RankProbe)."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLURM_", "TORCHELASTIC_"))
        and k not in ("RANK", "LOCAL_RANK", "WORLD_SIZE", "NODE_RANK", "MASTER_ADDR", "MASTER_PORT")
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT / "tests"), env.get("PYTHONPATH")]))
    return env | extra


def node_command(node_rank: int, port: int, *overrides: str) -> list[str]:
    """The README's command for one node (HOST = 127.0.0.1, one CPU process per node)."""
    return [
        TORCHRUN,
        "--nnodes=2",
        "--nproc-per-node=1",
        f"--node-rank={node_rank}",
        "--master-addr=127.0.0.1",
        f"--master-port={port}",
        "--rdzv-id=multinode-test",
        TRAIN,
        "trainer=ddp_cpu",
        "trainer.devices=1",
        "trainer.num_nodes=2",
        *overrides,
    ]


def test_two_torchrun_nodes_match_one_process(tmp_path: Path) -> None:
    """Two torchrun nodes (1 process each, batch 16) against 1 process with batch 32.

    The synthetic source hands rank r the positions r::world of each epoch's order and cuts
    them into consecutive batches, so the two nodes' k-th batches together are exactly the
    single process's k-th batch; the feature statistics are all-reduced sums. With dropout
    off and no augmentation both runs compute the same mean gradient, and differ only in
    float32 summation order (two half-batch means averaged by the all-reduce instead of one
    mean; the statistics' sums split in two). Measured here (seed 1234, 8 AdamW steps):
    weights within 4e-7, val/loss and test/loss within 3e-7. Adam divides each gradient
    by its own running RMS, which magnifies rounding where gradients are tiny: over 16 steps
    (seeds 1, 2, 3, 1234) the weights differed by up to 1.6e-4, the losses by up to 7e-6.
    Tolerances: 1e-3 on the weights (a third of one step, which moves a weight by up to
    lr = 3e-3) and 1e-4 on the losses, 6x and 14x the worst measured.
    """
    logs, probes = tmp_path / "logs", tmp_path / "probes"
    port = free_port()
    overrides = [*SMALL, f"data.batch_size={NODE_BATCH}", f"paths.log_dir={logs}"]
    nodes = [node_command(r, port, *overrides, *probe(probes)) for r in (0, 1)]
    run_together(nodes, cwd=tmp_path, timeout=240, env=clean_env())

    run_dir = logs / "train" / "runs" / "torchrun-multinode-test"
    assert sorted(p.name for p in (logs / "train" / "runs").iterdir()) == [run_dir.name]
    assert [p.parent for p in logs.rglob(".hydra")] == [run_dir]
    assert [p.parent for p in logs.rglob("metrics.json")] == [run_dir]
    assert {p.parent for p in logs.rglob("events.out.tfevents.*")} == {run_dir}
    # rank 1 logs into its own file, not into rank 0's train.log
    assert (run_dir / "train.log").read_text().count("model: ") == 1
    assert (run_dir / "train_rank1.log").read_text().count("model: ") == 1

    ranks = [probed(probes, r) for r in (0, 1)]
    for state in ranks:
        assert state["environment"] == "TorchElasticEnvironment"
        assert state["world_size"] == 2
        assert state["global_step"] == STEPS
    for key, value in ranks[0]["weights"].items():  # DDP kept the two nodes in step
        assert torch.equal(value, ranks[1]["weights"][key]), key

    single_probes = tmp_path / "single_probes"
    single_dir = tmp_path / "single"
    train(
        *SMALL,
        f"data.batch_size={2 * NODE_BATCH}",
        f"hydra.run.dir={single_dir}",
        *probe(single_probes),
        cwd=tmp_path,
        env=clean_env(),
    )
    single = probed(single_probes, 0)
    assert single["global_step"] == STEPS
    worst = max(
        (value - single["weights"][key]).abs().max().item()
        for key, value in ranks[0]["weights"].items()
        if value.is_floating_point()
    )
    assert worst <= WEIGHT_TOL, f"weights differ by {worst:.2e}"
    two = json.loads((run_dir / "metrics.json").read_text())
    one = json.loads((single_dir / "metrics.json").read_text())
    for key in ("val/loss", "test/loss"):
        assert two[key] == pytest.approx(one[key], abs=LOSS_TOL), key


def test_slurm_batch_script_under_a_stand_in_srun(tmp_path: Path) -> None:
    """scripts/slurm/train.sbatch run by bash with the variables sbatch sets, its srun a
    stand-in that starts the command as task 0 of 1 with srun's variables. Not a SLURM
    cluster: it checks the script's command line, that Lightning chose SLURMEnvironment
    and that the run folder is named after the job and step (the GPU trainer is switched
    to the CPU by overrides after the script's own, as a user would)."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    srun = bin_dir / "srun"
    srun.write_text(
        "#!/bin/sh\n"
        "export SLURM_NTASKS=1 SLURM_PROCID=0 SLURM_LOCALID=0 SLURM_NODEID=0 SLURM_STEP_ID=0\n"
        f"export SLURM_NODELIST=localhost MASTER_PORT={free_port()}\n"
        'exec "$@"\n'
    )
    srun.chmod(0o755)
    logs, probes = tmp_path / "logs", tmp_path / "probes"
    env = clean_env(
        PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        SLURM_JOB_ID="4242",
        SLURM_JOB_NAME="audioseq",
        SLURM_NNODES="1",
        SLURM_NTASKS_PER_NODE="1",
        SLURM_CPUS_PER_TASK="2",
    )
    run(
        [
            "bash",
            ROOT / "scripts" / "slurm" / "train.sbatch",
            "trainer.accelerator=cpu",
            "trainer.precision=32-true",
            *SMALL,
            f"paths.log_dir={logs}",
            *probe(probes),
        ],
        cwd=ROOT,
        env=env,
        timeout=120,
    )
    state = probed(probes, 0)
    assert state["environment"] == "SLURMEnvironment"
    run_dir = logs / "train" / "runs" / "slurm-4242.0"
    assert (run_dir / "metrics.json").is_file()
    assert (run_dir / ".hydra" / "config.yaml").is_file()


def test_launch_overrides_per_launcher() -> None:
    torchrun = {"TORCHELASTIC_RUN_ID": "job7", "RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4"}
    launch = detect(torchrun)
    assert launch == Launch("torchrun", 3, 1, 4, "torchrun-job7")
    assert launch_overrides(["model=gru"], launch, "train") == [
        "hydra.run.dir=${paths.log_dir}/${task_name}/runs/torchrun-job7",
        "hydra.output_subdir=null",
        "hydra.job.name=train_rank3",
    ]
    # the user's folder wins; under -m the sweep folder is named instead
    assert launch_overrides(["hydra.run.dir=/x"], launch, "train")[0] == "hydra.output_subdir=null"
    assert launch_overrides(["-m", "model=rnn,gru"], launch, "train")[0] == (
        "hydra.sweep.dir=${paths.log_dir}/${task_name}/multiruns/torchrun-job7"
    )
    # plain torchrun has no id: rank 0 keeps its defaults, each node's local rank 0 warns
    plain = detect({**torchrun, "TORCHELASTIC_RUN_ID": "none", "RANK": "0", "LOCAL_RANK": "0"})
    assert launch_overrides([], plain, "train") == []
    assert "hydra.run.dir=PATH" in no_shared_run_dir([], plain)
    assert no_shared_run_dir(["hydra.run.dir=/x"], plain) is None
    # srun; torchrun inside a SLURM job uses the job's id when it has none of its own
    slurm = {"SLURM_NTASKS": "8", "SLURM_PROCID": "5", "SLURM_LOCALID": "1", "SLURM_JOB_ID": "99"}
    assert detect({**slurm, "SLURM_STEP_ID": "0"}) == Launch("slurm", 5, 1, 8, "slurm-99.0")
    assert detect({**torchrun, **slurm, "TORCHELASTIC_RUN_ID": "none"}).run_name == "slurm-99"
    # Lightning's rule: an interactive SLURM shell is not an srun launch; nor is a plain command
    assert detect({**slurm, "SLURM_JOB_NAME": "interactive"}) is None
    assert detect({}) is None
