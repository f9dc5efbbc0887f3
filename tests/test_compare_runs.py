"""scripts/compare_runs.py on a tiny real multirun (2 models x 2 delays of the long_memory
experiment): the Markdown table, the PNG plots, filters, and its errors."""

import json
import os
import shutil
import sys
from pathlib import Path

import matplotlib.image
import pytest
import torch
from in_process import audioseq
from processes import run, script

from audioseq.cli.compare_runs import main
from audioseq.comparison.jobs import ReportError, load_multirun, numeric_keys, swept_keys
from audioseq.comparison.report import compare

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Tiny models: one intra-op thread is faster, and immune to a busy machine.
ONE_THREAD = {**os.environ, "OMP_NUM_THREADS": "1"}

TINY = [
    "experiment=long_memory",
    "model=rnn,gru",
    "data.delay_seconds=0.1,0.2",
    "debug=fast",
    "data.batch_size=8",
    "data.train_size=24",
    "data.val_size=16",
    "data.test_size=16",
    "features.stats_batches=2",
    "callbacks.gradient_flow.max_clips=2",
]


@pytest.fixture(scope="module")
def multirun(tmp_path_factory) -> Path:
    """A real 4-job sweep through scripts/train.py -m, run as a user would (the sweep goes
    to ./logs); returns its multirun folder."""
    work = tmp_path_factory.mktemp("sweep")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: faster, and immune to a busy machine
    try:
        audioseq("train", "-m", *TINY, cwd=work, timeout=900)
    finally:
        torch.set_num_threads(threads)
    (folder,) = (work / "logs" / "long_memory" / "multiruns").iterdir()
    return folder


def compare_runs(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """The script's ``main`` in this process (the script itself is run once, below):
    (exit status, stdout, stderr)."""
    status = main(list(args))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def table_rows(stdout: str) -> list[list[str]]:
    lines = [line for line in stdout.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def assert_png(path: Path, min_width: int = 400) -> None:
    assert path.read_bytes()[:8] == PNG_SIGNATURE, path
    picture = matplotlib.image.imread(path)
    assert picture.shape[0] > 200 and picture.shape[1] > min_width, picture.shape


def test_the_script_prints_the_table_and_writes_the_plots(multirun: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = script("compare_runs", str(multirun), "--out", str(out), "--images",
                    "gradients/dL_dh", cwd=tmp_path, env=ONE_THREAD)  # fmt: skip
    header, rule, *rows = table_rows(result.stdout)
    assert header[:4] == ["job", "model", "data.delay_seconds", "params"]
    assert {"val/acc_best", "test/acc", "test/loss", "epochs"} <= set(header)
    assert set(rule) == {"---"}
    assert [row[:3] for row in rows] == [
        ["0", "rnn", "0.1"], ["1", "rnn", "0.2"], ["2", "gru", "0.1"], ["3", "gru", "0.2"]
    ]  # fmt: skip
    params = {row[1]: row[3] for row in rows}
    assert params == {"rnn": "9,892", "gru": "9,957"}  # the experiment's equal budgets
    acc = header.index("test/acc")
    assert all(0.0 <= float(row[acc]) <= 1.0 for row in rows)
    assert_png(out / "compare_runs.png")
    assert_png(out / "gradients_dL_dh.png")
    assert "wrote" in result.stderr


def test_where_keeps_the_matching_jobs_and_the_plot_goes_into_the_multirun(
    multirun: Path, tmp_path: Path, capsys
) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(multirun, copy)
    status, out, err = compare_runs(str(copy), "--where", "model=gru", capsys=capsys)
    assert status == 0, err
    header, _, *rows = table_rows(out)
    assert "model" not in header  # one model left: not a swept column any more
    assert [row[0] for row in rows] == ["2", "3"]
    assert_png(copy / "compare_runs.png")


def test_an_unfinished_job_is_a_row_not_a_crash(multirun: Path, tmp_path: Path, capsys) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(multirun, copy)
    (copy / "3" / "metrics.json").unlink()
    metrics = json.loads((copy / "0" / "metrics.json").read_text())
    del metrics["model/params"]  # as written before the count was in metrics.json
    (copy / "0" / "metrics.json").write_text(json.dumps(metrics))
    status, out, err = compare_runs(str(copy), "--out", str(tmp_path), capsys=capsys)
    assert status == 0, err
    rows = table_rows(out)[2:]
    assert rows[3][:3] == ["3", "gru", "0.2"] and "unfinished" in rows[3]
    assert rows[0][3] == "9,892"  # counted from the checkpoint instead
    assert_png(tmp_path / "compare_runs.png")


def test_swept_and_numeric_keys(multirun: Path) -> None:
    jobs = load_multirun(multirun, with_params=False)
    assert [job.name for job in jobs] == ["0", "1", "2", "3"]
    keys = swept_keys(jobs)
    assert keys == ["model", "data.delay_seconds"]
    assert numeric_keys(jobs, keys) == ["data.delay_seconds"]
    assert all(job.metrics["epochs"] == 1 for job in jobs)


def test_folders_that_are_not_a_multirun(multirun: Path, tmp_path: Path, capsys) -> None:
    cases = {
        str(multirun / "0"): "is a single run, not a multirun",
        str(tmp_path): "is not a Hydra multirun folder",
        str(multirun.parent): f"it holds multiruns ['{multirun.name}']",
        str(tmp_path / "nope"): "no such folder",
    }
    for folder, message in cases.items():
        status, out, err = compare_runs(folder, capsys=capsys)
        assert status == 2, (folder, err)
        assert err.startswith("error: ") and message in err and err.count("\n") == 1, err
        assert out == ""
    status, _, err = compare_runs(str(multirun), "--metric", "val/nope", "--out", str(tmp_path),
                                  capsys=capsys)  # fmt: skip
    assert status == 2 and "val/nope" in err and "test/acc" in err
    with pytest.raises(ReportError, match="no job matches"):
        compare(multirun, tmp_path, where=["model=lstm"])


def test_the_console_script_is_the_same_command(multirun: Path, tmp_path: Path) -> None:
    """``audioseq-compare`` (installed by ``make``) is ``scripts/compare_runs.py``."""
    command = Path(sys.executable).with_name("audioseq-compare")
    result = run([command, str(multirun), "--out", str(tmp_path)], cwd=tmp_path, env=ONE_THREAD)
    assert table_rows(result.stdout)[0][:2] == ["job", "model"]
    missing = run([command, str(tmp_path / "nothing")], cwd=tmp_path, returncode=None)
    assert missing.returncode == 2
    assert missing.stderr.strip().splitlines()[-1].startswith("error: "), missing.stderr
