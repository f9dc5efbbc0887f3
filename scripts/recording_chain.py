"""Does a model survive the recording chain? Its test accuracy on re-encoded copies of the clips.

    python scripts/recording_chain.py CKPT TEST.jsonl [--out DIR] [--origin-rate 8000]

writes the test clips of TEST.jsonl as 16 kHz WAV, 44.1 kHz stereo FLAC, 48 kHz float WAV,
22.05 kHz 24-bit WAV and 32 kHz Ogg Vorbis under DIR/<chain>/ (with ``--origin-rate``,
band-limited to that rate first, as the model's training material was), evaluates the
checkpoint on each with ``audioseq-eval``, and prints a Markdown table of test/acc and its
difference to the 16 kHz WAV copy.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from audioseq.data.recording_chain import CHAINS, write_chain


def evaluate(checkpoint: Path, manifest: Path, run_dir: Path) -> float:
    """test/acc of ``checkpoint`` on ``manifest``, through the audioseq-eval command."""
    command = [
        str(Path(sys.executable).with_name("audioseq-eval")),
        f"ckpt_path={checkpoint}",
        f"data.test_manifest={manifest}",
        "split=test",
        f"hydra.run.dir={run_dir}",
    ]
    subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads((run_dir / "metrics.json").read_text())["test/acc"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path)
    parser.add_argument("manifest", type=Path, help="the test clips (JSON Lines manifest)")
    parser.add_argument("--out", type=Path, default=None, help="where the copies go")
    parser.add_argument("--origin-rate", type=int, default=None, help="band-limit first")
    parser.add_argument("--chains", nargs="+", default=list(CHAINS), choices=list(CHAINS))
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="recording_chain_"))
    accuracy = {}
    for name in args.chains:
        manifest = write_chain(args.manifest, out / name, CHAINS[name], args.origin_rate)
        accuracy[name] = evaluate(args.checkpoint.resolve(), manifest, out / name / "eval")
        print(f"{name}: test/acc {accuracy[name]:.4f}", file=sys.stderr)
    reference = accuracy.get("wav_16k")
    print("| copy | test/acc | vs 16 kHz WAV |\n|---|---|---|")
    for name, value in accuracy.items():
        delta = "" if reference is None else f"{100 * (value - reference):+.1f} points"
        print(f"| {name} | {value:.4f} | {delta} |")
    print(json.dumps(accuracy))


if __name__ == "__main__":
    main()
